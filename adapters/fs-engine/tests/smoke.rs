use kv_fs_engine::testing::MemDir;
use kv_fs_engine::{BucketFile, Options, SyncPolicy};

#[test]
fn smoke() {
    let dir = MemDir::new();
    let opts = Options {
        page_size: 1024,
        sync: SyncPolicy::EveryCommit,
        ..Options::default()
    };
    let mut s = BucketFile::open(dir.clone(), "b.kvfs", opts.clone())
        .unwrap()
        .unwrap();
    assert_eq!(s.get(b"a").unwrap(), None);
    s.put(b"a", b"1").unwrap();
    assert_eq!(s.get(b"a").unwrap(), Some(b"1".to_vec()));
    for i in 0..2000u32 {
        s.put(format!("k{i:05}").as_bytes(), &vec![i as u8; (i % 50) as usize])
            .unwrap();
    }
    let big = vec![9u8; 100_000];
    s.put(b"big", &big).unwrap();
    let long_key = vec![b'x'; 5000];
    s.put(&long_key, b"long").unwrap();
    assert_eq!(s.get(&long_key).unwrap(), Some(b"long".to_vec()));
    assert_eq!(s.get(b"big").unwrap(), Some(big.clone()));
    let p = s.check().unwrap();
    assert!(p.is_empty(), "{p:?}");
    for i in (0..2000u32).step_by(2) {
        assert!(s.delete(format!("k{i:05}").as_bytes()).unwrap());
    }
    let p = s.check().unwrap();
    assert!(p.is_empty(), "{p:?}");
    let keys = s.keys_after(None, 10000).unwrap();
    assert_eq!(keys.len(), 1000 + 3);
    drop(s);
    let mut s = BucketFile::open(dir.clone(), "b.kvfs", opts).unwrap().unwrap();
    assert_eq!(s.get(b"k00001").unwrap(), Some(vec![1u8; 1]));
    assert_eq!(s.get(b"k00002").unwrap(), None);
    println!("{:?}", s.stats().unwrap());
}
