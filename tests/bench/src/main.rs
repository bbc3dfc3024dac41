//! `kv-bench`: kv-fs's benchmark harness (a harness that prints a table and
//! writes JSON, never a timed test).
//!
//! ```sh
//! cargo run -p kv-bench --release            # the figures: about a minute on 2 cores
//! cargo run -p kv-bench --release -- --quick # tiny sizes, seconds
//! cargo run -p kv-bench -- --quick           # dev build: a smoke run (figures not meaningful)
//! ```
//!
//! Options: `--quick`; `--keep` (keep the data files under
//! `target/bench/run/`); `--out FILE` (default `target/bench/kv-fs.json`).
//! The exit status is 1 if a phase failed (the table still shows the rest).
//!
//! **Profile: release, on purpose, for figures.** The guest and the
//! adapters are wasm built by the build script with the workspace's `wasm`
//! profile whatever the harness's profile, and the workspace optimises
//! dependencies at opt-level 2 even in dev builds; but wasmtime's host side
//! (which every component-boundary crossing and every `wasi:filesystem`
//! call goes through) is much slower in a dev build, which also keeps debug
//! assertions and overflow checks on and uses more codegen units in every
//! dependency: measured here, a dev build makes a `wasi:filesystem` read of
//! 4 KiB ~10x slower (27 us vs 2.4 us per call) and wasmtime's in-memory
//! `wasi:keyvalue` get ~12x slower, which would misstate every ratio
//! against the native baselines. The first
//! `--release` build compiles wasmtime again (about 8 minutes on 2 cores);
//! after that it is incremental. A dev build runs the same code (so
//! `--quick` in dev is a fine smoke run) and says loudly that its figures
//! are not to be compared. The JSON records which profile ran.
//!
//! What it measures, in one run, on this machine, all as ratios of kv-fs
//! (composed into the guest, under wasmtime 48 via `kv-runner`) to
//! baselines built in the same run:
//!
//! * the **limit**: one 4 KiB page rewritten in place and `fdatasync`ed,
//!   natively, in a loop, on the same file system: the ceiling for any
//!   durable write (set rows only);
//! * native **redb** (default `Durability::Immediate`), native **SQLite**
//!   (`rusqlite`, bundled) with Spin's `spin_key_value` schema and
//!   statements (`synchronous=FULL`, rollback journal, as Spin opens it)
//!   and the same in **WAL mode** (`synchronous=FULL`), each call its own
//!   transaction, and wasmtime's in-memory host `wasi:keyvalue`
//!   (`wasmtime-wasi-keyvalue`, the ceiling for crossing the component
//!   boundary) running the same guest, not composed;
//! * get (warm bucket, random existing keys), durable set, set-many of
//!   1000 (and the syncs it costs), increment, full list-keys, open to first
//!   get on a 1M-key bucket (a fresh instance), file bytes per logical byte;
//! * adapter sizes and the time of `kv-virt plug` (in process).
//!
//! The workload (`src/workload.rs`) is written once: the guest runs it
//! inside the instance, the harness runs it natively for redb and SQLite.
//! Reads run on the freshly loaded bucket; the writes run in rounds
//! interleaved across the stores (a burst of other disk activity then
//! lands on all of them, not on one), each round in a fresh instance or a
//! fresh open; their rates are the medians of the rounds' rates. Every store's results are checked (values read back, list
//! counts, counter totals); a wrong result is reported, not timed over.
//!
//! And, to explain the kv-fs figures (diagnostics, not baselines): kv-fs
//! with `--durability none`; kv-fs on a second kv-runner runtime with
//! wasmtime-wasi's synchronous bindings (`Bindings::Sync`; `kv-run` uses the
//! asynchronous ones, each run on a single-threaded tokio runtime; both make
//! file calls on the calling thread, `allow_blocking_current_thread`); the cost of
//! one raw `wasi:filesystem` call (`probe` mode of the guest) on each host
//! and natively; and how many file operations the engine makes per
//! `wasi:keyvalue` call (counted natively on the engine's instrumented
//! `MemDir`). The sync count of set-many comes from that count.

mod native;
mod output;
mod workload;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{Context, Result, bail};
use kv_runner::{Bindings, Command, HostKeyValue, RunOptions, RunOutput, Runtime, RuntimeOptions};
use kv_virt::adapters::{BackendKind, KV_FS, KV_MEM};
use kv_virt::options::{AdapterOptions, DurabilityArg, FsOptions};
use serde_json::{Value, json};

use crate::workload::{Params, Report};

const GUEST: &str = env!("KV_BENCH_GUEST_WASM");

/// The sizes of one run.
#[derive(Clone, Debug)]
struct Sizes {
    /// Keys in the working bucket.
    keys: u64,
    /// Untimed warm-up gets.
    warm: u64,
    gets: u64,
    lists: u64,
    sets: u64,
    /// Set-many calls, of `batch` entries each.
    batches: u64,
    batch: u64,
    incrs: u64,
    /// Keys in the bucket of the open-to-first-get measurement.
    big_keys: u64,
    /// Fresh instances timed per store (median reported).
    open_reps: usize,
    /// `kv-virt plug` repetitions (median reported).
    plug_reps: usize,
    /// Raw `wasi:filesystem` calls timed by the probe.
    probe_reads: u64,
    probe_creates: u64,
    /// The writes (sets, set-many, increments) are split into this many
    /// rounds, interleaved across the stores, so that a burst of other
    /// disk activity on the machine does not land on one store only.
    rounds: u64,
}

impl Sizes {
    fn full() -> Sizes {
        Sizes {
            keys: 100_000,
            warm: 20_000,
            gets: 30_000,
            lists: 3,
            sets: 3_000,
            batches: 24,
            batch: 1_000,
            incrs: 3_000,
            big_keys: 1_000_000,
            open_reps: 15,
            plug_reps: 7,
            probe_reads: 20_000,
            probe_creates: 500,
            rounds: 6,
        }
    }

    fn quick() -> Sizes {
        Sizes {
            keys: 2_000,
            warm: 2_000,
            gets: 2_000,
            lists: 1,
            sets: 50,
            batches: 2,
            batch: 1_000,
            incrs: 50,
            big_keys: 20_000,
            open_reps: 3,
            plug_reps: 2,
            probe_reads: 1_000,
            probe_creates: 50,
            rounds: 1,
        }
    }

    fn params(&self, mode: &str, bucket: &str) -> Params {
        Params {
            mode: mode.into(),
            bucket: bucket.into(),
            keys: self.keys,
            warm: self.warm,
            gets: self.gets,
            lists: self.lists,
            sets: self.sets,
            batches: self.batches,
            batch: self.batch,
            incrs: self.incrs,
            seed: 42,
            key: 0,
        }
    }

    /// The read-only operations, on the freshly loaded bucket.
    fn read_params(&self, bucket: &str) -> Params {
        Params {
            sets: 0,
            batches: 0,
            incrs: 0,
            ..self.params("ops", bucket)
        }
    }

    /// One round of the writes.
    fn write_params(&self, bucket: &str, round: u64) -> Params {
        let rounds = self.rounds.max(1);
        Params {
            warm: 0,
            gets: 0,
            lists: 0,
            sets: self.sets / rounds,
            batches: (self.batches / rounds).max(1),
            incrs: self.incrs / rounds,
            // Far apart: `Rng` counts up from its seed, so seeds 1000 and
            // 1001 would draw the same keys shifted by one, and a store that
            // skips writing an unchanged value (SQLite does) would skip most
            // of the rounds after the first.
            seed: (round + 1) << 32,
            ..self.params("ops", bucket)
        }
    }

    fn logical_bytes(&self, keys: u64) -> u64 {
        keys * (workload::KEY_LEN + workload::VALUE_LEN) as u64
    }
}

/// The stores of the main table, in order.
const KVFS: &str = "kv-fs";
const REDB: &str = "redb";
const SQLITE: &str = "sqlite";
const SQLITE_WAL: &str = "sqlite-wal";
/// One page rewritten in place + fdatasync: the ceiling for durable writes.
const LIMIT: &str = "limit";
const WTMEM: &str = "wasmtime-mem";
const STORES: [&str; 6] = [KVFS, LIMIT, REDB, SQLITE, SQLITE_WAL, WTMEM];
/// kv-fs variants (diagnostics, not baselines).
const KVFS_SYNC_HOST: &str = "kv-fs-sync-host";
const KVFS_NOSYNC: &str = "kv-fs-nosync";
/// Two instances writing one bucket at once: the lock kept across commits
/// (the default), and taken per commit (`--lock-idle-ms 0`, as before).
const KVFS_TWO: &str = "kv-fs-two-writers";
const KVFS_TWO_PER_COMMIT: &str = "kv-fs-two-writers-per-commit-lock";

/// kv-fs composed into the guest, compiled for each way it is run.
struct KvFs {
    /// Durability sync (the default), on kv-runner.
    sync: Command,
    /// Durability none, on kv-runner.
    nosync: Command,
    /// Durability sync, the lock released after every commit, on kv-runner.
    per_commit_lock: Command,
    /// Durability sync, on the harness's host (wasmtime's synchronous bindings).
    sync_host: Option<Command>,
}

struct Bench {
    started: Instant,
    sizes: Sizes,
    quick: bool,
    work: PathBuf,
    guest: Vec<u8>,
    /// store → metric → value.
    figures: BTreeMap<&'static str, BTreeMap<&'static str, f64>>,
    /// store → raw reports.
    raw: BTreeMap<String, Value>,
    /// Raw `wasi:filesystem` call costs: where → report.
    probes: Vec<(&'static str, Report)>,
    sizes_and_plug: Value,
    /// `/proc/loadavg` when the run started (other work on the machine skews timings).
    loadavg_start: Option<String>,
    engine_counts: Option<native::EngineCounts>,
    /// Wrong results (a store did not do what the workload asked).
    anomalies: Vec<String>,
    /// Phases that failed.
    errors: Vec<String>,
    notes: Vec<String>,
}

fn main() -> Result<()> {
    let mut quick = false;
    let mut keep = false;
    let mut out: Option<PathBuf> = None;
    let usage = "usage: kv-bench [--quick] [--keep] [--out FILE]";
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--quick" => quick = true,
            "--keep" => keep = true,
            "--out" => out = Some(args.next().context("--out needs a file")?.into()),
            "-h" | "--help" => {
                println!("{usage}");
                return Ok(());
            }
            other => bail!("unknown argument {other:?} ({usage})"),
        }
    }

    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace_root().join("target"));
    let bench_dir = target.join("bench");
    let work = bench_dir.join("run");
    if work.exists() {
        std::fs::remove_dir_all(&work).with_context(|| format!("removing {}", work.display()))?;
    }
    std::fs::create_dir_all(&work)?;
    let out = out.unwrap_or_else(|| bench_dir.join("kv-fs.json"));

    let mut bench = Bench {
        started: Instant::now(),
        sizes: if quick { Sizes::quick() } else { Sizes::full() },
        quick,
        work: work.clone(),
        guest: std::fs::read(GUEST).with_context(|| format!("reading {GUEST}"))?,
        figures: BTreeMap::new(),
        raw: BTreeMap::new(),
        probes: Vec::new(),
        sizes_and_plug: Value::Null,
        loadavg_start: loadavg(),
        engine_counts: None,
        anomalies: Vec::new(),
        errors: Vec::new(),
        notes: Vec::new(),
    };
    bench.progress(&format!(
        "kv-bench ({} sizes, {} profile) in {}",
        if quick { "quick" } else { "full" },
        profile(),
        work.display()
    ));

    // Each phase that fails is reported (and makes the exit status 1); the
    // others still run, so one broken store does not hide the rest.
    if let Some(v) = bench.attempt("adapter sizes and kv-virt plug", |b| b.adapter_sizes_and_plug()) {
        bench.sizes_and_plug = v;
    }
    let host = bench.attempt("creating the harness's wasmtime host", |_| {
        Runtime::with_options(RuntimeOptions {
            bindings: Bindings::Sync,
            host_keyvalue: true,
        })
    });
    let guest = match &host {
        Some(host) => bench.attempt("compiling the guest on the harness's host", |b| {
            b.timed("compiling the guest (not composed) on the harness's host", || {
                host.command(&b.guest)
            })
        }),
        None => None,
    };
    let kvfs = bench.attempt("composing and compiling guest + kv-fs", |b| {
        b.compile_kvfs(host.as_ref())
    });

    if let Some(kvfs) = &kvfs {
        bench.attempt("kv-fs workload", |b| b.run_kvfs(kvfs));
    }
    if let Some(guest) = &guest {
        bench.attempt("wasmtime in-memory workload", |b| b.run_wtmem(guest));
    }
    bench.attempt("redb workload", |b| b.run_redb());
    bench.attempt("SQLite workload", |b| {
        b.run_sqlite(SQLITE, native::Journal::Rollback)
    });
    bench.attempt("SQLite WAL workload", |b| {
        b.run_sqlite(SQLITE_WAL, native::Journal::Wal)
    });
    bench.write_rounds(kvfs.as_ref());
    if let Some(kvfs) = &kvfs {
        bench.attempt("two kv-fs instances writing at once", |b| b.two_writers(kvfs));
    }
    bench.engine_counts = bench.attempt("counting the kv-fs engine's file operations", |b| {
        b.count_engine_ops()
    });
    bench.attempt("timing raw wasi:filesystem calls", |b| {
        b.probe(kvfs.as_ref(), guest.as_ref())
    });
    bench.open_first_get(kvfs.as_ref(), guest.as_ref());

    let targets = bench.targets();
    bench.print(&targets);
    let json = bench.json(&targets);
    if let Some(dir) = out.parent() {
        std::fs::create_dir_all(dir)?;
    }
    std::fs::write(&out, serde_json::to_string_pretty(&json)? + "\n")
        .with_context(|| format!("writing {}", out.display()))?;
    println!("\nwrote {}", out.display());
    if !keep {
        std::fs::remove_dir_all(&work).ok();
    }
    if !bench.errors.is_empty() {
        bail!(
            "{} phase(s) failed:\n{}",
            bench.errors.len(),
            bench.errors.join("\n")
        );
    }
    Ok(())
}

fn workspace_root() -> PathBuf {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"));
    dir.ancestors()
        .nth(2)
        .map(Path::to_path_buf)
        .unwrap_or_else(|| dir.to_path_buf())
}

fn profile() -> &'static str {
    if cfg!(debug_assertions) { "dev" } else { "release" }
}

fn median(mut v: Vec<f64>) -> f64 {
    if v.is_empty() {
        return f64::NAN;
    }
    v.sort_by(f64::total_cmp);
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

fn file_len(path: &Path) -> Result<u64> {
    Ok(std::fs::metadata(path)
        .with_context(|| format!("stat {}", path.display()))?
        .len())
}

/// Total bytes of the regular files in `dir` (a store's data files).
fn dir_bytes(dir: &Path) -> Result<u64> {
    let mut total = 0;
    for entry in std::fs::read_dir(dir)? {
        let meta = entry?.metadata()?;
        if meta.is_file() {
            total += meta.len();
        }
    }
    Ok(total)
}

fn report_json(r: &Report) -> Value {
    Value::Object(r.0.iter().map(|(k, v)| (k.clone(), json!(v))).collect())
}

/// One report from the write rounds of a store: counts and times added,
/// checks all required, median of the medians, worst p99.
fn merge_rounds(rounds: &[Report]) -> Report {
    let values = |name: &str| -> Vec<f64> { rounds.iter().filter_map(|r| r.get(name)).collect() };
    let mut merged = Report::default();
    for name in [
        "set_ops",
        "set_s",
        "setmany_calls",
        "setmany_entries",
        "setmany_s",
        "incr_ops",
        "incr_s",
    ] {
        let v = values(name);
        if !v.is_empty() {
            merged.put(name, v.iter().sum());
        }
    }
    for name in ["set_readback_ok", "setmany_readback_ok", "incr_ok"] {
        if let Some(v) = values(name).into_iter().reduce(f64::min) {
            merged.put(name, v);
        }
    }
    for name in ["set_p50_us", "setmany_p50_us"] {
        let v = values(name);
        if !v.is_empty() {
            merged.put(name, median(v));
        }
    }
    if let Some(v) = values("set_p99_us").into_iter().reduce(f64::max) {
        merged.put("set_p99_us", v);
    }
    merged
}

/// The JSON line a guest printed.
fn parse_output(what: &str, out: &RunOutput) -> Result<Report> {
    let stdout = out.stdout_text();
    if out.exit_code != 0 {
        bail!(
            "{what}: the guest exited with {}\nstdout:\n{stdout}\nstderr:\n{}",
            out.exit_code,
            out.stderr_text()
        );
    }
    let line = stdout
        .lines()
        .rev()
        .find(|l| !l.trim().is_empty())
        .unwrap_or_default();
    let map: serde_json::Map<String, Value> = serde_json::from_str(line).with_context(|| {
        format!(
            "{what}: the guest printed no JSON result:\n{stdout}\n{}",
            out.stderr_text()
        )
    })?;
    Ok(Report(
        map.into_iter()
            .map(|(k, v)| (k, v.as_f64().unwrap_or(f64::NAN)))
            .collect(),
    ))
}

/// The guest's (or native) open + first get, in ms.
fn open_get_ms(r: &Report) -> f64 {
    (r.get("open_us").unwrap_or(f64::NAN) + r.get("first_get_us").unwrap_or(f64::NAN)) / 1e3
}

fn per_sec(r: &Report, ops: &str, secs: &str) -> Option<f64> {
    Some(r.get(ops)? / r.get(secs)?)
}

/// `/proc/loadavg`, where there is one.
fn loadavg() -> Option<String> {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .map(|s| s.trim().to_string())
}

fn no_keyvalue() -> HostKeyValue {
    HostKeyValue::default()
}

impl Bench {
    fn progress(&self, msg: &str) {
        eprintln!("[{:6.1}s] {msg}", self.started.elapsed().as_secs_f64());
    }

    fn timed<T>(&self, what: &str, f: impl FnOnce() -> Result<T>) -> Result<T> {
        self.progress(what);
        let t = Instant::now();
        let v = f().with_context(|| what.to_string())?;
        self.progress(&format!("  done in {:.2} s", t.elapsed().as_secs_f64()));
        Ok(v)
    }

    /// Runs a phase; a failure is recorded (and printed) instead of ending the run.
    fn attempt<T>(&mut self, what: &str, f: impl FnOnce(&mut Self) -> Result<T>) -> Option<T> {
        match f(self) {
            Ok(v) => Some(v),
            Err(e) => {
                let e = format!("{what}: {e:#}");
                self.progress(&format!("FAILED: {e}"));
                self.errors.push(e);
                None
            }
        }
    }

    fn set(&mut self, store: &'static str, metric: &'static str, v: Option<f64>) {
        if let Some(v) = v {
            self.figures.entry(store).or_default().insert(metric, v);
        }
    }

    fn fig(&self, store: &str, metric: &str) -> Option<f64> {
        self.figures.get(store)?.get(metric).copied()
    }

    /// The per-operation figures of a workload report, and its self-checks.
    fn absorb(&mut self, store: &'static str, r: &Report) {
        self.set(store, "get", per_sec(r, "get_ops", "get_s"));
        self.set(store, "set", per_sec(r, "set_ops", "set_s"));
        self.set(store, "incr", per_sec(r, "incr_ops", "incr_s"));
        self.set(store, "list", per_sec(r, "list_keys", "list_s"));
        self.set(store, "load", per_sec(r, "load_keys", "load_s"));
        let set_s = r.get("set_s").zip(r.get("set_ops")).map(|(s, n)| s / n);
        let many_s = r.get("setmany_s").zip(r.get("setmany_calls")).map(|(s, n)| s / n);
        self.set(store, "set_ms", set_s.map(|s| s * 1e3));
        self.set(store, "setmany_ms", many_s.map(|s| s * 1e3));
        self.set(store, "setmany_vs_set", many_s.zip(set_s).map(|(m, s)| m / s));
        self.set(
            store,
            "setmany_entries",
            per_sec(r, "setmany_entries", "setmany_s"),
        );
        self.set(store, "set_p50_us", r.get("set_p50_us"));
        self.set(store, "set_p99_us", r.get("set_p99_us"));

        let s = &self.sizes;
        let mut checks = vec![];
        if let Some(found) = r.get("get_found") {
            checks.push(("gets that found a 100-byte value", found, s.gets as f64));
        }
        if let (Some(right), Some(checked)) = (r.get("get_right"), r.get("get_checked")) {
            checks.push(("sampled gets returning the loaded value", right, checked));
        }
        if let Some(count) = r.get("list_count") {
            checks.push(("keys listed by a full list-keys", count, s.keys as f64));
        }
        for flag in ["set_readback_ok", "setmany_readback_ok", "incr_ok"] {
            if let Some(v) = r.get(flag) {
                checks.push((flag, v, 1.0));
            }
        }
        for (what, got, want) in checks {
            if got != want {
                self.anomalies
                    .push(format!("{store}: {what}: {got} (expected {want})"));
            }
        }
    }

    // ------------------------------------------------------------ sizes, plug

    fn adapter_sizes_and_plug(&mut self) -> Result<Value> {
        let options = AdapterOptions::default();
        let reps = self.sizes.plug_reps;
        let (mut configure, mut plug, mut total) = (vec![], vec![], vec![]);
        let mut configured_len = 0;
        let mut composed_len = 0;
        self.progress(&format!("kv-virt plug (fs) of the guest, {reps} times"));
        for _ in 0..reps {
            let t = Instant::now();
            let adapter = kv_virt::cli::configured_adapter(Some(BackendKind::Fs), &options)?;
            let t1 = Instant::now();
            let composed = kv_compose::plug(&self.guest, &adapter)?;
            let t2 = Instant::now();
            configure.push((t1 - t).as_secs_f64() * 1e3);
            plug.push((t2 - t1).as_secs_f64() * 1e3);
            total.push((t2 - t).as_secs_f64() * 1e3);
            configured_len = adapter.len();
            composed_len = composed.len();
        }
        Ok(json!({
            "kv_mem_wasm_bytes": KV_MEM.len(),
            "kv_fs_wasm_bytes": KV_FS.len(),
            "kv_fs_configured_bytes": configured_len,
            "guest_wasm_bytes": self.guest.len(),
            "composed_guest_kv_fs_bytes": composed_len,
            "plug_reps": reps,
            "configure_ms_median": median(configure),
            "compose_plug_ms_median": median(plug),
            "kv_virt_plug_ms_median": median(total),
        }))
    }

    // ------------------------------------------------------------ kv-fs

    fn compile_kvfs(&self, host: Option<&Runtime>) -> Result<KvFs> {
        let compose =
            |options: &AdapterOptions| kv_virt::cli::plug(&self.guest, Some(BackendKind::Fs), options);
        let composed = compose(&AdapterOptions::default())?;
        let sync = self.timed("compiling guest + kv-fs (durability sync) on kv-runner", || {
            Runtime::shared().command(&composed)
        })?;
        let nosync = self.timed(
            "composing and compiling guest + kv-fs (durability none) on kv-runner",
            || {
                Runtime::shared().command(&compose(&AdapterOptions {
                    fs: FsOptions {
                        durability: Some(DurabilityArg::None),
                        ..FsOptions::default()
                    },
                    ..AdapterOptions::default()
                })?)
            },
        )?;
        let per_commit_lock = self.timed(
            "composing and compiling guest + kv-fs (lock taken per commit) on kv-runner",
            || {
                Runtime::shared().command(&compose(&AdapterOptions {
                    fs: FsOptions {
                        lock_idle_ms: Some(0),
                        ..FsOptions::default()
                    },
                    ..AdapterOptions::default()
                })?)
            },
        )?;
        let sync_host = match host {
            Some(host) => Some(self.timed("compiling guest + kv-fs on the harness's host", || {
                host.command(&composed)
            })?),
            None => None,
        };
        Ok(KvFs {
            sync,
            nosync,
            per_commit_lock,
            sync_host,
        })
    }

    /// Runs a guest on kv-runner with `dir` preopened as `/data`.
    fn run_guest(&self, command: &Command, dir: &Path, p: &Params) -> Result<Report> {
        let out = command.run(&RunOptions {
            args: p.to_args(),
            preopens: vec![(dir.to_path_buf(), "/data".into())],
            capture_output: true,
            ..RunOptions::default()
        })?;
        parse_output(&format!("kv-runner, mode {}", p.mode), &out)
    }

    /// Runs a guest on the harness's second runtime (synchronous bindings),
    /// with `dir`, if any, preopened as `/data`.
    fn run_program(
        &self,
        program: &Command,
        dir: Option<&Path>,
        p: &Params,
        keyvalue: &HostKeyValue,
    ) -> Result<Report> {
        let out = program.run(&RunOptions {
            args: p.to_args(),
            preopens: dir
                .map(|dir| (dir.to_path_buf(), "/data".into()))
                .into_iter()
                .collect(),
            capture_output: true,
            keyvalue: keyvalue.clone(),
            ..RunOptions::default()
        })?;
        parse_output(&format!("harness host, mode {}", p.mode), &out)
    }

    fn run_kvfs(&mut self, kvfs: &KvFs) -> Result<()> {
        let s = self.sizes.clone();
        let dir = self.work.join("kv-fs");
        std::fs::create_dir_all(&dir)?;
        let load = self.timed(&format!("kv-fs: load {} keys (a fresh instance)", s.keys), || {
            self.run_guest(&kvfs.sync, &dir, &s.params("load", "bench"))
        })?;
        let file = dir.join("bench.kvfs");
        let bytes = file_len(&file).context("kv-fs did not name the bucket file bench.kvfs")?;
        self.set(
            KVFS,
            "file_ratio",
            Some(bytes as f64 / s.logical_bytes(s.keys) as f64),
        );
        self.set(KVFS, "file_bytes", Some(bytes as f64));
        self.set(KVFS, "dir_bytes", Some(dir_bytes(&dir)? as f64));
        // The variants start from copies of the same loaded bucket.
        let sync_host_dir = self.work.join("kv-fs-sync-host");
        let nosync_dir = self.work.join("kv-fs-nosync");
        for variant in [&sync_host_dir, &nosync_dir] {
            std::fs::create_dir_all(variant)?;
            std::fs::copy(&file, variant.join("bench.kvfs"))?;
        }

        let reads = self.timed("kv-fs: get, list-keys (another fresh instance)", || {
            self.run_guest(&kvfs.sync, &dir, &s.read_params("bench"))
        })?;
        self.absorb(KVFS, &load);
        self.absorb(KVFS, &reads);
        self.raw.insert(
            KVFS.into(),
            json!({"load": report_json(&load), "reads": report_json(&reads)}),
        );

        // Diagnostic: the same with file I/O on the calling thread.
        if let Some(program) = &kvfs.sync_host {
            let reads = self.timed("kv-fs on the harness's synchronous host: get, list-keys", || {
                self.run_program(
                    program,
                    Some(&sync_host_dir),
                    &s.read_params("bench"),
                    &no_keyvalue(),
                )
            })?;
            self.absorb(KVFS_SYNC_HOST, &reads);
            self.raw
                .insert(KVFS_SYNC_HOST.into(), json!({"reads": report_json(&reads)}));
        }
        Ok(())
    }

    /// The writes, in rounds interleaved across the stores (each round of
    /// each store in a fresh instance or a fresh open, rotating the order).
    fn write_rounds(&mut self, kvfs: Option<&KvFs>) {
        let s = self.sizes.clone();
        let kv_dir = self.work.join("kv-fs");
        let sync_host_dir = self.work.join("kv-fs-sync-host");
        let nosync_dir = self.work.join("kv-fs-nosync");
        let redb_path = self.work.join("redb").join("bench.redb");
        let sqlite_path = self.work.join("sqlite").join("bench.sqlite");
        let sqlite_wal_path = self.work.join("sqlite-wal").join("bench.sqlite");
        let limit_path = self.work.join("limit.bin");
        let mut stores: Vec<&'static str> = vec![];
        if let Some(kvfs) = kvfs {
            if kv_dir.join("bench.kvfs").exists() {
                stores.push(KVFS);
            }
            if kvfs.sync_host.is_some() && sync_host_dir.join("bench.kvfs").exists() {
                stores.push(KVFS_SYNC_HOST);
            }
            if nosync_dir.join("bench.kvfs").exists() {
                stores.push(KVFS_NOSYNC);
            }
        }
        if redb_path.exists() {
            stores.push(REDB);
        }
        if sqlite_path.exists() {
            stores.push(SQLITE);
        }
        if sqlite_wal_path.exists() {
            stores.push(SQLITE_WAL);
        }
        let limit = match native::PageSync::create(&limit_path) {
            Ok(limit) => {
                stores.push(LIMIT);
                Some(limit)
            }
            Err(e) => {
                self.errors.push(format!("the page-sync limit: {e:#}"));
                None
            }
        };
        let rounds = s.rounds.max(1);
        self.progress(&format!(
            "writes: {rounds} rounds of {} sets, {} set-many, {} increments each, interleaved across {}",
            s.sets / rounds,
            (s.batches / rounds).max(1),
            s.incrs / rounds,
            stores.join(", ")
        ));
        let mut reports: BTreeMap<&'static str, Vec<Report>> = BTreeMap::new();
        for round in 0..rounds {
            let mut order = stores.clone();
            let turn = round as usize % order.len().max(1);
            order.rotate_left(turn);
            for store in order {
                let p = s.write_params("bench", round);
                let result = match (store, kvfs) {
                    (KVFS, Some(kvfs)) => self.run_guest(&kvfs.sync, &kv_dir, &p),
                    (KVFS_NOSYNC, Some(kvfs)) => self.run_guest(&kvfs.nosync, &nosync_dir, &p),
                    (
                        KVFS_SYNC_HOST,
                        Some(KvFs {
                            sync_host: Some(program),
                            ..
                        }),
                    ) => self.run_program(program, Some(&sync_host_dir), &p, &no_keyvalue()),
                    (REDB, _) => native::Redb::open(&redb_path)
                        .and_then(|mut kv| workload::run_ops(&mut kv, &p))
                        .map_err(anyhow::Error::msg),
                    (SQLITE, _) => native::Sqlite::open(&sqlite_path, native::Journal::Rollback)
                        .and_then(|mut kv| workload::run_ops(&mut kv, &p))
                        .map_err(anyhow::Error::msg),
                    (SQLITE_WAL, _) => native::Sqlite::open(&sqlite_wal_path, native::Journal::Wal)
                        .and_then(|mut kv| workload::run_ops(&mut kv, &p))
                        .map_err(anyhow::Error::msg),
                    (LIMIT, _) => match &limit {
                        Some(limit) => limit.run(p.sets),
                        None => continue,
                    },
                    _ => continue,
                };
                match result {
                    Ok(r) => reports.entry(store).or_default().push(r),
                    Err(e) => {
                        let e = format!("{store} writes, round {round}: {e:#}");
                        self.progress(&format!("FAILED: {e}"));
                        self.errors.push(e);
                        stores.retain(|s| *s != store);
                    }
                }
            }
            self.progress(&format!("  round {} of {rounds} done", round + 1));
        }
        for (store, rounds) in reports {
            self.absorb(store, &merge_rounds(&rounds));
            // The rates of the table: medians of the rounds' own rates.
            let rate = |ops: &str, secs: &str| {
                let v: Vec<f64> = rounds.iter().filter_map(|r| per_sec(r, ops, secs)).collect();
                (!v.is_empty()).then(|| median(v))
            };
            self.set(store, "set", rate("set_ops", "set_s"));
            self.set(store, "incr", rate("incr_ops", "incr_s"));
            self.set(
                store,
                "setmany_ms",
                rate("setmany_s", "setmany_calls").map(|s| s * 1e3),
            );
            self.set(
                store,
                "setmany_vs_set",
                self.fig(store, "setmany_ms")
                    .zip(self.fig(store, "set"))
                    .map(|(many_ms, set_per_s)| many_ms * set_per_s / 1e3),
            );
            let rounds: Vec<Value> = rounds.iter().map(report_json).collect();
            match self.raw.get_mut(store) {
                Some(Value::Object(m)) => {
                    m.insert("write_rounds".into(), Value::Array(rounds));
                }
                _ => {
                    self.raw.insert(store.into(), json!({ "write_rounds": rounds }));
                }
            }
        }
    }

    /// Two instances (threads, each its own instance) setting random keys
    /// of one bucket at once, durably: total sets per second (all sets over
    /// the longer instance's time), the worse p99 and the longest set of the
    /// two, the lock kept across commits against the lock taken per commit,
    /// in rounds interleaved between the two (medians of the rounds). Each instance's
    /// last set may be overwritten by the other's: its read-back is not
    /// checked here.
    fn two_writers(&mut self, kvfs: &KvFs) -> Result<()> {
        let s = self.sizes.clone();
        let dir = self.work.join("two-writers");
        std::fs::create_dir_all(&dir)?;
        std::fs::copy(self.work.join("kv-fs").join("bench.kvfs"), dir.join("bench.kvfs"))
            .context("copying the loaded kv-fs bucket")?;
        let rounds = s.rounds.max(1);
        self.progress(&format!(
            "two instances writing one bucket at once: {rounds} rounds of 2 x {} sets, lock kept vs per commit",
            s.sets / rounds
        ));
        let mut variants = [
            (KVFS_TWO, &kvfs.sync),
            (KVFS_TWO_PER_COMMIT, &kvfs.per_commit_lock),
        ];
        // (store, metric) -> the rounds' figures.
        let mut figures: BTreeMap<(&'static str, &'static str), Vec<f64>> = BTreeMap::new();
        for round in 0..rounds {
            variants.rotate_left(1);
            for (store, command) in variants {
                let this = &*self;
                let reports = std::thread::scope(|scope| {
                    let writers: Vec<_> = (0..2u64)
                        .map(|writer| {
                            let p = Params {
                                batches: 0,
                                incrs: 0,
                                // Apart from each other's and every round's.
                                seed: ((round + 1) << 32) | ((writer + 1) << 48),
                                ..s.write_params("bench", round)
                            };
                            let dir = &dir;
                            scope.spawn(move || this.run_guest(command, dir, &p))
                        })
                        .collect();
                    writers
                        .into_iter()
                        .map(|w| w.join().expect("a writer thread panicked"))
                        .collect::<Result<Vec<Report>>>()
                })?;
                let values = |name: &'static str| reports.iter().filter_map(move |r| r.get(name));
                let (ops, secs) = (
                    values("set_ops").sum::<f64>(),
                    values("set_s").fold(0.0, f64::max),
                );
                // The longest set is what shows a writer starved, not the p99.
                for (metric, v) in [
                    ("set", ops / secs),
                    ("set_p99_us", values("set_p99_us").fold(0.0, f64::max)),
                    ("set_max_us", values("set_max_us").fold(0.0, f64::max)),
                ] {
                    figures.entry((store, metric)).or_default().push(v);
                }
            }
        }
        for ((store, metric), v) in figures {
            self.set(store, metric, Some(median(v)));
        }
        Ok(())
    }

    // ------------------------------------------------------------ baselines

    fn run_wtmem(&mut self, guest: &Command) -> Result<()> {
        let s = self.sizes.clone();
        // The host keeps nothing between instances: load in the same instance.
        let r = self.timed(
            "wasmtime in-memory host: load, then every operation (one instance)",
            || self.run_program(guest, None, &s.params("load-ops", ""), &no_keyvalue()),
        )?;
        self.absorb(WTMEM, &r);
        self.raw.insert(WTMEM.into(), report_json(&r));
        Ok(())
    }

    fn native_workload<K: workload::Kv>(
        &mut self,
        store: &'static str,
        open: impl Fn() -> Result<K>,
        data_file: &Path,
    ) -> Result<()> {
        let s = self.sizes.clone();
        let mut load = Report::default();
        self.timed(&format!("{store}: load {} keys", s.keys), || {
            let mut kv = open()?;
            workload::load(&mut kv, &s.params("load", "bench"), &mut load).map_err(anyhow::Error::msg)
        })?;
        // The whole directory: a WAL database keeps data in its -wal file.
        let file = data_file.parent().map_or(Ok(0), dir_bytes)?;
        self.set(
            store,
            "file_ratio",
            Some(file as f64 / s.logical_bytes(s.keys) as f64),
        );
        self.set(store, "file_bytes", Some(file as f64));
        let reads = self.timed(&format!("{store}: get, list-keys (reopened)"), || {
            let mut kv = open()?;
            workload::run_ops(&mut kv, &s.read_params("bench")).map_err(anyhow::Error::msg)
        })?;
        self.absorb(store, &load);
        self.absorb(store, &reads);
        self.raw.insert(
            store.into(),
            json!({"load": report_json(&load), "reads": report_json(&reads)}),
        );
        Ok(())
    }

    fn run_redb(&mut self) -> Result<()> {
        let dir = self.work.join("redb");
        std::fs::create_dir_all(&dir)?;
        let path = dir.join("bench.redb");
        let open = || -> Result<native::Redb> {
            if path.exists() {
                native::Redb::open(&path).map_err(anyhow::Error::msg)
            } else {
                native::Redb::create(&path)
            }
        };
        self.native_workload(REDB, open, &path)
    }

    fn run_sqlite(&mut self, store: &'static str, journal: native::Journal) -> Result<()> {
        let dir = self.work.join(store);
        std::fs::create_dir_all(&dir)?;
        let path = dir.join("bench.sqlite");
        let open = || native::Sqlite::open(&path, journal).map_err(anyhow::Error::msg);
        self.native_workload(store, open, &path)
    }

    // ------------------------------------------------------------ diagnostics

    fn count_engine_ops(&mut self) -> Result<native::EngineCounts> {
        let s = self.sizes.clone();
        self.timed(
            &format!(
                "kv-fs engine (native, instrumented MemDir): file operations per call on {} keys",
                s.keys
            ),
            || native::count_engine_ops(s.keys, s.batch, 2_000.min(s.gets)),
        )
    }

    /// The cost of one raw `wasi:filesystem` call, as kv-fs makes them,
    /// on kv-runner, on the harness's synchronous host, and natively.
    fn probe(&mut self, kvfs: Option<&KvFs>, guest: Option<&Command>) -> Result<()> {
        let s = self.sizes.clone();
        let dir = self.work.join("probe");
        std::fs::create_dir_all(&dir)?;
        let pages = 2048u64;
        let mut data = Vec::with_capacity(pages as usize * 4096);
        let mut rng = workload::Rng(3);
        while data.len() < pages as usize * 4096 {
            data.extend_from_slice(&rng.next_u64().to_le_bytes());
        }
        std::fs::write(dir.join("probe.bin"), &data)?;
        let p = Params {
            mode: "probe".into(),
            keys: pages,
            gets: s.probe_reads,
            sets: s.probe_creates,
            seed: 5,
            ..Params::default()
        };
        self.progress("timing raw wasi:filesystem calls (read 4 KiB, stat, create + unlink)");
        if let Some(kvfs) = kvfs {
            let r = self.run_guest(&kvfs.sync, &dir, &p)?;
            self.probes.push(("kv-runner", r));
        }
        if let Some(guest) = guest {
            let r = self.run_program(guest, Some(&dir), &p, &no_keyvalue())?;
            self.probes.push(("sync host", r));
        }
        let r = native::probe(&dir, pages, s.probe_reads, s.probe_creates)?;
        self.probes.push(("native", r));
        Ok(())
    }

    // ------------------------------------------------------------ open

    fn open_first_get(&mut self, kvfs: Option<&KvFs>, guest: Option<&Command>) {
        let s = self.sizes.clone();
        let n = s.big_keys;
        let reps = s.open_reps;
        let mut entries: Vec<(String, Vec<u8>)> = (0..n)
            .map(|i| (workload::key(i), workload::value(i, 0)))
            .collect();
        entries.sort_unstable_by(|a, b| a.0.cmp(&b.0));
        let logical = s.logical_bytes(n) as f64;
        let mut rng = workload::Rng(7);
        // One warm-up run, then `reps` timed ones, each getting another key.
        let picks: Vec<u64> = (0..=reps).map(|_| rng.below(n)).collect();
        let params = |key: u64, bucket: &str| Params {
            mode: "open".into(),
            bucket: bucket.into(),
            key,
            ..Params::default()
        };
        self.progress(&format!(
            "open->first get on {n} keys: build each store's file, then {reps} fresh opens each"
        ));

        // kv-fs: a fresh instance of the composed guest per run, timed from
        // outside (instantiate + open + first get + exit) and inside.
        if let Some(kvfs) = kvfs {
            self.attempt("kv-fs open->first get", |b| {
                let dir = b.work.join("big-kv-fs");
                std::fs::create_dir_all(&dir)?;
                b.timed(
                    &format!("kv-fs engine (native): build the {n}-key big.kvfs, batches of 100000, no sync"),
                    || native::build_kvfs(&dir, "big.kvfs", &entries, 100_000),
                )?;
                let file = file_len(&dir.join("big.kvfs"))?;
                b.set(KVFS, "file_ratio_big", Some(file as f64 / logical));
                let runs: [(&'static str, Option<&Command>); 2] = [(KVFS, None), (KVFS_SYNC_HOST, kvfs.sync_host.as_ref())];
                for (store, program) in runs {
                    if store == KVFS_SYNC_HOST && program.is_none() {
                        continue;
                    }
                    let (mut total, mut inside) = (vec![], vec![]);
                    for (i, &pick) in picks.iter().enumerate() {
                        let p = params(pick, "big");
                        let t = Instant::now();
                        let r = match program {
                            None => b.run_guest(&kvfs.sync, &dir, &p)?,
                            Some(program) => b.run_program(program, Some(&dir), &p, &no_keyvalue())?,
                        };
                        let elapsed = t.elapsed().as_secs_f64() * 1e3;
                        if r.get("found") != Some(1.0) {
                            b.anomalies.push(format!(
                                "{store}: open->first get of key {pick} in the {n}-key big.kvfs did not return its value"
                            ));
                        }
                        if i > 0 {
                            total.push(elapsed);
                            inside.push(open_get_ms(&r));
                        }
                    }
                    b.set(store, "open_total_ms", Some(median(total)));
                    b.set(store, "open_inside_ms", Some(median(inside)));
                }
                Ok(())
            });
        }

        // Native: the process is already running; a fresh open + first get.
        for store in [REDB, SQLITE, SQLITE_WAL] {
            let path = self.work.join(format!("big.{store}"));
            let path = &path;
            self.attempt(&format!("{store} open->first get"), |b| {
                b.timed(
                    &format!("{store}: build the {n}-key file, one transaction"),
                    || match store {
                        REDB => native::Redb::create(path)?.bulk_load(&entries),
                        SQLITE => native::Sqlite::open(path, native::Journal::Rollback)
                            .map_err(anyhow::Error::msg)?
                            .bulk_load(&entries),
                        _ => native::Sqlite::open(path, native::Journal::Wal)
                            .map_err(anyhow::Error::msg)?
                            .bulk_load(&entries),
                    },
                )?;
                b.set(store, "file_ratio_big", Some(file_len(path)? as f64 / logical));
                let mut times = vec![];
                for (i, &pick) in picks.iter().enumerate() {
                    let p = params(pick, "");
                    let r = if store == REDB {
                        workload::open_first_get(|| native::Redb::open(path), &p)
                    } else {
                        workload::open_first_get(|| native::Sqlite::open_existing(path), &p)
                    }
                    .map_err(anyhow::Error::msg)?;
                    if r.get("found") != Some(1.0) {
                        b.anomalies
                            .push(format!("{store}: open->first get of key {pick} failed"));
                    }
                    if i > 0 {
                        times.push(open_get_ms(&r));
                    }
                }
                let m = median(times);
                b.set(store, "open_total_ms", Some(m));
                b.set(store, "open_inside_ms", Some(m));
                Ok(())
            });
        }

        if let Some(guest) = guest {
            self.attempt("wasmtime-mem open->first get", |b| {
                let data = b.timed(&format!("wasmtime in-memory host: a map of {n} keys"), || {
                    Ok(HostKeyValue::new(entries.drain(..)))
                })?;
                let (mut total, mut inside) = (vec![], vec![]);
                for (i, &pick) in picks.iter().enumerate() {
                    let t = Instant::now();
                    let r = b.run_program(guest, None, &params(pick, ""), &data)?;
                    let elapsed = t.elapsed().as_secs_f64() * 1e3;
                    if r.get("found") != Some(1.0) {
                        b.anomalies
                            .push(format!("wasmtime-mem: open->first get of key {pick} failed"));
                    }
                    if i > 0 {
                        total.push(elapsed);
                        inside.push(open_get_ms(&r));
                    }
                }
                b.set(WTMEM, "open_total_ms", Some(median(total)));
                b.set(WTMEM, "open_inside_ms", Some(median(inside)));
                Ok(())
            });
        }
        self.notes.push(format!(
            "open->first get: median of {reps} runs after one warm-up, OS page cache warm. kv-fs and \
             wasmtime-mem: a fresh instance of the guest (create the WASI context and store, instantiate, \
             run main: open, one get, print), timed by the harness; 'in instance' is the guest's own timing \
             of open + get. redb, SQLite: open the file + one get in this process."
        ));
    }
}
