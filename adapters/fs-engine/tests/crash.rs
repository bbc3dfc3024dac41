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
//!   flight may also be present, entirely (never half of it), expiries
//!   included (some writes expire: at once, during the run — the clock
//!   moves 100 ms per transaction, so checkpoints drop expired entries —
//!   or long after);
//! * `check()` finds no problem;
//! * the bucket file accepts a new transaction (the dead writer's lock is broken).
//!
//! The writer keeps the lock across transactions, so crash points also land
//! in its renewal in place, its release after an idle gap and its hand-over
//! to another instance that asked for it (see `opts` and `run`).

use std::collections::BTreeMap;

use kv_fs_engine::testing::{self, MemDir, OpEvent, Rng};
use kv_fs_engine::{BucketFile, Dir as _, Options, SyncPolicy, is_expired};

/// A value and its expiry.
type Value = (Vec<u8>, Option<u64>);
type Txn = Vec<(Vec<u8>, Option<Value>)>;
type Model = BTreeMap<Vec<u8>, Value>;

/// Where the clock of a new `MemDir` starts (wall-clock ms).
const T0: u64 = 1_700_000_000_000;
/// The clock moves this much after every transaction of a run.
const TICK: u64 = 100;

/// The entries of `m` not expired at `now`.
fn live(m: &Model, now: u64) -> Model {
    m.iter()
        .filter(|(_, (_, e))| !is_expired(*e, now))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect()
}

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
        .map(|i| (key(i), Some((vec![i as u8; 20 + (i as usize % 30)], None))))
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
                let expires = match r.below(6) {
                    0 => Some(T0 - 1),                       // expired at once
                    1 => Some(T0 + TICK * (1 + r.below(8))), // during the run
                    2 => Some(u64::MAX / 2 + r.below(1000)), // long after
                    _ => None,
                };
                txn.push((k, Some((v, expires))));
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

/// 1 KiB pages and a log ring of at least 4 KiB (16 cells): commits are
/// appended to the log, wrap around it, are folded by checkpoints every few
/// commits, the larger ones go straight into the tree, and the ring moves
/// to a larger one as the data grows.
fn opts(sync: SyncPolicy) -> Options {
    Options {
        page_size: 1024,
        log_bytes: 4096,
        sync,
        // The writer keeps its lock from one transaction to the next (the
        // clock moves TICK between them), renews it in place every quarter
        // lease, releases it after the longer gaps of `run`, and hands it
        // over when asked.
        lock_lease_millis: 1_000,
        lock_idle_millis: 150,
        lock_wait_millis: 5_000,
        ..Options::default()
    }
}

fn apply(s: &mut BucketFile<MemDir>, t: &Txn) -> Result<(), kv_fs_engine::Error> {
    let r = s.write(|w| {
        for (k, v) in t {
            match v {
                Some((v, expires)) => w.put_expiring(k, v, *expires)?,
                None => {
                    w.delete(k)?;
                }
            }
        }
        Ok(())
    });
    s.dir().advance_clock(TICK);
    r
}

/// Runs the workload until the first failure. Returns (bucket file opened,
/// number of acknowledged transactions).
fn run(dir: &MemDir, txns: &[Txn], d: SyncPolicy) -> (bool, usize) {
    let mut s = match BucketFile::open(dir.clone(), NAME, opts(d)) {
        Ok(Some(s)) => s,
        _ => return (false, 0),
    };
    for (i, t) in txns.iter().enumerate() {
        if apply(&mut s, t).is_err() {
            return (true, i);
        }
        match i % 11 {
            // An idle gap: the next transaction releases the lock and takes it again.
            4 => dir.advance_clock(2 * TICK),
            // Another instance asks for the lock (for three transactions'
            // time): the next transactions hand it over.
            7 if testing::ask_for_lock(dir, NAME, 3 * TICK).is_err() => return (true, i + 1),
            _ => {}
        }
    }
    (true, txns.len())
}

fn read_all(s: &mut BucketFile<MemDir>) -> Model {
    let mut m = Model::new();
    for e in s.iter(16) {
        let e = e.unwrap_or_else(|e| panic!("reading after recovery: {e}"));
        m.insert(e.key, (e.value, e.expires_at));
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
        ..opts(SyncPolicy::EveryCommit)
    };
    let mut s = match BucketFile::open(img.clone(), NAME, o) {
        Ok(Some(s)) => s,
        Ok(None) => {
            assert!(!opened, "{ctx}: acknowledged file creation was lost");
            return Outcome::NoStore;
        }
        Err(e) => panic!("{ctx}: recovery failed: {e}"),
    };
    let got = read_all(&mut s);
    let now = img.now_millis();
    let ok = got == live(&st[acked], now) || (acked + 1 < st.len() && got == live(&st[acked + 1], now));
    assert!(
        ok,
        "{ctx}: recovered state is neither commit {acked} nor {} ({} keys)",
        acked + 1,
        got.len()
    );
    let problems = s.check().unwrap_or_else(|e| panic!("{ctx}: check failed: {e}"));
    assert!(problems.is_empty(), "{ctx}: check found {problems:?}");
    // The bucket file must still be writable (breaking the dead writer's lock).
    s.put(b"after-recovery", b"ok")
        .unwrap_or_else(|e| panic!("{ctx}: write after recovery: {e}"));
    assert_eq!(s.get(b"after-recovery").unwrap(), Some(b"ok".to_vec()));
    let problems = s.check().unwrap();
    assert!(
        problems.is_empty(),
        "{ctx}: check after new write found {problems:?}"
    );
    if got == live(&st[acked], now) {
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

/// What a crash point interrupts.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Phase {
    /// A commit's log record, its sync and its stamp.
    Append,
    /// A checkpoint: its pages, syncs, checkpoint record, the record
    /// announcing it in the log and that record's stamp.
    Checkpoint,
    /// Creating the file, the lock file.
    Other,
}

/// The checkpoint slots of the files `opts` makes: page 1 of 1 KiB.
const SLOTS: std::ops::Range<u64> = 1024..2048;

/// The phase of every mutating operation of a run, from its trace. The
/// bucket file's writes fall into groups, each ended by a sync: a group
/// that writes a checkpoint slot ends a checkpoint, the group before it
/// wrote the checkpoint's pages, and any other group appended a record;
/// the write after a group's sync (its stamp) belongs to that group.
fn phases(ops: &[OpEvent]) -> Vec<Phase> {
    let on_bucket = |op: &OpEvent| match op {
        OpEvent::Write { file, .. } | OpEvent::Sync(file) | OpEvent::SetLen(file) => file == NAME,
        _ => false,
    };
    // Groups of bucket operations, each up to and including a sync.
    let mut groups: Vec<Vec<usize>> = vec![Vec::new()];
    for (i, op) in ops.iter().enumerate() {
        if on_bucket(op) {
            groups.last_mut().unwrap().push(i);
            if matches!(op, OpEvent::Sync(_)) {
                groups.push(Vec::new());
            }
        }
    }
    let writes_slot = |g: &Vec<usize>| {
        g.iter()
            .any(|&i| matches!(&ops[i], OpEvent::Write { offset, .. } if SLOTS.contains(offset)))
    };
    let mut phase = vec![Phase::Other; ops.len()];
    let mut stamp_of = Phase::Append;
    for (n, g) in groups.iter().enumerate() {
        let class = if writes_slot(g) || groups.get(n + 1).is_some_and(writes_slot) {
            Phase::Checkpoint
        } else {
            Phase::Append
        };
        for (k, &i) in g.iter().enumerate() {
            // A group's first write may be the stamp of the group before.
            let stamp = k == 0 && n > 0 && g.len() > 1 && matches!(ops[i], OpEvent::Write { .. });
            phase[i] = if stamp { stamp_of } else { class };
        }
        stamp_of = class;
    }
    phase
}

/// Crash points per phase and recoveries verified.
#[derive(Default, Debug)]
struct Tally {
    points: [u64; 3],
    /// Crash points on the lock's files: taking it, renewing it in place,
    /// releasing or handing it over, asking for it.
    lock_points: u64,
    /// Over the dry runs: transactions, and the lock taken anew.
    transactions: u64,
    lock_takes: u64,
    recoveries: u64,
}

/// Whether an operation is on the writer lock's files.
fn on_lock(op: &OpEvent) -> bool {
    let lock = format!("{NAME}.lock");
    match op {
        OpEvent::Create(f) | OpEvent::Remove(f) | OpEvent::Rename(f) | OpEvent::Link(f) => {
            f.starts_with(&lock)
        }
        OpEvent::Write { file, .. } | OpEvent::Sync(file) | OpEvent::SetLen(file) => file.starts_with(&lock),
        OpEvent::SyncDir => false,
    }
}

fn power_loss(seeds: std::ops::Range<u64>, points_per_workload: u64) -> Tally {
    let seeds = seeds.start * scale()..seeds.start * scale() + (seeds.end - seeds.start) * scale();
    let mut tally = Tally::default();
    let mut outcomes = [0u64; 3];
    for seed in seeds {
        let txns = workload(seed);
        let st = states(&txns);
        // Dry run: every mutating operation the workload makes.
        let dry = MemDir::new();
        dry.set_op_trace(true);
        let (_, acked) = run(&dry, &txns, SyncPolicy::EveryCommit);
        assert_eq!(acked, txns.len());
        let trace = dry.take_op_trace();
        let lock_name = format!("{NAME}.lock");
        tally.transactions += txns.len() as u64;
        tally.lock_takes += trace
            .iter()
            .filter(|op| matches!(op, OpEvent::Create(f) if *f == lock_name))
            .count() as u64;
        let phase = phases(&trace);
        let ops = phase.len() as u64;
        let inside = |p: Phase| -> Vec<u64> { (0..ops).filter(|&c| phase[c as usize] == p).collect() };
        let (appends, checkpoints) = (inside(Phase::Append), inside(Phase::Checkpoint));
        let mut r = Rng::new(seed * 7 + 1);
        let half = points_per_workload / 2;
        for j in 0..points_per_workload {
            // Spread crash points over the whole run, plus random ones
            // inside appends and inside checkpoints.
            let pick = |r: &mut Rng, from: &[u64]| from[r.below(from.len() as u64) as usize];
            let c = if j < half {
                j * ops / half
            } else if j % 2 == 0 && !appends.is_empty() {
                pick(&mut r, &appends)
            } else {
                pick(&mut r, &checkpoints)
            };
            tally.points[phase.get(c as usize).map_or(2, |&p| p as usize)] += 1;
            tally.lock_points += u64::from(trace.get(c as usize).is_some_and(on_lock));
            let dir = MemDir::new();
            dir.set_crash_at(Some(c));
            let (opened, acked) = run(&dir, &txns, SyncPolicy::EveryCommit);
            for k in 0..2 {
                let img = dir.crash_image(seed ^ (c << 20) ^ (k << 40));
                let o = verify_recovered(
                    img,
                    &st,
                    opened,
                    acked,
                    &format!(
                        "seed {seed} crash at op {c}/{ops} ({:?}) image {k}",
                        phase.get(c as usize)
                    ),
                );
                outcomes[o as usize] += 1;
                tally.recoveries += 1;
            }
        }
    }
    // The simulation must really hit every case: crashes before the bucket file
    // existed, commits lost in flight, and commits that made it anyway.
    eprintln!(
        "power-loss outcomes: no bucket file {}, acknowledged only {}, in-flight commit too {}; \
         crash points in appends {}, in checkpoints {}, elsewhere {} (on the lock's files {}); \
         the lock taken {} times for {} transactions",
        outcomes[0],
        outcomes[1],
        outcomes[2],
        tally.points[0],
        tally.points[1],
        tally.points[2],
        tally.lock_points,
        tally.lock_takes,
        tally.transactions
    );
    assert!(outcomes.iter().all(|&n| n > 0), "{outcomes:?}");
    // The lock is kept across most transactions, and crashes hit its files.
    assert!(tally.lock_takes * 2 < tally.transactions, "{tally:?}");
    assert!(tally.lock_points >= 200, "{tally:?}");
    tally
}

/// Half of the 10,000 crash points inside log appends and checkpoints (the
/// other test has the other half), each recovered from two power-cut images.
#[test]
fn power_loss_at_random_points_a() {
    let t = power_loss(0..130, 60);
    assert!(t.points[Phase::Append as usize] >= 2_000, "{t:?}");
    assert!(t.points[Phase::Checkpoint as usize] >= 2_000, "{t:?}");
    assert!(t.points[0] + t.points[1] >= 5_000, "{t:?}");
}

#[test]
fn power_loss_at_random_points_b() {
    let t = power_loss(1000..1130, 60);
    assert!(t.points[Phase::Append as usize] >= 2_000, "{t:?}");
    assert!(t.points[Phase::Checkpoint as usize] >= 2_000, "{t:?}");
    assert!(t.points[0] + t.points[1] >= 5_000, "{t:?}");
}

/// Process crash (no power loss) with SyncPolicy::Never: everything the
/// dead process wrote stays, so every acknowledged commit must survive.
#[test]
fn process_crash_without_fsync() {
    for seed in 500..560 {
        let txns = workload(seed);
        let st = states(&txns);
        let dry = MemDir::new();
        run(&dry, &txns, SyncPolicy::Never);
        let ops = dry.op_count();
        for c in (0..=ops).step_by(3) {
            let dir = MemDir::new();
            dir.set_crash_at(Some(c));
            let (opened, acked) = run(&dir, &txns, SyncPolicy::Never);
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
        // Every operation of the transactions below (not the final write).
        let dry = MemDir::new();
        let mut s = BucketFile::open(dry.clone(), NAME, opts(SyncPolicy::EveryCommit))
            .unwrap()
            .unwrap();
        for t in &txns {
            apply(&mut s, t).unwrap();
        }
        let ops = dry.op_count();
        for c in 0..ops {
            let ctx = format!("seed {seed} I/O error at op {c}/{ops}");
            let dir = MemDir::new();
            dir.set_fail_at(Some(c));
            let mut s = match BucketFile::open(dir.clone(), NAME, opts(SyncPolicy::EveryCommit)) {
                Ok(Some(s)) => s,
                _ => BucketFile::open(dir.clone(), NAME, opts(SyncPolicy::EveryCommit))
                    .unwrap_or_else(|e| panic!("{ctx}: reopen after failed create: {e}"))
                    .unwrap(),
            };
            let mut model = Model::new();
            for t in &txns {
                let now = dir.now_millis();
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
                let (before, after) = (live(&model, now), live(&after, now));
                match apply(&mut s, t) {
                    Ok(()) => model = after,
                    Err(_) => {
                        let got = read_all(&mut s);
                        let now = dir.now_millis();
                        assert!(
                            got == live(&before, now) || got == live(&after, now),
                            "{ctx}: failed transaction is half-applied"
                        );
                        model = got;
                    }
                }
            }
            s.put(b"final", b"1")
                .unwrap_or_else(|e| panic!("{ctx}: final write: {e}"));
            model.insert(b"final".to_vec(), (b"1".to_vec(), None));
            let model = live(&model, dir.now_millis());
            assert_eq!(read_all(&mut s), model, "{ctx}");
            let p = s.check().unwrap();
            assert!(p.is_empty(), "{ctx}: {p:?}");
            // Everything acknowledged is durable.
            let img = dir.crash_image(c);
            let mut s2 = BucketFile::open(img, NAME, opts(SyncPolicy::EveryCommit))
                .unwrap()
                .unwrap();
            let got = read_all(&mut s2);
            let model = live(&model, s2.dir().now_millis());
            if got != model {
                let diff: Vec<_> = model
                    .iter()
                    .filter(|(k, v)| got.get(*k) != Some(*v))
                    .map(|(k, _)| String::from_utf8_lossy(&k[..k.len().min(6)]).to_string())
                    .collect();
                panic!("{ctx}: after power cut, {} keys differ: {diff:?}", diff.len());
            }
        }
    }
}

/// The bucket file as a power cut during the last commit could leave it:
/// its log record written (in full, or with its last `lose` cells lost),
/// its stamp not. Returns the image.
fn cut_during_last_commit(lose: usize) -> MemDir {
    let dir = MemDir::new();
    let mut s = BucketFile::open(dir.clone(), NAME, opts(SyncPolicy::EveryCommit))
        .unwrap()
        .unwrap();
    for i in 0..50u32 {
        s.put(format!("k{i}").as_bytes(), b"old").unwrap();
    }
    dir.set_trace(true);
    s.put_many(&[(b"k7".as_slice(), &[b'n'; 300][..]), (b"added", b"new")])
        .unwrap();
    let writes: Vec<_> = dir.take_trace().into_iter().filter(|w| w.file == NAME).collect();
    drop(s);
    let mut bytes = dir.file_bytes(NAME).unwrap();
    let [record, stamp] = writes.as_slice() else {
        panic!("a commit writes its record and its stamp: {writes:?}");
    };
    assert_eq!(stamp.offset, record.offset + record.len as u64);
    assert_eq!(record.len, 512, "the record takes two cells");
    bytes[stamp.offset as usize..][..stamp.len].fill(0);
    bytes[(record.offset as usize + record.len - 256 * lose)..][..256 * lose].fill(0);
    let img = MemDir::new();
    img.put_file(NAME, &bytes);
    img
}

fn open(img: &MemDir) -> BucketFile<MemDir> {
    BucketFile::open(img.clone(), NAME, opts(SyncPolicy::EveryCommit))
        .unwrap()
        .unwrap()
}

fn read_k7_and_added(s: &mut BucketFile<MemDir>) -> (Option<Vec<u8>>, Option<Vec<u8>>) {
    (s.get(b"k7").unwrap(), s.get(b"added").unwrap())
}

/// A power cut can keep part of a record whose sync never returned: it
/// fails its checksums, ends the log, and the previous commit is the
/// newest; the next commit takes its place.
#[test]
fn record_cut_short_ends_the_log() {
    let img = cut_during_last_commit(1);
    let mut s = open(&img);
    assert_eq!(read_k7_and_added(&mut s), (Some(b"old".to_vec()), None));
    assert_eq!(s.check().unwrap(), vec![]);
    s.put(b"after", b"cut").unwrap();
    assert_eq!(s.check().unwrap(), vec![]);
    // Another instance (and a reopen) agree.
    let mut t = open(&img);
    assert_eq!(read_k7_and_added(&mut t), (Some(b"old".to_vec()), None));
    assert_eq!(t.get(b"after").unwrap(), Some(b"cut".to_vec()));
    assert_eq!(t.check().unwrap(), vec![]);
}

/// A record that reached the disk whole but whose stamp did not (the power
/// went right after the sync) is kept.
#[test]
fn complete_record_without_its_stamp_is_kept() {
    let img = cut_during_last_commit(0);
    let mut s = open(&img);
    assert_eq!(
        read_k7_and_added(&mut s),
        (Some(vec![b'n'; 300]), Some(b"new".to_vec()))
    );
    s.put(b"after", b"cut").unwrap();
    assert_eq!(s.check().unwrap(), vec![]);
}

/// A record damaged after it was written (a stamp or a later record
/// follows it) is corruption, reported with the file and the page, not a
/// crash's torn tail to be silently dropped.
#[test]
fn damaged_record_before_intact_ones_is_corruption() {
    let dir = MemDir::new();
    let mut s = BucketFile::open(dir.clone(), NAME, opts(SyncPolicy::EveryCommit))
        .unwrap()
        .unwrap();
    s.put(b"a", b"1").unwrap();
    dir.set_trace(true);
    s.put(b"b", b"2").unwrap();
    let record = dir.take_trace().into_iter().find(|w| w.file == NAME).unwrap();
    for later in [false, true] {
        if later {
            s.put(b"c", b"3").unwrap();
        }
        let mut bytes = dir.file_bytes(NAME).unwrap();
        bytes[record.offset as usize + 40] ^= 4;
        let img = MemDir::new();
        img.put_file(NAME, &bytes);
        let e = BucketFile::open(img, NAME, opts(SyncPolicy::EveryCommit))
            .err()
            .expect("a damaged record must not pass for the end of the log");
        let page = record.offset / 1024;
        assert!(e.is_corruption(), "{e}");
        let m = e.to_string();
        assert!(m.contains(NAME) && m.contains(&format!("page {page}")), "{m}");
    }
}
