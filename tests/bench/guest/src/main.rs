//! The benchmark guest: a command importing `wasi:keyvalue@0.2.0-draft`
//! that runs the workload of `tests/bench/src/workload.rs` inside the
//! instance (so the timings include crossing the component boundary and
//! nothing of the harness) and prints its results as one JSON line.
//!
//! The same build runs composed with kv-fs and, not composed, on
//! wasmtime's own in-memory `wasi:keyvalue` host.
//!
//! Usage: `kv-bench-guest mode=load|ops|load-ops|open|probe bucket=NAME keys=N …`
//! (see `workload::Params`). `probe` times raw `wasi:filesystem` calls made
//! the way kv-fs makes them (`descriptor.read` of a 4 KiB page at an offset,
//! `stat`, exclusive create + unlink of a file: its writer lock), on
//! `/data/probe.bin`, so the cost of a call can be set against how many
//! calls kv-fs makes per operation.

#[path = "../../src/workload.rs"]
mod workload;

use workload::{Kv, Params, Report};

wit_bindgen::generate!({
    path: "../../../wit",
    world: "kv-virt:adapters/app-draft",
    generate_all,
});

use wasi::keyvalue0_2_0_draft::{atomics, batch, store};

struct Bucket(store::Bucket);

fn err(e: store::Error) -> String {
    match e {
        store::Error::NoSuchStore => "no-such-store".into(),
        store::Error::AccessDenied => "access-denied".into(),
        store::Error::Other(message) => format!("other: {message}"),
    }
}

impl Kv for Bucket {
    fn get(&mut self, key: &str) -> Result<Option<Vec<u8>>, String> {
        self.0.get(key).map_err(err)
    }

    fn set(&mut self, key: &str, value: &[u8]) -> Result<(), String> {
        self.0.set(key, value).map_err(err)
    }

    fn set_many(&mut self, entries: &[(String, Vec<u8>)]) -> Result<(), String> {
        batch::set_many(&self.0, entries).map_err(err)
    }

    fn increment(&mut self, key: &str, delta: u64) -> Result<u64, String> {
        atomics::increment(&self.0, key, delta).map_err(err)
    }

    fn list_all(&mut self) -> Result<u64, String> {
        let mut cursor = None;
        let mut listed = 0u64;
        loop {
            let page = self.0.list_keys(cursor).map_err(err)?;
            listed += page.keys.len() as u64;
            match page.cursor {
                Some(next) => cursor = Some(next),
                None => return Ok(listed),
            }
        }
    }
}

fn open(name: &str) -> Result<Bucket, String> {
    store::open(name)
        .map(Bucket)
        .map_err(|e| format!("opening bucket {name:?}: {}", err(e)))
}

/// `mode=probe keys=PAGES gets=READS sets=CREATES`.
fn probe(p: &Params) -> Result<Report, String> {
    use std::time::Instant;
    use wasip2::filesystem::preopens::get_directories;
    use wasip2::filesystem::types::{DescriptorFlags, OpenFlags, PathFlags};

    let code = |what: &'static str| move |e: wasip2::filesystem::types::ErrorCode| format!("{what}: {e:?}");
    let dirs = get_directories();
    let (dir, _) = dirs
        .iter()
        .find(|(_, path)| path == "/data")
        .ok_or("no /data preopen")?;
    let file = dir
        .open_at(
            PathFlags::empty(),
            "probe.bin",
            OpenFlags::empty(),
            DescriptorFlags::READ,
        )
        .map_err(code("open probe.bin"))?;
    let mut rng = workload::Rng(p.seed);
    let offsets: Vec<u64> = (0..p.gets).map(|_| rng.below(p.keys) * 4096).collect();
    let mut r = Report::default();

    let t = Instant::now();
    let mut bytes = 0;
    for &offset in &offsets {
        bytes += file.read(4096, offset).map_err(code("read"))?.0.len();
    }
    r.put("read_4k_us", t.elapsed().as_secs_f64() * 1e6 / p.gets as f64);
    r.put("read_bytes", bytes as f64);

    // A commit record's size.
    let t = Instant::now();
    for &offset in &offsets {
        file.read(160, offset).map_err(code("read"))?;
    }
    r.put("read_160_us", t.elapsed().as_secs_f64() * 1e6 / p.gets as f64);

    let t = Instant::now();
    for _ in 0..p.gets {
        file.stat().map_err(code("stat"))?;
    }
    r.put("stat_us", t.elapsed().as_secs_f64() * 1e6 / p.gets as f64);

    let t = Instant::now();
    for _ in 0..p.sets {
        let lock = dir
            .open_at(
                PathFlags::empty(),
                "probe.lock",
                OpenFlags::CREATE | OpenFlags::EXCLUSIVE,
                DescriptorFlags::READ | DescriptorFlags::WRITE,
            )
            .map_err(code("create probe.lock"))?;
        drop(lock);
        dir.unlink_file_at("probe.lock")
            .map_err(code("unlink probe.lock"))?;
    }
    r.put(
        "create_unlink_us",
        t.elapsed().as_secs_f64() * 1e6 / p.sets as f64,
    );
    Ok(r)
}

fn run(p: &Params) -> Result<Report, String> {
    match p.mode.as_str() {
        "probe" => probe(p),
        "open" => workload::open_first_get(|| open(&p.bucket), p),
        "load" => {
            let mut r = Report::default();
            workload::load(&mut open(&p.bucket)?, p, &mut r)?;
            Ok(r)
        }
        "ops" => workload::run_ops(&mut open(&p.bucket)?, p),
        "load-ops" => {
            let mut bucket = open(&p.bucket)?;
            let mut r = Report::default();
            workload::load(&mut bucket, p, &mut r)?;
            let ops = workload::run_ops(&mut bucket, p)?;
            r.0.extend(ops.0);
            Ok(r)
        }
        other => Err(format!("unknown mode {other:?}")),
    }
}

fn main() {
    let result = Params::from_args(std::env::args().skip(1)).and_then(|p| run(&p));
    match result {
        Ok(report) => println!("{}", report.to_json()),
        Err(e) => {
            eprintln!("kv-bench-guest: {e}");
            std::process::exit(1);
        }
    }
}
