//! A backend per bucket (kv-route): `[[route]]` tables in a `--config`
//! file, composed into one component and run on the embedded wasmtime.

use std::path::Path;

use kv_fs_engine::std_dir::StdDir;
use kv_fs_engine::{BucketFile, Options};
use kv_runner::RunOptions;
use kv_virt::adapters::BackendKind;
use kv_virt::options::AdapterOptions;
use kv_virt_tests::servers::Etcd;
use kv_virt_tests::*;

/// Adapter options reading `routes` (TOML) from a file in `work`.
fn routed(work: &Path, routes: &str) -> AdapterOptions {
    let file = work.join("routes.toml");
    std::fs::write(&file, routes).unwrap();
    AdapterOptions {
        config: Some(file),
        ..AdapterOptions::default()
    }
}

fn imports(composed: &[u8]) -> Vec<String> {
    kv_compose::inspect(composed)
        .unwrap()
        .imports
        .into_iter()
        .map(|i| i.name)
        .collect()
}

#[test]
fn the_conformance_guest_passes_through_a_routed_adapter() {
    let work = work_dir!("routes", "conformance");
    // The guest's buckets on two backends; its denied bucket on none.
    let options = routed(
        &work,
        r#"
        [[route]]
        buckets = ["conformance"]
        backend = "fs"
        [route.fs]
        dir = "/data"

        [[route]]
        buckets = ["conformance-*"]
        backend = "mem"
        "#,
    );
    let run = with_data(&work, &[]);
    let run = RunOptions {
        args: limit_args(kv_core::Limits {
            max_key_bytes: 64 << 10,
            max_value_bytes: 64 << 20,
        }),
        ..run
    };
    conformance_every_guest(BackendKind::Route, &options, &run).unwrap();
    let files: Vec<String> = std::fs::read_dir(work.join("data"))
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    assert_eq!(files, ["conformance.kvfs"]);
}

#[test]
fn buckets_routed_to_kv_fs_and_kv_mem_in_one_app() {
    let work = work_dir!("routes", "fs-and-mem");
    let options = routed(
        &work,
        r#"
        [[route]]
        buckets = ["cache", "tmp-*"]
        backend = "mem"

        [[route]]
        buckets = ["local"]
        backend = "fs"
        [route.fs]
        dir = "/data"
        "#,
    );
    let composed = compose(&read(COUNTER), BackendKind::Route, &options).unwrap();
    // No route is kv-http: the composed app needs no wasi:http.
    let imported = imports(&composed);
    assert!(
        imported.iter().any(|i| i.starts_with("wasi:filesystem/")),
        "{imported:?}"
    );
    assert!(
        !imported.iter().any(|i| i.starts_with("wasi:http/")),
        "{imported:?}"
    );
    let counter = runtime().command(&composed).unwrap();
    let run = |args: &[&str]| {
        let output = counter.run(&with_data(&work, args)).unwrap();
        (output.exit_code, output.stdout_text() + &output.stderr_text())
    };
    for round in 1..=2 {
        assert_eq!(run(&["a", "local"]), (0, format!("local/a = {round}\n")));
        // kv-mem: an instance's memory, so each run starts again.
        assert_eq!(run(&["b", "cache"]), (0, "cache/b = 1\n".into()));
        assert_eq!(run(&["c", "tmp-1"]), (0, "tmp-1/c = 1\n".into()));
    }
    assert_eq!(run(&["d", "other"]), (1, "counter: access denied\n".into()));
    // The kv-fs directory holds the routed bucket's file, with its keys only.
    let files: Vec<String> = std::fs::read_dir(work.join("data"))
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    assert_eq!(files, ["local.kvfs"]);
    let mut store = BucketFile::open(StdDir::new(work.join("data")), "local.kvfs", Options::default())
        .unwrap()
        .unwrap();
    let keys: Vec<Vec<u8>> = store.keys_after(None, 100).unwrap();
    assert_eq!(keys, [b"a".to_vec()]);
}

#[test]
fn a_routed_bucket_on_etcd_takes_exact_increments_from_two_instances_at_once() {
    let etcd = Etcd::start("routes").unwrap();
    let work = work_dir!("routes", "etcd");
    let options = routed(
        &work,
        &format!(
            r#"
            [[route]]
            buckets = ["counter"]
            backend = "http"
            [route.http]
            protocol = "etcd"
            endpoint = "{}"

            [[route]]
            buckets = ["*"]
            backend = "mem"
            "#,
            etcd.url()
        ),
    );
    let composed = compose(&read(COUNTER), BackendKind::Route, &options).unwrap();
    assert!(
        imports(&composed)
            .iter()
            .any(|i| i.starts_with("wasi:http/outgoing-handler"))
    );
    let counter = runtime().command(&composed).unwrap();
    let run = |args: &[&str]| RunOptions {
        args: args.iter().map(|s| s.to_string()).collect(),
        capture_output: true,
        ..RunOptions::default()
    };
    assert_concurrent_increments(&counter, run, 2, 200);
}

#[test]
fn inspect_shows_the_routes_and_secrets_only_by_where_they_come_from() {
    let work = work_dir!("routes", "inspect");
    let options = routed(
        &work,
        r#"
        default-bucket = "shared"

        [[route]]
        buckets = ["shared"]
        backend = "http"
        [route.http]
        protocol = "etcd"
        endpoint = "http://127.0.0.1:2379"
        credentials = { username = "env:ETCD_USER", password = "value:hunter2" }
        bake-secrets = true

        [[route]]
        buckets = ["*"]
        backend = "mem"
        "#,
    );
    let composed = compose(&read(COUNTER), BackendKind::Route, &options).unwrap();
    let file = work.join("composed.wasm");
    std::fs::write(&file, &composed).unwrap();
    let mut out = Vec::new();
    kv_virt::cli::run(
        kv_virt::cli::Cli {
            command: kv_virt::cli::Command::Inspect { component: file },
        },
        &mut out,
    )
    .unwrap();
    let listing = String::from_utf8(out).unwrap();
    for expected in [
        "adapter: kv-route",
        "default bucket (open(\"\")): shared",
        "shared -> kv-http etcd http://127.0.0.1:2379",
        "username=env:ETCD_USER",
        "password=baked in",
        "* -> kv-mem",
    ] {
        assert!(listing.contains(expected), "{expected:?} not in:\n{listing}");
    }
    assert!(!listing.contains("hunter2"), "{listing}");
}
