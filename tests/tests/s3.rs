//! kv-http's s3 protocol against moto on 127.0.0.1: conformance for both
//! drafts (its list check pages through 2,500 keys; moto cannot check
//! signatures of its %-escaped keys, see `Moto::with_s3_bucket`), and, with
//! SigV4 authentication enforced, concurrent increments and refused
//! credentials as clear errors.

use kv_runner::Command;
use kv_virt::adapters::BackendKind;
use kv_virt::options::{AdapterOptions, HttpOptions, ProtocolArg};
use kv_virt_tests::servers::{Moto, moto};
use kv_virt_tests::*;

const S3_BUCKET: &str = "kv-data";

/// kv_http::s3::LIMITS, for the conformance guest.
const LIMITS: [&str; 4] = ["--max-key-bytes", "768", "--max-value-bytes", "67108864"];

fn options(moto: &Moto, buckets: &[&str]) -> AdapterOptions {
    AdapterOptions {
        buckets: buckets.iter().map(|s| s.to_string()).collect(),
        http: HttpOptions {
            protocol: Some(ProtocolArg::S3),
            endpoint: Some(moto.url()),
            s3_bucket: Some(S3_BUCKET.into()),
            region: Some(moto::REGION.into()),
            credentials: Moto::credential_flags(),
            ..HttpOptions::default()
        },
        ..AdapterOptions::default()
    }
}

fn counter(moto: &Moto) -> Command {
    composed_command(COUNTER, BackendKind::Http, &options(moto, &[])).unwrap()
}

#[test]
fn s3_conformance() {
    let moto = Moto::with_s3_bucket("s3-conformance", S3_BUCKET, false).unwrap();
    for guest in [CONFORMANCE_DRAFT, CONFORMANCE_DRAFT2] {
        let command =
            composed_command(guest, BackendKind::Http, &options(&moto, &CONFORMANCE_BUCKETS)).unwrap();
        run_conformance(&command, &moto.run_options(&LIMITS)).unwrap();
    }
}

/// 8 instances × 100 increments of one key give exactly 800.
#[test]
fn s3_concurrent_increments_are_exact() {
    let moto = Moto::with_s3_bucket("s3-increments", S3_BUCKET, true).unwrap();
    let command = counter(&moto);
    std::thread::scope(|scope| {
        for _ in 0..8 {
            let (command, moto) = (&command, &moto);
            scope.spawn(move || {
                let output = command
                    .run(&moto.run_options(&["hits", "counter", "100"]))
                    .unwrap();
                assert_eq!(output.exit_code, 0, "{}", output.stderr_text());
                assert_eq!(output.stdout_text().lines().count(), 100);
            });
        }
    });
    let output = command.run(&moto.run_options(&["hits", "counter", "1"])).unwrap();
    assert_eq!(
        output.stdout_text(),
        "counter/hits = 801\n",
        "{}",
        output.stderr_text()
    );
}

#[test]
fn s3_refused_credentials_are_clear_errors() {
    let moto = Moto::with_s3_bucket("s3-credentials", S3_BUCKET, true).unwrap();
    let command = counter(&moto);
    let [wrong_secret, unknown_key] = moto::refused_credentials(&moto, &command);
    assert!(
        wrong_secret.starts_with(
            "counter: s3: 403 SignatureDoesNotMatch: The request signature we calculated does not match"
        ),
        "{wrong_secret}"
    );
    assert!(
        unknown_key.starts_with("counter: s3: 403 InvalidAccessKeyId: "),
        "{unknown_key}"
    );

    // The right key still works: the errors above were the key's.
    let output = command.run(&moto.run_options(&["hits", "counter", "1"])).unwrap();
    assert_eq!(
        output.stdout_text(),
        "counter/hits = 1\n",
        "{}",
        output.stderr_text()
    );
}
