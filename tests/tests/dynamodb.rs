//! kv-http's dynamodb protocol against moto on 127.0.0.1 with SigV4
//! authentication enforced: conformance for both drafts (its list check
//! pages through 2,500 keys), concurrent increments, throttling retried,
//! refused credentials as clear errors, and 8 clients racing one
//! if-not-exists: exactly one wins.

use kv_runner::{Command, RunOptions};
use kv_virt::adapters::BackendKind;
use kv_virt::options::{AdapterOptions, ProtocolArg};
use kv_virt_tests::proxy::{CountingProxy, canned_response};
use kv_virt_tests::servers::{Moto, moto};
use kv_virt_tests::*;

/// The `kv-run` binary under test (it serves the if-not-exists race).
const KV_RUN: &str = env!("CARGO_BIN_EXE_kv-run-under-test");

const TABLE: &str = "kv";

/// The options for moto's table at `url` (moto itself or a proxy in front).
fn options_at(url: &str, buckets: &[&str]) -> AdapterOptions {
    moto_options(ProtocolArg::Dynamodb, url, buckets, |http| {
        http.table = Some(TABLE.into())
    })
}

fn run(moto: &Moto, args: &[&str]) -> RunOptions {
    moto.run_options(args)
}

fn counter(moto: &Moto) -> Command {
    composed_command(COUNTER, BackendKind::Http, &options_at(&moto.url(), &[])).unwrap()
}

#[test]
fn dynamodb_conformance() {
    let moto = Moto::with_dynamodb_table("dynamodb-conformance", TABLE).unwrap();
    let limits = limit_args(kv_http::dynamodb::LIMITS);
    let limits: Vec<&str> = limits.iter().map(String::as_str).collect();
    conformance_every_guest(
        BackendKind::Http,
        &options_at(&moto.url(), &CONFORMANCE_BUCKETS),
        &run(&moto, &limits),
    )
    .unwrap();
}

/// 8 instances × 100 increments of one key give exactly 800.
#[test]
fn dynamodb_concurrent_increments_are_exact() {
    let moto = Moto::with_dynamodb_table("dynamodb-increments", TABLE).unwrap();
    assert_concurrent_increments(&counter(&moto), |args| run(&moto, args), 8, 100);
}

/// DynamoDB refuses a request over its rate with a 400
/// `ProvisionedThroughputExceededException`, having not applied it.
fn throttled() -> &'static [u8] {
    canned_response(
        "400 Bad Request",
        "application/x-amz-json-1.0",
        r#"{"__type":"com.amazonaws.dynamodb.v20120810#ProvisionedThroughputExceededException","message":"The level of configured provisioned throughput for the table was exceeded."}"#,
    )
}

/// A throttled request is sent again after a backoff, the conditional
/// writes of increments included; a service that keeps throttling is a
/// clear error once the attempts are spent.
#[test]
fn dynamodb_throttling_is_retried() {
    let moto = Moto::with_dynamodb_table("dynamodb-throttled", TABLE).unwrap();
    // Every other request is throttled (one instance: one request at a time).
    let proxy = CountingProxy::with_faults(moto.port(), |n| (n % 2 == 0).then(throttled)).unwrap();
    let command = composed_command(COUNTER, BackendKind::Http, &options_at(&proxy.url(), &[])).unwrap();
    let output = command.run(&run(&moto, &["hits", "counter", "20"])).unwrap();
    assert_eq!(output.exit_code, 0, "{}", output.stderr_text());
    let expected: String = (1..=20).map(|n| format!("counter/hits = {n}\n")).collect();
    assert_eq!(output.stdout_text(), expected);
    // Each increment: a read and a conditional write, each throttled once.
    assert!(proxy.connections() >= 20 * 4, "{} requests", proxy.connections());

    let always = CountingProxy::with_faults(moto.port(), |_| Some(throttled())).unwrap();
    let mut options = options_at(&always.url(), &[]);
    options.http.max_attempts = Some(3);
    let command = composed_command(COUNTER, BackendKind::Http, &options).unwrap();
    let output = command.run(&run(&moto, &[])).unwrap();
    assert_eq!(output.exit_code, 1, "{}", output.stdout_text());
    assert_eq!(
        output.stderr_text().trim(),
        "counter: dynamodb: 400 ProvisionedThroughputExceededException: \
         The level of configured provisioned throughput for the table was exceeded."
    );
    assert_eq!(always.connections(), 3);
}

#[test]
fn dynamodb_refused_credentials_are_clear_errors() {
    let moto = Moto::with_dynamodb_table("dynamodb-credentials", TABLE).unwrap();
    let command = counter(&moto);
    assert_eq!(
        moto::refused_credentials(&moto, &command, "dynamodb"),
        "counter: dynamodb: 403 InvalidClientTokenId: The security token included in the request is invalid."
    );

    let mut no_secret = run(&moto, &[]);
    no_secret.env.retain(|(name, _)| name != "AWS_SECRET_ACCESS_KEY");
    let output = command.run(&no_secret).unwrap();
    assert_eq!(output.exit_code, 1, "{}", output.stdout_text());
    assert!(
        output.stderr_text().contains(
            "dynamodb: the secret-access-key is read from the environment variable AWS_SECRET_ACCESS_KEY, which is not set"
        ),
        "{}",
        output.stderr_text()
    );

    // The right key still works: the errors above were the key's.
    let output = command.run(&run(&moto, &["hits", "counter", "1"])).unwrap();
    assert_eq!(
        output.stdout_text(),
        "counter/hits = 1\n",
        "{}",
        output.stderr_text()
    );
}

#[test]
fn dynamodb_needs_a_table_and_a_region() {
    let mut options = http_options(
        ProtocolArg::Dynamodb,
        "http://127.0.0.1:1",
        &[],
        Vec::new(),
        |http| http.region = Some("us-east-1".into()),
    );
    let error = compose(&read(COUNTER), BackendKind::Http, &options).unwrap_err();
    assert!(
        format!("{error:#}").contains("the dynamodb protocol needs --table NAME"),
        "{error:#}"
    );
    options.http.table = Some(TABLE.into());
    options.http.region = None;
    let error = compose(&read(COUNTER), BackendKind::Http, &options).unwrap_err();
    assert!(
        format!("{error:#}").contains("the dynamodb protocol needs --region us-east-1"),
        "{error:#}"
    );
    options.http.protocol = Some(ProtocolArg::Etcd);
    let error = compose(&read(COUNTER), BackendKind::Http, &options).unwrap_err();
    assert!(
        format!("{error:#}").contains("--table is an option of the dynamodb protocol, not of etcd"),
        "{error:#}"
    );
}

/// 8 clients create one key with if-not-exists at once (each request its
/// own instance): exactly one wins, the others get precondition-failed.
#[test]
fn dynamodb_if_not_exists_has_one_winner() {
    let moto = Moto::with_dynamodb_table("dynamodb-if-not-exists", TABLE).unwrap();
    let work = work_dir!("dynamodb", "if-not-exists");
    let env = run(&moto, &[]).env;
    let options = options_at(&moto.url(), &[]);
    let winners = if_not_exists_race(KV_RUN, BackendKind::Http, &options, &env, &work).unwrap();
    assert_eq!(winners, 1);
}
