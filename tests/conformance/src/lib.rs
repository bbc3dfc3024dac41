//! The conformance guest: a component that imports `wasi:keyvalue` (one
//! build per draft, see `src/bin/`) and checks every rule kv-virt promises,
//! printing one line per check and a closing `N passed, M failed` line.
//!
//! The checks are written once, against [`Kv`]; each binary implements
//! [`Kv`] over its draft's bindings.
//!
//! Usage: `conformance [--max-key-bytes N] [--max-value-bytes N]
//! [--list-page-bytes N]` (the backend's limits, default 64 KiB keys and
//! 64 MiB values; the adapter's list page byte limit, default 1 MiB). The
//! adapter must allow the buckets [`BUCKET`] and [`LIST_BUCKET`] and no
//! bucket named [`DENIED_BUCKET`], and have [`BUCKET`] as its default
//! bucket (`--default-bucket`), which `open("")` and `open("default")` open.

use std::collections::BTreeSet;
use std::fmt::Debug;

pub const BUCKET: &str = "conformance";
pub const LIST_BUCKET: &str = "conformance-list";
pub const DENIED_BUCKET: &str = "not-allowed";

/// A `wasi:keyvalue` error, whichever draft it came from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum KvError {
    NoSuchStore,
    AccessDenied,
    Other(String),
}

pub type KvResult<T> = Result<T, KvError>;

/// The outcome of a compare-and-swap.
pub enum Swap<C> {
    Done,
    /// Conflict: the fresh handle the adapter returned.
    Failed(C),
}

/// One draft's `wasi:keyvalue`, as the checks use it.
pub trait Kv {
    type Bucket;
    type Cursor: Clone + Debug;
    type Cas;
    /// "0.2.0-draft" or "0.2.0-draft2".
    const DRAFT: &'static str;
    /// The largest counter value.
    const COUNTER_MAX: i128;

    fn open(name: &str) -> KvResult<Self::Bucket>;
    fn get(b: &Self::Bucket, key: &str) -> KvResult<Option<Vec<u8>>>;
    fn set(b: &Self::Bucket, key: &str, value: &[u8]) -> KvResult<()>;
    fn delete(b: &Self::Bucket, key: &str) -> KvResult<()>;
    fn exists(b: &Self::Bucket, key: &str) -> KvResult<bool>;
    fn list_keys(
        b: &Self::Bucket,
        cursor: Option<Self::Cursor>,
    ) -> KvResult<(Vec<String>, Option<Self::Cursor>)>;
    /// Cursors no `list-keys` returned.
    fn garbage_cursors() -> Vec<Self::Cursor>;
    fn increment(b: &Self::Bucket, key: &str, delta: i64) -> KvResult<i128>;
    fn get_many(b: &Self::Bucket, keys: &[String]) -> KvResult<Vec<(String, Option<Vec<u8>>)>>;
    fn set_many(b: &Self::Bucket, entries: &[(String, Vec<u8>)]) -> KvResult<()>;
    fn delete_many(b: &Self::Bucket, keys: &[String]) -> KvResult<()>;
    /// `None` when the draft has no CAS (0.2.0-draft).
    fn cas_new(b: &Self::Bucket, key: &str) -> Option<KvResult<Self::Cas>>;
    fn cas_current(cas: &Self::Cas) -> KvResult<Option<Vec<u8>>>;
    fn cas_swap(cas: Self::Cas, value: &[u8]) -> KvResult<Swap<Self::Cas>>;
}

/// The parts of a [`Kv`] implementation both drafts spell the same way:
/// `conversions!()` at module level and `methods!()` inside `impl Kv`, with
/// the draft's `store` and `batch` bindings in scope.
#[macro_export]
macro_rules! same_in_both_drafts {
    (conversions) => {
        fn err(e: store::Error) -> $crate::KvError {
            match e {
                store::Error::NoSuchStore => $crate::KvError::NoSuchStore,
                store::Error::AccessDenied => $crate::KvError::AccessDenied,
                store::Error::Other(message) => $crate::KvError::Other(message),
            }
        }
    };
    (methods) => {
        fn open(name: &str) -> $crate::KvResult<Self::Bucket> {
            store::open(name).map_err(err)
        }
        fn get(b: &Self::Bucket, key: &str) -> $crate::KvResult<Option<Vec<u8>>> {
            b.get(key).map_err(err)
        }
        fn set(b: &Self::Bucket, key: &str, value: &[u8]) -> $crate::KvResult<()> {
            b.set(key, value).map_err(err)
        }
        fn delete(b: &Self::Bucket, key: &str) -> $crate::KvResult<()> {
            b.delete(key).map_err(err)
        }
        fn exists(b: &Self::Bucket, key: &str) -> $crate::KvResult<bool> {
            b.exists(key).map_err(err)
        }
        fn set_many(b: &Self::Bucket, entries: &[(String, Vec<u8>)]) -> $crate::KvResult<()> {
            batch::set_many(b, entries).map_err(err)
        }
        fn delete_many(b: &Self::Bucket, keys: &[String]) -> $crate::KvResult<()> {
            batch::delete_many(b, keys).map_err(err)
        }
    };
}

/// The backend's limits and the adapter's page byte limit, from the command line.
pub struct Limits {
    pub max_key_bytes: usize,
    pub max_value_bytes: usize,
    /// A `list-keys` page stops at this many bytes of keys.
    pub list_page_bytes: usize,
    /// `--bucket-ttl-ms N`: the adapter expires keys this long after their
    /// write; run only the check of that (it waits N ms and more).
    pub bucket_ttl_ms: Option<u64>,
}

impl Limits {
    pub fn from_args() -> Result<Self, String> {
        let mut limits = Limits {
            max_key_bytes: 64 << 10,
            max_value_bytes: 64 << 20,
            list_page_bytes: 1 << 20,
            bucket_ttl_ms: None,
        };
        let mut args = std::env::args().skip(1);
        while let Some(arg) = args.next() {
            let value = args.next().ok_or_else(|| format!("{arg} needs a value"))?;
            let n = value
                .parse()
                .map_err(|_| format!("{arg} {value}: not a number"))?;
            match arg.as_str() {
                "--max-key-bytes" => limits.max_key_bytes = n,
                "--max-value-bytes" => limits.max_value_bytes = n,
                "--list-page-bytes" => limits.list_page_bytes = n,
                "--bucket-ttl-ms" => limits.bucket_ttl_ms = Some(n as u64),
                _ => return Err(format!("unknown argument {arg}")),
            }
        }
        Ok(limits)
    }
}

/// The checks' outcomes, printed as they come: `ok   <name>` or
/// `FAIL <name>: <why>`.
#[derive(Default)]
pub struct Report {
    pub passed: usize,
    pub failed: usize,
}

impl Report {
    pub fn check(&mut self, name: &str, result: Result<(), String>) {
        match result {
            Ok(()) => {
                self.passed += 1;
                println!("ok   {name}");
            }
            Err(why) => {
                self.failed += 1;
                println!("FAIL {name}: {why}");
            }
        }
    }
}

/// `ensure!(cond, "why {}", x)` for checks.
macro_rules! ensure {
    ($cond:expr, $($why:tt)+) => {
        if !$cond {
            return Err(format!($($why)+));
        }
    };
}

fn kv<T>(what: &str, r: KvResult<T>) -> Result<T, String> {
    r.map_err(|e| format!("{what}: unexpected error {e:?}"))
}

fn expect_other<T: Debug>(what: &str, r: KvResult<T>) -> Result<String, String> {
    match r {
        Err(KvError::Other(message)) if !message.is_empty() => Ok(message),
        other => Err(format!("{what}: expected error other(..), got {other:?}")),
    }
}

/// Keys written into a bucket with a ttl are there at once and gone 3 s
/// after the ttl (margins no backend's rounding or a loaded machine can
/// break: etcd's leases are whole seconds); a counter restarts from 0.
fn bucket_ttl<K: Kv>(b: &K::Bucket, ttl_ms: u64) -> Result<(), String> {
    let keys: Vec<String> = ["ttl/set", "ttl/many", "ttl/counter", "ttl/cas"]
        .map(String::from)
        .into();
    kv("delete-many", K::delete_many(b, &keys))?;
    kv("set", K::set(b, &keys[0], b"v"))?;
    kv("set-many", K::set_many(b, &[(keys[1].clone(), b"v".to_vec())]))?;
    ensure!(
        kv("increment", K::increment(b, &keys[2], 5))? == 5,
        "a new counter is not 5"
    );
    // 0.2.0-draft has no CAS: its key is written with set.
    match K::cas_new(b, &keys[3]) {
        Some(cas) => {
            if let Swap::Failed(_) = kv("cas swap", K::cas_swap(kv("cas new", cas)?, b"v"))? {
                return Err("a swap over an absent key failed".into());
            }
        }
        None => kv("set", K::set(b, &keys[3], b"v"))?,
    }
    for key in &keys {
        ensure!(
            kv("exists", K::exists(b, key))?,
            "{key} is not there right after its write"
        );
    }
    std::thread::sleep(std::time::Duration::from_millis(ttl_ms + 3000));
    for key in &keys {
        ensure!(
            kv("get", K::get(b, key))?.is_none(),
            "{key} outlived the bucket ttl"
        );
        ensure!(!kv("exists", K::exists(b, key))?, "exists sees the expired {key}");
    }
    let (listed, _) = kv("list-keys", K::list_keys(b, None))?;
    ensure!(
        !listed.iter().any(|key| key.starts_with("ttl/")),
        "list-keys lists expired keys"
    );
    ensure!(
        kv("increment", K::increment(b, &keys[2], 1))? == 1,
        "an expired counter does not restart from 0"
    );
    kv("delete-many", K::delete_many(b, &keys))
}

/// Runs every check; returns the process exit code.
pub fn run<K: Kv>() -> i32 {
    let limits = match Limits::from_args() {
        Ok(limits) => limits,
        Err(e) => {
            eprintln!("conformance: {e}");
            return 2;
        }
    };
    println!("wasi:keyvalue@{} conformance", K::DRAFT);
    let mut r = Report { passed: 0, failed: 0 };
    let bucket = match K::open(BUCKET) {
        Ok(b) => {
            r.check("open an allowed bucket", Ok(()));
            b
        }
        Err(e) => {
            r.check("open an allowed bucket", Err(format!("{e:?}")));
            println!("{} passed, {} failed", r.passed, r.failed);
            return 1;
        }
    };
    let b = &bucket;
    if let Some(ttl_ms) = limits.bucket_ttl_ms {
        r.check(
            "the bucket ttl-ms expires keys written without one: set, set-many, increment, cas",
            bucket_ttl::<K>(b, ttl_ms),
        );
        println!("{} passed, {} failed", r.passed, r.failed);
        return i32::from(r.failed > 0);
    }
    r.check(
        "open a bucket not on the allow-list is access-denied",
        buckets_denied::<K>(),
    );
    r.check(
        "bucket names that could escape are rejected",
        bad_bucket_names::<K>(),
    );
    r.check(
        "open(\"\") and open(\"default\") open the default bucket",
        default_bucket::<K>(b),
    );
    r.check(
        "missing key: get none, exists false, delete ok",
        missing_key::<K>(b),
    );
    r.check("set, get, overwrite", overwrite::<K>(b));
    r.check("values are bytes: NUL, every byte, empty", binary_values::<K>(b));
    r.check(
        "keys with / % spaces unicode and glob characters",
        odd_keys::<K>(b),
    );
    r.check(
        "another handle on the bucket sees the same data",
        second_handle::<K>(b),
    );
    r.check(
        "the longest key the backend declares; one byte more is an error",
        longest_key::<K>(b, &limits),
    );
    r.check(
        "the largest value the backend declares; one byte more is an error",
        largest_value::<K>(b, &limits),
    );
    r.check("empty key is an error, not a trap", empty_key::<K>(b));
    r.check(
        "list-keys over 2,500 keys returns each key once, in pages",
        list_keys::<K>(),
    );
    r.check(
        "list-keys pages stop at the page byte limit and go on after their last key",
        list_page_bytes::<K>(&limits),
    );
    r.check(
        "a garbage list-keys cursor is an error, not a trap",
        garbage_cursor::<K>(),
    );
    r.check("increment a missing key, then again", increment::<K>(b));
    r.check(
        "increment a non-numeric value is an error",
        increment_non_numeric::<K>(b),
    );
    r.check(
        "increment past the counter range is an error",
        increment_overflow::<K>(b),
    );
    r.check("get-many with missing keys", get_many::<K>(b));
    r.check("set-many and delete-many", set_and_delete_many::<K>(b));
    if K::cas_new(b, "probe").is_some() {
        r.check("cas: swap an unchanged key", cas_swap::<K>(b));
        r.check("cas: conflict returns a fresh handle", cas_conflict::<K>(b));
        r.check(
            "cas: insert on an absent key fails if someone created it",
            cas_insert_race::<K>(b),
        );
    }
    println!("{} passed, {} failed", r.passed, r.failed);
    i32::from(r.failed > 0)
}

fn buckets_denied<K: Kv>() -> Result<(), String> {
    match K::open(DENIED_BUCKET) {
        Err(KvError::AccessDenied) => Ok(()),
        Err(e) => Err(format!("expected access-denied, got {e:?}")),
        Ok(_) => Err("expected access-denied, the bucket opened".into()),
    }
}

fn bad_bucket_names<K: Kv>() -> Result<(), String> {
    for name in [
        "../escape",
        "..",
        "a/b",
        "a\\b",
        "nul\0",
        "new\nline",
        &"n".repeat(129),
    ] {
        match K::open(name) {
            Err(KvError::Other(_)) | Err(KvError::AccessDenied) => {}
            Err(e) => return Err(format!("open({name:?}): expected other(..), got {e:?}")),
            Ok(_) => return Err(format!("open({name:?}) succeeded")),
        }
    }
    Ok(())
}

/// `""` (wasmtime, wasmCloud) and `default` (Spin's default label) are the
/// configured default bucket, here [`BUCKET`].
fn default_bucket<K: Kv>(b: &K::Bucket) -> Result<(), String> {
    let key = "default-bucket/probe";
    for identifier in ["", "default"] {
        let other = kv(&format!("open({identifier:?})"), K::open(identifier))?;
        let by_name = format!("written by name, read through open({identifier:?})");
        kv("set", K::set(b, key, by_name.as_bytes()))?;
        let value = kv("get", K::get(&other, key))?;
        ensure!(
            value.as_deref() == Some(by_name.as_bytes()),
            "open({identifier:?}) is not the default bucket: it reads {value:?}"
        );
        let through = format!("written through open({identifier:?}), read by name");
        kv("set", K::set(&other, key, through.as_bytes()))?;
        let value = kv("get", K::get(b, key))?;
        ensure!(
            value.as_deref() == Some(through.as_bytes()),
            "a write through open({identifier:?}) is not in the default bucket"
        );
    }
    kv("delete", K::delete(b, key))
}

fn missing_key<K: Kv>(b: &K::Bucket) -> Result<(), String> {
    let key = "missing/never-set";
    kv("delete", K::delete(b, key))?;
    ensure!(kv("get", K::get(b, key))?.is_none(), "get returned a value");
    ensure!(!kv("exists", K::exists(b, key))?, "exists returned true");
    kv("delete of a missing key", K::delete(b, key))
}

fn overwrite<K: Kv>(b: &K::Bucket) -> Result<(), String> {
    let key = "overwrite";
    kv("set", K::set(b, key, b"first"))?;
    ensure!(kv("exists", K::exists(b, key))?, "exists is false after set");
    ensure!(
        kv("get", K::get(b, key))?.as_deref() == Some(&b"first"[..]),
        "get after set"
    );
    kv("set", K::set(b, key, b"second value, longer"))?;
    ensure!(
        kv("get", K::get(b, key))?.as_deref() == Some(&b"second value, longer"[..]),
        "get after overwrite"
    );
    kv("set", K::set(b, key, b"3"))?;
    ensure!(
        kv("get", K::get(b, key))?.as_deref() == Some(&b"3"[..]),
        "get after shorter overwrite"
    );
    kv("delete", K::delete(b, key))?;
    ensure!(
        kv("get", K::get(b, key))?.is_none(),
        "get after delete returned a value"
    );
    Ok(())
}

fn binary_values<K: Kv>(b: &K::Bucket) -> Result<(), String> {
    let every_byte: Vec<u8> = (0..=255u8).cycle().take(1000).collect();
    for (key, value) in [
        ("binary/nul", &b"\0\0a\0b\0"[..]),
        ("binary/every-byte", &every_byte[..]),
        ("binary/empty", &b""[..]),
        ("binary/invalid-utf8", &b"\xff\xfe\xc3\x28"[..]),
    ] {
        kv("set", K::set(b, key, value))?;
        let got = kv("get", K::get(b, key))?;
        ensure!(got.as_deref() == Some(value), "{key}: got {got:?}");
    }
    Ok(())
}

const ODD_KEYS: &[&str] = &[
    "a/b/c",
    "/leading/slash",
    "trailing/",
    "100%",
    "%2F%25%00",
    "with space",
    "  spaces  ",
    "ünïcødé ключ 鍵 🔑",
    "glob*?[a-z]{x}",
    "quote\"'`",
    "back\\slash",
    "plus+and&amp=eq",
    "tab\tnew\nline",
    "nul\0in key",
    "..",
    ".",
];

fn odd_keys<K: Kv>(b: &K::Bucket) -> Result<(), String> {
    for (i, key) in ODD_KEYS.iter().enumerate() {
        let value = format!("value {i}");
        kv(&format!("set {key:?}"), K::set(b, key, value.as_bytes()))?;
    }
    for (i, key) in ODD_KEYS.iter().enumerate() {
        let got = kv(&format!("get {key:?}"), K::get(b, key))?;
        ensure!(
            got == Some(format!("value {i}").into_bytes()),
            "get {key:?}: got {got:?}"
        );
        ensure!(kv("exists", K::exists(b, key))?, "exists {key:?} is false");
    }
    for key in ODD_KEYS {
        kv(&format!("delete {key:?}"), K::delete(b, key))?;
        ensure!(
            kv("get", K::get(b, key))?.is_none(),
            "{key:?} still there after delete"
        );
    }
    Ok(())
}

fn second_handle<K: Kv>(b: &K::Bucket) -> Result<(), String> {
    kv("set", K::set(b, "shared", b"seen"))?;
    let other = kv("open again", K::open(BUCKET))?;
    ensure!(
        kv("get", K::get(&other, "shared"))?.as_deref() == Some(&b"seen"[..]),
        "second handle"
    );
    kv("delete", K::delete(&other, "shared"))?;
    ensure!(
        kv("get", K::get(b, "shared"))?.is_none(),
        "delete through one handle not seen by the other"
    );
    Ok(())
}

fn longest_key<K: Kv>(b: &K::Bucket, limits: &Limits) -> Result<(), String> {
    let key = "k".repeat(limits.max_key_bytes);
    kv("set longest key", K::set(b, &key, b"long"))?;
    ensure!(
        kv("get", K::get(b, &key))?.as_deref() == Some(&b"long"[..]),
        "get longest key"
    );
    kv("delete", K::delete(b, &key))?;
    let too_long = "k".repeat(limits.max_key_bytes + 1);
    let message = expect_other("set key over the limit", K::set(b, &too_long, b"x"))?;
    ensure!(
        message.contains("limit"),
        "the error does not name the limit: {message}"
    );
    expect_other("get key over the limit", K::get(b, &too_long))?;
    Ok(())
}

fn largest_value<K: Kv>(b: &K::Bucket, limits: &Limits) -> Result<(), String> {
    let mut value: Vec<u8> = (0..limits.max_value_bytes).map(|i| (i % 251) as u8).collect();
    kv("set largest value", K::set(b, "large", &value))?;
    let got = kv("get", K::get(b, "large"))?;
    ensure!(
        got.as_deref() == Some(&value[..]),
        "largest value did not round-trip"
    );
    drop(got);
    kv("delete", K::delete(b, "large"))?;
    value.push(0);
    let message = expect_other("set value over the limit", K::set(b, "too-large", &value))?;
    ensure!(
        message.contains("limit"),
        "the error does not name the limit: {message}"
    );
    ensure!(
        kv("get", K::get(b, "too-large"))?.is_none(),
        "the rejected value was stored"
    );
    Ok(())
}

fn empty_key<K: Kv>(b: &K::Bucket) -> Result<(), String> {
    expect_other("set empty key", K::set(b, "", b"x"))?;
    Ok(())
}

/// Deletes every key of the bucket (stores may persist between runs).
fn clear<K: Kv>(b: &K::Bucket) -> Result<(), String> {
    loop {
        let (keys, _) = kv("list-keys", K::list_keys(b, None))?;
        if keys.is_empty() {
            return Ok(());
        }
        kv("delete-many", K::delete_many(b, &keys))?;
    }
}

fn list_keys<K: Kv>() -> Result<(), String> {
    let b = &kv("open", K::open(LIST_BUCKET))?;
    clear::<K>(b)?;
    let expected: BTreeSet<String> = (0..2500).map(|i| format!("list/{i:05}/ü %*")).collect();
    let all: Vec<String> = expected.iter().cloned().collect();
    for chunk in all.chunks(500) {
        let entries: Vec<(String, Vec<u8>)> =
            chunk.iter().map(|k| (k.clone(), k.as_bytes().to_vec())).collect();
        kv("set-many", K::set_many(b, &entries))?;
    }
    let mut seen = BTreeSet::new();
    let mut cursor = None;
    let mut pages = 0;
    loop {
        let (keys, next) = kv("list-keys", K::list_keys(b, cursor.clone()))?;
        pages += 1;
        ensure!(pages <= 2500, "more pages than keys: the cursor does not advance");
        for key in keys {
            ensure!(seen.insert(key.clone()), "key {key:?} returned twice");
        }
        match next {
            Some(next) => cursor = Some(next),
            None => break,
        }
    }
    ensure!(
        seen == expected,
        "listed {} keys, expected {}",
        seen.len(),
        expected.len()
    );
    ensure!(pages > 1, "2,500 keys came in one page: pages are not bounded");
    clear::<K>(b)
}

/// Keys of many lengths, together several times the page byte limit (each
/// shorter than a quarter of it, and within the key limit): every page
/// holds at most the limit's bytes, stops only where its next key would not
/// fit, and the next page starts right after it.
fn list_page_bytes<K: Kv>(limits: &Limits) -> Result<(), String> {
    let b = &kv("open", K::open(LIST_BUCKET))?;
    clear::<K>(b)?;
    let longest = (limits.list_page_bytes / 4).min(limits.max_key_bytes).max(64);
    let expected: BTreeSet<String> = (0..40)
        .map(|i| {
            let key = format!("pagebytes/{i:02}/");
            let len = longest - (i * 37) % (longest / 2);
            format!("{key}{}", "x".repeat(len - key.len()))
        })
        .collect();
    let entries: Vec<(String, Vec<u8>)> = expected.iter().map(|k| (k.clone(), b"v".to_vec())).collect();
    kv("set-many", K::set_many(b, &entries))?;
    let mut pages: Vec<Vec<String>> = Vec::new();
    let mut cursor = None;
    loop {
        let (keys, next) = kv("list-keys", K::list_keys(b, cursor.clone()))?;
        pages.push(keys);
        ensure!(
            pages.len() <= 40,
            "more pages than keys: the cursor does not advance"
        );
        match next {
            Some(next) => cursor = Some(next),
            None => break,
        }
    }
    let bytes = |page: &[String]| page.iter().map(String::len).sum::<usize>();
    for (i, page) in pages.iter().enumerate() {
        ensure!(
            page.len() <= 1 || bytes(page) <= limits.list_page_bytes,
            "page {i} holds {} bytes of keys, over the limit of {}",
            bytes(page),
            limits.list_page_bytes
        );
        if let Some(next) = pages.get(i + 1).and_then(|next| next.first()) {
            ensure!(
                bytes(page) + next.len() > limits.list_page_bytes,
                "page {i} ({} bytes) stopped before a key of {} bytes that fits",
                bytes(page),
                next.len()
            );
        }
    }
    let listed: Vec<&String> = pages.iter().flatten().collect();
    let unique: BTreeSet<&String> = listed.iter().copied().collect();
    ensure!(listed.len() == unique.len(), "a key was listed twice");
    ensure!(
        unique == expected.iter().collect(),
        "listed {} keys, expected {}",
        unique.len(),
        expected.len()
    );
    let total: usize = expected.iter().map(String::len).sum();
    ensure!(
        total <= limits.list_page_bytes || pages.len() > 1,
        "{total} bytes of keys came in one page"
    );
    clear::<K>(b)
}

fn garbage_cursor<K: Kv>() -> Result<(), String> {
    let b = &kv("open", K::open(BUCKET))?;
    for cursor in K::garbage_cursors() {
        expect_other(
            &format!("list-keys with cursor {cursor:?}"),
            K::list_keys(b, Some(cursor)),
        )?;
    }
    Ok(())
}

fn increment<K: Kv>(b: &K::Bucket) -> Result<(), String> {
    let key = "counter/plain";
    kv("delete", K::delete(b, key))?;
    ensure!(
        kv("increment", K::increment(b, key, 5))? == 5,
        "increment of a missing key is not the delta"
    );
    ensure!(
        kv("increment", K::increment(b, key, 37))? == 42,
        "second increment"
    );
    let stored = kv("get", K::get(b, key))?;
    ensure!(
        stored.as_deref() == Some(&b"42"[..]),
        "the counter is not stored as decimal text: {stored:?}"
    );
    kv("set", K::set(b, key, b"100"))?;
    ensure!(
        kv("increment", K::increment(b, key, 1))? == 101,
        "increment of a value set as text"
    );
    ensure!(kv("increment", K::increment(b, key, 0))? == 101, "increment by 0");
    Ok(())
}

fn increment_non_numeric<K: Kv>(b: &K::Bucket) -> Result<(), String> {
    let key = "counter/text";
    kv("set", K::set(b, key, b"not a number"))?;
    expect_other("increment of text", K::increment(b, key, 1))?;
    ensure!(
        kv("get", K::get(b, key))?.as_deref() == Some(&b"not a number"[..]),
        "the failed increment changed the value"
    );
    Ok(())
}

fn increment_overflow<K: Kv>(b: &K::Bucket) -> Result<(), String> {
    let key = "counter/max";
    let max = K::COUNTER_MAX.to_string();
    kv("set", K::set(b, key, max.as_bytes()))?;
    ensure!(
        kv("increment by 0", K::increment(b, key, 0))? == K::COUNTER_MAX,
        "increment at the maximum"
    );
    let message = expect_other("increment past the maximum", K::increment(b, key, 1))?;
    ensure!(
        message.contains("overflow"),
        "the error does not say overflow: {message}"
    );
    ensure!(
        kv("get", K::get(b, key))?.as_deref() == Some(max.as_bytes()),
        "the failed increment changed the value"
    );
    Ok(())
}

fn get_many<K: Kv>(b: &K::Bucket) -> Result<(), String> {
    kv("set", K::set(b, "many/a", b"A"))?;
    kv("set", K::set(b, "many/c", b"C"))?;
    kv("delete", K::delete(b, "many/b"))?;
    let keys: Vec<String> = ["many/a", "many/b", "many/c"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    let got = kv("get-many", K::get_many(b, &keys))?;
    let expected = vec![
        ("many/a".to_string(), Some(b"A".to_vec())),
        ("many/b".to_string(), None),
        ("many/c".to_string(), Some(b"C".to_vec())),
    ];
    ensure!(got == expected, "get-many returned {got:?}");
    ensure!(
        kv("get-many of nothing", K::get_many(b, &[]))?.is_empty(),
        "get-many of no keys"
    );
    Ok(())
}

fn set_and_delete_many<K: Kv>(b: &K::Bucket) -> Result<(), String> {
    let entries: Vec<(String, Vec<u8>)> = (0..50)
        .map(|i| (format!("batch/{i}"), vec![i as u8; i]))
        .collect();
    kv("set-many", K::set_many(b, &entries))?;
    for (key, value) in &entries {
        ensure!(
            kv("get", K::get(b, key))?.as_ref() == Some(value),
            "{key} after set-many"
        );
    }
    let keys: Vec<String> = entries.iter().map(|(k, _)| k.clone()).collect();
    let mut with_missing = keys.clone();
    with_missing.push("batch/never-set".into());
    kv("delete-many", K::delete_many(b, &with_missing))?;
    for key in &keys {
        ensure!(!kv("exists", K::exists(b, key))?, "{key} after delete-many");
    }
    expect_other(
        "set-many with an invalid (empty) key",
        K::set_many(
            b,
            &[("batch/ok".into(), b"1".to_vec()), (String::new(), b"2".to_vec())],
        ),
    )?;
    ensure!(
        !kv("exists", K::exists(b, "batch/ok"))?,
        "set-many wrote part of a batch it rejected"
    );
    Ok(())
}

fn cas<K: Kv>(b: &K::Bucket, key: &str) -> Result<K::Cas, String> {
    kv("cas.new", K::cas_new(b, key).ok_or("no cas in this draft")?)
}

fn cas_swap<K: Kv>(b: &K::Bucket) -> Result<(), String> {
    let key = "cas/swap";
    kv("set", K::set(b, key, b"before"))?;
    let handle = cas::<K>(b, key)?;
    ensure!(
        kv("current", K::cas_current(&handle))?.as_deref() == Some(&b"before"[..]),
        "cas.current"
    );
    match kv("swap", K::cas_swap(handle, b"after"))? {
        Swap::Done => {}
        Swap::Failed(_) => return Err("swap of an unchanged key failed".into()),
    }
    ensure!(
        kv("get", K::get(b, key))?.as_deref() == Some(&b"after"[..]),
        "get after swap"
    );
    Ok(())
}

fn cas_conflict<K: Kv>(b: &K::Bucket) -> Result<(), String> {
    let key = "cas/conflict";
    kv("set", K::set(b, key, b"v1"))?;
    let stale = cas::<K>(b, key)?;
    kv("set", K::set(b, key, b"v2 by someone else"))?;
    let fresh = match kv("swap", K::cas_swap(stale, b"mine"))? {
        Swap::Done => return Err("swap succeeded although the key changed".into()),
        Swap::Failed(fresh) => fresh,
    };
    ensure!(
        kv("current", K::cas_current(&fresh))?.as_deref() == Some(&b"v2 by someone else"[..]),
        "the fresh handle does not see the newest value"
    );
    ensure!(
        kv("get", K::get(b, key))?.as_deref() == Some(&b"v2 by someone else"[..]),
        "failed swap wrote"
    );
    match kv("swap", K::cas_swap(fresh, b"mine"))? {
        Swap::Done => {}
        Swap::Failed(_) => return Err("swap through the fresh handle failed".into()),
    }
    ensure!(
        kv("get", K::get(b, key))?.as_deref() == Some(&b"mine"[..]),
        "get after retried swap"
    );
    Ok(())
}

fn cas_insert_race<K: Kv>(b: &K::Bucket) -> Result<(), String> {
    let key = "cas/insert";
    kv("delete", K::delete(b, key))?;
    let handle = cas::<K>(b, key)?;
    ensure!(
        kv("current", K::cas_current(&handle))?.is_none(),
        "current of an absent key"
    );
    kv("set (the creator)", K::set(b, key, b"creator"))?;
    match kv("swap", K::cas_swap(handle, b"mine"))? {
        Swap::Done => return Err("insert through cas succeeded over a key created since".into()),
        Swap::Failed(fresh) => {
            ensure!(
                kv("current", K::cas_current(&fresh))?.as_deref() == Some(&b"creator"[..]),
                "fresh handle"
            );
        }
    }
    ensure!(
        kv("get", K::get(b, key))?.as_deref() == Some(&b"creator"[..]),
        "the creator's value was overwritten"
    );
    // And an insert with nobody racing succeeds.
    kv("delete", K::delete(b, key))?;
    let handle = cas::<K>(b, key)?;
    match kv("swap", K::cas_swap(handle, b"inserted"))? {
        Swap::Done => {}
        Swap::Failed(_) => return Err("insert through cas on an absent key failed".into()),
    }
    ensure!(
        kv("get", K::get(b, key))?.as_deref() == Some(&b"inserted"[..]),
        "get after cas insert"
    );
    Ok(())
}

/// `get-many` as 0.2.0-draft and draft2's 2024 text return it (`none` for
/// a missing key, the key and its value otherwise), as [`Kv::get_many`]
/// wants it; an entry for another key counts as missing.
pub fn entries_by_key(
    keys: &[String],
    entries: Vec<Option<(String, Vec<u8>)>>,
) -> KvResult<Vec<(String, Option<Vec<u8>>)>> {
    if entries.len() != keys.len() {
        return Err(KvError::Other(format!(
            "get-many returned {} entries for {} keys",
            entries.len(),
            keys.len()
        )));
    }
    Ok(keys
        .iter()
        .zip(entries)
        .map(|(key, entry)| (key.clone(), entry.filter(|(k, _)| k == key).map(|(_, v)| v)))
        .collect())
}

/// The [`Kv`] implementation of draft2 but `get_many`, which has two
/// shapes under one version (`wit/README.md`): the conformance guest is
/// built against each (`src/bin/draft2.rs`, `src/bin/draft2_2024.rs`), with
/// the text's `store`, `atomics` and `batch` bindings in scope and
/// `same_in_both_drafts!(conversions)` at module level.
#[macro_export]
macro_rules! draft2_but_get_many {
    () => {
        type Bucket = store::Bucket;
        type Cursor = String;
        type Cas = atomics::Cas;
        const DRAFT: &'static str = "0.2.0-draft2";
        $crate::same_in_both_drafts!(methods);

        const COUNTER_MAX: i128 = i64::MAX as i128;

        fn list_keys(
            b: &Self::Bucket,
            cursor: Option<String>,
        ) -> $crate::KvResult<(Vec<String>, Option<String>)> {
            let response = b.list_keys(cursor.as_deref()).map_err(err)?;
            Ok((response.keys, response.cursor))
        }
        fn garbage_cursors() -> Vec<String> {
            vec![
                "".into(),
                "garbage".into(),
                "kv1.AAAAAAAA".into(),
                "\u{0}".into(),
                "x".repeat(10_000),
            ]
        }
        fn increment(b: &Self::Bucket, key: &str, delta: i64) -> $crate::KvResult<i128> {
            atomics::increment(b, key, delta)
                .map(i128::from)
                .map_err(err)
        }
        fn cas_new(b: &Self::Bucket, key: &str) -> Option<$crate::KvResult<atomics::Cas>> {
            Some(atomics::Cas::new(b, key).map_err(err))
        }
        fn cas_current(cas: &atomics::Cas) -> $crate::KvResult<Option<Vec<u8>>> {
            cas.current().map_err(err)
        }
        fn cas_swap(cas: atomics::Cas, value: &[u8]) -> $crate::KvResult<$crate::Swap<atomics::Cas>> {
            match atomics::swap(cas, value) {
                Ok(()) => Ok($crate::Swap::Done),
                Err(atomics::CasError::CasFailed(fresh)) => Ok($crate::Swap::Failed(fresh)),
                Err(atomics::CasError::StoreError(e)) => Err(err(e)),
            }
        }
    };
}
