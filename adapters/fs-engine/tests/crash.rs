//! Power-loss and I/O-error simulation over the fault-injecting MemDir.
//!
//! For many random workloads and, for each, many crash points (the N-th
//! mutating operation: write, sync, set-len, create, link, rename, remove,
//! directory sync), the process "dies" there; the file system is then cut
//! down to what a power loss could leave (random subset of unsynced writes
//! in any order, last write torn at sector granularity, prefix of unsynced
//! directory operations). After recovery:
//!
//! * every acknowledged transaction is present, and at most the one in
//!   flight may also be present, entirely (never half of it);
//! * `check()` finds no problem;
//! * the store accepts a new transaction (the dead writer's lock is broken).

use std::collections::BTreeMap;

use kv_fs_engine::testing::{MemDir, Rng};
use kv_fs_engine::{Durability, Options, Store};

type Txn = Vec<(Vec<u8>, Option<Vec<u8>>)>;
type Model = BTreeMap<Vec<u8>, Vec<u8>>;

const NAME: &str = "crash.kvfs";

fn key(id: u64) -> Vec<u8> {
    let mut k = format!("k{id:03}").into_bytes();
    if id.is_multiple_of(11) {
        k.extend(std::iter::repeat_n(b'#', 300)); // out-of-line key at 1 KiB pages
    }
    k
}

fn workload(seed: u64) -> Vec<Txn> {
    let mut r = Rng::new(seed);
    let mut txns = Vec::new();
    // Preload so the tree has a few levels at 1 KiB pages.
    let pre: Txn = (0..40)
        .map(|i| (key(i), Some(vec![i as u8; 20 + (i as usize % 30)])))
        .collect();
    txns.push(pre);
    let n = 3 + r.below(6);
    for t in 0..n {
        let big = r.chance(1, 5);
        let ops = 1 + r.below(if big { 40 } else { 6 });
        let mut txn = Txn::new();
        for _ in 0..ops {
            let k = key(r.below(60));
            if r.chance(1, 4) {
                txn.push((k, None));
            } else {
                let len = match r.below(4) {
                    0 => r.below(10),
                    1 => 50 + r.below(150),
                    2 => 300 + r.below(3000), // extent
                    _ => r.below(40),
                } as usize;
                let mut v = format!("t{t}:").into_bytes();
                v.extend(r.bytes(len));
                txn.push((k, Some(v)));
            }
        }
        txns.push(txn);
    }
    txns
}

fn states(txns: &[Txn]) -> Vec<Model> {
    let mut s = vec![Model::new()];
    for t in txns {
        let mut m = s.last().cloned().unwrap_or_default();
        for (k, v) in t {
            match v {
                Some(v) => {
                    m.insert(k.clone(), v.clone());
                }
                None => {
                    m.remove(k);
                }
            }
        }
        s.push(m);
    }
    s
}

fn opts(durability: Durability) -> Options {
    Options {
        page_size: 1024,
        durability,
        lock_lease_millis: 200,
        lock_wait_millis: 5_000,
        ..Options::default()
    }
}

fn apply(s: &mut Store<MemDir>, t: &Txn) -> Result<(), kv_fs_engine::Error> {
    s.write(|w| {
        for (k, v) in t {
            match v {
                Some(v) => w.put(k, v)?,
                None => {
                    w.delete(k)?;
                }
            }
        }
        Ok(())
    })
}

/// Runs the workload until the first failure. Returns (store opened,
/// number of acknowledged transactions).
fn run(dir: &MemDir, txns: &[Txn], d: Durability) -> (bool, usize) {
    let mut s = match Store::open(dir.clone(), NAME, opts(d)) {
        Ok(Some(s)) => s,
        _ => return (false, 0),
    };
    for (i, t) in txns.iter().enumerate() {
        if apply(&mut s, t).is_err() {
            return (true, i);
        }
    }
    (true, txns.len())
}

fn read_all(s: &mut Store<MemDir>) -> Model {
    let mut m = Model::new();
    for e in s.iter(16) {
        let e = e.unwrap_or_else(|e| panic!("reading after recovery: {e}"));
        m.insert(e.key, e.value);
    }
    m
}

/// Which state recovery produced.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Outcome {
    NoStore,
    Acked,
    InFlightToo,
}

fn verify_recovered(img: MemDir, st: &[Model], opened: bool, acked: usize, ctx: &str) -> Outcome {
    let o = Options {
        create_if_missing: false,
        ..opts(Durability::Sync)
    };
    let mut s = match Store::open(img.clone(), NAME, o) {
        Ok(Some(s)) => s,
        Ok(None) => {
            assert!(!opened, "{ctx}: acknowledged store creation was lost");
            return Outcome::NoStore;
        }
        Err(e) => panic!("{ctx}: recovery failed: {e}"),
    };
    let got = read_all(&mut s);
    let ok = got == st[acked] || (acked + 1 < st.len() && got == st[acked + 1]);
    assert!(
        ok,
        "{ctx}: recovered state is neither commit {acked} nor {} ({} keys)",
        acked + 1,
        got.len()
    );
    let problems = s.check().unwrap_or_else(|e| panic!("{ctx}: check failed: {e}"));
    assert!(problems.is_empty(), "{ctx}: check found {problems:?}");
    // The store must still be writable (breaking the dead writer's lock).
    s.put(b"after-recovery", b"ok")
        .unwrap_or_else(|e| panic!("{ctx}: write after recovery: {e}"));
    assert_eq!(s.get(b"after-recovery").unwrap(), Some(b"ok".to_vec()));
    let problems = s.check().unwrap();
    assert!(
        problems.is_empty(),
        "{ctx}: check after new write found {problems:?}"
    );
    if got == st[acked] {
        Outcome::Acked
    } else {
        Outcome::InFlightToo
    }
}

/// `KVFS_CRASH_SCALE=10` runs ten times as many workloads (stress runs).
fn scale() -> u64 {
    std::env::var("KVFS_CRASH_SCALE")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1)
        .max(1)
}

fn power_loss(seeds: std::ops::Range<u64>, points_per_workload: u64) -> u64 {
    let seeds = seeds.start * scale()..seeds.start * scale() + (seeds.end - seeds.start) * scale();
    let mut total = 0;
    let mut outcomes = [0u64; 3];
    for seed in seeds {
        let txns = workload(seed);
        let st = states(&txns);
        // Dry run: how many mutating operations does the workload make?
        let dry = MemDir::new();
        let (_, acked) = run(&dry, &txns, Durability::Sync);
        assert_eq!(acked, txns.len());
        let ops = dry.op_count();
        let mut r = Rng::new(seed * 7 + 1);
        for j in 0..points_per_workload {
            // Spread crash points over the whole run, plus random ones.
            let c = if j < points_per_workload / 2 {
                j * ops / (points_per_workload / 2)
            } else {
                r.below(ops + 1)
            };
            let dir = MemDir::new();
            dir.set_crash_at(Some(c));
            let (opened, acked) = run(&dir, &txns, Durability::Sync);
            for k in 0..2 {
                let img = dir.crash_image(seed ^ (c << 20) ^ (k << 40));
                let o = verify_recovered(
                    img,
                    &st,
                    opened,
                    acked,
                    &format!("seed {seed} crash at op {c}/{ops} image {k}"),
                );
                outcomes[o as usize] += 1;
                total += 1;
            }
        }
    }
    // The simulation must really hit every case: crashes before the store
    // existed, commits lost in flight, and commits that made it anyway.
    eprintln!(
        "power-loss outcomes: no store {}, acknowledged only {}, in-flight commit too {}",
        outcomes[0], outcomes[1], outcomes[2]
    );
    assert!(outcomes.iter().all(|&n| n > 0), "{outcomes:?}");
    total
}

#[test]
fn power_loss_at_random_points_a() {
    let n = power_loss(0..130, 40);
    assert!(n >= 5_000, "{n}");
}

#[test]
fn power_loss_at_random_points_b() {
    let n = power_loss(1000..1130, 40);
    assert!(n >= 5_000, "{n}");
}

/// Process crash (no power loss) with Durability::None: everything the
/// dead process wrote stays, so every acknowledged commit must survive.
#[test]
fn process_crash_without_fsync() {
    for seed in 500..560 {
        let txns = workload(seed);
        let st = states(&txns);
        let dry = MemDir::new();
        run(&dry, &txns, Durability::None);
        let ops = dry.op_count();
        for c in (0..=ops).step_by(3) {
            let dir = MemDir::new();
            dir.set_crash_at(Some(c));
            let (opened, acked) = run(&dir, &txns, Durability::None);
            let _ = verify_recovered(
                dir.process_crash_image(),
                &st,
                opened,
                acked,
                &format!("seed {seed} process crash at {c}"),
            );
        }
    }
}

/// One I/O error (write, sync, create, ...) at every possible point; the
/// process keeps running. The failed transaction is all-or-nothing, later
/// transactions work, and after a final acknowledged commit a power cut
/// loses nothing acknowledged.
#[test]
fn io_error_at_every_point() {
    for seed in 2000..2040 {
        let txns = workload(seed);
        let dry = MemDir::new();
        run(&dry, &txns, Durability::Sync);
        let ops = dry.op_count();
        for c in 0..ops {
            let ctx = format!("seed {seed} I/O error at op {c}/{ops}");
            let dir = MemDir::new();
            dir.set_fail_at(Some(c));
            let mut s = match Store::open(dir.clone(), NAME, opts(Durability::Sync)) {
                Ok(Some(s)) => s,
                _ => Store::open(dir.clone(), NAME, opts(Durability::Sync))
                    .unwrap_or_else(|e| panic!("{ctx}: reopen after failed create: {e}"))
                    .unwrap(),
            };
            let mut model = Model::new();
            for t in &txns {
                let mut after = model.clone();
                for (k, v) in t {
                    match v {
                        Some(v) => {
                            after.insert(k.clone(), v.clone());
                        }
                        None => {
                            after.remove(k);
                        }
                    }
                }
                match apply(&mut s, t) {
                    Ok(()) => model = after,
                    Err(_) => {
                        let got = read_all(&mut s);
                        assert!(
                            got == model || got == after,
                            "{ctx}: failed transaction is half-applied"
                        );
                        model = got;
                    }
                }
            }
            s.put(b"final", b"1")
                .unwrap_or_else(|e| panic!("{ctx}: final write: {e}"));
            model.insert(b"final".to_vec(), b"1".to_vec());
            assert_eq!(read_all(&mut s), model, "{ctx}");
            let p = s.check().unwrap();
            assert!(p.is_empty(), "{ctx}: {p:?}");
            // Everything acknowledged is durable.
            let img = dir.crash_image(c);
            let mut s2 = Store::open(img, NAME, opts(Durability::Sync)).unwrap().unwrap();
            assert_eq!(read_all(&mut s2), model, "{ctx}: after power cut");
        }
    }
}

/// The bucket file as a power cut during the last commit could leave it:
/// the commit record on disk but not its completion stamp, and (if
/// `lose_pages`) none of the pages the commit wrote. Returns the image.
fn cut_during_last_commit(lose_pages: bool) -> MemDir {
    let dir = MemDir::new();
    let mut s = Store::open(dir.clone(), NAME, opts(Durability::Sync))
        .unwrap()
        .unwrap();
    for i in 0..50u32 {
        s.put(format!("k{i}").as_bytes(), b"old").unwrap();
    }
    dir.set_trace(true);
    s.put_many(&[(b"k7".as_slice(), b"new".as_slice()), (b"added", b"new")])
        .unwrap();
    let writes: Vec<_> = dir.take_trace().into_iter().filter(|w| w.file == NAME).collect();
    drop(s);
    let mut bytes = dir.file_bytes(NAME).unwrap();
    let [pages @ .., record, stamp] = writes.as_slice() else {
        panic!("a commit writes pages, its record and its stamp: {writes:?}");
    };
    assert_eq!(stamp.offset, record.offset + 160);
    bytes[stamp.offset as usize..][..stamp.len].fill(0);
    if lose_pages {
        assert!(!pages.is_empty());
        for w in pages {
            bytes[w.offset as usize..][..w.len].fill(0);
        }
    }
    let img = MemDir::new();
    img.put_file(NAME, &bytes);
    img
}

fn open(img: &MemDir) -> Store<MemDir> {
    Store::open(img.clone(), NAME, opts(Durability::Sync))
        .unwrap()
        .unwrap()
}

fn read_k7_and_added(s: &mut Store<MemDir>) -> (Option<Vec<u8>>, Option<Vec<u8>>) {
    (s.get(b"k7").unwrap(), s.get(b"added").unwrap())
}

/// One sync per commit (FORMAT.md §9, §12): a power cut can keep a commit
/// record whose pages never reached the disk. Opening finds it without its
/// completion stamp, checks the commit's own pages, rejects it and serves
/// the previous commit; the next write replaces it for good.
#[test]
fn record_without_its_pages_falls_back_to_the_previous_commit() {
    let img = cut_during_last_commit(true);
    let mut s = open(&img);
    assert_eq!(read_k7_and_added(&mut s), (Some(b"old".to_vec()), None));
    assert_eq!(s.check().unwrap(), vec![]);
    s.put(b"after", b"cut").unwrap();
    assert_eq!(s.check().unwrap(), vec![]);
    // Another instance (and a reopen) agree, with no rejection left.
    let mut t = open(&img);
    assert_eq!(read_k7_and_added(&mut t), (Some(b"old".to_vec()), None));
    assert_eq!(t.get(b"after").unwrap(), Some(b"cut".to_vec()));
    assert_eq!(t.check().unwrap(), vec![]);
}

/// A commit whose pages did reach the disk but whose stamp did not (its
/// writer died before its sync returned, or the stamp write was lost) is
/// kept; the next writer syncs it and stamps it before committing over its
/// predecessor's slot, so that write alone costs a second sync.
#[test]
fn complete_commit_without_its_stamp_is_kept_and_synced_by_the_next_writer() {
    let img = cut_during_last_commit(false);
    let mut s = open(&img);
    assert_eq!(
        read_k7_and_added(&mut s),
        (Some(b"new".to_vec()), Some(b"new".to_vec()))
    );
    img.reset_counters();
    s.put(b"after", b"cut").unwrap();
    assert_eq!(img.counters().syncs, 2, "the base is synced, then the commit");
    img.reset_counters();
    s.put(b"after", b"again").unwrap();
    assert_eq!(img.counters().syncs, 1);
    assert_eq!(s.check().unwrap(), vec![]);
}
