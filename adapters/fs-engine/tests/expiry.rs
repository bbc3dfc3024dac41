//! Expiring entries and prefix scans, on the virtual clock of `MemDir`
//! (`advance_clock` moves it).

use std::collections::BTreeMap;

use kv_fs_engine::testing::{MemDir, Rng};
use kv_fs_engine::{BucketFile, Dir as _, Options, SyncPolicy};

fn opts() -> Options {
    Options {
        page_size: 1024,
        log_bytes: 16 << 10,
        sync: SyncPolicy::Never,
        ..Options::default()
    }
}

fn open(dir: &MemDir) -> BucketFile<MemDir> {
    BucketFile::open(dir.clone(), "e.kvfs", opts()).unwrap().unwrap()
}

/// Whether every read path sees `key`, asserting that they agree.
fn visible(s: &mut BucketFile<MemDir>, key: &[u8]) -> bool {
    let got = s.get(key).unwrap();
    let found = s.get_versioned(key).unwrap();
    let contains = s.contains(key).unwrap();
    let listed = s.keys_after(None, 1000).unwrap().iter().any(|k| k == key);
    let prefixed = s
        .keys_with_prefix_after(&key[..1], None, 1000)
        .unwrap()
        .iter()
        .any(|k| k == key);
    let entries = s.entries_after(None, 1000, 1 << 20).unwrap();
    let entry = entries.iter().any(|e| e.key == key);
    let in_txn = s
        .write(|t| {
            let found = t.get_versioned(key)?.is_some();
            let listed = t.keys_after(None, 1000)?.iter().any(|k| k == key);
            assert_eq!(found, listed, "transaction reads disagree");
            Ok(found)
        })
        .unwrap();
    let all = [
        got.is_some(),
        found.is_some(),
        contains,
        listed,
        prefixed,
        entry,
        in_txn,
    ];
    assert!(all.iter().all(|&x| x == all[0]), "read paths disagree: {all:?}");
    all[0]
}

/// An entry is there until the instant before its expiry and absent from
/// that instant on, on every read path, whether it is in the log or (after
/// a checkpoint) in the tree.
#[test]
fn expiry_at_the_exact_instant_on_every_read_path() {
    for folded in [false, true] {
        let dir = MemDir::new();
        let mut s = open(&dir);
        let at = dir.now_millis() + 1000;
        s.put(b"keep", b"forever").unwrap();
        s.put_expiring(b"k", b"v", Some(at)).unwrap();
        if folded {
            s.checkpoint().unwrap();
            assert_eq!(s.stats().unwrap().log_commits, 0);
        }
        let found = s.get_versioned(b"k").unwrap().unwrap();
        assert_eq!((found.value.as_slice(), found.expires_at), (&b"v"[..], Some(at)));
        let e = &s.entries_after(None, 10, 1 << 20).unwrap()[0];
        assert_eq!((e.key.as_slice(), e.expires_at), (&b"k"[..], Some(at)));
        dir.advance_clock(999);
        assert!(visible(&mut s, b"k"), "folded {folded}: one ms before");
        dir.advance_clock(1);
        assert!(!visible(&mut s, b"k"), "folded {folded}: at the instant");
        assert!(visible(&mut s, b"keep"));
        // Another instance (a fresh open) agrees.
        let mut other = open(&dir);
        assert!(!visible(&mut other, b"k"));
        assert_eq!(
            s.expiry_counts().unwrap(),
            (1, 1),
            "stored until a checkpoint drops it"
        );
        assert!(s.check().unwrap().is_empty());
    }
}

/// Writes over an expired entry see it absent: an insert-if-absent (a
/// compare-and-swap expecting nothing) succeeds, a delete finds nothing, a
/// counter restarts from nothing; an existing entry's expiry can be kept.
#[test]
fn writes_over_expired_entries_and_kept_expiries() {
    let dir = MemDir::new();
    let mut s = open(&dir);
    let at = dir.now_millis() + 10;
    s.put_expiring(b"lock", b"old owner", Some(at)).unwrap();
    s.put_expiring(b"gone", b"x", Some(at)).unwrap();
    s.put_expiring(b"hits", b"5", Some(at + 1000)).unwrap();
    let insert_if_absent = |s: &mut BucketFile<MemDir>, v: &[u8]| {
        s.write(|t| {
            if t.get_versioned(b"lock")?.is_some() {
                return Ok(false);
            }
            t.put(b"lock", v)?;
            Ok(true)
        })
        .unwrap()
    };
    assert!(!insert_if_absent(&mut s, b"new owner"), "not expired yet");
    dir.advance_clock(10);
    assert!(insert_if_absent(&mut s, b"new owner"), "expired: absent");
    let found = s.get_versioned(b"lock").unwrap().unwrap();
    assert_eq!(
        (found.value.as_slice(), found.expires_at),
        (&b"new owner"[..], None)
    );
    assert!(
        !s.delete(b"gone").unwrap(),
        "an expired entry is not there to delete"
    );
    // An increment keeps the counter's expiry (read it, write it back).
    let bump = |s: &mut BucketFile<MemDir>| {
        s.write(|t| {
            let cur = t.get_versioned(b"hits")?;
            let n: u64 = cur
                .as_ref()
                .map_or(0, |f| std::str::from_utf8(&f.value).unwrap().parse().unwrap());
            let expires = cur.and_then(|f| f.expires_at);
            t.put_expiring(b"hits", (n + 1).to_string().as_bytes(), expires)?;
            Ok(expires)
        })
        .unwrap()
    };
    assert_eq!(bump(&mut s), Some(at + 1000));
    s.checkpoint().unwrap();
    assert_eq!(bump(&mut s), Some(at + 1000));
    let found = s.get_versioned(b"hits").unwrap().unwrap();
    assert_eq!(
        (found.value.as_slice(), found.expires_at),
        (&b"7"[..], Some(at + 1000))
    );
    dir.advance_clock(1000);
    assert_eq!(bump(&mut s), None, "expired: a new counter, from nothing");
    assert_eq!(s.get(b"hits").unwrap(), Some(b"1".to_vec()));
    // A plain put clears an expiry.
    s.put_expiring(b"k", b"1", Some(dir.now_millis() + 5)).unwrap();
    s.put(b"k", b"2").unwrap();
    dir.advance_clock(5);
    assert_eq!(s.get(b"k").unwrap(), Some(b"2".to_vec()));
    assert!(s.check().unwrap().is_empty());
}

/// Prefix scans over many pages, the prefixed keys sharing leaves with
/// others, part of them only in the log, some deleted or expired; `after`
/// before, inside and past the prefix's range; a page at a time.
#[test]
fn prefix_scans_across_pages() {
    let dir = MemDir::new();
    let mut s = open(&dir);
    let mut model: BTreeMap<Vec<u8>, ()> = BTreeMap::new();
    let mut r = Rng::new(19);
    let now = dir.now_millis();
    for round in 0..6 {
        s.write(|t| {
            for i in 0..300u32 {
                let head = ["a", "b", "b/", "b/x", "ba", "c"][r.below(6) as usize];
                let k = format!("{head}{:05}", r.below(100_000)).into_bytes();
                let expired = i % 17 == 0;
                t.put_expiring(&k, &r.bytes(20), expired.then_some(now))?;
                if !expired {
                    model.insert(k, ());
                }
            }
            Ok(())
        })
        .unwrap();
        if round < 4 {
            s.checkpoint().unwrap(); // the last rounds stay in the log
        }
    }
    let doomed: Vec<Vec<u8>> = model.keys().step_by(7).cloned().collect();
    s.delete_many(&doomed).unwrap();
    for k in &doomed {
        model.remove(k);
    }
    assert!(s.stats().unwrap().depth >= 2, "the keys span many pages");
    for prefix in [&b""[..], b"b", b"b/", b"b/x", b"ba", b"c", b"d", b"b/x0"] {
        let want: Vec<Vec<u8>> = model.keys().filter(|k| k.starts_with(prefix)).cloned().collect();
        // After: none, before the range, inside it (each 5th key), past it.
        let mut afters: Vec<Option<Vec<u8>>> =
            vec![None, Some(b"".to_vec()), Some(b"a".to_vec()), Some(b"z".to_vec())];
        afters.extend(want.iter().step_by(5).map(|k| Some(k.clone())));
        for after in afters {
            let expect: Vec<Vec<u8>> = want
                .iter()
                .filter(|k| after.as_ref().is_none_or(|a| *k > a))
                .cloned()
                .collect();
            let got = s
                .keys_with_prefix_after(prefix, after.as_deref(), 100_000)
                .unwrap();
            assert_eq!(got, expect, "prefix {prefix:?} after {after:?}");
        }
        // Paging by 7 returns the same keys.
        let mut paged = Vec::new();
        let mut after: Option<Vec<u8>> = None;
        loop {
            let page = s.keys_with_prefix_after(prefix, after.as_deref(), 7).unwrap();
            if page.is_empty() {
                break;
            }
            after = page.last().cloned();
            paged.extend(page);
        }
        assert_eq!(paged, want, "prefix {prefix:?} paged");
    }
}

/// A prefix listing reads the pages of its range, not the whole file.
#[test]
fn a_prefix_scan_reads_only_its_range() {
    let dir = MemDir::new();
    let mut s = BucketFile::open(
        dir.clone(),
        "big.kvfs",
        Options {
            cache_pages: 0,
            ..opts()
        },
    )
    .unwrap()
    .unwrap();
    for chunk in 0..20u32 {
        s.write(|t| {
            for i in 0..1000u32 {
                t.put(format!("user/{:06}", chunk * 1000 + i).as_bytes(), &[7u8; 40])?;
            }
            Ok(())
        })
        .unwrap();
    }
    s.put(b"other/1", b"x").unwrap();
    s.checkpoint().unwrap();
    let pages = s.stats().unwrap().pages_total;
    dir.reset_counters();
    let got = s.keys_with_prefix_after(b"user/0123", None, 1000).unwrap();
    assert_eq!(got.len(), 100);
    let reads = dir.counters().reads;
    eprintln!("prefix scan of 100 of 20,001 keys ({pages} pages): {reads} reads");
    assert!(reads < 20, "{reads} reads for a 100-key prefix in {pages} pages");
}

/// Expired entries leave the file: those logged when the log is folded,
/// those already in the tree by the sweep of a later checkpoint, also
/// after reopening (the earliest expiry is in the checkpoint record).
#[test]
fn checkpoints_drop_expired_entries() {
    let dir = MemDir::new();
    let mut s = open(&dir);
    let now = dir.now_millis();
    s.write(|t| {
        for i in 0..400u32 {
            let at = if i % 2 == 0 { now + 100 } else { now + 10_000 };
            t.put_expiring(format!("k{i:04}").as_bytes(), &[1u8; 50], Some(at))?;
        }
        Ok(())
    })
    .unwrap();
    s.put(b"stays", b"1").unwrap();
    s.checkpoint().unwrap();
    assert_eq!(s.stats().unwrap().keys, 401);
    let used = s.stats().unwrap().pages_used;
    dir.advance_clock(100);
    let mut s = open(&dir); // the earliest expiry comes from the file
    assert_eq!(s.expiry_counts().unwrap(), (400, 200));
    s.put(b"another", b"2").unwrap();
    s.checkpoint().unwrap();
    assert_eq!(s.stats().unwrap().keys, 202, "the sweep dropped the expired half");
    assert_eq!(s.expiry_counts().unwrap(), (200, 0));
    assert!(s.stats().unwrap().pages_used < used, "their pages are freed");
    // Expired while still in the log: never reaches the tree.
    s.put_expiring(b"brief", b"x", Some(dir.now_millis() + 1))
        .unwrap();
    dir.advance_clock(10_000);
    s.checkpoint().unwrap();
    assert_eq!(s.stats().unwrap().keys, 2);
    assert_eq!(
        s.keys_after(None, 10).unwrap(),
        vec![b"another".to_vec(), b"stays".to_vec()]
    );
    assert!(s.check().unwrap().is_empty());
}

/// 100,000 expiring writes of 500-byte values, 1,000 keys live at a time
/// (each expires 1,000 writes after it was written, new keys all the
/// time): the file stays under 3x the live data.
#[test]
fn churn_of_expiring_keys_keeps_the_file_bounded() {
    let dir = MemDir::new_untracked();
    let o = Options {
        sync: SyncPolicy::Never,
        ..Options::default()
    };
    let mut s = BucketFile::open(dir.clone(), "churn.kvfs", o).unwrap().unwrap();
    let value = [9u8; 500];
    let key = |i: u32| format!("session/{i:08}").into_bytes();
    let live_bytes = 1000 * (key(0).len() + value.len()) as u64;
    let mut max_file = 0u64;
    let per_txn = 10u32;
    for txn in 0..10_000u32 {
        // One ms per write: a key written at t expires at t + 1,000.
        let now = dir.now_millis();
        s.write(|t| {
            for j in 0..per_txn {
                t.put_expiring(&key(txn * per_txn + j), &value, Some(now + 1000))?;
            }
            Ok(())
        })
        .unwrap();
        dir.advance_clock(u64::from(per_txn));
        if txn % 100 == 99 {
            max_file = max_file.max(s.stats().unwrap().file_bytes);
        }
    }
    let listed = s.keys_after(None, 10_000).unwrap().len();
    let st = s.stats().unwrap();
    eprintln!(
        "churn: 100,000 expiring writes, {listed} keys live ({live_bytes} bytes), {} stored; \
         max file {max_file} bytes = {:.2}x the live data",
        st.keys,
        max_file as f64 / live_bytes as f64
    );
    // The keys written in the last 1,000 ms of the clock.
    assert_eq!(listed, 990);
    assert!(
        max_file <= 3 * live_bytes,
        "file grew to {max_file} bytes for {live_bytes} live bytes"
    );
    assert!(s.check().unwrap().is_empty());
}
