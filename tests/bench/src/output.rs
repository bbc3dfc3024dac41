//! The results: the verdicts on the targets, the tables printed,
//! and the JSON written.

use std::path::Path;
use std::time::{SystemTime, UNIX_EPOCH};

use serde_json::{Value, json};

use crate::native::EngineCounts;
use crate::{
    Bench, KVFS, KVFS_NOSYNC, KVFS_SYNC_HOST, KVFS_TWO, KVFS_TWO_PER_COMMIT, LIMIT, REDB, SQLITE, SQLITE_WAL,
    STORES, WTMEM, profile, workload, workspace_root,
};

const DEV_WARNING: &str = "WARNING: a dev build: wasmtime's host side is several times slower in a dev build \
     (debug assertions, overflow checks); these figures are for smoke-testing only (run with --release)";

/// One row of the main table.
struct Row {
    id: &'static str,
    label: &'static str,
    unit: &'static str,
    higher_is_better: bool,
}

const fn row(id: &'static str, label: &'static str, unit: &'static str, higher_is_better: bool) -> Row {
    Row {
        id,
        label,
        unit,
        higher_is_better,
    }
}

const ROWS: &[Row] = &[
    row("get", "get (warm bucket, random keys)", "ops/s", true),
    row("set", "set, durable, 1 key per call", "ops/s", true),
    row(
        "setmany_ms",
        "set-many of 1000 (1 txn per call)",
        "ms/call",
        false,
    ),
    row("setmany_vs_set", "  set-many time / one set's time", "x", false),
    row("incr", "increment", "ops/s", true),
    row("list", "list-keys, full scan", "keys/s", true),
    row("load", "load (set-many of 1000, durable)", "keys/s", true),
    row("open_total_ms", "open->first get, 1M keys: fresh", "ms", false),
    row("open_inside_ms", "  open + get only (in instance)", "ms", false),
    row("file_ratio", "file bytes / logical bytes", "x", false),
    row("file_ratio_big", "  same, 1M keys bulk-loaded sorted", "x", false),
];

/// The rows of the kv-fs variants table.
const VARIANT_ROWS: &[Row] = &[
    row("get", "get", "ops/s", true),
    row("set", "set (durable unless 'none')", "ops/s", true),
    row("setmany_ms", "set-many of 1000", "ms/call", false),
    row("incr", "increment", "ops/s", true),
    row("list", "list-keys, full scan", "keys/s", true),
    row("open_total_ms", "open->first get, 1M keys: fresh", "ms", false),
    row("open_inside_ms", "  open + get only (in instance)", "ms", false),
];

/// Prints `lines` (the first is the header) as aligned columns.
fn print_table(lines: &[Vec<String>]) {
    let columns = lines.iter().map(Vec::len).max().unwrap_or(0);
    let widths: Vec<usize> = (0..columns)
        .map(|c| {
            lines
                .iter()
                .map(|l| l.get(c).map_or(0, |s| s.chars().count()))
                .max()
                .unwrap_or(0)
        })
        .collect();
    for (i, line) in lines.iter().enumerate() {
        let cells: Vec<String> = line
            .iter()
            .enumerate()
            .map(|(c, cell)| {
                if c == 0 {
                    format!("{cell:<w$}", w = widths[c])
                } else {
                    format!("{cell:>w$}", w = widths[c])
                }
            })
            .collect();
        println!("{}", cells.join("  ").trim_end());
        if i == 0 {
            println!("{}", "-".repeat(widths.iter().sum::<usize>() + 2 * (columns - 1)));
        }
    }
}

fn strings(cells: &[&str]) -> Vec<String> {
    cells.iter().map(|s| s.to_string()).collect()
}

impl Bench {
    fn per_call(&self, op: &str, what: &str) -> Option<f64> {
        let counts: &EngineCounts = self.engine_counts.as_ref()?;
        counts
            .op(op)?
            .per_call()
            .iter()
            .find(|(name, _)| *name == what)
            .map(|(_, v)| *v)
    }

    fn probe_us(&self, place: &str, what: &str) -> Option<f64> {
        self.probes.iter().find(|(p, _)| *p == place)?.1.get(what)
    }

    pub(crate) fn targets(&self) -> Vec<Value> {
        let mut targets = vec![];
        let verdict = |name: &str, met: Option<bool>, detail: String| json!({"target": name, "met": met, "detail": detail});
        // "kv-fs at least `times` x `store`" on the metric `id` (higher is better).
        let at_least = |id: &str, unit: &str, store: &str, label: &str, times: f64| {
            let (kv, other) = (self.fig(KVFS, id), self.fig(store, id));
            verdict(
                &format!("{id} at least {times}x {label}"),
                kv.zip(other).map(|(a, b)| a >= times * b),
                format!(
                    "kv-fs {} {unit} vs {label} {} {unit} ({})",
                    num(kv),
                    num(other),
                    ratio(kv, other)
                ),
            )
        };
        targets.push(at_least(
            "set",
            "ops/s",
            LIMIT,
            "the limit (one page + fdatasync)",
            0.5,
        ));
        targets.push(at_least("set", "ops/s", SQLITE, "SQLite as Spin opens it", 1.5));
        targets.push(at_least("set", "ops/s", SQLITE_WAL, "SQLite WAL", 1.0));
        targets.push(at_least("set", "ops/s", REDB, "redb", 1.0));
        targets.push(at_least("incr", "ops/s", REDB, "redb", 1.0));
        let (kv_many, sqlite_many) = (self.fig(KVFS, "setmany_ms"), self.fig(SQLITE, "setmany_ms"));
        targets.push(verdict(
            "set-many of 1000 no slower than SQLite",
            kv_many.zip(sqlite_many).map(|(a, b)| a <= b),
            format!(
                "kv-fs {} ms vs SQLite {} ms ({}); SQLite WAL {} ms",
                num(kv_many),
                num(sqlite_many),
                ratio(kv_many, sqlite_many),
                num(self.fig(SQLITE_WAL, "setmany_ms"))
            ),
        ));
        let (kv_get, redb_get) = (self.fig(KVFS, "get"), self.fig(REDB, "get"));
        targets.push(verdict(
            "get at least 0.3x native redb",
            kv_get.zip(redb_get).map(|(a, b)| a >= 0.3 * b),
            format!(
                "kv-fs {} ops/s vs redb {} ops/s ({})",
                num(kv_get),
                num(redb_get),
                ratio(kv_get, redb_get)
            ),
        ));
        let (total, inside) = (self.fig(KVFS, "open_total_ms"), self.fig(KVFS, "open_inside_ms"));
        targets.push(verdict(
            &format!(
                "open-to-first-get on {} keys under 1 ms",
                num(Some(self.sizes.big_keys as f64))
            ),
            total.map(|t| t < 1.0),
            format!(
                "a fresh instance (instantiate + open + first get) takes {} ms; open + get inside it {} ms",
                num(total),
                num(inside)
            ),
        ));
        let (kept, per_commit) = (self.fig(KVFS_TWO, "set"), self.fig(KVFS_TWO_PER_COMMIT, "set"));
        let (kept_p99, per_commit_p99) = (
            self.fig(KVFS_TWO, "set_p99_us"),
            self.fig(KVFS_TWO_PER_COMMIT, "set_p99_us"),
        );
        targets.push(verdict(
            "two instances writing one bucket at once: total durable sets/s and p99 no worse than with the lock taken per commit",
            kept.zip(per_commit)
                .zip(kept_p99.zip(per_commit_p99))
                .map(|((a, b), (a99, b99))| a >= b && a99 <= b99),
            format!(
                "lock kept across commits {} sets/s, p99 {} us, longest {} us; taken per commit {} sets/s, p99 {} us, \
                 longest {} us ({})",
                num(kept),
                num(kept_p99),
                num(self.fig(KVFS_TWO, "set_max_us")),
                num(per_commit),
                num(per_commit_p99),
                num(self.fig(KVFS_TWO_PER_COMMIT, "set_max_us")),
                ratio(kept, per_commit)
            ),
        ));
        let (one, many) = (self.per_call("set", "syncs"), self.per_call("set-many", "syncs"));
        let (one_writes, many_writes) = (
            self.per_call("set", "writes"),
            self.per_call("set-many", "writes"),
        );
        targets.push(verdict(
            "set-many of 1000 is one commit: one log record, one sync (and its share of checkpoints)",
            None,
            format!(
                "counted (the native engine on an instrumented MemDir, the calls kv-fs makes): a set-many of \
                 {} entries makes {} writes and {} syncs per call, a single set {} and {}; a commit appends one \
                 record and syncs once, and a checkpoint (every half ring of log) adds two syncs and its pages; \
                 under wasmtime, set-many takes {} ms with durability sync and {} ms with none",
                self.engine_counts.as_ref().map_or(0, |c| c.set_many_entries),
                num(many_writes),
                num(many),
                num(one_writes),
                num(one),
                num(self.fig(KVFS, "setmany_ms")),
                num(self.fig(KVFS_NOSYNC, "setmany_ms")),
            ),
        ));
        targets
    }

    pub(crate) fn print(&self, targets: &[Value]) {
        let s = &self.sizes;
        println!();
        println!(
            "kv-fs benchmark ({} sizes, {} profile): {} keys of {} B with values of {} B; {} gets after {} warm-up \
             gets, {} list scans; {} durable sets, {} set-many x {}, {} increments (in {} rounds interleaved \
             across the stores); open on {} keys",
            if self.quick { "quick" } else { "full" },
            profile(),
            s.keys,
            workload::KEY_LEN,
            workload::VALUE_LEN,
            s.gets,
            s.warm,
            s.lists,
            s.sets,
            s.batches,
            s.batch,
            s.incrs,
            s.rounds,
            s.big_keys
        );
        if profile() == "dev" {
            println!("{DEV_WARNING}");
        }
        println!(
            "kv-fs: composed into the guest, on kv-runner (wasmtime 48, default WASI context); ratios are \
             kv-fs / baseline; 'better' says which way is good\n"
        );
        let mut lines = vec![strings(&[
            "operation",
            "unit",
            "better",
            "kv-fs",
            "limit",
            "redb",
            "SQLite",
            "SQL WAL",
            "wt-mem",
            "/limit",
            "/redb",
            "/SQLite",
            "/SQL WAL",
            "/wt-mem",
        ])];
        for row in ROWS {
            let mut line = strings(&[
                row.label,
                row.unit,
                if row.higher_is_better { "higher" } else { "lower" },
            ]);
            for store in STORES {
                line.push(num(self.fig(store, row.id)));
            }
            let kv = self.fig(KVFS, row.id);
            for store in &STORES[1..] {
                line.push(ratio(kv, self.fig(store, row.id)));
            }
            lines.push(line);
        }
        print_table(&lines);
        println!(
            "\nlimit = one 4 KiB page rewritten in place + fdatasync, natively, in a loop, on the same file system: \
             the ceiling for any durable write. wt-mem = wasmtime's in-memory host wasi:keyvalue (the same guest, \
             not composed): nothing is durable there, and each open copies the whole map. redb and SQLite: native, \
             one transaction per call, durable; SQLite = Spin's configuration (rollback journal, synchronous=FULL), \
             SQL WAL = the same in WAL mode with synchronous=FULL. Durable writes: medians of the rounds' rates."
        );
        println!(
            "durable set latency: kv-fs p50 {} us, p99 {} us; limit p50 {} us, p99 {} us",
            num(self.fig(KVFS, "set_p50_us")),
            num(self.fig(KVFS, "set_p99_us")),
            num(self.fig(LIMIT, "set_p50_us")),
            num(self.fig(LIMIT, "set_p99_us")),
        );
        println!(
            "two instances writing one bucket at once (total durable sets/s, worse p99, longest set; medians \
             of the rounds): lock kept across commits {} sets/s, p99 {} us, longest {} us; lock taken per \
             commit {} sets/s, p99 {} us, longest {} us",
            num(self.fig(KVFS_TWO, "set")),
            num(self.fig(KVFS_TWO, "set_p99_us")),
            num(self.fig(KVFS_TWO, "set_max_us")),
            num(self.fig(KVFS_TWO_PER_COMMIT, "set")),
            num(self.fig(KVFS_TWO_PER_COMMIT, "set_p99_us")),
            num(self.fig(KVFS_TWO_PER_COMMIT, "set_max_us")),
        );

        println!("\nkv-fs variants (diagnostics): the same guest and bucket");
        let mut lines = vec![strings(&[
            "operation",
            "unit",
            "kv-runner",
            "sync host",
            "durability none",
            "sync host/kv-runner",
        ])];
        for row in VARIANT_ROWS {
            let kv = self.fig(KVFS, row.id);
            let sync_host = self.fig(KVFS_SYNC_HOST, row.id);
            lines.push(vec![
                row.label.to_string(),
                row.unit.to_string(),
                num(kv),
                num(sync_host),
                num(self.fig(KVFS_NOSYNC, row.id)),
                ratio(sync_host, kv),
            ]);
        }
        print_table(&lines);
        println!(
            "sync host = the same composed component on the harness's wasmtime host, with wasmtime-wasi's \
             synchronous bindings (kv-runner: the asynchronous ones on a single-threaded tokio runtime; both make \
             file calls on the calling thread); durability none = composed with --durability none"
        );

        println!("\nraw wasi:filesystem calls, as kv-fs makes them (us per call)");
        let mut lines = vec![strings(&["call", "kv-runner", "sync host", "native std::fs"])];
        for (what, label) in [
            ("read_4k_us", "descriptor.read, 4 KiB at an offset"),
            ("read_160_us", "descriptor.read, 160 B (a commit record)"),
            ("stat_us", "descriptor.stat"),
            ("create_unlink_us", "open-at create+exclusive, unlink"),
        ] {
            lines.push(vec![
                label.to_string(),
                num(self.probe_us("kv-runner", what)),
                num(self.probe_us("sync host", what)),
                num(self.probe_us("native", what)),
            ]);
        }
        print_table(&lines);

        if let Some(counts) = &self.engine_counts {
            println!(
                "\nkv-fs engine file operations per call (each is one wasi:filesystem call under kv-fs), counted \
                 natively on an instrumented MemDir holding the same {} keys",
                counts.keys
            );
            let mut lines = vec![strings(&[
                "call",
                "reads",
                "read KiB",
                "writes",
                "write KiB",
                "syncs",
                "dir syncs",
                "opens",
                "set-lens",
                "reads x kv-runner read, us",
            ])];
            let read_us = self.probe_us("kv-runner", "read_4k_us");
            for op in &counts.ops {
                let per = op.per_call();
                let mut line = vec![if op.name == "set-many" {
                    format!("set-many of {}", counts.set_many_entries)
                } else {
                    op.name.to_string()
                }];
                line.extend(per.iter().map(|(_, v)| num(Some(*v))));
                line.push(num(read_us.map(|us| us * per[0].1)));
                lines.push(line);
            }
            print_table(&lines);
        }

        let sp = &self.sizes_and_plug;
        println!(
            "\nadapters (release wasm): kv-mem {} B, kv-fs {} B (configured {} B); guest {} B, composed with kv-fs {} B",
            sp["kv_mem_wasm_bytes"],
            sp["kv_fs_wasm_bytes"],
            sp["kv_fs_configured_bytes"],
            sp["guest_wasm_bytes"],
            sp["composed_guest_kv_fs_bytes"]
        );
        println!(
            "kv-virt plug (fs, in process, median of {}): {} ms = configure {} ms + kv_compose::plug {} ms",
            sp["plug_reps"],
            num(sp["kv_virt_plug_ms_median"].as_f64()),
            num(sp["configure_ms_median"].as_f64()),
            num(sp["compose_plug_ms_median"].as_f64())
        );
        for note in &self.notes {
            println!("{note}");
        }

        println!("\ntargets:");
        for t in targets {
            let met = match t["met"].as_bool() {
                Some(true) => "MET    ",
                Some(false) => "NOT MET",
                None => "n/a    ",
            };
            println!(
                "  [{met}] {}: {}",
                t["target"].as_str().unwrap_or_default(),
                t["detail"].as_str().unwrap_or_default()
            );
        }
        if self.anomalies.is_empty() {
            println!("\nevery store returned what the workload wrote (values, list counts, counters)");
        } else {
            println!("\nWRONG RESULTS:");
            for a in &self.anomalies {
                println!("  {a}");
            }
        }
        if !self.errors.is_empty() {
            println!("\nFAILED PHASES (their figures are '-'):");
            for e in &self.errors {
                println!("  {e}");
            }
        }
        if profile() == "dev" {
            println!("{DEV_WARNING}");
        }
        println!(
            "total time {:.1} s; load average at start {}, at end {}",
            self.started.elapsed().as_secs_f64(),
            self.loadavg_start.as_deref().unwrap_or("?"),
            crate::loadavg().as_deref().unwrap_or("?")
        );
    }

    pub(crate) fn json(&self, targets: &[Value]) -> Value {
        let root = workspace_root();
        let git = |args: &[&str]| {
            std::process::Command::new("git")
                .arg("-C")
                .arg(&root)
                .args(args)
                .output()
                .ok()
                .filter(|o| o.status.success())
                .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        };
        let commit = git(&["rev-parse", "HEAD"]);
        let dirty = git(&["status", "--porcelain", "--untracked-files=no"]).map(|s| !s.is_empty());
        let s = &self.sizes;
        let rows: Vec<Value> = ROWS
            .iter()
            .map(|row| {
                let kv = self.fig(KVFS, row.id);
                let values: serde_json::Map<String, Value> = STORES
                    .iter()
                    .map(|store| (store.to_string(), json!(self.fig(store, row.id))))
                    .collect();
                let ratios: serde_json::Map<String, Value> = STORES[1..]
                    .iter()
                    .map(|store| {
                        let r = kv.zip(self.fig(store, row.id)).map(|(a, b)| a / b);
                        (store.to_string(), json!(r))
                    })
                    .collect();
                json!({
                    "id": row.id,
                    "operation": row.label.trim(),
                    "unit": row.unit,
                    "higher_is_better": row.higher_is_better,
                    "values": values,
                    "kv_fs_over": ratios,
                })
            })
            .collect();
        let engine_counts = self.engine_counts.as_ref().map(|c| {
            let ops: serde_json::Map<String, Value> = c
                .ops
                .iter()
                .map(|op| {
                    let per: serde_json::Map<String, Value> =
                        op.per_call().iter().map(|(k, v)| (k.to_string(), json!(v))).collect();
                    (op.name.to_string(), json!({"calls": op.calls, "per_call": per}))
                })
                .collect();
            json!({
                "method": "the native kv-fs engine on kv_fs_engine::testing::MemDir (counters), kv-fs's options, \
                           making the engine calls kv-fs makes for each wasi:keyvalue call",
                "keys": c.keys,
                "set_many_entries": c.set_many_entries,
                "ops": ops,
            })
        });
        let probes: serde_json::Map<String, Value> = self
            .probes
            .iter()
            .map(|(place, r)| (place.to_string(), crate::report_json(r)))
            .collect();
        json!({
            "benchmark": "kv-fs",
            "git_commit": commit,
            "git_dirty": dirty,
            "date_utc": utc_now(),
            "profile": profile(),
            "quick": self.quick,
            "machine": machine(&self.work),
            "loadavg_start": self.loadavg_start,
            "loadavg_end": crate::loadavg(),
            "sizes": {
                "keys": s.keys, "key_bytes": workload::KEY_LEN, "value_bytes": workload::VALUE_LEN,
                "warm_gets": s.warm, "gets": s.gets, "list_scans": s.lists, "sets": s.sets,
                "set_many_calls": s.batches, "set_many_entries": s.batch, "increments": s.incrs,
                "open_keys": s.big_keys, "open_reps": s.open_reps,
                "probe_reads": s.probe_reads, "probe_creates": s.probe_creates, "write_rounds": s.rounds,
            },
            "stores": {
                KVFS: "kv-fs composed into the guest (kv-virt plug), on kv-runner (wasmtime 48, default WASI \
                       context), default options (durability sync, 4 KiB pages)",
                KVFS_SYNC_HOST: "the same component on the harness's wasmtime 48 host, with \
                                wasmtime-wasi's synchronous bindings",
                KVFS_NOSYNC: "kv-fs composed with durability none, on kv-runner",
                KVFS_TWO: "two kv-fs instances (threads) setting random keys of one bucket at once, durably, \
                           default options (the writer lock kept across commits): total sets/s, worse p99",
                KVFS_TWO_PER_COMMIT: "the same with --lock-idle-ms 0: the writer lock taken and released \
                                      for every commit, as before the lock was kept",
                REDB: "native redb 4, Durability::Immediate, one transaction per call",
                SQLITE: "native SQLite (rusqlite, bundled), Spin's spin_key_value schema and statements, \
                         synchronous=FULL, rollback journal, one transaction per call",
                SQLITE_WAL: "the same SQLite in WAL mode (journal_mode=WAL, synchronous=FULL)",
                LIMIT: "one 4 KiB page rewritten in place with pwrite + fdatasync, natively, in a loop, on the \
                        same file system (sets only)",
                WTMEM: "wasmtime-wasi-keyvalue 48.0.8 in-memory host, the same guest not composed",
            },
            "rows": rows,
            "figures": self.figures,
            "targets": targets,
            "engine_counts": engine_counts,
            "wasi_call_us": probes,
            "adapters_and_plug": self.sizes_and_plug,
            "raw": self.raw,
            "anomalies": self.anomalies,
            "notes": self.notes,
            "errors": self.errors,
        })
    }
}

/// A figure for the table: integers with thousands separators from 100 up,
/// three significant digits below.
fn num(v: Option<f64>) -> String {
    let Some(v) = v.filter(|v| v.is_finite()) else {
        return "-".into();
    };
    if v.abs() >= 100.0 {
        let digits = format!("{:.0}", v.abs());
        let mut out = String::new();
        for (i, c) in digits.chars().enumerate() {
            if i > 0 && (digits.len() - i) % 3 == 0 {
                out.push(',');
            }
            out.push(c);
        }
        if v < 0.0 { format!("-{out}") } else { out }
    } else if v.abs() >= 10.0 {
        format!("{v:.1}")
    } else if v.abs() >= 1.0 {
        format!("{v:.2}")
    } else {
        format!("{v:.3}")
    }
}

fn ratio(a: Option<f64>, b: Option<f64>) -> String {
    match a.zip(b) {
        Some((a, b)) if b != 0.0 && a.is_finite() && b.is_finite() => {
            let r = a / b;
            if r >= 100.0 {
                format!("{r:.0}x")
            } else if r >= 10.0 {
                format!("{r:.1}x")
            } else {
                format!("{r:.2}x")
            }
        }
        _ => "-".into(),
    }
}

/// Now as `YYYY-MM-DDTHH:MM:SSZ`.
fn utc_now() -> String {
    let secs = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0) as i64;
    let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    // Howard Hinnant's civil_from_days.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

/// Cores, CPU, kernel, and the file system the data files were on (what
/// a sync costs depends on it).
fn machine(work: &Path) -> Value {
    let cpu = std::fs::read_to_string("/proc/cpuinfo").ok().and_then(|s| {
        s.lines()
            .find(|l| l.starts_with("model name"))
            .and_then(|l| l.split_once(':'))
            .map(|(_, v)| v.trim().to_string())
    });
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease")
        .ok()
        .map(|s| s.trim().to_string());
    let work = work.canonicalize().unwrap_or_else(|_| work.to_path_buf());
    let fs = std::fs::read_to_string("/proc/mounts").ok().and_then(|mounts| {
        mounts
            .lines()
            .filter_map(|l| {
                let mut f = l.split_whitespace();
                let (device, point, kind) = (f.next()?, f.next()?, f.next()?);
                work.starts_with(point)
                    .then(|| (point.len(), format!("{kind} on {device} at {point}")))
            })
            .max_by_key(|(len, _)| *len)
            .map(|(_, s)| s)
    });
    json!({
        "cores": std::thread::available_parallelism().map(|n| n.get()).ok(),
        "cpu": cpu,
        "os": std::env::consts::OS,
        "arch": std::env::consts::ARCH,
        "kernel": kernel,
        "filesystem": fs,
    })
}
