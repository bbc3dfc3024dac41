//! Commit protocol, versions, limits and API semantics.

use kv_fs_engine::testing::MemDir;
use kv_fs_engine::{BucketFile, Error, MAX_KEY_LEN, MAX_VALUE_LEN, Options, SyncPolicy};

fn opts() -> Options {
    Options {
        page_size: 1024,
        ..Options::default()
    }
}

#[test]
fn multi_key_write_is_one_record_one_sync_and_one_stamp() {
    let dir = MemDir::new();
    let mut s = BucketFile::open(dir.clone(), "b.kvfs", opts()).unwrap().unwrap();
    s.put(b"warm", b"up").unwrap();
    let seq = s.commit_seq().unwrap();
    dir.reset_counters();
    dir.set_trace(true);
    s.write(|t| {
        for i in 0..300u32 {
            t.put(format!("key{i}").as_bytes(), &[1u8; 40])?;
        }
        t.put(b"large", &[7u8; 10_000])?;
        t.delete(b"warm")?;
        Ok(())
    })
    .unwrap();
    let c = dir.counters();
    let writes = dir.take_trace();
    // One sync makes the record durable; it is one sequential write into
    // the log ring (pages 2..), and its stamp follows it.
    assert_eq!(c.syncs, 1, "{c:?}");
    let file_writes: Vec<_> = writes.iter().filter(|w| w.file == "b.kvfs").collect();
    let [record, stamp] = file_writes.as_slice() else {
        panic!("a commit writes its record and its stamp: {file_writes:?}");
    };
    assert!(
        record.offset >= 2048 && record.len > 10_000 + 300 * 40,
        "{record:?}"
    );
    assert_eq!(stamp.offset, record.offset + record.len as u64, "{stamp:?}");
    assert_eq!(stamp.len, 256);
    assert_eq!(s.commit_seq().unwrap(), seq + 1);
    assert_eq!(s.get(b"key299").unwrap(), Some(vec![1u8; 40]));
    assert_eq!(s.get(b"large").unwrap(), Some(vec![7u8; 10_000]));
    // delete_many / put_many are single commits as well.
    dir.reset_counters();
    assert_eq!(s.delete_many(&["key1", "key2", "nope"]).unwrap(), 2);
    assert_eq!(dir.counters().syncs, 1);
    assert_eq!(s.commit_seq().unwrap(), seq + 2);
    // Another instance sees both commits at once, from the log.
    let mut other = BucketFile::open(dir.clone(), "b.kvfs", opts()).unwrap().unwrap();
    assert_eq!(other.get(b"key1").unwrap(), None);
    assert_eq!(other.get(b"key3").unwrap(), Some(vec![1u8; 40]));
    assert!(s.check().unwrap().is_empty());
}

/// A transaction too large for the log goes straight into the tree: a
/// checkpoint (pages, sync, checkpoint record, sync).
#[test]
fn transaction_larger_than_half_the_ring_is_a_checkpoint() {
    let dir = MemDir::new();
    let o = Options {
        log_bytes: 16 * 1024,
        ..opts()
    };
    let mut s = BucketFile::open(dir.clone(), "b.kvfs", o.clone())
        .unwrap()
        .unwrap();
    s.put(b"small", b"logged").unwrap();
    let before = s.stats().unwrap();
    assert_eq!(before.log_commits, 1);
    dir.reset_counters();
    s.put(b"big", &[3u8; 9000]).unwrap();
    let after = s.stats().unwrap();
    assert_eq!(after.checkpoint, before.checkpoint + 1);
    assert_eq!(after.log_commits, 0);
    assert_eq!(dir.counters().syncs, 2);
    let mut other = BucketFile::open(dir.clone(), "b.kvfs", o).unwrap().unwrap();
    assert_eq!(other.get(b"big").unwrap(), Some(vec![3u8; 9000]));
    assert_eq!(other.get(b"small").unwrap(), Some(b"logged".to_vec()));
    assert!(other.check().unwrap().is_empty());
}

#[test]
fn durability_none_never_syncs_and_empty_transactions_write_nothing() {
    let dir = MemDir::new();
    let mut s = BucketFile::open(
        dir.clone(),
        "b.kvfs",
        Options {
            sync: SyncPolicy::Never,
            ..opts()
        },
    )
    .unwrap()
    .unwrap();
    dir.reset_counters();
    s.put(b"a", b"1").unwrap();
    assert_eq!(dir.counters().syncs, 0);
    let seq = s.commit_seq().unwrap();
    dir.set_trace(true);
    let v = s.write(|t| t.get(b"a")).unwrap();
    assert_eq!(v, Some(b"1".to_vec()));
    assert!(!s.delete(b"missing").unwrap());
    let bucket_writes = dir
        .take_trace()
        .into_iter()
        .filter(|w| w.file == "b.kvfs")
        .count();
    assert_eq!(
        bucket_writes, 0,
        "read-only transactions must not write the bucket"
    );
    assert_eq!(s.commit_seq().unwrap(), seq);
}

#[test]
fn versions_change_on_every_write() {
    let dir = MemDir::new_untracked();
    let mut s = BucketFile::open(dir, "b.kvfs", opts()).unwrap().unwrap();
    s.put(b"k", b"1").unwrap();
    let v1 = s.get_versioned(b"k").unwrap().unwrap().version;
    s.put(b"other", b"x").unwrap();
    assert_eq!(
        s.get_versioned(b"k").unwrap().unwrap().version,
        v1,
        "unrelated writes keep the version"
    );
    s.put(b"k", b"1").unwrap();
    let v2 = s.get_versioned(b"k").unwrap().unwrap().version;
    assert!(v2 > v1, "rewriting the same value still bumps the version");
    let in_txn = s
        .write(|t| {
            t.put(b"k", b"2")?;
            let found = t.get_versioned(b"k")?.unwrap();
            let ver = found.version;
            assert_eq!(found.value, b"2");
            assert_eq!(ver, t.commit_seq());
            Ok(ver)
        })
        .unwrap();
    let found = s.get_versioned(b"k").unwrap().unwrap();
    assert_eq!((found.value, found.version), (b"2".to_vec(), in_txn));
    // Delete and re-create: version still moves forward.
    s.delete(b"k").unwrap();
    s.put(b"k", b"2").unwrap();
    assert!(s.get_versioned(b"k").unwrap().unwrap().version > in_txn);
}

#[test]
fn key_and_value_limits() {
    let dir = MemDir::new_untracked();
    let mut s = BucketFile::open(
        dir,
        "b.kvfs",
        Options {
            sync: SyncPolicy::Never,
            ..opts()
        },
    )
    .unwrap()
    .unwrap();
    let kmax = vec![0xabu8; MAX_KEY_LEN];
    s.put(&kmax, b"max key").unwrap();
    let mut kmax2 = kmax.clone();
    *kmax2.last_mut().unwrap() = 0xac;
    s.put(&kmax2, b"max key 2").unwrap();
    assert_eq!(s.get(&kmax).unwrap(), Some(b"max key".to_vec()));
    assert_eq!(s.keys_after(None, 10).unwrap(), vec![kmax.clone(), kmax2.clone()]);
    assert_eq!(s.keys_after(Some(&kmax), 10).unwrap(), vec![kmax2.clone()]);
    assert!(matches!(
        s.put(&vec![0u8; MAX_KEY_LEN + 1], b""),
        Err(Error::KeyTooLarge { .. })
    ));
    let vmax: Vec<u8> = (0..MAX_VALUE_LEN).map(|i| (i % 251) as u8).collect();
    s.put(b"huge", &vmax).unwrap();
    assert!(s.get(b"huge").unwrap().unwrap() == vmax);
    assert!(matches!(
        s.put(b"x", &vec![0u8; MAX_VALUE_LEN + 1]),
        Err(Error::ValueTooLarge { .. })
    ));
    s.put(b"", b"empty key").unwrap();
    assert_eq!(s.get(b"").unwrap(), Some(b"empty key".to_vec()));
    assert_eq!(s.keys_after(None, 1).unwrap(), vec![Vec::<u8>::new()]);
    s.delete(b"huge").unwrap();
    assert!(s.check().unwrap().is_empty());
}

#[test]
fn open_missing_without_create_and_garbage_names_file() {
    let dir = MemDir::new_untracked();
    let o = Options {
        create_if_missing: false,
        ..opts()
    };
    assert!(
        BucketFile::open(dir.clone(), "nope.kvfs", o.clone())
            .unwrap()
            .is_none()
    );
    dir.put_file(
        "text.kvfs",
        b"hello, I am a text file and not a store at all................................",
    );
    let e = BucketFile::open(dir.clone(), "text.kvfs", o.clone())
        .err()
        .unwrap();
    assert!(matches!(e, Error::NotAStore { .. }));
    assert!(e.to_string().contains("text.kvfs"), "{e}");
    dir.put_file("empty.kvfs", b"");
    let e = BucketFile::open(dir, "empty.kvfs", o).err().unwrap();
    assert!(e.to_string().contains("empty.kvfs"), "{e}");
    assert!(matches!(
        BucketFile::open(
            MemDir::new(),
            "x",
            Options {
                page_size: 3000,
                ..opts()
            }
        ),
        Err(Error::InvalidOptions(_))
    ));
}

#[test]
fn existing_page_size_wins_and_instances_share_the_file() {
    let dir = MemDir::new_untracked();
    let mut a = BucketFile::open(
        dir.clone(),
        "b.kvfs",
        Options {
            page_size: 2048,
            ..opts()
        },
    )
    .unwrap()
    .unwrap();
    let mut b = BucketFile::open(
        dir.clone(),
        "b.kvfs",
        Options {
            page_size: 8192,
            ..opts()
        },
    )
    .unwrap()
    .unwrap();
    assert_eq!(b.page_size(), 2048);
    a.put(b"x", b"from a").unwrap();
    assert_eq!(b.get(b"x").unwrap(), Some(b"from a".to_vec()));
    b.write(|t| {
        let v = t.get(b"x")?.unwrap();
        t.put(b"x", &[v, b"+b".to_vec()].concat())
    })
    .unwrap();
    assert_eq!(a.get(b"x").unwrap(), Some(b"from a+b".to_vec()));
    let all: Vec<_> = a.iter(1).map(|e| e.unwrap().key).collect();
    assert_eq!(all, vec![b"x".to_vec()]);
}

#[test]
fn stats_account_for_every_page() {
    let dir = MemDir::new_untracked();
    let mut s = BucketFile::open(dir, "b.kvfs", opts()).unwrap().unwrap();
    for r in 0..5u8 {
        s.put_many(
            &(0..100)
                .map(|i| (format!("k{i}"), vec![r; 50 + i]))
                .collect::<Vec<_>>(),
        )
        .unwrap();
    }
    let st = s.stats().unwrap();
    assert_eq!(st.keys, 100);
    assert_eq!(st.pages_used + st.pages_free + st.pages_pending, st.pages_total);
    assert!(st.file_bytes >= st.pages_total * 1024);
    assert_eq!(st.commit_seq, s.commit_seq().unwrap());
    assert!(s.check().unwrap().is_empty());
}

/// The log ring follows the data (a third of the logical size): it moves
/// to a larger ring as the bucket grows and back as it shrinks, and an
/// instance that last looked at an older ring, even one whose pages have
/// been reused since, still sees every commit.
#[test]
fn the_log_ring_grows_and_shrinks_with_the_data() {
    let dir = MemDir::new();
    let o = Options {
        log_bytes: 4096,
        ..opts()
    };
    let open = || {
        BucketFile::open(dir.clone(), "b.kvfs", o.clone())
            .unwrap()
            .unwrap()
    };
    let mut a = open();
    a.put(b"first", b"1").unwrap();
    let mut lagging = open();
    assert_eq!(lagging.get(b"first").unwrap(), Some(b"1".to_vec()));
    let first = a.stats().unwrap();
    assert_eq!(first.log_pages, 4);
    let key = |i: u32| format!("key{i:04}").into_bytes();
    let mut rings = vec![first.log_pages];
    for i in 0..300u32 {
        a.put(&key(i), &[i as u8; 1000]).unwrap();
        let pages = a.stats().unwrap().log_pages;
        if rings.last() != Some(&pages) {
            rings.push(pages);
        }
    }
    assert!(
        rings.len() >= 3,
        "the ring moved only {} times: {rings:?}",
        rings.len() - 1
    );
    assert!(a.check().unwrap().is_empty());
    // The lagging instance followed the first ring; its pages have been
    // reused since. It finds its way to the newest ring.
    assert_eq!(lagging.get(&key(299)).unwrap(), Some(vec![43u8; 1000]));
    assert_eq!(lagging.stats().unwrap().log_pages, *rings.last().unwrap());
    assert_eq!(lagging.keys_after(None, 1000).unwrap().len(), 301);
    // Shrinking: most keys deleted, the ring moves back to a smaller one.
    let big = a.stats().unwrap().log_pages;
    for chunk in (0..290u32).collect::<Vec<_>>().chunks(40) {
        a.delete_many(&chunk.iter().map(|&i| key(i)).collect::<Vec<_>>())
            .unwrap();
    }
    a.checkpoint().unwrap();
    let after = a.stats().unwrap();
    assert!(after.log_pages < big, "{} -> {}", big, after.log_pages);
    assert_eq!(after.keys, 11);
    assert!(a.check().unwrap().is_empty());
    assert_eq!(lagging.keys_after(None, 1000).unwrap().len(), 11);
    assert_eq!(open().get(&key(295)).unwrap(), Some(vec![39u8; 1000]));
}

/// Opening measures the file, then reads the newest checkpoint; a writer
/// may grow the file and publish a checkpoint covering the new pages in
/// between. The file is then fine, not truncated: opening measures again.
#[test]
fn a_file_grown_while_being_opened_is_not_truncated() {
    let dir = MemDir::new();
    let mut s = BucketFile::open(dir.clone(), "b.kvfs", opts()).unwrap().unwrap();
    s.put(b"k", b"v").unwrap();
    let old_len = dir.file_bytes("b.kvfs").unwrap().len() as u64;
    let rows: Vec<(Vec<u8>, Vec<u8>)> = (0..2_000u32)
        .map(|i| (format!("key{i:05}").into_bytes(), vec![1u8; 100]))
        .collect();
    s.put_many(&rows).unwrap();
    s.checkpoint().unwrap();
    assert!(
        dir.file_bytes("b.kvfs").unwrap().len() as u64 > old_len,
        "the file grew"
    );
    dir.report_len_once(old_len);
    let mut o = BucketFile::open(dir.clone(), "b.kvfs", opts())
        .unwrap_or_else(|e| panic!("opening a file grown meanwhile: {e}"))
        .unwrap();
    assert_eq!(o.get(b"key01999").unwrap(), Some(vec![1u8; 100]));
    assert!(o.check().unwrap().is_empty());
}
