//! kv-http's s3 protocol against moto on 127.0.0.1: conformance for both
//! drafts (its list check pages through 2,500 keys; moto cannot check
//! signatures of its %-escaped keys, see `Moto::with_s3_bucket`; get-many's
//! requests sent at once), and, with
//! SigV4 authentication enforced, concurrent increments and refused
//! credentials as clear errors, and 8 clients racing one if-not-exists:
//! exactly one wins.

use kv_runner::Command;
use kv_virt::adapters::BackendKind;
use kv_virt::options::{AdapterOptions, ProtocolArg};
use kv_virt_tests::proxy::CountingProxy;
use kv_virt_tests::servers::{Moto, moto};
use kv_virt_tests::*;

/// The `kv-run` binary under test (it serves the if-not-exists race).
const KV_RUN: &str = env!("CARGO_BIN_EXE_kv-run-under-test");

const S3_BUCKET: &str = "kv-data";

/// The options for moto's S3 bucket at `url` (moto itself or a proxy in front).
fn options_at(url: &str, buckets: &[&str]) -> AdapterOptions {
    moto_options(ProtocolArg::S3, url, buckets, |http| {
        http.s3_bucket = Some(S3_BUCKET.into())
    })
}

fn counter(moto: &Moto) -> Command {
    composed_command(COUNTER, BackendKind::Http, &options_at(&moto.url(), &[])).unwrap()
}

/// Through a proxy that lets get-many's three `GET`s through only when all
/// three wait at once: S3 has no batch read, so kv-http sends them together.
#[test]
fn s3_conformance() {
    let moto = Moto::with_s3_bucket("s3-conformance", S3_BUCKET, false).unwrap();
    let proxy = CountingProxy::gathering(moto.port(), "many", 3).unwrap();
    let limits = limit_args(kv_http::s3::LIMITS);
    let limits: Vec<&str> = limits.iter().map(String::as_str).collect();
    conformance_every_guest(
        BackendKind::Http,
        &options_at(&proxy.url(), &CONFORMANCE_BUCKETS),
        &moto.run_options(&limits),
    )
    .unwrap();
    assert!(proxy.gathered(), "get-many's requests were not sent at once");
}

/// 8 instances × 100 increments of one key give exactly 800.
#[test]
fn s3_concurrent_increments_are_exact() {
    let moto = Moto::with_s3_bucket("s3-increments", S3_BUCKET, true).unwrap();
    assert_concurrent_increments(&counter(&moto), |args| moto.run_options(args), 8, 100);
}

#[test]
fn s3_refused_credentials_are_clear_errors() {
    let moto = Moto::with_s3_bucket("s3-credentials", S3_BUCKET, true).unwrap();
    let command = counter(&moto);
    let unknown_key = moto::refused_credentials(&moto, &command, "s3");
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

/// 8 clients create one key with if-not-exists at once (each request its
/// own instance): exactly one wins, the others get precondition-failed.
#[test]
fn s3_if_not_exists_has_one_winner() {
    let moto = Moto::with_s3_bucket("s3-if-not-exists", S3_BUCKET, true).unwrap();
    let work = work_dir!("s3", "if-not-exists");
    let env = moto.run_options(&[]).env;
    let options = options_at(&moto.url(), &[]);
    let winners = if_not_exists_race(KV_RUN, BackendKind::Http, &options, &env, &work).unwrap();
    assert_eq!(winners, 1);
}
