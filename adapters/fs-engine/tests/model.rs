//! Model test: random operation sequences checked against a BTreeMap.
//! Small page sizes force deep trees, splits, merges, out-of-line keys
//! (longer than the inline limit) and extents. Some writes expire, and the
//! clock moves: the model drops what expired before every operation.

use std::collections::BTreeMap;
use std::ops::Bound::{Excluded, Unbounded};

use kv_fs_engine::testing::MemDir;
use kv_fs_engine::{BucketFile, Dir as _, Error, Options, SyncPolicy, is_expired};
use proptest::prelude::*;

#[derive(Debug, Clone)]
enum Op {
    Put(u16, u8, u8),
    /// Expiring this many ms from now (0: at once).
    PutExpiring(u16, u8, u8, u8),
    /// Moves the clock.
    Tick(u8),
    /// Keys starting with the first `4 + n % 5` bytes of a key, after one.
    Prefix(u16, u8, Option<u16>, usize),
    Delete(u16),
    Get(u16),
    KeysAfter(Option<u16>, usize),
    Batch(Vec<(u16, Option<(u8, u8)>)>),
    PutRange(u16, u16, u8),
    DeleteRange(u16, u16),
    Abort(Vec<u16>),
    Reopen,
    Check,
    Checkpoint,
}

/// Keys with shared prefixes, a few long ones (out of line at small pages).
fn key(id: u16) -> Vec<u8> {
    let mut k = format!("key/{:04}", id).into_bytes();
    if id.is_multiple_of(17) {
        k.extend(std::iter::repeat_n(b'L', 200 + (id as usize % 5) * 300));
        k.extend(format!("/{id}").bytes());
    } else if id.is_multiple_of(5) {
        k.extend_from_slice(b"/suffix");
    }
    k
}

fn value(class: u8, seed: u8) -> Vec<u8> {
    let len = match class % 6 {
        0 => 0,
        1 => 1 + seed as usize % 20,
        2 => 60 + seed as usize,
        3 => 150 + seed as usize % 90,
        4 => 300 + seed as usize * 7,
        _ => 2000 + seed as usize * 13,
    };
    (0..len)
        .map(|i| seed.wrapping_add(i as u8).wrapping_mul(31))
        .collect()
}

fn op() -> impl Strategy<Value = Op> {
    let id = 0u16..700;
    prop_oneof![
        8 => (id.clone(), any::<u8>(), any::<u8>()).prop_map(|(k, c, s)| Op::Put(k, c, s)),
        4 => (id.clone(), any::<u8>(), any::<u8>(), any::<u8>()).prop_map(|(k, c, s, t)| Op::PutExpiring(k, c, s, t)),
        2 => any::<u8>().prop_map(Op::Tick),
        2 => (id.clone(), any::<u8>(), proptest::option::of(id.clone()), 1usize..60).prop_map(|(k, n, a, l)| Op::Prefix(k, n, a, l)),
        4 => id.clone().prop_map(Op::Delete),
        4 => id.clone().prop_map(Op::Get),
        3 => (proptest::option::of(id.clone()), 1usize..60).prop_map(|(a, l)| Op::KeysAfter(a, l)),
        3 => proptest::collection::vec((id.clone(), proptest::option::of((any::<u8>(), any::<u8>()))), 1..30).prop_map(Op::Batch),
        2 => (id.clone(), 1u16..400, any::<u8>()).prop_map(|(s, n, c)| Op::PutRange(s, n, c)),
        2 => (id.clone(), 1u16..400).prop_map(|(s, n)| Op::DeleteRange(s, n)),
        1 => proptest::collection::vec(id.clone(), 1..10).prop_map(Op::Abort),
        1 => Just(Op::Reopen),
        1 => Just(Op::Check),
        1 => Just(Op::Checkpoint),
    ]
}

/// A value and its expiry.
type Model = BTreeMap<Vec<u8>, (Vec<u8>, Option<u64>)>;

fn check_all(s: &mut BucketFile<MemDir>, model: &Model) {
    let problems = s.check().unwrap();
    assert!(problems.is_empty(), "check: {problems:?}");
    let mut got = Vec::new();
    let mut after: Option<Vec<u8>> = None;
    loop {
        let batch = s.entries_after(after.as_deref(), 37, usize::MAX).unwrap();
        if batch.is_empty() {
            break;
        }
        after = batch.last().map(|e| e.key.clone());
        got.extend(batch.into_iter().map(|e| (e.key, (e.value, e.expires_at))));
    }
    let want: Vec<_> = model.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
    assert!(
        got == want,
        "full scan differs from the model ({} vs {} entries)",
        got.len(),
        want.len()
    );
    // The counts hold expired entries until a checkpoint drops them.
    let (_, expired) = s.expiry_counts().unwrap();
    let st = s.stats().unwrap();
    assert_eq!(st.keys, model.len() as u64 + expired);
    if expired == 0 {
        let logical: usize = model.iter().map(|(k, (v, _))| k.len() + v.len()).sum();
        assert_eq!(st.logical_bytes, logical as u64);
    }
}

fn run(page_size: u32, ops: Vec<Op>) {
    let dir = MemDir::new_untracked();
    // A small log ring (16 cells at 1 KiB pages): commits are logged,
    // folded by checkpoints, wrap around the ring, and larger ones go
    // straight into the tree.
    let opts = Options {
        page_size,
        log_bytes: 4 * page_size,
        sync: SyncPolicy::Never,
        ..Options::default()
    };
    let mut s = BucketFile::open(dir.clone(), "m.kvfs", opts.clone())
        .unwrap()
        .unwrap();
    let mut model = Model::new();
    for op in ops {
        let now = dir.now_millis();
        model.retain(|_, (_, e)| !is_expired(*e, now));
        match op {
            Op::Put(k, c, sd) => {
                let (k, v) = (key(k), value(c, sd));
                s.put(&k, &v).unwrap();
                let seq = s.commit_seq().unwrap();
                let found = s.get_versioned(&k).unwrap().unwrap();
                assert_eq!((&found.value, found.version, found.expires_at), (&v, seq, None));
                model.insert(k, (v, None));
            }
            Op::PutExpiring(k, c, sd, ttl) => {
                let (k, v, at) = (key(k), value(c, sd), now + u64::from(ttl));
                s.put_expiring(&k, &v, Some(at)).unwrap();
                let found = s.get_versioned(&k).unwrap();
                if ttl == 0 {
                    assert_eq!(found, None);
                    model.remove(&k);
                } else {
                    assert_eq!(
                        found.map(|f| (f.value, f.expires_at)),
                        Some((v.clone(), Some(at)))
                    );
                    model.insert(k, (v, Some(at)));
                }
            }
            Op::Tick(ms) => dir.advance_clock(u64::from(ms)),
            Op::Prefix(k, n, a, limit) => {
                let k = key(k);
                let prefix = &k[..4 + usize::from(n) % 5];
                let a = a.map(key);
                let got = s.keys_with_prefix_after(prefix, a.as_deref(), limit).unwrap();
                let want: Vec<Vec<u8>> = model
                    .keys()
                    .filter(|k| k.starts_with(prefix) && a.as_ref().is_none_or(|a| *k > a))
                    .take(limit)
                    .cloned()
                    .collect();
                assert_eq!(got, want, "prefix {prefix:?} after {a:?}");
            }
            Op::Delete(k) => {
                let k = key(k);
                assert_eq!(s.delete(&k).unwrap(), model.remove(&k).is_some());
            }
            Op::Get(k) => {
                let k = key(k);
                assert_eq!(s.get(&k).unwrap(), model.get(&k).map(|(v, _)| v.clone()));
            }
            Op::KeysAfter(a, limit) => {
                let a = a.map(key);
                let got = s.keys_after(a.as_deref(), limit).unwrap();
                let want: Vec<Vec<u8>> = match &a {
                    Some(a) => model
                        .range::<Vec<u8>, _>((Excluded(a), Unbounded))
                        .take(limit)
                        .map(|(k, _)| k.clone())
                        .collect(),
                    None => model.keys().take(limit).cloned().collect(),
                };
                assert_eq!(got, want);
            }
            Op::Batch(items) => {
                let mut m2 = model.clone();
                s.write(|t| {
                    for (k, v) in &items {
                        let k = key(*k);
                        match v {
                            Some((c, sd)) => {
                                let v = value(*c, *sd);
                                t.put(&k, &v)?;
                                m2.insert(k.clone(), (v, None));
                            }
                            None => {
                                assert_eq!(t.delete(&k)?, m2.remove(&k).is_some());
                            }
                        }
                        // Read-your-writes inside the transaction.
                        assert_eq!(t.get(&k)?, m2.get(&k).map(|(v, _)| v.clone()));
                    }
                    let first = t.keys_after(None, 5)?;
                    let want: Vec<_> = m2.keys().take(5).cloned().collect();
                    assert_eq!(first, want);
                    Ok(())
                })
                .unwrap();
                model = m2;
            }
            Op::PutRange(start, n, c) => {
                s.write(|t| {
                    for id in start..start.saturating_add(n).min(700) {
                        let v = value(c, id as u8);
                        t.put(&key(id), &v)?;
                        model.insert(key(id), (v, None));
                    }
                    Ok(())
                })
                .unwrap();
            }
            Op::DeleteRange(start, n) => {
                let removed = s
                    .write(|t| {
                        let mut r = 0;
                        for id in start..start.saturating_add(n).min(700) {
                            r += usize::from(t.delete(&key(id))?);
                        }
                        Ok(r)
                    })
                    .unwrap();
                let mut want = 0;
                for id in start..start.saturating_add(n).min(700) {
                    want += usize::from(model.remove(&key(id)).is_some());
                }
                assert_eq!(removed, want);
            }
            Op::Abort(ids) => {
                let before = s.commit_seq().unwrap();
                let r: Result<(), Error> = s.write(|t| {
                    for id in &ids {
                        t.put(&key(*id), &value(5, 3))?;
                        t.delete(&key(id.wrapping_add(1)))?;
                    }
                    Err(Error::Aborted("test".into()))
                });
                assert!(matches!(r, Err(Error::Aborted(_))));
                assert_eq!(
                    s.commit_seq().unwrap(),
                    before,
                    "an aborted transaction committed"
                );
            }
            Op::Reopen => {
                drop(s);
                s = BucketFile::open(dir.clone(), "m.kvfs", opts.clone())
                    .unwrap()
                    .unwrap();
            }
            Op::Check => check_all(&mut s, &model),
            Op::Checkpoint => {
                s.checkpoint().unwrap();
                assert_eq!(s.stats().unwrap().log_commits, 0);
            }
        }
    }
    let now = dir.now_millis();
    model.retain(|_, (_, e)| !is_expired(*e, now));
    check_all(&mut s, &model);
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 40, max_shrink_iters: 200, .. ProptestConfig::default() })]

    #[test]
    fn model_small_pages(ops in proptest::collection::vec(op(), 1..45)) {
        run(1024, ops);
    }

    #[test]
    fn model_default_pages(ops in proptest::collection::vec(op(), 1..30)) {
        run(4096, ops);
    }
}

/// Deterministic deep-tree workout: grow to depth >= 4 at 1 KiB pages,
/// shrink back to empty, checking everything on the way.
#[test]
fn grow_and_shrink_deep_tree() {
    let dir = MemDir::new_untracked();
    let opts = Options {
        page_size: 1024,
        log_bytes: 8192,
        sync: SyncPolicy::Never,
        ..Options::default()
    };
    let mut s = BucketFile::open(dir.clone(), "d.kvfs", opts).unwrap().unwrap();
    let mut model = Model::new();
    let n = 6000u32;
    // Interleaved order so splits happen in the middle too.
    for chunk in (0..n).collect::<Vec<_>>().chunks(500) {
        s.write(|t| {
            for &i in chunk {
                let j = (i * 7919) % n;
                // A long shared prefix makes separators long: low fanout, deep tree.
                let k = format!(
                    "{}/{:08}-{}",
                    "shared-prefix".repeat(9),
                    j,
                    "p".repeat((j % 40) as usize)
                )
                .into_bytes();
                let v = vec![(j % 251) as u8; (j % 90) as usize];
                t.put(&k, &v)?;
                model.insert(k, (v, None));
            }
            Ok(())
        })
        .unwrap();
    }
    assert!(s.stats().unwrap().depth >= 4, "{:?}", s.stats().unwrap());
    check_all(&mut s, &model);
    let keys: Vec<Vec<u8>> = model.keys().cloned().collect();
    for (round, chunk) in keys.chunks(700).enumerate() {
        s.write(|t| {
            for k in chunk {
                assert!(t.delete(k)?);
            }
            Ok(())
        })
        .unwrap();
        for k in chunk {
            model.remove(k);
        }
        if round % 3 == 0 {
            check_all(&mut s, &model);
        }
    }
    check_all(&mut s, &model);
    s.checkpoint().unwrap();
    let st = s.stats().unwrap();
    assert_eq!(st.keys, 0);
    assert_eq!(st.depth, 0);
}
