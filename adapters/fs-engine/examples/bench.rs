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
    // `KVFS_LOG_BYTES=8388608` tries another log ring size.
    let log_bytes: u32 = std::env::var("KVFS_LOG_BYTES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(Options::DEFAULT_LOG_BYTES);
    let opts = Options {
        log_bytes,
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
    // The ceiling for any durable write on this file system: one page
    // rewritten in place and fdatasync'ed.
    let limit = {
        use std::os::unix::fs::FileExt;
        let f = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .open(tmp.path().join("limit.bin"))
            .unwrap();
        f.write_all_at(&[1u8; 4096], 0).unwrap();
        f.sync_all().unwrap();
        let t = Instant::now();
        for j in 0..2000u64 {
            f.write_all_at(&[j as u8; 4096], 0).unwrap();
            f.sync_data().unwrap();
        }
        2000.0 / t.elapsed().as_secs_f64()
    };
    let t = Instant::now();
    let sets = 2000u64;
    for j in 0..sets {
        s.put(&key((j * 7919) % n), &[j as u8; 100]).unwrap();
    }
    let rate = sets as f64 / t.elapsed().as_secs_f64();
    println!(
        "{sets} single-key durable commits: {rate:.0}/s; one page written in place + fdatasync: {limit:.0}/s ({:.2}x)",
        rate / limit
    );
    let t = Instant::now();
    for b in 0..10u64 {
        s.write(|w| {
            for j in 0..1000u64 {
                w.put(&key((b * 100_003 + j * 7919) % n), &[b as u8; 100])?;
            }
            Ok(())
        })
        .unwrap();
    }
    println!(
        "10 durable set-many of 1000 random keys: {:?} per call",
        t.elapsed() / 10
    );
    println!("{:?}", s.stats().unwrap());
}
