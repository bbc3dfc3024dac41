//! Apps as each ecosystem writes them (`examples/`), unchanged, composed
//! with kv-mem, kv-fs and kv-http (etcd) and run on the embedded wasmtime;
//! the commands also on Node through jco:
//!
//! - a wasmtime-style command that opens `""` (and gives the same answers
//!   as on wasmtime's own host `wasi:keyvalue`);
//! - a wasmCloud-style HTTP counter that opens `""`;
//! - a draft2 app built against each text of `get-many`;
//! - a Spin SDK app (`spin_sdk::key_value`, `fermyon:spin/key-value@2.0.0`),
//!   served without Spin.
//!
//! The Spin app's load test is in `serve.rs`.

use std::path::Path;

use kv_fs_engine::std_dir::StdDir;
use kv_fs_engine::{BucketFile, Options};
use kv_runner::{RunOptions, Runtime, RuntimeOptions, ServeOptions};
use kv_virt::adapters::BackendKind;
use kv_virt::options::{AdapterOptions, FsOptions};
use kv_virt_tests::http::HttpClient;
use kv_virt_tests::*;

/// The backends the examples run on.
type Backend = AppBackend;

/// The value of `key` in the kv-fs bucket file `file`, read natively.
fn stored(data: &Path, file: &str, key: &str) -> Option<String> {
    let mut store = BucketFile::open(StdDir::new(data), file, Options::default()).unwrap()?;
    let value = store.get(key.as_bytes()).unwrap()?;
    Some(String::from_utf8(value).unwrap())
}

/// The `.kvfs` files in `data`.
fn bucket_files(data: &Path) -> Vec<String> {
    let mut files: Vec<String> = std::fs::read_dir(data)
        .unwrap()
        .map(|entry| entry.unwrap().file_name().into_string().unwrap())
        .filter(|name| name.ends_with(".kvfs"))
        .collect();
    files.sort();
    files
}

// ---- a wasmtime-style command: wasi:keyvalue@0.2.0-draft, open("") ----

const VISITS: [&str; 11] = [
    "greet", "alice", "greet", "bob", "greet", "alice", "forget", "bob", "forget", "carol", "list",
];
const VISITS_OUTPUT: &str = "hello, alice: visit 1
hello, bob: visit 1
hello, alice: visit 2
forgot bob
forgot carol (never seen)
1 names
  alice: 2
";

/// The command on wasmtime's own host `wasi:keyvalue`
/// (`wasmtime-wasi-keyvalue`, what `wasmtime run -S keyvalue` links), not
/// composed: what the app's users see at home.
fn on_wasmtimes_host(args: &[&str]) -> String {
    let home = Runtime::with_options(RuntimeOptions {
        host_keyvalue: true,
        ..RuntimeOptions::default()
    })
    .unwrap();
    let output = home
        .command(&read(WASMTIME_COMMAND))
        .unwrap()
        .run(&RunOptions {
            args: args.iter().map(|s| s.to_string()).collect(),
            capture_output: true,
            ..RunOptions::default()
        })
        .unwrap();
    succeeded(&output, "the wasmtime command on wasmtime's host")
}

#[test]
fn a_wasmtime_command_answers_as_on_wasmtimes_own_host() {
    let home = on_wasmtimes_host(&VISITS);
    assert_eq!(home, VISITS_OUTPUT);
    let work = work_dir!("apps", "wasmtime-command");
    for backend in Backend::all(&work, "wasmtime-command") {
        assert_eq!(
            backend.run(WASMTIME_COMMAND, &VISITS),
            home,
            "on {}",
            backend.name
        );
    }
}

#[test]
fn a_wasmtime_commands_bucket_persists_on_kv_fs_as_the_default_bucket() {
    let work = work_dir!("apps", "wasmtime-command-fs");
    let data = work.join("data");
    let fs = Backend::fs(&data);
    assert_eq!(fs.run(WASMTIME_COMMAND, &VISITS), VISITS_OUTPUT);
    assert_eq!(
        fs.run(WASMTIME_COMMAND, &["greet", "alice"]),
        "hello, alice: visit 3\n"
    );
    // `""` is the bucket `default`: its file, and no other.
    assert_eq!(bucket_files(&data), ["default.kvfs"]);
    assert_eq!(
        stored(&data, "default.kvfs", "visits/alice").as_deref(),
        Some("3")
    );
    // Another default bucket name moves `""` elsewhere.
    let elsewhere = Backend {
        options: AdapterOptions {
            default_bucket: Some("visits".into()),
            ..fs.options.clone()
        },
        ..Backend::fs(&data)
    };
    assert_eq!(
        elsewhere.run(WASMTIME_COMMAND, &["greet", "alice"]),
        "hello, alice: visit 1\n"
    );
    assert_eq!(bucket_files(&data), ["default.kvfs", "visits.kvfs"]);
    // The allow-list applies to the resolved name.
    let denied = Backend {
        options: AdapterOptions {
            buckets: vec!["other".into()],
            ..fs.options.clone()
        },
        ..Backend::fs(&data)
    };
    let output = runtime()
        .command(&denied.compose(WASMTIME_COMMAND))
        .unwrap()
        .run(&denied.run_options(&["list"]))
        .unwrap();
    assert_eq!(output.exit_code, 1);
    assert_eq!(output.stderr_text(), "wasmtime-command: access denied\n");
}

#[test]
fn a_wasmtime_command_on_node() {
    let work = work_dir!("apps", "wasmtime-command-node");
    for backend in [Backend::mem(), Backend::etcd("wasmtime-command-node")] {
        assert_eq!(
            backend.run_on_node(WASMTIME_COMMAND, &VISITS, &work),
            VISITS_OUTPUT,
            "on {} on Node",
            backend.name
        );
    }
    // kv-fs: Node continues what wasmtime wrote, in the same file.
    let fs = Backend::fs(&work.join("data"));
    assert_eq!(fs.run(WASMTIME_COMMAND, &VISITS), VISITS_OUTPUT);
    assert_eq!(
        fs.run_on_node(WASMTIME_COMMAND, &["greet", "alice"], &work),
        "hello, alice: visit 3\n"
    );
}

// ---- a wasmCloud-style HTTP counter: wasi:keyvalue@0.2.0-draft, open("") ----

/// Serves the composed counter in process and asks `GET /?name=…` in turn.
fn ask_counter(backend: &Backend, names: &[&str]) -> Vec<String> {
    let service = runtime().service(&backend.compose(WASMCLOUD_COUNTER)).unwrap();
    let server = service
        .serve(&ServeOptions {
            preopens: backend.data.iter().map(|d| (d.clone(), "/data".into())).collect(),
            ..ServeOptions::default()
        })
        .unwrap();
    let mut http = HttpClient::connect(server.addr()).unwrap();
    names
        .iter()
        .map(|name| {
            let path = if name.is_empty() {
                "/".to_string()
            } else {
                format!("/?name={name}")
            };
            let response = http.request("GET", &path, b"").unwrap();
            assert_eq!(
                response.status,
                200,
                "{} {path}: {}",
                backend.name,
                response.text()
            );
            response.text()
        })
        .collect()
}

#[test]
fn a_wasmcloud_http_counter_counts_on_every_backend() {
    let work = work_dir!("apps", "wasmcloud-counter");
    let [mem, fs, etcd] = Backend::all(&work, "wasmcloud-counter");
    let names = ["Alice", "Alice", "", "Alice"];
    let counted = [
        "Hello x1, Alice!\n",
        "Hello x2, Alice!\n",
        "Hello x1, World!\n",
        "Hello x3, Alice!\n",
    ];
    for backend in [&fs, &etcd] {
        assert_eq!(ask_counter(backend, &names), counted, "on {}", backend.name);
    }
    // kv-mem lives as long as an instance, and each request has its own.
    assert_eq!(
        ask_counter(&mem, &names),
        [
            "Hello x1, Alice!\n",
            "Hello x1, Alice!\n",
            "Hello x1, World!\n",
            "Hello x1, Alice!\n"
        ]
    );
    assert_eq!(bucket_files(&work.join("data")), ["default.kvfs"]);
    assert_eq!(
        stored(&work.join("data"), "default.kvfs", "Alice").as_deref(),
        Some("3")
    );
}

// ---- draft2 apps, one built against each text of get-many ----

const STOCK: [&str; 18] = [
    "stock",
    "add",
    "apples",
    "3",
    "add",
    "pears",
    "2",
    "add",
    "apples",
    "1",
    "rename",
    "apples",
    "Apples",
    "show",
    "apples,plums,pears",
    "list",
    "clear",
    "list",
];
const STOCK_OUTPUT: &str = "apples: 3
pears: 2
apples: 4
apples is now Apples
apples: 4
plums: -
pears: 2
2 items
  apples: 4
  pears: 2
cleared 2 items
0 items
";

#[test]
fn draft2_apps_of_both_get_many_shapes_plug_and_run() {
    for (app, shape) in [
        (DRAFT2_APP_PR55, kv_compose::GetManyShape::Pr55),
        (DRAFT2_APP_2024, kv_compose::GetManyShape::Text2024),
    ] {
        let info = kv_compose::inspect(&read(app)).unwrap();
        let batch = info
            .imports
            .iter()
            .find(|i| i.name == kv_compose::DRAFT2_BATCH)
            .unwrap();
        assert_eq!(batch.get_many_shape, Some(shape), "{app}");
        let work = work_dir!("apps", &format!("draft2-{shape:?}"));
        for backend in Backend::all(&work, &format!("draft2-{shape:?}")) {
            assert_eq!(
                backend.run(app, &STOCK),
                STOCK_OUTPUT,
                "{app} on {}",
                backend.name
            );
        }
    }
}

#[test]
fn draft2_apps_of_both_get_many_shapes_on_node() {
    for (app, name) in [(DRAFT2_APP_PR55, "pr55"), (DRAFT2_APP_2024, "2024")] {
        let work = work_dir!("apps", &format!("draft2-node-{name}"));
        let etcd = Backend::etcd(&format!("draft2-node-{name}"));
        for backend in [Backend::mem(), Backend::fs(&work.join("data")), etcd] {
            assert_eq!(
                backend.run_on_node(app, &STOCK, &work),
                STOCK_OUTPUT,
                "{app} on {} on Node",
                backend.name
            );
        }
    }
}

// ---- a Spin SDK app: fermyon:spin/key-value@2.0.0 (+ wasi:keyvalue atomics) ----

#[test]
fn a_spin_app_runs_without_spin_on_every_backend() {
    let app = kv_compose::inspect(&read(SPIN_APP)).unwrap();
    assert!(
        app.imports_interface(kv_compose::SPIN_KEY_VALUE),
        "{:?}",
        app.imports
    );
    let work = work_dir!("apps", "spin-app");
    for backend in Backend::all(&work, "spin-app") {
        let composed = backend.compose(SPIN_APP);
        let info = kv_compose::inspect(&composed).unwrap();
        assert!(
            !info.imports.iter().any(|i| i.name.starts_with("fermyon:")),
            "{:?}",
            info.imports
        );
        let server = runtime()
            .service(&composed)
            .unwrap()
            .serve(&ServeOptions {
                preopens: backend.data.iter().map(|d| (d.clone(), "/data".into())).collect(),
                ..ServeOptions::default()
            })
            .unwrap();
        let mut http = HttpClient::connect(server.addr()).unwrap();
        let mut ask = |method: &str, path: &str, body: &[u8]| {
            let response = http.request(method, path, body).unwrap();
            (response.status, response.text())
        };
        assert_eq!(ask("PUT", "/notes/a", b"first note").0, 204, "{}", backend.name);
        assert_eq!(ask("PUT", "/notes/bad%20id", b"x").0, 400);
        let hits: Vec<String> = (0..3).map(|_| ask("POST", "/hits", b"").1).collect();
        if backend.kind == BackendKind::Mem {
            // An instance per request: nothing outlives one.
            assert_eq!(ask("GET", "/notes/a", b""), (404, "no such note\n".into()));
            assert_eq!(hits, ["{\"hits\":1}"; 3]);
            continue;
        }
        assert_eq!(
            ask("GET", "/notes/a", b""),
            (200, "first note".into()),
            "{}",
            backend.name
        );
        assert_eq!(
            hits,
            ["{\"hits\":1}", "{\"hits\":2}", "{\"hits\":3}"],
            "{}",
            backend.name
        );
        // Spin's key-value store and wasi:keyvalue are one store: the counter
        // wasi:keyvalue increments, Spin's `get` reads.
        assert_eq!(ask("GET", "/hits", b""), (200, "{\"hits\":3}".into()));
        assert_eq!(
            ask("GET", "/notes", b""),
            (200, "{\"ids\":[\"a\"],\"next\":null}".into())
        );
        assert_eq!(ask("DELETE", "/notes/a", b"").0, 204);
        assert_eq!(ask("GET", "/notes/a", b"").0, 404);
        assert_eq!(
            ask("GET", "/notes", b""),
            (200, "{\"ids\":[],\"next\":null}".into())
        );
    }
    // Spin's `default` label is kv-fs's default bucket.
    assert_eq!(bucket_files(&work.join("data")), ["default.kvfs"]);
    assert_eq!(
        stored(&work.join("data"), "default.kvfs", "hits").as_deref(),
        Some("3")
    );
}

#[test]
fn a_spin_app_sees_access_denied_and_other_errors_as_spin_raises_them() {
    // A label not on the allow-list: Spin's access-denied, a 500 from the app.
    let options = AdapterOptions {
        buckets: vec!["other".into()],
        ..AdapterOptions::default()
    };
    let composed = compose(&read(SPIN_APP), BackendKind::Mem, &options).unwrap();
    let server = runtime()
        .service(&composed)
        .unwrap()
        .serve(&ServeOptions::default())
        .unwrap();
    let mut http = HttpClient::connect(server.addr()).unwrap();
    let response = http.request("GET", "/notes/a", b"").unwrap();
    assert_eq!(response.status, 500, "{}", response.text());
    assert!(response.text().contains("AccessDenied"), "{}", response.text());
    // A missing store with create-buckets off: Spin's no-such-store.
    let work = work_dir!("apps", "spin-no-such-store");
    let options = AdapterOptions {
        fs: FsOptions {
            dir: Some("/data".into()),
            create_buckets: Some(false),
            ..FsOptions::default()
        },
        ..AdapterOptions::default()
    };
    let composed = compose(&read(SPIN_APP), BackendKind::Fs, &options).unwrap();
    let server = runtime()
        .service(&composed)
        .unwrap()
        .serve(&ServeOptions {
            preopens: vec![(work.join("data"), "/data".into())],
            ..ServeOptions::default()
        })
        .unwrap();
    let mut http = HttpClient::connect(server.addr()).unwrap();
    let response = http.request("GET", "/notes/a", b"").unwrap();
    assert_eq!(response.status, 500, "{}", response.text());
    assert!(response.text().contains("NoSuchStore"), "{}", response.text());
}
