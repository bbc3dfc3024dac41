//! Rough scalability check on a real file:
//! `cargo run --release -p kv-fs-engine --example bench -- [keys] [batch]`

use std::time::Instant;

use kv_fs_engine::std_dir::StdDir;
use kv_fs_engine::{BucketFile, Options, SyncPolicy};

fn key(i: u64) -> Vec<u8> {
    // Scrambled order, fixed width.
    let h = i.wrapping_mul(0x9E37_79B9_7F4A_7C15).rotate_left(17);
    format!("user/{h:016x}").into_bytes()
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let n: u64 = args.get(1).and_then(|a| a.parse().ok()).unwrap_or(1_000_000);
    let batch: u64 = args.get(2).and_then(|a| a.parse().ok()).unwrap_or(10_000);
    let tmp = tempfile::tempdir().expect("tempdir");
    let opts = Options {
        sync: SyncPolicy::Never,
        cache_pages: 4096,
        ..Options::default()
    };
    let mut s = BucketFile::open(StdDir::new(tmp.path()), "bench.kvfs", opts.clone())
        .unwrap()
        .unwrap();
    let t = Instant::now();
    let mut i = 0;
    while i < n {
        let end = (i + batch).min(n);
        s.write(|w| {
            for j in i..end {
                w.put(&key(j), &j.to_le_bytes().repeat(8))?;
            }
            Ok(())
        })
        .unwrap();
        i = end;
    }
    let el = t.elapsed();
    println!(
        "insert {n} keys in batches of {batch}: {el:?} ({:.0} keys/s)",
        n as f64 / el.as_secs_f64()
    );
    println!("{:?}", s.stats().unwrap());
    drop(s);

    let t = Instant::now();
    let mut s = BucketFile::open(StdDir::new(tmp.path()), "bench.kvfs", opts.clone())
        .unwrap()
        .unwrap();
    println!("open: {:?}", t.elapsed());
    let t = Instant::now();
    let lookups = 100_000u64.min(n);
    for j in 0..lookups {
        assert!(s.get(&key((j * 7919) % n)).unwrap().is_some());
    }
    println!("{lookups} random gets: {:?}", t.elapsed());
    let t = Instant::now();
    let mut after: Option<Vec<u8>> = None;
    let mut count = 0;
    loop {
        let ks = s.keys_after(after.as_deref(), 1000).unwrap();
        if ks.is_empty() {
            break;
        }
        count += ks.len();
        after = ks.last().cloned();
    }
    println!("scan {count} keys by 1000: {:?}", t.elapsed());
    let t = Instant::now();
    let mut i = 0;
    while i < n / 10 {
        let end = (i + 1000).min(n / 10);
        s.write(|w| {
            for j in i..end {
                w.put(&key(j * 10), b"overwritten")?;
            }
            Ok(())
        })
        .unwrap();
        i = end;
    }
    println!("overwrite {} keys in batches of 1000: {:?}", n / 10, t.elapsed());
    let t = Instant::now();
    let p = s.check().unwrap();
    println!(
        "check: {:?}, {} problems; {:?}",
        t.elapsed(),
        p.len(),
        s.stats().unwrap()
    );
    drop(s);
    let mut s = BucketFile::open(
        StdDir::new(tmp.path()),
        "bench.kvfs",
        Options {
            sync: SyncPolicy::EveryCommit,
            ..opts
        },
    )
    .unwrap()
    .unwrap();
    let t = Instant::now();
    for j in 0..100u64 {
        s.put(&key(j), b"durable").unwrap();
    }
    println!(
        "100 single-key durable commits: {:?} per commit",
        t.elapsed() / 100
    );
}
