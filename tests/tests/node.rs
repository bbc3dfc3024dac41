//! Composed apps on Node through jco (`tests/node`): the conformance guest on
//! kv-mem, kv-fs and kv-http (etcd) for both drafts, and kv-fs store files that wasmtime and
//! Node take turns on.

use std::path::{Path, PathBuf};

use kv_runner::{RunOptions, RunOutput};
use kv_virt::adapters::BackendKind;
use kv_virt::options::{AdapterOptions, FsOptions, HttpOptions, ProtocolArg};
use kv_virt_tests::node::run_on_node;
use kv_virt_tests::*;

/// One composed component, runnable on both runtimes.
struct App {
    file: PathBuf,
    wasmtime: kv_runner::Command,
}

impl App {
    /// Composes `app` with the adapter and writes it to `work/<name>.wasm`.
    fn compose(work: &Path, name: &str, app: &str, backend: BackendKind, options: &AdapterOptions) -> App {
        let composed = compose(&read(app), backend, options).unwrap();
        let file = work.join(format!("{name}.wasm"));
        std::fs::write(&file, &composed).unwrap();
        let wasmtime = runtime().command(&composed).unwrap();
        App { file, wasmtime }
    }

    fn on_node(&self, options: &RunOptions) -> RunOutput {
        run_on_node(&self.file, options).unwrap()
    }

    fn on_wasmtime(&self, options: &RunOptions) -> RunOutput {
        self.wasmtime.run(options).unwrap()
    }
}

/// kv-fs keeping its files in `dir` as the guest sees it.
fn kv_fs(dir: &str, buckets: &[&str]) -> AdapterOptions {
    AdapterOptions {
        buckets: buckets.iter().map(|s| s.to_string()).collect(),
        fs: FsOptions {
            dir: Some(dir.into()),
            ..FsOptions::default()
        },
        ..AdapterOptions::default()
    }
}

fn assert_counted(output: &RunOutput, expected: &str) {
    assert_eq!(output.exit_code, 0, "{}", output.stderr_text());
    assert_eq!(output.stdout_text(), expected, "{}", output.stderr_text());
}

fn conformance_kv_mem(guest: &str, name: &str, expected_checks: usize) {
    let work = work_dir!("node", name);
    let app = App::compose(&work, "guest", guest, BackendKind::Mem, &conformance_options());
    let passed = check_conformance_output(&app.on_node(&RunOptions::default())).unwrap();
    assert_eq!(passed, expected_checks, "every check ran");
}

#[test]
fn conformance_kv_mem_draft() {
    conformance_kv_mem(CONFORMANCE_DRAFT, "kv-mem-draft", DRAFT_CHECKS);
}

#[test]
fn conformance_kv_mem_draft2() {
    conformance_kv_mem(CONFORMANCE_DRAFT2, "kv-mem-draft2", DRAFT2_CHECKS);
}

#[test]
fn conformance_kv_mem_draft2_built_against_the_2024_text() {
    conformance_kv_mem(CONFORMANCE_DRAFT2_2024, "kv-mem-draft2-2024", DRAFT2_CHECKS);
}

/// The conformance guest on kv-fs on Node, on fresh files, then on wasmtime
/// on the files Node left.
fn conformance_kv_fs(guest: &str, name: &str, expected_checks: usize) {
    let work = work_dir!("node", name);
    let app = App::compose(
        &work,
        "guest",
        guest,
        BackendKind::Fs,
        &AdapterOptions {
            default_bucket: Some(CONFORMANCE_BUCKETS[0].into()),
            ..kv_fs("/data", &CONFORMANCE_BUCKETS)
        },
    );
    let passed = check_conformance_output(&app.on_node(&with_data(&work, &[]))).unwrap();
    assert_eq!(passed, expected_checks, "every check ran");
    assert!(work.join("data/conformance.kvfs").is_file());
    check_conformance_output(&app.on_wasmtime(&with_data(&work, &[]))).unwrap();
}

#[test]
fn conformance_kv_fs_draft() {
    conformance_kv_fs(CONFORMANCE_DRAFT, "kv-fs-draft", DRAFT_CHECKS);
}

#[test]
fn conformance_kv_fs_draft2() {
    conformance_kv_fs(CONFORMANCE_DRAFT2, "kv-fs-draft2", DRAFT2_CHECKS);
}

/// The conformance guest on kv-http against a real etcd, on Node: jco's
/// `wasi:http` carries the adapter's requests.
fn conformance_kv_http_etcd(guest: &str, name: &str, expected_checks: usize) {
    let etcd = servers::Etcd::start(&format!("node-{name}")).unwrap();
    let work = work_dir!("node", name);
    let options = AdapterOptions {
        http: HttpOptions {
            protocol: Some(ProtocolArg::Etcd),
            endpoint: Some(etcd.url()),
            ..HttpOptions::default()
        },
        // The page byte limit `limit_args` gives the guest.
        list_page_bytes: Some(CONFORMANCE_LIST_PAGE_BYTES),
        ..conformance_options()
    };
    let app = App::compose(&work, "guest", guest, BackendKind::Http, &options);
    let run = RunOptions {
        args: limit_args(kv_http::etcd::LIMITS),
        capture_output: true,
        ..RunOptions::default()
    };
    let passed = check_conformance_output(&app.on_node(&run)).unwrap();
    assert_eq!(passed, expected_checks, "every check ran");
}

#[test]
fn conformance_kv_http_etcd_draft() {
    conformance_kv_http_etcd(CONFORMANCE_DRAFT, "kv-http-etcd-draft", DRAFT_CHECKS);
}

#[test]
fn conformance_kv_http_etcd_draft2() {
    conformance_kv_http_etcd(CONFORMANCE_DRAFT2, "kv-http-etcd-draft2", DRAFT2_CHECKS);
}

#[test]
fn a_counter_continues_across_wasmtime_and_node() {
    let work = work_dir!("node", "counter");
    let app = App::compose(&work, "counter", COUNTER, BackendKind::Fs, &kv_fs("/data", &[]));
    assert_counted(&app.on_wasmtime(&with_data(&work, &[])), "counter/hits = 1\n");
    assert_counted(&app.on_node(&with_data(&work, &[])), "counter/hits = 2\n");
    assert_counted(&app.on_wasmtime(&with_data(&work, &[])), "counter/hits = 3\n");
    assert_counted(
        &app.on_node(&with_data(&work, &["hits", "counter", "2"])),
        "counter/hits = 4\ncounter/hits = 5\n",
    );
    assert_counted(&app.on_wasmtime(&with_data(&work, &[])), "counter/hits = 6\n");
}

/// kv-fs opens a directory below a preopen with `mutate-directory`, which
/// the shim refuses: it falls back to opening it without.
#[test]
fn a_store_directory_below_the_preopen_works_on_node() {
    let work = work_dir!("node", "subdirectory");
    std::fs::create_dir(work.join("data/counters")).unwrap();
    let app = App::compose(
        &work,
        "counter",
        COUNTER,
        BackendKind::Fs,
        &kv_fs("/data/counters", &[]),
    );
    assert_counted(&app.on_node(&with_data(&work, &[])), "counter/hits = 1\n");
    assert_counted(&app.on_wasmtime(&with_data(&work, &[])), "counter/hits = 2\n");
    assert_counted(&app.on_node(&with_data(&work, &[])), "counter/hits = 3\n");
    assert!(work.join("data/counters/counter.kvfs").is_file());
}

#[test]
fn a_failing_guest_fails_on_node() {
    let work = work_dir!("node", "failures");
    // No preopen: kv-fs reports it, the counter exits 1.
    let counter = App::compose(&work, "counter", COUNTER, BackendKind::Fs, &kv_fs("/data", &[]));
    let output = counter.on_node(&RunOptions::default());
    assert_eq!(output.exit_code, 1);
    let stderr = output.stderr_text();
    assert!(
        stderr.contains("\"/data\" is not under a preopened directory (the runtime preopened: none)"),
        "{stderr}"
    );

    // A failing conformance check: the guest expects a 16-byte key limit,
    // which kv-mem does not have.
    let guest = App::compose(
        &work,
        "guest",
        CONFORMANCE_DRAFT,
        BackendKind::Mem,
        &conformance_options(),
    );
    let output = guest.on_node(&RunOptions {
        args: vec!["--max-key-bytes".into(), "16".into()],
        ..RunOptions::default()
    });
    assert_eq!(output.exit_code, 1, "{}", output.stdout_text());
    assert!(
        output.stdout_text().contains("FAIL the longest key"),
        "{}",
        output.stdout_text()
    );
    assert!(check_conformance_output(&output).is_err());
}
