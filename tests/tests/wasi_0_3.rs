//! WASI 0.3 apps: the async flavour of every adapter serves Spin's
//! `spin:key-value@3.0.0` and wasmCloud's `wasmcloud:keyvalue@0.2.0`, and
//! `kv-virt plug` picks the flavour from the app, so that a WASI 0.2 app's
//! composition still loads where component-model-async does not. The
//! examples built with the real SDKs (`examples/spin3-app` on spin-sdk 7,
//! `examples/wasmcloud-p3-app`) are served by `kv-run serve` on kv-fs and
//! etcd, the wasmCloud one under 16 concurrent clients.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use kv_virt::adapters::BackendKind;
use kv_virt::options::AdapterOptions;
use kv_virt_tests::http::HttpClient;
use kv_virt_tests::*;
use wasmparser::{Validator, WasmFeatures};

/// The `kv-run` binary under test.
const KV_RUN: &str = env!("CARGO_BIN_EXE_kv-run-under-test");

/// Whether `component` validates with component-model-async on or off.
fn validates(component: &[u8], async_abi: bool) -> Result<(), String> {
    let mut features = WasmFeatures::default();
    features.set(WasmFeatures::CM_ASYNC, async_abi);
    Validator::new_with_features(features)
        .validate_all(component)
        .map(drop)
        .map_err(|e| e.to_string())
}

#[test]
fn plug_gives_a_wasi_0_2_app_the_sync_flavour_and_a_wasi_0_3_app_the_async_one() {
    let work = work_dir!("wasi-0-3", "routes");
    for backend in [
        BackendKind::Mem,
        BackendKind::Fs,
        BackendKind::Http,
        BackendKind::Route,
    ] {
        let options = match backend {
            BackendKind::Fs => AdapterOptions {
                fs: kv_virt::options::FsOptions {
                    dir: Some("/data".into()),
                    ..Default::default()
                },
                ..AdapterOptions::default()
            },
            _ => AdapterOptions::default(),
        };
        let options = match backend {
            BackendKind::Http => AdapterOptions {
                http: kv_virt::options::HttpOptions {
                    protocol: Some(kv_virt::options::ProtocolArg::Etcd),
                    endpoint: Some("http://127.0.0.1:2379".into()),
                    ..Default::default()
                },
                ..options
            },
            BackendKind::Route => AdapterOptions {
                config: Some(routes_config(&work)),
                ..options
            },
            _ => options,
        };
        let backend_kind = (backend != BackendKind::Route).then_some(backend);
        for draft in [CONFORMANCE_DRAFT, CONFORMANCE_DRAFT2] {
            let composed = kv_virt::cli::plug(&read(draft), backend_kind, &options).unwrap();
            validates(&composed, false).unwrap_or_else(|e| {
                panic!("{backend:?}: a WASI 0.2 app's composition needs component-model-async: {e}")
            });
        }
        for app in [CONFORMANCE_ASYNC, SPIN3_APP, WASMCLOUD_P3_APP] {
            let composed = kv_virt::cli::plug(&read(app), backend_kind, &options).unwrap();
            let info = kv_compose::inspect(&composed).unwrap();
            assert!(
                info.key_value_imports().is_empty(),
                "{backend:?} {app}: {:?}",
                info.imports
            );
            validates(&composed, true).unwrap();
            assert!(
                validates(&composed, false).is_err(),
                "{backend:?} {app}: a WASI 0.3 app's composition validated without component-model-async"
            );
        }
    }
}

/// A routes file in `dir` with a kv-mem route for every bucket.
fn routes_config(dir: &std::path::Path) -> std::path::PathBuf {
    let path = dir.join("routes.toml");
    std::fs::write(&path, "[[route]]\nbuckets = [\"*\"]\nbackend = \"mem\"\n").unwrap();
    path
}

#[test]
fn a_wasi_0_3_app_and_the_sync_adapter_fail_with_the_way_out() {
    let adapter =
        kv_virt::cli::configured_adapter(Some(BackendKind::Mem), &AdapterOptions::default()).unwrap();
    let err = kv_compose::plug(&read(CONFORMANCE_ASYNC), &adapter)
        .unwrap_err()
        .to_string();
    assert!(err.contains("spin:key-value/key-value@3.0.0"), "{err}");
    assert!(err.contains("--flavour async"), "{err}");
}

/// `app` composed with `backend`, written to `work/<app>.wasm`.
fn composed_file(backend: &AppBackend, app: &str, work: &Path) -> PathBuf {
    let path = work.join(format!(
        "{}.wasm",
        Path::new(app).file_stem().unwrap().to_string_lossy()
    ));
    std::fs::write(&path, backend.compose(app)).unwrap();
    path
}

/// `kv-run serve` of `app` composed with `backend`.
fn serve(backend: &AppBackend, app: &str, work: &Path) -> ServeProcess {
    let args = match &backend.data {
        Some(data) => vec!["--dir".to_string(), format!("{}::/data", data.display())],
        None => Vec::new(),
    };
    ServeProcess::start(KV_RUN, &composed_file(backend, app, work), &args)
}

/// kv-fs on `work/data`.
fn kv_fs(work: &Path) -> AppBackend {
    let data = work.join("data");
    std::fs::create_dir_all(&data).unwrap();
    AppBackend::fs(&data)
}

fn request(http: &mut HttpClient, method: &str, path: &str, body: &str) -> (u16, String) {
    let response = http.request(method, path, body.as_bytes()).unwrap();
    (response.status, response.text())
}

/// The spin-sdk 7 app's notes and counter (see `examples/spin3-app`).
fn spin3_app_answers(http: &mut HttpClient, backend: &str) {
    let ok = |status| (status, String::new());
    assert_eq!(request(http, "GET", "/notes/a", "").0, 404, "{backend}");
    assert_eq!(
        request(http, "PUT", "/notes/a", "first note"),
        ok(204),
        "{backend}"
    );
    assert_eq!(request(http, "PUT", "/notes/b", "second"), ok(204), "{backend}");
    assert_eq!(
        request(http, "GET", "/notes/a", ""),
        (200, "first note".into()),
        "{backend}"
    );
    let (status, listing) = request(http, "GET", "/notes", "");
    assert_eq!(status, 200, "{backend}: {listing}");
    assert!(
        listing.lines().any(|l| l == "a") && listing.lines().any(|l| l == "b"),
        "{backend}: {listing}"
    );
    assert_eq!(request(http, "POST", "/count", "").1.trim(), "1", "{backend}");
    assert_eq!(request(http, "POST", "/count", "").1.trim(), "2", "{backend}");
    assert_eq!(request(http, "DELETE", "/notes/a", "").0, 204, "{backend}");
    assert_eq!(request(http, "GET", "/notes/a", "").0, 404, "{backend}");
}

/// The wasmCloud app's counter (atomics), document (cas) and get-many
/// (batch) (see `examples/wasmcloud-p3-app`).
fn wasmcloud_app_answers(http: &mut HttpClient, backend: &str) {
    assert_eq!(request(http, "POST", "/hit/x", "one").1.trim(), "1", "{backend}");
    assert_eq!(request(http, "POST", "/hit/y", "two").1.trim(), "2", "{backend}");
    assert_eq!(
        request(http, "GET", "/key/hit:x", ""),
        (200, "one".into()),
        "{backend}"
    );
    assert_eq!(request(http, "GET", "/key/nothing", "").0, 404, "{backend}");
    assert_eq!(
        request(http, "PUT", "/doc/d", "line 1"),
        (200, "line 1\n".into()),
        "{backend}"
    );
    assert_eq!(
        request(http, "PUT", "/doc/d", "line 2"),
        (200, "line 1\nline 2\n".into()),
        "{backend}"
    );
    let (status, many) = request(http, "GET", "/many?keys=hit:x,missing,hit:y", "");
    assert_eq!(status, 200, "{backend}: {many}");
    assert_eq!(
        many.lines().collect::<Vec<_>>(),
        ["hit:x=one", "missing missing", "hit:y=two"],
        "{backend}"
    );
}

#[test]
fn the_spin_sdk_7_and_wasmcloud_apps_answer_on_kv_fs_and_etcd() {
    let work = work_dir!("wasi-0-3", "apps");
    for backend in [kv_fs(&work), AppBackend::etcd("wasi-0-3")] {
        for (app, answers) in [
            (SPIN3_APP, spin3_app_answers as fn(&mut HttpClient, &str)),
            (WASMCLOUD_P3_APP, wasmcloud_app_answers),
        ] {
            let server = serve(&backend, app, &work);
            answers(&mut HttpClient::connect(server.addr).unwrap(), backend.name);
        }
    }
}

/// 16 clients × 200 `POST /hit/<client>-<n>` at once on the wasmCloud app,
/// each a fresh instance: every request answered, the counts exactly
/// 1..=3200 (each increment counted once), and every acknowledged write
/// readable afterwards.
fn wasmcloud_app_under_load(backend: &AppBackend, work: &Path) {
    const CLIENTS: usize = 16;
    const REQUESTS: usize = 200;
    let server = serve(backend, WASMCLOUD_P3_APP, work);
    let counts: Vec<u64> = std::thread::scope(|scope| {
        let clients: Vec<_> = (0..CLIENTS)
            .map(|client| {
                let addr = server.addr;
                scope.spawn(move || {
                    let mut http = HttpClient::connect(addr).unwrap();
                    (0..REQUESTS)
                        .map(|n| {
                            let (status, body) = request(
                                &mut http,
                                "POST",
                                &format!("/hit/{client}-{n}"),
                                &format!("v{client}.{n}"),
                            );
                            assert_eq!(status, 200, "{}: hit {client}-{n}: {body}", backend.name);
                            body.trim().parse::<u64>().unwrap()
                        })
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        clients.into_iter().flat_map(|c| c.join().unwrap()).collect()
    });
    let counts: BTreeSet<u64> = counts.into_iter().collect();
    let total = (CLIENTS * REQUESTS) as u64;
    assert_eq!(
        counts,
        (1..=total).collect::<BTreeSet<_>>(),
        "{}: every increment counted once",
        backend.name
    );
    let mut http = HttpClient::connect(server.addr).unwrap();
    for client in 0..CLIENTS {
        for n in 0..REQUESTS {
            let (status, value) = request(&mut http, "GET", &format!("/key/hit:{client}-{n}"), "");
            assert_eq!(
                (status, value),
                (200, format!("v{client}.{n}")),
                "{}: hit {client}-{n}",
                backend.name
            );
        }
    }
    assert_eq!(
        request(&mut http, "POST", "/hit/last", "").1.trim(),
        (total + 1).to_string()
    );
}

#[test]
fn the_wasmcloud_app_on_kv_fs_under_concurrent_load() {
    let work = work_dir!("wasi-0-3", "fs-load");
    wasmcloud_app_under_load(&kv_fs(&work), &work);
}

#[test]
fn the_wasmcloud_app_on_etcd_under_concurrent_load() {
    let work = work_dir!("wasi-0-3", "etcd-load");
    wasmcloud_app_under_load(&AppBackend::etcd("wasi-0-3-load"), &work);
}

// ---- the wasmtime CLI as a second runtime ----

use kv_runner::{RunOptions, ServeOptions};
use kv_virt_tests::wasmtime_cli::{self, WASI_0_2_RUN_FLAGS, WasmtimeServe};

/// Both WASI 0.3 examples, composed with kv-fs, answer on `wasmtime serve
/// -S p3 -W component-model-async` as on kv-run.
#[test]
fn the_wasi_0_3_apps_answer_on_wasmtime_serve() {
    let work = work_dir!("wasi-0-3", "wasmtime-serve");
    let backend = kv_fs(&work);
    for (app, answers) in [
        (SPIN3_APP, spin3_app_answers as fn(&mut HttpClient, &str)),
        (WASMCLOUD_P3_APP, wasmcloud_app_answers),
    ] {
        let options = ServeOptions {
            preopens: vec![(backend.data.clone().unwrap(), "/data".into())],
            ..ServeOptions::default()
        };
        let server = WasmtimeServe::start(&composed_file(&backend, app, &work), &options, &[]).unwrap();
        answers(
            &mut HttpClient::connect(server.addr()).unwrap(),
            "kv-fs on wasmtime serve",
        );
    }
}

/// A WASI 0.2 app composed today (the counter, with kv-fs) runs on
/// `wasmtime run` with component-model-async off, its count persisting
/// across runs; a WASI 0.3 app's composition is refused there, as it must
/// be (so the first result means something).
#[test]
fn a_wasi_0_2_app_runs_on_wasmtime_without_component_model_async() {
    let work = work_dir!("wasi-0-3", "wasmtime-run");
    let backend = kv_fs(&work);
    let counter = composed_file(&backend, COUNTER, &work);
    let options = RunOptions {
        args: vec!["hits".into()],
        preopens: vec![(backend.data.clone().unwrap(), "/data".into())],
        capture_output: true,
        ..RunOptions::default()
    };
    for expected in 1..=3 {
        let output = wasmtime_cli::run(&counter, &options, WASI_0_2_RUN_FLAGS).unwrap();
        assert_eq!(output.exit_code, 0, "{}", output.stderr_text());
        assert!(
            output.stdout_text().contains(&format!("= {expected}")),
            "{}",
            output.stdout_text()
        );
    }
    let async_app = composed_file(&backend, CONFORMANCE_ASYNC, &work);
    let output = wasmtime_cli::run(&async_app, &options, WASI_0_2_RUN_FLAGS).unwrap();
    assert_ne!(
        output.exit_code, 0,
        "a WASI 0.3 composition ran without component-model-async"
    );
}

/// 8 clients append 10 lines each to one document at once through the
/// wasmCloud app's `PUT /doc` (each request a fresh instance): the first
/// line is a `set` with `if-not-exists`, the rest `cas` swaps requiring the
/// version read. If two creations or two swaps both won, a line would be
/// lost: every one of the 80 must be there, once.
fn concurrent_appends_lose_nothing(backend: &AppBackend, work: &Path) {
    const CLIENTS: usize = 8;
    const LINES: usize = 10;
    let server = serve(backend, WASMCLOUD_P3_APP, work);
    let start = std::sync::Barrier::new(CLIENTS);
    std::thread::scope(|scope| {
        for client in 0..CLIENTS {
            let (addr, start) = (server.addr, &start);
            scope.spawn(move || {
                let mut http = HttpClient::connect(addr).unwrap();
                start.wait();
                for line in 0..LINES {
                    let (status, body) =
                        request(&mut http, "PUT", "/doc/shared", &format!("{client}.{line}"));
                    assert_eq!(status, 200, "{}: {body}", backend.name);
                }
            });
        }
    });
    let (status, document) = request(
        &mut HttpClient::connect(server.addr).unwrap(),
        "GET",
        "/key/shared",
        "",
    );
    assert_eq!(status, 200, "{}: {document}", backend.name);
    let mut lines: Vec<&str> = document.lines().collect();
    lines.sort_unstable();
    let mut expected: Vec<String> = (0..CLIENTS)
        .flat_map(|client| (0..LINES).map(move |line| format!("{client}.{line}")))
        .collect();
    expected.sort_unstable();
    assert_eq!(lines, expected, "{}: every append once", backend.name);
}

#[test]
fn concurrent_if_not_exists_and_cas_appends_lose_nothing_on_kv_fs_and_etcd() {
    let work = work_dir!("wasi-0-3", "appends");
    concurrent_appends_lose_nothing(&kv_fs(&work), &work);
    concurrent_appends_lose_nothing(&AppBackend::etcd("wasi-0-3-appends"), &work);
}

/// 8 clients claim one key at once through the wasmCloud app's `PUT
/// /new` (`set` with `if-not-exists` and a 2 s `ttl-ms`): exactly one
/// wins; the claim holds while it lives, and once it has expired (read 5 s
/// after) one client can claim the key again.
fn exactly_one_claim_wins(backend: &AppBackend, work: &Path) {
    const CLIENTS: usize = 8;
    let server = serve(backend, WASMCLOUD_P3_APP, work);
    let claim = |owner: &str| {
        let mut http = HttpClient::connect(server.addr).unwrap();
        request(&mut http, "PUT", "/new/leader?ttl-ms=2000", owner)
    };
    let start = std::sync::Barrier::new(CLIENTS);
    let statuses: Vec<u16> = std::thread::scope(|scope| {
        let clients: Vec<_> = (0..CLIENTS)
            .map(|client| {
                let (claim, start) = (&claim, &start);
                scope.spawn(move || {
                    start.wait();
                    claim(&format!("client {client}")).0
                })
            })
            .collect();
        clients.into_iter().map(|c| c.join().unwrap()).collect()
    });
    let won = statuses.iter().filter(|s| **s == 201).count();
    let lost = statuses.iter().filter(|s| **s == 412).count();
    assert_eq!((won, lost), (1, CLIENTS - 1), "{}: {statuses:?}", backend.name);
    assert_eq!(claim("late").0, 412, "{}: a live claim was taken", backend.name);
    std::thread::sleep(std::time::Duration::from_secs(5));
    assert_eq!(
        claim("next").0,
        201,
        "{}: an expired claim still holds",
        backend.name
    );
    assert_eq!(claim("after").0, 412, "{}", backend.name);
}

#[test]
fn exactly_one_of_8_concurrent_if_not_exists_claims_wins_on_kv_fs_and_etcd() {
    let work = work_dir!("wasi-0-3", "claims");
    exactly_one_claim_wins(&kv_fs(&work), &work);
    exactly_one_claim_wins(&AppBackend::etcd("wasi-0-3-claims"), &work);
}
