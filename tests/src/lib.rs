//! Support for kv-virt's test suite: the wasm artifacts (built by this
//! crate's build script), composing them with an adapter, and running them
//! on the embedded wasmtime.

pub use kv_test_support::{WorkDir, http, notes_load, proxy, servers, wasmtime_cli};

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use kv_runner::{Command, RunOptions, RunOutput, Runtime};
use kv_virt::adapters::BackendKind;
use kv_virt::options::{AdapterOptions, HttpOptions, ProtocolArg};

pub mod node;

pub const CONFORMANCE_DRAFT: &str = env!("CONFORMANCE_DRAFT_WASM");
pub const CONFORMANCE_DRAFT2: &str = env!("CONFORMANCE_DRAFT2_WASM");
/// draft2's conformance guest built against the 2024 text of `get-many`.
pub const CONFORMANCE_DRAFT2_2024: &str = env!("CONFORMANCE_DRAFT2_2024_WASM");
/// The WASI 0.3 guest (`tests/conformance-async`): spin:key-value@3.0.0,
/// wasmcloud:keyvalue@0.2.0 and draft2 beside them, a wasi:cli/run@0.3.0
/// command.
pub const CONFORMANCE_ASYNC: &str = env!("CONFORMANCE_ASYNC_WASM");
pub const COUNTER: &str = env!("COUNTER_WASM");
pub const NOTES: &str = env!("NOTES_WASM");

/// The examples shaped like each ecosystem's apps (`examples/`).
pub const WASMTIME_COMMAND: &str = env!("WASMTIME_COMMAND_WASM");
pub const WASMCLOUD_COUNTER: &str = env!("WASMCLOUD_COUNTER_WASM");
pub const DRAFT2_APP_PR55: &str = env!("DRAFT2_APP_PR55_WASM");
pub const DRAFT2_APP_2024: &str = env!("DRAFT2_APP_2024_WASM");
pub const SPIN_APP: &str = env!("SPIN_APP_WASM");
/// The WASI 0.3 examples: spin-sdk 7 (`spin:key-value@3.0.0`) and
/// wasmCloud's `wasmcloud:keyvalue@0.2.0`, both `wasi:http/handler@0.3.0`.
pub const SPIN3_APP: &str = env!("SPIN3_APP_WASM");
pub const WASMCLOUD_P3_APP: &str = env!("WASMCLOUD_P3_APP_WASM");

/// The conformance guest's buckets (see `tests/conformance/src/lib.rs`).
pub const CONFORMANCE_BUCKETS: [&str; 2] = ["conformance", "conformance-list"];

/// The checks each draft's conformance guest runs (draft2 adds the three
/// CAS checks).
pub const DRAFT_CHECKS: usize = 20;
pub const DRAFT2_CHECKS: usize = 23;
/// The checks of the WASI 0.3 guest.
pub const ASYNC_CHECKS: usize = 17;

/// The list page byte limit of the conformance runs (`limit_args`,
/// `conformance_every_guest`): small, so that the guest sees pages cut by
/// bytes on every backend, within every backend's key limit.
pub const CONFORMANCE_LIST_PAGE_BYTES: u32 = 3000;

/// A fresh directory `<area>/<name>` under the test target's temporary
/// directory, with an empty `data/` (preopened as `/data` by [`with_data`]),
/// removed when the test passes.
/// A macro, for `CARGO_TARGET_TMPDIR` is the integration test's.
#[macro_export]
macro_rules! work_dir {
    ($area:expr, $name:expr) => {
        $crate::fresh_work_dir(::std::path::Path::new(env!("CARGO_TARGET_TMPDIR")), $area, $name)
    };
}

pub fn fresh_work_dir(tmp: &Path, area: &str, name: &str) -> WorkDir {
    let dir = WorkDir::fresh(tmp.join(area).join(name));
    std::fs::create_dir_all(dir.join("data")).unwrap();
    dir
}

/// A run with `args`, capturing its output, with `work/data` preopened as `/data`.
pub fn with_data(work: &Path, args: &[&str]) -> RunOptions {
    RunOptions {
        args: args.iter().map(|s| s.to_string()).collect(),
        preopens: vec![(work.join("data"), "/data".into())],
        capture_output: true,
        ..RunOptions::default()
    }
}

pub fn read(path: impl AsRef<Path>) -> Vec<u8> {
    let path = path.as_ref();
    std::fs::read(path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()))
}

/// One engine for the whole test binary.
pub fn runtime() -> &'static Runtime {
    Runtime::shared()
}

/// `kv-virt plug app <backend> <options>`, in process.
pub fn compose(app: &[u8], backend: BackendKind, options: &AdapterOptions) -> Result<Vec<u8>> {
    kv_virt::cli::plug(app, Some(backend), options)
}

/// Composes and compiles a command.
pub fn composed_command(app: &str, backend: BackendKind, options: &AdapterOptions) -> Result<Command> {
    let composed = compose(&read(app), backend, options).with_context(|| format!("composing {app}"))?;
    runtime().command(&composed)
}

/// kv-http options: `protocol` at `url` (the service, or a proxy in front),
/// the allow-list `buckets`, the `credentials` flags, and whatever else the
/// protocol needs set by `service` (its table, region, account …).
pub fn http_options(
    protocol: ProtocolArg,
    url: &str,
    buckets: &[&str],
    credentials: Vec<String>,
    service: impl FnOnce(&mut HttpOptions),
) -> AdapterOptions {
    let mut http = HttpOptions {
        protocol: Some(protocol),
        endpoint: Some(url.into()),
        credentials: credentials
            .iter()
            .map(|flag| kv_virt::options::pair(flag).expect("a NAME=SOURCE credential flag"))
            .collect(),
        ..HttpOptions::default()
    };
    service(&mut http);
    AdapterOptions {
        buckets: buckets.iter().map(|s| s.to_string()).collect(),
        http,
        ..AdapterOptions::default()
    }
}

/// [`http_options`] for an AWS protocol on moto: its region and the
/// credentials its setup made.
pub fn moto_options(
    protocol: ProtocolArg,
    url: &str,
    buckets: &[&str],
    service: impl FnOnce(&mut HttpOptions),
) -> AdapterOptions {
    http_options(
        protocol,
        url,
        buckets,
        servers::Moto::credential_flags(),
        |http| {
            http.region = Some(servers::moto::REGION.into());
            service(http);
        },
    )
}

/// Adapter options that allow the conformance guest's buckets only, the
/// first as the default bucket (`open("")`).
pub fn conformance_options() -> AdapterOptions {
    AdapterOptions {
        buckets: CONFORMANCE_BUCKETS.iter().map(|s| s.to_string()).collect(),
        default_bucket: Some(CONFORMANCE_BUCKETS[0].into()),
        ..AdapterOptions::default()
    }
}

/// The conformance guest's arguments for a backend's declared limits and
/// an adapter composed with [`CONFORMANCE_LIST_PAGE_BYTES`].
pub fn limit_args(limits: kv_core::Limits) -> Vec<String> {
    let mut args = vec![
        "--max-key-bytes".into(),
        limits.max_key_bytes.to_string(),
        "--max-value-bytes".into(),
        limits.max_value_bytes.to_string(),
    ];
    args.extend(list_page_bytes_args());
    args
}

/// The conformance guest's arguments for an adapter composed with
/// [`CONFORMANCE_LIST_PAGE_BYTES`] (and the guest's default key and value limits).
pub fn list_page_bytes_args() -> Vec<String> {
    vec![
        "--list-page-bytes".into(),
        CONFORMANCE_LIST_PAGE_BYTES.to_string(),
    ]
}

/// Every conformance guest: both drafts' (draft2 against both texts of its
/// `get-many`) and the WASI 0.3 one (Spin's and wasmCloud's async
/// interfaces, through the async flavour) composed with the backend (and
/// [`CONFORMANCE_LIST_PAGE_BYTES`], and the guest's first bucket as the
/// default bucket), each run with `run` (arguments from [`limit_args`])
/// and required to pass every check; then draft2's again in an adapter
/// with a bucket `ttl-ms`, checking only that expiry.
pub fn conformance_every_guest(
    backend: BackendKind,
    options: &AdapterOptions,
    run: &RunOptions,
) -> Result<()> {
    // The guest checks that `open("")` is its bucket.
    let options = AdapterOptions {
        default_bucket: Some(CONFORMANCE_BUCKETS[0].into()),
        list_page_bytes: Some(CONFORMANCE_LIST_PAGE_BYTES),
        ..options.clone()
    };
    for (guest, checks) in [
        (CONFORMANCE_DRAFT, DRAFT_CHECKS),
        (CONFORMANCE_DRAFT2, DRAFT2_CHECKS),
        (CONFORMANCE_DRAFT2_2024, DRAFT2_CHECKS),
        (CONFORMANCE_ASYNC, ASYNC_CHECKS),
    ] {
        let passed = run_conformance(&composed_command(guest, backend, &options)?, run)?;
        if passed != checks {
            bail!("{guest}: {passed} checks ran, {checks} expected");
        }
    }
    bucket_ttl_conformance(backend, &options, run)
}

/// Draft2's conformance guest checking only the bucket expiry, in an
/// adapter with `options` and a `ttl-ms` of [`BUCKET_TTL_MS`].
pub fn bucket_ttl_conformance(
    backend: BackendKind,
    options: &AdapterOptions,
    run: &RunOptions,
) -> Result<()> {
    let expiring = AdapterOptions {
        ttl_ms: Some(BUCKET_TTL_MS),
        ..options.clone()
    };
    let mut run = run.clone();
    run.args
        .extend(["--bucket-ttl-ms".to_string(), BUCKET_TTL_MS.to_string()]);
    let passed = run_conformance(&composed_command(CONFORMANCE_DRAFT2, backend, &expiring)?, &run)?;
    // Opening the bucket, and the expiry.
    if passed != 2 {
        bail!("{CONFORMANCE_DRAFT2} --bucket-ttl-ms: {passed} checks ran, 2 expected");
    }
    Ok(())
}

/// The bucket `ttl-ms` [`conformance_every_guest`] composes with: the
/// guest's keys must be there right after their write, however loaded the
/// machine.
pub const BUCKET_TTL_MS: u64 = 2000;

/// `instances` counter runs at once (`counter hits counter TIMES`, with the
/// options `run` gives for those arguments), each acknowledging every one of
/// its `times` increments; then one more increment must read exactly
/// `instances × times + 1`.
pub fn assert_concurrent_increments(
    counter: &Command,
    run: impl Fn(&[&str]) -> RunOptions + Sync,
    instances: usize,
    times: usize,
) {
    let times_arg = times.to_string();
    std::thread::scope(|scope| {
        for _ in 0..instances {
            let (run, times_arg) = (&run, &times_arg);
            scope.spawn(move || {
                let output = counter.run(&run(&["hits", "counter", times_arg])).unwrap();
                assert_eq!(output.exit_code, 0, "{}", output.stderr_text());
                assert_eq!(output.stdout_text().lines().count(), times);
            });
        }
    });
    let output = counter.run(&run(&["hits", "counter", "1"])).unwrap();
    assert_eq!(
        output.stdout_text(),
        format!("counter/hits = {}\n", instances * times + 1),
        "{}",
        output.stderr_text()
    );
}

/// Runs a conformance guest and checks that every check passed; returns
/// the number of checks.
pub fn run_conformance(command: &Command, options: &RunOptions) -> Result<usize> {
    let mut options = options.clone();
    options.capture_output = true;
    let output = command.run(&options)?;
    check_conformance_output(&output)
}

pub fn check_conformance_output(output: &RunOutput) -> Result<usize> {
    let stdout = output.stdout_text();
    let failed: Vec<&str> = stdout.lines().filter(|l| l.starts_with("FAIL")).collect();
    let closing = stdout.lines().last().unwrap_or_default();
    let passed = closing
        .strip_suffix(" passed, 0 failed")
        .and_then(|n| n.parse::<usize>().ok());
    match passed {
        Some(n) if failed.is_empty() && output.exit_code == 0 => Ok(n),
        _ => bail!(
            "conformance failed (exit {}):\n{}\n{}\nstderr:\n{}",
            output.exit_code,
            failed.join("\n"),
            stdout,
            output.stderr_text()
        ),
    }
}

/// `kv-run serve` in a child process, killed when dropped. `kv_run` is the
/// binary (`env!("CARGO_BIN_EXE_kv-run-under-test")` in a test).
pub struct ServeProcess {
    child: std::process::Child,
    pub addr: std::net::SocketAddr,
}

impl ServeProcess {
    pub fn start(kv_run: &str, component: &Path, args: &[String]) -> ServeProcess {
        use std::io::{BufRead, BufReader};
        let mut child = std::process::Command::new(kv_run)
            .args(["serve", "--addr", "127.0.0.1:0"])
            .args(args)
            .arg(component)
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::inherit())
            .spawn()
            .unwrap();
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        // "kv-run: serving notes.wasm on http://127.0.0.1:PORT/"
        let addr = line
            .trim_end()
            .rsplit_once("http://")
            .and_then(|(_, url)| url.trim_end_matches('/').parse().ok())
            .unwrap_or_else(|| {
                let _ = child.kill();
                panic!("kv-run serve did not print its address: {line:?}")
            });
        ServeProcess { child, addr }
    }
}

impl Drop for ServeProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A backend an app is composed with (kv-mem, kv-fs on `/data`, kv-http on
/// a fresh etcd), and what a run of it needs.
pub struct AppBackend {
    pub name: &'static str,
    pub kind: BackendKind,
    pub options: AdapterOptions,
    /// The host directory preopened as `/data` (kv-fs).
    pub data: Option<PathBuf>,
    /// Keeps the etcd server of a kv-http backend up.
    pub _etcd: Option<servers::Etcd>,
}

impl AppBackend {
    pub fn mem() -> AppBackend {
        AppBackend {
            name: "kv-mem",
            kind: BackendKind::Mem,
            options: AdapterOptions::default(),
            data: None,
            _etcd: None,
        }
    }

    /// kv-fs on `/data`, preopened from `data`.
    pub fn fs(data: &Path) -> AppBackend {
        AppBackend {
            name: "kv-fs",
            kind: BackendKind::Fs,
            options: AdapterOptions {
                fs: kv_virt::options::FsOptions {
                    dir: Some("/data".into()),
                    ..kv_virt::options::FsOptions::default()
                },
                ..AdapterOptions::default()
            },
            data: Some(data.to_path_buf()),
            _etcd: None,
        }
    }

    /// kv-http on a fresh etcd server.
    pub fn etcd(test: &str) -> AppBackend {
        let etcd = servers::Etcd::start(&format!("apps-{test}")).unwrap();
        AppBackend {
            name: "kv-http (etcd)",
            kind: BackendKind::Http,
            options: AdapterOptions {
                http: kv_virt::options::HttpOptions {
                    protocol: Some(kv_virt::options::ProtocolArg::Etcd),
                    endpoint: Some(etcd.url()),
                    ..kv_virt::options::HttpOptions::default()
                },
                ..AdapterOptions::default()
            },
            data: None,
            _etcd: Some(etcd),
        }
    }

    /// The three, each on fresh storage under `work`.
    pub fn all(work: &Path, test: &str) -> [AppBackend; 3] {
        [
            AppBackend::mem(),
            AppBackend::fs(&work.join("data")),
            AppBackend::etcd(test),
        ]
    }

    pub fn compose(&self, app: &str) -> Vec<u8> {
        let composed = compose(&read(app), self.kind, &self.options)
            .unwrap_or_else(|e| panic!("composing {app} with {}: {e:#}", self.name));
        let info = kv_compose::inspect(&composed).unwrap();
        let left = info.key_value_imports();
        assert!(left.is_empty(), "{app} on {} still imports {left:?}", self.name);
        composed
    }

    pub fn run_options(&self, args: &[&str]) -> RunOptions {
        RunOptions {
            args: args.iter().map(|s| s.to_string()).collect(),
            preopens: self.data.iter().map(|d| (d.clone(), "/data".into())).collect(),
            capture_output: true,
            ..RunOptions::default()
        }
    }

    /// Composes the command `app`, runs it once with `args` on the
    /// embedded wasmtime, and returns its standard output.
    pub fn run(&self, app: &str, args: &[&str]) -> String {
        let output = runtime()
            .command(&self.compose(app))
            .unwrap()
            .run(&self.run_options(args))
            .unwrap();
        succeeded(&output, &format!("{app} on {}", self.name))
    }

    /// The same on Node (jco), from the composed file written to `work`.
    pub fn run_on_node(&self, app: &str, args: &[&str], work: &Path) -> String {
        let file = work.join("app.wasm");
        std::fs::write(&file, self.compose(app)).unwrap();
        let output = node::run_on_node(&file, &self.run_options(args)).unwrap();
        succeeded(&output, &format!("{app} on {} on Node", self.name))
    }
}

pub fn succeeded(output: &RunOutput, what: &str) -> String {
    assert_eq!(output.exit_code, 0, "{what}: {}", output.stderr_text());
    output.stdout_text()
}

/// How many clients [`if_not_exists_race`] races.
pub const IF_NOT_EXISTS_RACERS: usize = 8;

/// [`IF_NOT_EXISTS_RACERS`] clients race to create one key with
/// if-not-exists, at once: each sends one `PUT /doc/race` (its own line) to
/// the wasmCloud app (`examples/wasmcloud-p3-app`, composed with `backend`
/// and `options`, served by `kv_run` with `env` for the guest; each request
/// a fresh instance). The app writes a missing key with a `set` with
/// `if-not-exists` and, on `precondition-failed`, appends its line to what
/// is there by `cas` instead. Returns how many won the if-not-exists (a
/// winner's answer is its own line alone); fails unless the document ends
/// with every client's line once (two winners would lose a line).
pub fn if_not_exists_race(
    kv_run: &str,
    backend: BackendKind,
    options: &AdapterOptions,
    env: &[(String, String)],
    work: &Path,
) -> Result<usize> {
    let app = work.join("if-not-exists-race.wasm");
    std::fs::write(&app, compose(&read(WASMCLOUD_P3_APP), backend, options)?)?;
    let args: Vec<String> = env
        .iter()
        .flat_map(|(name, value)| ["--env".to_string(), format!("{name}={value}")])
        .collect();
    let server = ServeProcess::start(kv_run, &app, &args);
    let start = std::sync::Barrier::new(IF_NOT_EXISTS_RACERS);
    let answers: Vec<Result<(u16, String)>> = std::thread::scope(|scope| {
        let racers: Vec<_> = (0..IF_NOT_EXISTS_RACERS)
            .map(|client| {
                let (addr, start) = (server.addr, &start);
                scope.spawn(move || {
                    let mut http = http::HttpClient::connect(addr)?;
                    start.wait();
                    let response = http.request("PUT", "/doc/race", format!("racer {client}").as_bytes())?;
                    Ok((response.status, response.text()))
                })
            })
            .collect();
        racers.into_iter().map(|racer| racer.join().unwrap()).collect()
    });
    let mut winners = 0;
    for (client, answer) in answers.into_iter().enumerate() {
        let (status, body) = answer?;
        if status != 200 {
            bail!("racer {client}: {status} {body}");
        }
        if body == format!("racer {client}\n") {
            winners += 1;
        }
    }
    let document = http::HttpClient::connect(server.addr)?.request("GET", "/key/race", b"")?;
    let mut lines: Vec<String> = document.text().lines().map(String::from).collect();
    lines.sort_unstable();
    let mut expected: Vec<String> = (0..IF_NOT_EXISTS_RACERS).map(|c| format!("racer {c}")).collect();
    expected.sort_unstable();
    if lines != expected {
        bail!("the document holds {lines:?}, not every racer's line once");
    }
    Ok(winners)
}
