//! kv-http's Azure Table protocol against Azurite on 127.0.0.1, composed and
//! run on the embedded wasmtime with wasi:http: conformance for both drafts
//! (its 2,500-key list included; get-many's requests sent at once),
//! concurrent increments, a wrong key, and 8 clients racing one
//! if-not-exists: exactly one wins.

use kv_runner::{Command, RunOptions};
use kv_virt::adapters::BackendKind;
use kv_virt::options::{AdapterOptions, ProtocolArg};
use kv_virt_tests::proxy::CountingProxy;
use kv_virt_tests::servers::azurite::{Azurite, DEV_ACCOUNT, DEV_KEY};
use kv_virt_tests::*;

/// The `kv-run` binary under test (it serves the if-not-exists race).
const KV_RUN: &str = env!("CARGO_BIN_EXE_kv-run-under-test");

/// The variable the adapter reads the account key from.
const KEY_VARIABLE: &str = "AZURE_STORAGE_KEY";

fn options(url: &str, buckets: &[&str]) -> AdapterOptions {
    let credentials = vec![format!("account-key=env:{KEY_VARIABLE}")];
    http_options(ProtocolArg::AzureTable, url, buckets, credentials, |http| {
        http.azure_account = Some(DEV_ACCOUNT.into());
        http.azure_table = Some("kvvirt".into());
    })
}

fn run_args(args: &[&str], key: &str) -> RunOptions {
    RunOptions {
        args: args.iter().map(|s| s.to_string()).collect(),
        env: vec![(KEY_VARIABLE.into(), key.into())],
        capture_output: true,
        ..RunOptions::default()
    }
}

fn counter(url: &str) -> Command {
    composed_command(COUNTER, BackendKind::Http, &options(url, &[])).unwrap()
}

/// Through a proxy that lets get-many's three `GET`s through only when all
/// three wait at once: Azure has no batch read, so kv-http sends them
/// together.
#[test]
fn azure_table_conformance() {
    let azurite = Azurite::start("conformance").unwrap();
    let proxy = CountingProxy::gathering(azurite.port(), "many", 3).unwrap();
    let limits = limit_args(kv_http::azure::LIMITS);
    let limits: Vec<&str> = limits.iter().map(String::as_str).collect();
    let run = run_args(&limits, DEV_KEY);
    conformance_every_guest(
        BackendKind::Http,
        &options(&Azurite::url_at(proxy.port()), &CONFORMANCE_BUCKETS),
        &run,
    )
    .unwrap();
    assert!(proxy.gathered(), "get-many's requests were not sent at once");
}

/// 8 instances × 100 increments of one key give exactly 800.
#[test]
fn azure_table_concurrent_increments_are_exact() {
    let azurite = Azurite::start("increments").unwrap();
    assert_concurrent_increments(&counter(&azurite.url()), |args| run_args(args, DEV_KEY), 8, 100);
}

/// The counter's one-line error.
fn counter_error(command: &Command, options: &RunOptions) -> String {
    let output = command.run(options).unwrap();
    assert_eq!(output.exit_code, 1, "{}", output.stdout_text());
    output.stderr_text().trim().to_string()
}

#[test]
fn a_wrong_account_key_is_a_clear_error() {
    let azurite = Azurite::start("wrong-key").unwrap();
    let command = counter(&azurite.url());
    // A well-formed key that is not the account's.
    let wrong = DEV_KEY.replace("Eby8", "AAAA");
    assert_eq!(
        counter_error(&command, &run_args(&[], &wrong)),
        "counter: azure-table: 403 AuthorizationFailure: Server failed to authenticate the request. \
         Make sure the value of the Authorization header is formed correctly including the signature."
    );
    assert_eq!(
        counter_error(&command, &run_args(&[], "not base64!")),
        "counter: azure-table: the account-key credential is not base64"
    );
    let unset = RunOptions {
        env: Vec::new(),
        ..run_args(&[], DEV_KEY)
    };
    assert!(
        counter_error(&command, &unset).starts_with(&format!(
            "counter: azure-table: the account-key is read from the environment variable {KEY_VARIABLE}, which is not set"
        ))
    );
    // The right key works on the same server.
    let output = command.run(&run_args(&[], DEV_KEY)).unwrap();
    assert_eq!(output.exit_code, 0, "{}", output.stderr_text());
}

/// 8 clients create one key with if-not-exists at once (each request its
/// own instance): exactly one wins, the others get precondition-failed.
#[test]
fn azure_table_if_not_exists_has_one_winner() {
    let azurite = Azurite::start("if-not-exists").unwrap();
    let work = work_dir!("azure", "if-not-exists");
    let env = run_args(&[], DEV_KEY).env;
    let winners = if_not_exists_race(
        KV_RUN,
        BackendKind::Http,
        &options(&azurite.url(), &[]),
        &env,
        &work,
    )
    .unwrap();
    assert_eq!(winners, 1);
}
