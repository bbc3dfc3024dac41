//! The notes example (`examples/notes`, a `wasi:http/incoming-handler`)
//! composed with an adapter and served with a fresh instance per request:
//! by `kv-run serve` under 16 concurrent clients, and in process. The Spin
//! app (`examples/spin-app`) answers the same API and takes the same load.

use std::collections::BTreeSet;
use std::path::Path;

use kv_runner::ServeOptions;
use kv_virt::adapters::BackendKind;
use kv_virt::fs_tools::FsCommand;
use kv_virt::options::{AdapterOptions, FsOptions, HttpOptions, ProtocolArg};
use kv_virt_tests::http::HttpClient;
use kv_virt_tests::notes_load::{LoadSpec, Notes, parse_hits, run_load};
use kv_virt_tests::*;

/// The `kv-run` binary under test.
const KV_RUN: &str = env!("CARGO_BIN_EXE_kv-run-under-test");

/// A fresh directory under the target directory, removed when the test passes.
fn temp_dir(name: &str) -> WorkDir {
    WorkDir::fresh(Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("serve-{name}")))
}

/// A backend for the notes service: how to compose it and what the server
/// needs. Another backend (kv-http on etcd, say) is another value of this.
struct Backend {
    kind: BackendKind,
    options: AdapterOptions,
    /// `kv-run serve` options (`--dir`, `--env`).
    serve_args: Vec<String>,
}

/// kv-fs on `/data`, preopened from `data`, allowing the notes example's bucket.
fn kv_fs(data: &Path) -> Backend {
    kv_fs_for(data, "notes")
}

/// kv-fs on `/data`, preopened from `data`, allowing only `bucket`.
fn kv_fs_for(data: &Path, bucket: &str) -> Backend {
    Backend {
        kind: BackendKind::Fs,
        options: AdapterOptions {
            buckets: vec![bucket.into()],
            fs: FsOptions {
                dir: Some("/data".into()),
                ..FsOptions::default()
            },
            ..AdapterOptions::default()
        },
        serve_args: vec!["--dir".into(), format!("{}::/data", data.display())],
    }
}

/// kv-http on an etcd server; `serve_args` for `kv-run serve`.
fn kv_http_etcd(url: &str, serve_args: &[&str]) -> Backend {
    Backend {
        kind: BackendKind::Http,
        options: AdapterOptions {
            buckets: vec!["notes".into()],
            http: HttpOptions {
                protocol: Some(ProtocolArg::Etcd),
                endpoint: Some(url.into()),
                ..HttpOptions::default()
            },
            ..AdapterOptions::default()
        },
        serve_args: serve_args.iter().map(|a| a.to_string()).collect(),
    }
}

/// Every id `GET /notes` lists, page by page.
fn list_all(http: &mut HttpClient) -> BTreeSet<String> {
    let mut ids = BTreeSet::new();
    let mut path = "/notes".to_string();
    loop {
        let response = http.request("GET", &path, b"").unwrap();
        assert_eq!(response.status, 200, "{}", response.text());
        let page: serde_json::Value = serde_json::from_slice(&response.body).unwrap();
        let page_ids = page["ids"].as_array().unwrap();
        assert!(page_ids.len() <= 100);
        for id in page_ids {
            assert!(ids.insert(id.as_str().unwrap().to_string()), "{id} listed twice");
        }
        match page["next"].as_str() {
            Some(next) => path = format!("/notes?cursor={next}"),
            None => return ids,
        }
    }
}

/// Serves the notes example on `backend` and runs [`app_under_load`].
fn notes_under_load(backend: &Backend, work: &Path) {
    app_under_load(NOTES, backend, work);
}

/// Serves `app` (the notes API) on `backend`, runs 16 clients × 200 mixed
/// requests at once, and checks: no request failed, every client read its
/// own acknowledged writes, every acknowledged write (and delete) is there
/// afterwards, the listing has exactly the live notes, and the hit counter
/// counted every `POST /hits` exactly once.
fn app_under_load(app: &str, backend: &Backend, work: &Path) {
    let composed = compose(&read(app), backend.kind, &backend.options).unwrap();
    let component = work.join("app.wasm");
    std::fs::write(&component, composed).unwrap();
    let server = ServeProcess::start(KV_RUN, &component, &backend.serve_args);

    let spec = LoadSpec {
        clients: 16,
        requests_per_client: 200,
        notes_per_client: 10,
        seed: 7,
    };
    let report = run_load(server.addr, &spec, &Notes::new()).unwrap();
    assert_eq!(report.requests(), 16 * 200);
    assert_eq!(report.failures(), Vec::<&str>::new());
    assert_eq!(report.stale_reads(), Vec::<&str>::new());

    let mut http = HttpClient::connect(server.addr).unwrap();
    let notes = report.notes();
    for (id, expected) in &notes {
        let response = http.request("GET", &format!("/notes/{id}"), b"").unwrap();
        match expected {
            Some(value) => {
                assert_eq!(response.status, 200, "{id}: {}", response.text());
                assert_eq!(&response.body, value, "{id}");
            }
            None => assert_eq!(response.status, 404, "{id}: {}", response.text()),
        }
    }
    let live: BTreeSet<String> = notes
        .iter()
        .filter(|(_, v)| v.is_some())
        .map(|(id, _)| id.clone())
        .collect();
    assert!(
        live.len() > 100,
        "the listing spans pages: {} live notes",
        live.len()
    );
    assert_eq!(list_all(&mut http), live);

    // Each POST /hits got its own count: 1, 2, … N, and the counter is N.
    let hits = report.hits();
    assert!(hits.len() > 300, "{} counted requests", hits.len());
    assert_eq!(hits, (1..=hits.len() as u64).collect::<Vec<_>>());
    let response = http.request("GET", "/hits", b"").unwrap();
    assert_eq!(parse_hits(&response.body).unwrap(), hits.len() as u64);
    drop(server);
}

#[test]
fn notes_on_kv_fs_under_concurrent_load() {
    let work = temp_dir("kv-fs-load");
    let data = work.join("data");
    std::fs::create_dir_all(&data).unwrap();
    notes_under_load(&kv_fs(&data), &work);
    // The server is stopped: `kv-virt fs check` on the file it left.
    assert_fs_check_passes(&data.join("notes.kvfs"));
}

/// `kv-virt fs check` finds no problem in `file`.
fn assert_fs_check_passes(file: &Path) {
    let mut out = Vec::new();
    kv_virt::fs_tools::run(FsCommand::Check { file: file.into() }, &mut out).unwrap();
    assert!(String::from_utf8(out).unwrap().contains(": ok ("));
}

/// The Spin SDK app (Spin's key-value interface, its default store), with
/// no Spin: `kv-run serve` and kv-fs.
#[test]
fn spin_app_on_kv_fs_under_concurrent_load() {
    let work = temp_dir("spin-kv-fs-load");
    let data = work.join("data");
    std::fs::create_dir_all(&data).unwrap();
    app_under_load(SPIN_APP, &kv_fs_for(&data, "default"), &work);
    assert_fs_check_passes(&data.join("default.kvfs"));
}

#[test]
fn notes_on_kv_http_etcd_under_concurrent_load() {
    let etcd = kv_virt_tests::servers::Etcd::start("serve-load").unwrap();
    notes_under_load(&kv_http_etcd(&etcd.url(), &[]), &temp_dir("etcd-load"));
}

/// The same with a host that pools connections: all the instances at once
/// share one pool.
#[test]
fn notes_on_kv_http_etcd_with_pooled_connections_under_concurrent_load() {
    let etcd = kv_virt_tests::servers::Etcd::start("serve-pooled-load").unwrap();
    let backend = kv_http_etcd(&etcd.url(), &["--reuse-connections"]);
    notes_under_load(&backend, &temp_dir("etcd-pooled-load"));
}

/// In process: bad requests get a clear status and message (the instance
/// never traps), the server goes on, and the data outlives the server.
#[test]
fn notes_answers_bad_requests_clearly_and_data_outlives_the_server() {
    let work = temp_dir("kv-fs-errors");
    let backend = kv_fs(&work);
    let composed = compose(&read(NOTES), backend.kind, &backend.options).unwrap();
    let service = runtime().service(&composed).unwrap();
    let options = ServeOptions {
        preopens: vec![(work.to_path_buf(), "/data".into())],
        ..ServeOptions::default()
    };

    let server = service.serve(&options).unwrap();
    assert!(server.addr().ip().is_loopback());
    let mut http = HttpClient::connect(server.addr()).unwrap();
    let big = vec![b'x'; (1 << 20) + 1];
    for (method, path, body, status, message) in [
        ("GET", "/notes/absent", &b""[..], 404, "no note \\\"absent\\\""),
        (
            "PUT",
            "/notes/a%20b",
            b"x",
            400,
            "a note id is 1 to 128 characters",
        ),
        ("GET", "/notes/a/b", b"", 400, "a note id is"),
        ("GET", "/notes?limit=5", b"", 400, "unknown query parameter"),
        ("GET", "/notes?cursor=no/pe", b"", 400, "a note id is"),
        ("PATCH", "/notes/a", b"", 405, "use GET, PUT, DELETE"),
        ("DELETE", "/hits", b"", 405, "use GET, POST"),
        ("GET", "/", b"", 404, "no such resource"),
        ("PUT", "/notes/big", &big, 413, "at most 1048576 bytes"),
    ] {
        let response = http.request(method, path, body).unwrap();
        assert_eq!(response.status, status, "{method} {path}: {}", response.text());
        assert!(
            response.text().starts_with("{\"error\":") && response.text().contains(message),
            "{method} {path}: {}",
            response.text()
        );
    }
    let note = b"bytes \0 of any kind \xff".to_vec();
    assert_eq!(http.request("PUT", "/notes/kept", &note).unwrap().status, 204);
    assert_eq!(http.request("PUT", "/notes/gone", b"x").unwrap().status, 204);
    assert_eq!(http.request("DELETE", "/notes/gone", b"").unwrap().status, 204);
    assert_eq!(http.request("DELETE", "/notes/gone", b"").unwrap().status, 204);
    assert_eq!(http.request("POST", "/hits", b"").unwrap().text(), "{\"hits\":1}");
    drop(http);
    server.stop().unwrap();

    let server = service.serve(&options).unwrap();
    let mut http = HttpClient::connect(server.addr()).unwrap();
    assert_eq!(http.request("GET", "/notes/kept", b"").unwrap().body, note);
    assert_eq!(http.request("GET", "/notes/gone", b"").unwrap().status, 404);
    assert_eq!(
        http.request("GET", "/notes", b"").unwrap().text(),
        "{\"ids\":[\"kept\"],\"next\":null}"
    );
    assert_eq!(http.request("GET", "/hits", b"").unwrap().text(), "{\"hits\":1}");
    server.stop().unwrap();
}
