//! Version-1 files (before the commit log) and version-2 files (before
//! expiring entries) are refused with a message naming the conversion,
//! and `upgrade` converts them.
//!
//! `tests/data/v1-1k.kvfs` was written by the version-1 engine (1 KiB
//! pages, three transactions of 150 puts, a long key, a 5,000-byte value
//! and a delete each); `v2-1k.kvfs` by the version-2 engine (1 KiB pages,
//! a 16 KiB log ring, four transactions of 150 puts, a counter, a long key,
//! a 5,000-byte value and a delete each, then three commits left in its
//! log). `*.entries` list what they held, one `hex(key) hex(value)` line
//! per key in order.

use std::path::Path;

use kv_fs_engine::testing::MemDir;
use kv_fs_engine::{BucketFile, Error, Options, upgrade};

fn data(name: &str) -> Vec<u8> {
    std::fs::read(
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/data")
            .join(name),
    )
    .unwrap()
}

fn unhex(s: &str) -> Vec<u8> {
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect()
}

#[test]
fn version_1_is_refused_then_upgraded_in_place() {
    refused_then_upgraded_in_place("v1-1k");
}

#[test]
fn version_2_is_refused_then_upgraded_in_place() {
    refused_then_upgraded_in_place("v2-1k");
}

/// The old file `tests/data/<old>.kvfs` is refused, then upgraded: it
/// reads back as `<old>.entries` and takes writes (expiring ones too).
fn refused_then_upgraded_in_place(old: &str) {
    let dir = MemDir::new();
    dir.put_file("old.kvfs", &data(&format!("{old}.kvfs")));
    let e = BucketFile::open(dir.clone(), "old.kvfs", Options::default())
        .err()
        .expect("an old file must be refused");
    assert!(matches!(e, Error::UnsupportedFormat { .. }), "{e}");
    let m = e.to_string();
    assert!(m.contains("old.kvfs") && m.contains("kv-virt fs upgrade"), "{m}");

    let keys = upgrade(&dir, "old.kvfs", Options::default()).unwrap();
    let want: Vec<(Vec<u8>, Vec<u8>)> = String::from_utf8(data(&format!("{old}.entries")))
        .unwrap()
        .lines()
        .map(|l| {
            let (k, v) = l.split_once(' ').unwrap();
            (unhex(k), unhex(v))
        })
        .collect();
    assert_eq!(keys, want.len() as u64);
    let mut s = BucketFile::open(dir.clone(), "old.kvfs", Options::default())
        .unwrap()
        .unwrap();
    assert_eq!(s.page_size(), 1024, "the page size is kept");
    let got: Vec<(Vec<u8>, Vec<u8>)> = s.iter(64).map(|e| e.map(|e| (e.key, e.value)).unwrap()).collect();
    assert_eq!(got, want);
    assert!(s.check().unwrap().is_empty());
    assert_eq!(
        s.stats().unwrap().log_commits,
        0,
        "the upgrade leaves an empty log"
    );
    s.put(b"after", b"upgrade").unwrap();
    s.put_expiring(b"expiring", b"x", Some(u64::MAX)).unwrap();
    assert_eq!(
        s.get_versioned(b"expiring").unwrap().unwrap().expires_at,
        Some(u64::MAX)
    );
    s.release_lock();
    assert_eq!(
        dir.list(),
        vec!["old.kvfs".to_string()],
        "no temporary file is left"
    );
    // A file of this format is not upgraded again.
    let e = upgrade(&dir, "old.kvfs", Options::default()).unwrap_err();
    assert!(matches!(e, Error::UnsupportedFormat { .. }), "{e}");
    assert!(e.to_string().contains("already format version 3"), "{e}");
}

/// A damaged version-1 file is reported, and left as it was.
#[test]
fn damaged_version_1_file_is_an_error_and_stays() {
    let mut bytes = data("v1-1k.kvfs");
    for page in 3..bytes.len() / 1024 {
        bytes[page * 1024 + 100] ^= 0x5a;
    }
    let dir = MemDir::new();
    dir.put_file("old.kvfs", &bytes);
    let e = upgrade(&dir, "old.kvfs", Options::default()).unwrap_err();
    assert!(e.is_corruption() && e.to_string().contains("old.kvfs"), "{e}");
    assert_eq!(dir.file_bytes("old.kvfs").unwrap(), bytes);
    assert_eq!(dir.list(), vec!["old.kvfs".to_string()]);
}
