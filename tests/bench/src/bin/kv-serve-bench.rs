//! `kv-serve-bench`: the notes example (`examples/notes`) served by
//! kv-runner's serve mode (a fresh instance per request, like `wasmtime
//! serve`) under 16 concurrent clients, with its data in kv-fs vs in
//! wasmtime's in-memory host `wasi:keyvalue` (`wasmtime-wasi-keyvalue`, the
//! ceiling: no storage at all), same load, same run. Prints a table and
//! writes `target/bench/serve.json`.
//!
//! ```sh
//! cargo run -p kv-bench --release --bin kv-serve-bench            # the figures
//! cargo run -p kv-bench --release --bin kv-serve-bench -- --quick  # seconds
//! ```
//!
//! The load (`kv_test_support::notes_load`) is the serve test's: 55% writes
//! (durable for kv-fs), 45% reads; it runs in rounds interleaved across the
//! stores, after an untimed warm-up round each. kv-fs must answer every
//! request and every read with the client's last acknowledged write;
//! wasmtime's host store hands each instance a copy of its seed data, so
//! writes vanish with the instance and only failed requests count there.
//! `kv-fs (durability none)` is a diagnostic: the same without the syncs.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use kv_runner::{HostKeyValue, Runtime, RuntimeOptions, ServeOptions, Server};
use kv_test_support::http::HttpClient;
use kv_test_support::notes_load::{LoadReport, LoadSpec, Notes, run_load};
use kv_virt::adapters::BackendKind;
use kv_virt::options::{AdapterOptions, DurabilityArg, FsOptions};
use serde_json::{Value, json};

const KVFS: &str = "kv-fs";
const KVFS_NOSYNC: &str = "kv-fs (durability none)";
const WTMEM: &str = "wasmtime in-memory";

/// One store behind the notes service.
struct Target {
    name: &'static str,
    server: Server,
    /// Whether reads must return the client's last acknowledged write.
    durable: bool,
    /// The notes as the last round left them.
    notes: Notes,
    rounds: Vec<LoadReport>,
}

fn main() -> Result<()> {
    let mut quick = false;
    let mut out = None;
    let usage = "usage: kv-serve-bench [--quick] [--out FILE]";
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--quick" => quick = true,
            "--out" => out = Some(PathBuf::from(args.next().context("--out needs a file")?)),
            "-h" | "--help" => {
                println!("{usage}");
                return Ok(());
            }
            other => bail!("unknown argument {other:?} ({usage})"),
        }
    }
    let bench_dir = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace_root().join("target"))
        .join("bench");
    let work = bench_dir.join("serve-run");
    if work.exists() {
        std::fs::remove_dir_all(&work).with_context(|| format!("removing {}", work.display()))?;
    }
    let out = out.unwrap_or_else(|| bench_dir.join("serve.json"));
    let profile = if cfg!(debug_assertions) { "dev" } else { "release" };
    if profile == "dev" {
        eprintln!("kv-serve-bench: a dev build: the figures are not to be compared (use --release)");
    }

    let spec = LoadSpec {
        clients: 16,
        requests_per_client: if quick { 50 } else { 400 },
        notes_per_client: 10,
        seed: 11,
    };
    let rounds = if quick { 1 } else { 3 };
    let seeded = spec.seeded_notes();

    // wasmtime's in-memory host wasi:keyvalue too: the ceiling target.
    let runtime = Runtime::with_options(RuntimeOptions {
        host_keyvalue: true,
        ..RuntimeOptions::default()
    })?;
    let mut targets = vec![
        kv_fs_target(&runtime, KVFS, DurabilityArg::Sync, &work, &seeded)?,
        kv_fs_target(&runtime, KVFS_NOSYNC, DurabilityArg::None, &work, &seeded)?,
        wasmtime_mem_target(&runtime, &seeded)?,
    ];
    eprintln!("warming up");
    for target in &mut targets {
        let report = run_load(target.server.addr(), &spec, &target.notes)?;
        check(target, &report)?;
        target.notes = report.notes();
    }
    for round in 0..rounds {
        for target in &mut targets {
            eprintln!("round {}/{rounds}: {}", round + 1, target.name);
            let spec = LoadSpec {
                seed: spec.seed + 1 + round as u64,
                ..spec.clone()
            };
            let report = run_load(target.server.addr(), &spec, &target.notes)?;
            check(target, &report)?;
            if target.durable {
                target.notes = report.notes();
            }
            target.rounds.push(report);
        }
    }

    let figures: Vec<(&str, Figures)> = targets.iter().map(|t| (t.name, Figures::of(&t.rounds))).collect();
    print_table(&figures, &spec, rounds);
    let json = json!({
        "bench": "serve",
        "profile": profile,
        "load": {
            "clients": spec.clients,
            "requests_per_client_per_round": spec.requests_per_client,
            "rounds": rounds,
            "notes_per_client": spec.notes_per_client,
            "mix": "30% PUT, 10% DELETE, 30% GET own note, 10% GET other note, 15% POST /hits, 5% GET /notes",
        },
        "loadavg": std::fs::read_to_string("/proc/loadavg").ok().map(|s| s.trim().to_string()),
        "stores": figures.iter().map(|(name, f)| (name.to_string(), f.json())).collect::<serde_json::Map<_, _>>(),
        "ratios_kv_fs_to_wasmtime_in_memory": ratios(&figures[0].1, &figures[2].1),
    });
    std::fs::create_dir_all(&bench_dir)?;
    std::fs::write(&out, serde_json::to_string_pretty(&json)? + "\n")
        .with_context(|| format!("writing {}", out.display()))?;
    println!("\nwrote {}", out.display());
    for target in targets {
        target.server.stop()?;
    }
    Ok(())
}

/// The notes example, built for wasm32-wasip2 by this crate's build script.
fn notes() -> Result<Vec<u8>> {
    let path = env!("NOTES_WASM");
    std::fs::read(path).with_context(|| format!("reading {path}"))
}

fn workspace_root() -> PathBuf {
    // tests/bench
    let manifest_dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    manifest_dir
        .ancestors()
        .nth(2)
        .unwrap_or(manifest_dir)
        .to_path_buf()
}

/// The notes example composed with kv-fs, served on a fresh directory and
/// seeded over HTTP.
fn kv_fs_target(
    runtime: &Runtime,
    name: &'static str,
    durability: DurabilityArg,
    work: &std::path::Path,
    seeded: &Notes,
) -> Result<Target> {
    let data = work.join(name.replace(|c: char| !c.is_ascii_alphanumeric(), "-"));
    std::fs::create_dir_all(&data)?;
    let options = AdapterOptions {
        fs: FsOptions {
            dir: Some("/data".into()),
            durability: Some(durability),
            ..FsOptions::default()
        },
        ..AdapterOptions::default()
    };
    let composed = kv_virt::cli::plug(&notes()?, Some(BackendKind::Fs), &options)
        .context("composing notes with kv-fs")?;
    let server = runtime.service(&composed)?.serve(&ServeOptions {
        preopens: vec![(data, "/data".into())],
        ..ServeOptions::default()
    })?;
    let mut http = HttpClient::connect(server.addr())?;
    for (id, value) in seeded {
        let response = http.request(
            "PUT",
            &format!("/notes/{id}"),
            value.as_deref().unwrap_or_default(),
        )?;
        if response.status != 204 {
            bail!("{name}: seeding {id}: {} {}", response.status, response.text());
        }
    }
    Ok(Target {
        name,
        server,
        durable: true,
        notes: seeded.clone(),
        rounds: Vec::new(),
    })
}

/// The notes example as built (not composed) on wasmtime's in-memory host
/// `wasi:keyvalue`, which serves only the bucket `""` and starts every
/// instance from the seed data.
fn wasmtime_mem_target(runtime: &Runtime, seeded: &Notes) -> Result<Target> {
    let data = seeded
        .iter()
        .filter_map(|(id, value)| Some((format!("note/{id}"), value.clone()?)));
    let server = runtime.service(&notes()?)?.serve(&ServeOptions {
        env: vec![("NOTES_BUCKET".into(), String::new())],
        keyvalue: HostKeyValue::new(data),
        ..ServeOptions::default()
    })?;
    Ok(Target {
        name: WTMEM,
        server,
        durable: false,
        notes: seeded.clone(),
        rounds: Vec::new(),
    })
}

/// A wrong answer is an error, not a figure.
fn check(target: &Target, report: &LoadReport) -> Result<()> {
    if let Some(failure) = report.failures().first() {
        bail!(
            "{}: {} failed requests, e.g. {failure}",
            target.name,
            report.failures().len()
        );
    }
    if target.durable
        && let Some(stale) = report.stale_reads().first()
    {
        bail!(
            "{}: {} stale reads, e.g. {stale}",
            target.name,
            report.stale_reads().len()
        );
    }
    Ok(())
}

/// The timed rounds of one store, together.
struct Figures {
    requests: usize,
    seconds: f64,
    p50: Duration,
    p99: Duration,
}

impl Figures {
    fn of(rounds: &[LoadReport]) -> Figures {
        let requests = rounds.iter().map(LoadReport::requests).sum();
        let seconds = rounds.iter().map(|r| r.elapsed.as_secs_f64()).sum();
        let mut latencies: Vec<Duration> = rounds.iter().flat_map(LoadReport::latencies).collect();
        latencies.sort_unstable();
        let quantile = |q: f64| {
            let last = latencies.len().saturating_sub(1);
            latencies
                .get((last as f64 * q).round() as usize)
                .copied()
                .unwrap_or_default()
        };
        Figures {
            requests,
            seconds,
            p50: quantile(0.50),
            p99: quantile(0.99),
        }
    }

    fn rps(&self) -> f64 {
        self.requests as f64 / self.seconds
    }

    fn json(&self) -> Value {
        json!({
            "requests": self.requests,
            "seconds": self.seconds,
            "requests_per_second": self.rps(),
            "p50_ms": ms(self.p50),
            "p99_ms": ms(self.p99),
        })
    }
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

fn ratios(kv_fs: &Figures, wasmtime: &Figures) -> Value {
    json!({
        "requests_per_second": kv_fs.rps() / wasmtime.rps(),
        "p50": ms(kv_fs.p50) / ms(wasmtime.p50),
        "p99": ms(kv_fs.p99) / ms(wasmtime.p99),
    })
}

fn print_table(figures: &[(&str, Figures)], spec: &LoadSpec, rounds: usize) {
    println!(
        "\nnotes example under kv-runner serve: {} clients x {} requests x {rounds} round(s), a fresh instance per request\n",
        spec.clients, spec.requests_per_client
    );
    let (_, kv_fs) = &figures[0];
    let (_, wasmtime) = &figures[2];
    let mut rows = vec![vec!["".to_string()]];
    rows[0].extend(figures.iter().map(|(name, _)| name.to_string()));
    rows[0].push("kv-fs / wasmtime in-memory".into());
    let row = |label: &str, value: &dyn Fn(&Figures) -> f64, unit: &str| {
        let mut row = vec![label.to_string()];
        row.extend(figures.iter().map(|(_, f)| format!("{:.1}{unit}", value(f))));
        row.push(format!("{:.2}x", value(kv_fs) / value(wasmtime)));
        row
    };
    rows.push(row("requests/s", &|f| f.rps(), ""));
    rows.push(row("p50 latency", &|f| ms(f.p50), " ms"));
    rows.push(row("p99 latency", &|f| ms(f.p99), " ms"));
    let widths: Vec<usize> = (0..rows[0].len())
        .map(|i| rows.iter().map(|r| r[i].len()).max().unwrap_or(0))
        .collect();
    for (i, row) in rows.iter().enumerate() {
        let cells: Vec<String> = row.iter().zip(&widths).map(|(c, w)| format!("{c:>w$}")).collect();
        println!("| {} |", cells.join(" | "));
        if i == 0 {
            let rule: Vec<String> = widths.iter().map(|w| "-".repeat(*w)).collect();
            println!("|-{}-|", rule.join("-|-"));
        }
    }
}
