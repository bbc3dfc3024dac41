//! Corruption: damaged, truncated and garbage files must produce an
//! `Error` naming the file (or `check()` problems), never a panic.

use std::path::PathBuf;

use kv_fs_engine::testing::{MemDir, Rng, set_checksum_verification};
use kv_fs_engine::{BucketFile, Error, Options, SyncPolicy, fuzz_open_and_read};
use proptest::prelude::*;

const NAME: &str = "damaged.kvfs";

/// A small log ring (8 KiB), so that the bucket files hold checkpoints, logged
/// commits and records that went straight into the tree.
fn opts() -> Options {
    Options {
        log_bytes: 8192,
        create_if_missing: false,
        sync: SyncPolicy::Never,
        lock_lease_millis: 10,
        lock_wait_millis: 100,
        max_read_retries: 3,
        ..Options::default()
    }
}

/// A small but feature-complete bucket file: several levels, long keys, extents,
/// a free tree and freed lists, and commits in the log.
fn build(page_size: u32, seed: u64) -> Vec<u8> {
    build_sized(page_size, seed, 4, 120)
}

fn build_sized(page_size: u32, seed: u64, rounds: u64, per_round: u64) -> Vec<u8> {
    let dir = MemDir::new_untracked();
    let o = Options {
        page_size,
        create_if_missing: true,
        ..opts()
    };
    let mut s = BucketFile::open(dir.clone(), NAME, o).unwrap().unwrap();
    let mut r = Rng::new(seed);
    for round in 0..rounds {
        s.write(|t| {
            for i in 0..per_round {
                let mut k = format!("key{:04}", (i * 37 + round) % 150).into_bytes();
                if i % 23 == 0 {
                    k.extend(std::iter::repeat_n(b'~', page_size as usize / 3));
                }
                let len = if i % 19 == 0 {
                    2 * page_size as usize
                } else {
                    r.below(60) as usize
                };
                // Some entries expire, far in the future: the files hold
                // expiries in leaves and log records.
                let expires = (i % 5 == 0).then_some(u64::MAX - i);
                t.put_expiring(&k, &r.bytes(len), expires)?;
            }
            for i in 0..20u64 {
                t.delete(format!("key{:04}", (i * 11 + round * 3) % 150).as_bytes())?;
            }
            Ok(())
        })
        .unwrap();
    }
    // A few commits that stay in the log.
    for i in 0..3u64 {
        s.put(format!("key{:04}", i * 5).as_bytes(), &r.bytes(40))
            .unwrap();
    }
    assert!(s.stats().unwrap().log_commits > 0);
    assert!(s.check().unwrap().is_empty());
    dir.file_bytes(NAME).unwrap()
}

fn assert_names_file(e: &Error) {
    let m = e.to_string();
    assert!(m.contains(NAME), "error does not name the file: {m}");
}

/// Opens and reads everything; returns whether any error/problem appeared.
fn exercise(bytes: &[u8]) -> bool {
    let dir = MemDir::new_untracked();
    dir.put_file(NAME, bytes);
    let mut s = match BucketFile::open(dir, NAME, opts()) {
        Ok(Some(s)) => s,
        Ok(None) => panic!("file vanished"),
        Err(e) => {
            assert_names_file(&e);
            return true;
        }
    };
    let mut bad = false;
    fn note_in(bad: &mut bool, r: Result<(), Error>) {
        if let Err(e) = r {
            assert_names_file(&e);
            *bad = true;
        }
    }
    macro_rules! note {
        ($e:expr) => {
            note_in(&mut bad, $e)
        };
    }
    note!(s.stats().map(|_| ()));
    match s.check() {
        Ok(p) => bad |= !p.is_empty(),
        Err(e) => note!(Err(e)),
    }
    let mut after: Option<Vec<u8>> = None;
    for _ in 0..100 {
        match s.entries_after(after.as_deref(), 50, usize::MAX) {
            Ok(v) if v.is_empty() => break,
            Ok(v) => {
                for e in &v {
                    note!(s.get(&e.key).map(|_| ()));
                }
                after = v.last().map(|e| e.key.clone());
            }
            Err(e) => {
                note!(Err(e));
                break;
            }
        }
    }
    note!(s.write(|t| {
        t.put(b"key0001", b"new")?;
        t.delete(b"key0002")?;
        t.put(b"big", &[5u8; 5000])?;
        Ok(())
    }));
    if let Ok(p) = s.check() {
        bad |= !p.is_empty();
    }
    bad
}

#[derive(Debug, Clone)]
enum Mutation {
    Flip(u64, u8),
    Truncate(u64),
    Garbage(u64, Vec<u8>),
    ZeroPage(u64),
}

fn mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        6 => (any::<u64>(), 1u8..=255).prop_map(|(o, x)| Mutation::Flip(o, x)),
        1 => any::<u64>().prop_map(Mutation::Truncate),
        2 => (any::<u64>(), proptest::collection::vec(any::<u8>(), 1..64)).prop_map(|(o, g)| Mutation::Garbage(o, g)),
        1 => any::<u64>().prop_map(Mutation::ZeroPage),
    ]
}

fn mutate(mut b: Vec<u8>, ms: &[Mutation], page: usize) -> Vec<u8> {
    for m in ms {
        if b.is_empty() {
            break;
        }
        let len = b.len() as u64;
        match m {
            Mutation::Flip(o, x) => b[(o % len) as usize] ^= x,
            Mutation::Truncate(o) => b.truncate((o % len) as usize),
            Mutation::Garbage(o, g) => {
                let at = (o % len) as usize;
                let n = g.len().min(b.len() - at);
                b[at..at + n].copy_from_slice(&g[..n]);
            }
            Mutation::ZeroPage(o) => {
                let p = (o % len) as usize / page * page;
                let end = (p + page).min(b.len());
                b[p..end].fill(0);
            }
        }
    }
    b
}

thread_local! {
    static BASE_1K: Vec<u8> = build(1024, 1);
    static BASE_4K: Vec<u8> = build(4096, 2);
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 200, .. ProptestConfig::default() })]

    /// Checksums on: damage is detected and reported.
    #[test]
    fn mutated_store_never_panics(ms in proptest::collection::vec(mutation(), 1..4), big in any::<bool>()) {
        set_checksum_verification(true);
        let (b, page) = if big { (BASE_4K.with(|b| b.clone()), 4096) } else { (BASE_1K.with(|b| b.clone()), 1024) };
        let m = mutate(b, &ms, page);
        exercise(&m);
    }

    /// Checksums off: the structural validation alone must keep every
    /// parser, the allocator and the checker panic-free on arbitrary pages.
    #[test]
    fn mutated_store_without_checksums_never_panics(ms in proptest::collection::vec(mutation(), 1..6)) {
        set_checksum_verification(false);
        let b = BASE_1K.with(|b| b.clone());
        let m = mutate(b, &ms, 1024);
        let r = std::panic::catch_unwind(|| exercise(&m));
        set_checksum_verification(true);
        prop_assert!(r.is_ok(), "panic on mutations {:?}", ms);
    }
}

/// Reads everything; `None` if any error or check problem was reported.
type Entries = Vec<(Vec<u8>, Vec<u8>, u64)>;

fn read_clean(bytes: &[u8]) -> Option<Entries> {
    let dir = MemDir::new_untracked();
    dir.put_file(NAME, bytes);
    let mut s = BucketFile::open(dir, NAME, opts()).ok()??;
    if !s.check().ok()?.is_empty() {
        return None;
    }
    let mut out = Vec::new();
    for e in s.iter(64) {
        let e = e.ok()?;
        out.push((e.key, e.value, e.version));
    }
    Some(out)
}

/// Every single-bit flip anywhere in the file is either detected (error
/// or check problem) or harmless (it hit unused bytes: free or recently
/// freed pages, padding, the older checkpoint record, log cells of earlier
/// laps): never silent.
#[test]
fn single_bit_flips_are_detected_or_harmless() {
    set_checksum_verification(true);
    let base = BASE_1K.with(|b| b.clone());
    let want = read_clean(&base).expect("base bucket file is clean");
    let mut r = Rng::new(99);
    let (mut detected, mut harmless) = (0, 0);
    for i in 0..400 {
        let mut b = base.clone();
        let at = if i < 100 {
            i * 7 % 3072
        } else {
            r.below(b.len() as u64) as usize
        };
        b[at] ^= 1 << r.below(8);
        match read_clean(&b) {
            None => detected += 1,
            Some(got) => {
                assert!(
                    got == want,
                    "silent corruption: bit flip at byte {at} changed the data without an error"
                );
                harmless += 1;
            }
        }
        exercise(&b);
    }
    assert!(
        detected > 100 && harmless > 0,
        "detected {detected}, harmless {harmless}"
    );
}

#[test]
fn truncated_and_garbage_files_are_errors() {
    let base = BASE_1K.with(|b| b.clone());
    for cut in [
        0usize,
        1,
        7,
        63,
        64,
        100,
        1024,
        2048,
        3071,
        3072,
        5000,
        base.len() - 1,
    ] {
        let dir = MemDir::new_untracked();
        dir.put_file(NAME, &base[..cut.min(base.len())]);
        match BucketFile::open(dir, NAME, opts()) {
            Err(e) => assert_names_file(&e),
            Ok(Some(mut s)) => {
                // Open reads only the header and commit records; the damage
                // shows up as soon as the missing pages are needed.
                let r = s
                    .keys_after(None, 10_000)
                    .map(|_| ())
                    .and_then(|_| s.check().map(|p| assert!(!p.is_empty())));
                if let Err(e) = r {
                    assert_names_file(&e);
                }
            }
            Ok(None) => panic!(),
        }
    }
    let mut r = Rng::new(5);
    for len in [1usize, 64, 1000, 4096, 100_000] {
        let dir = MemDir::new_untracked();
        dir.put_file(NAME, &r.bytes(len));
        let e = BucketFile::open(dir, NAME, opts())
            .err()
            .expect("garbage must not open");
        assert_names_file(&e);
        assert!(e.is_corruption(), "{e}");
    }
    // Right magic, wrong everything else.
    let mut b = base.clone();
    b[12] = 3; // page size field
    let dir = MemDir::new_untracked();
    dir.put_file(NAME, &b);
    let e = BucketFile::open(dir, NAME, opts()).err().unwrap();
    assert!(
        e.to_string().contains(NAME) && e.to_string().contains("checksum"),
        "{e}"
    );
}

#[test]
fn newer_and_older_format_versions_are_refused() {
    for (version, says) in [
        (4u32, "newer"),
        (1, "kv-virt fs upgrade"),
        (2, "kv-virt fs upgrade"),
    ] {
        let mut b = BASE_1K.with(|b| b.clone());
        b[8..12].copy_from_slice(&version.to_le_bytes());
        let crc = crc32c::crc32c(&b[..60]);
        b[60..64].copy_from_slice(&crc.to_le_bytes());
        let dir = MemDir::new_untracked();
        dir.put_file(NAME, &b);
        let e = BucketFile::open(dir, NAME, opts()).err().unwrap();
        assert!(matches!(e, Error::UnsupportedFormat { .. }), "{e}");
        assert!(e.to_string().contains(says), "{e}");
        assert_names_file(&e);
    }
    // Unknown read-only-compatible feature: readable, not writable.
    let mut b = BASE_1K.with(|b| b.clone());
    b[24] = 0x80;
    let crc = crc32c::crc32c(&b[..60]);
    b[60..64].copy_from_slice(&crc.to_le_bytes());
    let dir = MemDir::new_untracked();
    dir.put_file(NAME, &b);
    let mut s = BucketFile::open(dir, NAME, opts()).unwrap().unwrap();
    assert!(!s.keys_after(None, 5).unwrap().is_empty());
    assert!(matches!(s.put(b"x", b"y"), Err(Error::ReadOnly { .. })));
}

/// The newest checkpoint record torn: the older one is used, and the log
/// after it (still in the ring) brings back every commit.
#[test]
fn torn_newest_checkpoint_record_falls_back_to_the_previous_one() {
    let dir = MemDir::new_untracked();
    let o = Options {
        page_size: 1024,
        create_if_missing: true,
        ..opts()
    };
    let mut s = BucketFile::open(dir.clone(), NAME, o).unwrap().unwrap();
    s.put(b"a", b"1").unwrap();
    s.checkpoint().unwrap();
    s.put(b"a", b"2").unwrap();
    s.checkpoint().unwrap();
    let st = s.stats().unwrap();
    let mut b = dir.file_bytes(NAME).unwrap();
    let slot = (st.checkpoint % 2) as usize;
    b[1024 + 512 * slot + 100] ^= 0xff; // tear the newest record
    let d2 = MemDir::new_untracked();
    d2.put_file(NAME, &b);
    let mut s2 = BucketFile::open(d2, NAME, opts()).unwrap().unwrap();
    let st2 = s2.stats().unwrap();
    assert_eq!(st2.checkpoint, st.checkpoint - 1);
    assert_eq!(st2.commit_seq, st.commit_seq);
    assert_eq!(s2.get(b"a").unwrap(), Some(b"2".to_vec()));
    assert!(s2.check().unwrap().is_empty());
    // Both records torn: an error naming the file.
    b[1024 + 512 * (1 - slot) + 20] ^= 0xff;
    let d3 = MemDir::new_untracked();
    d3.put_file(NAME, &b);
    let e = BucketFile::open(d3, NAME, opts()).err().unwrap();
    assert!(e.is_corruption());
    assert_names_file(&e);
}

fn corpus_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("fuzz/corpus/open_read")
}

/// The fuzz corpus (valid small bucket files, and the inputs that crashed the
/// fuzzer once: `crash-*`) goes through the fuzz entry point, with
/// checksums enforced and, as under the fuzzer, not; the valid seeds open
/// cleanly as bucket files.
#[test]
fn fuzz_corpus_seeds() {
    let mut n = 0;
    for e in std::fs::read_dir(corpus_dir()).expect("fuzz/corpus/open_read missing") {
        let p = e.unwrap().path();
        let bytes = std::fs::read(&p).unwrap();
        fuzz_open_and_read(&bytes);
        set_checksum_verification(false);
        let r = std::panic::catch_unwind(|| fuzz_open_and_read(&bytes));
        set_checksum_verification(true);
        assert!(r.is_ok(), "seed {p:?} panics without checksums");
        if p.file_name().unwrap().to_string_lossy().starts_with("valid-") {
            assert!(!exercise(&bytes), "seed {p:?} is not a clean bucket file");
        }
        n += 1;
    }
    assert!(n >= 3, "corpus has only {n} seeds");
    // And a few hostile inputs.
    fuzz_open_and_read(&[]);
    fuzz_open_and_read(b"\x89KVFS\r\n\x1a");
    fuzz_open_and_read(&BASE_1K.with(|b| b[..3000].to_vec()));
}

/// Regenerates the corpus seeds: `cargo test -p kv-fs-engine --test
/// corruption -- --ignored regenerate_fuzz_corpus`.
#[test]
#[ignore]
fn regenerate_fuzz_corpus() {
    let d = corpus_dir();
    std::fs::create_dir_all(&d).unwrap();
    std::fs::write(d.join("valid-1k-small"), build_sized(1024, 7, 2, 40)).unwrap();
    std::fs::write(d.join("valid-4k-small"), build_sized(4096, 8, 2, 30)).unwrap();
    let dir = MemDir::new_untracked();
    let o = Options {
        page_size: 1024,
        create_if_missing: true,
        ..opts()
    };
    BucketFile::open(dir.clone(), NAME, o).unwrap().unwrap();
    std::fs::write(d.join("valid-1k-empty"), dir.file_bytes(NAME).unwrap()).unwrap();
    let mut b = build_sized(1024, 9, 2, 40);
    b[5000] ^= 0x55;
    std::fs::write(d.join("damaged-1k-flip"), b).unwrap();
}
