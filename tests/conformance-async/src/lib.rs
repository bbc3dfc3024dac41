//! The WASI 0.3 conformance guest: a `wasi:cli/run@0.3.0` command that
//! imports Spin's async `spin:key-value@3.0.0` (spin-sdk 6 and 7),
//! wasmCloud's async `wasmcloud:keyvalue@0.2.0`, and `wasi:keyvalue` draft2
//! beside them (as spin-sdk 7's experimental world does), and checks what
//! kv-virt promises of each, printing one line per check and a closing
//! `N passed, M failed` line.
//!
//! Usage and buckets as the draft guests' (`tests/conformance`): `[--max-key-bytes
//! N] [--max-value-bytes N] [--list-page-bytes N]`; the adapter allows
//! `conformance` (its default bucket) and `conformance-list`, and not
//! `not-allowed`.

use std::collections::BTreeSet;
use std::future::Future;

use kv_conformance::Limits;

wit_bindgen::generate!({
    path: "../../wit",
    world: "kv-virt:adapters/conformance-async",
    generate_all,
});

use spin::key_value::key_value as spin3;
use wasi::keyvalue0_2_0_draft2 as draft2;
use wasmcloud::keyvalue::{atomics, batch, cas, store, types};

const BUCKET: &str = "conformance";
const LIST_BUCKET: &str = "conformance-list";
const DENIED_BUCKET: &str = "not-allowed";

/// The checks' outcomes, printed as they come (the draft guests' report).
#[derive(Default)]
struct Report(kv_conformance::Report);

impl Report {
    async fn check(&mut self, name: &str, check: impl Future<Output = Result<(), String>>) {
        self.0.check(name, check.await);
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

/// An unexpected error, as a check's failure.
fn ok<T, E: std::fmt::Debug>(what: &str, result: Result<T, E>) -> Result<T, String> {
    result.map_err(|e| format!("{what}: unexpected error {e:?}"))
}

struct Conformance;

impl exports::wasi::cli0_3_0::run::Guest for Conformance {
    async fn run() -> Result<(), ()> {
        let limits = match Limits::from_args() {
            Ok(limits) => limits,
            Err(e) => {
                eprintln!("conformance-async: {e}");
                return Err(());
            }
        };
        println!("spin:key-value@3.0.0 and wasmcloud:keyvalue@0.2.0 conformance");
        let mut r = Report::default();
        let l = &limits;
        r.check(
            "spin3: open(\"default\") is the default bucket; a label off the allow-list is access-denied",
            spin_open(),
        )
        .await;
        r.check(
            "spin3: missing key, set, get, overwrite, exists, delete",
            spin_basics(),
        )
        .await;
        r.check(
            "spin3: keys and values at the backend's limits; one byte more is other(..)",
            spin_limits(l),
        )
        .await;
        r.check(
            "spin3: get-keys streams every key of a 2,500-key bucket once",
            spin_get_keys(),
        )
        .await;
        r.check(
            "spin3: an app may drop the get-keys stream early",
            spin_get_keys_dropped(),
        )
        .await;
        r.check(
            "wasmcloud: open(\"\") is the default bucket; access-denied; a bad name is invalid-argument",
            wasmcloud_open(),
        )
        .await;
        r.check(
            "wasmcloud: missing key, set, get, overwrite, exists, delete",
            wasmcloud_basics(),
        )
        .await;
        r.check(
            "wasmcloud: an empty or over-limit key or value is invalid-argument",
            wasmcloud_limits(l),
        )
        .await;
        r.check(
            "wasmcloud: set with if-not-exists writes only an absent key",
            wasmcloud_if_not_exists(),
        )
        .await;
        r.check(
            "wasmcloud: set with ttl-ms: there until it expires, then absent to get, exists, list-keys, cas, increment and if-not-exists",
            wasmcloud_ttl(),
        )
        .await;
        r.check(
            "wasmcloud: increment by signed s64 deltas; past s64 is an error",
            wasmcloud_increment(),
        )
        .await;
        r.check(
            "wasmcloud: cas swaps by version, value or both; stale carries the current entry",
            wasmcloud_cas(),
        )
        .await;
        r.check(
            "wasmcloud: cas with no precondition is invalid-argument",
            wasmcloud_cas_misuse(),
        )
        .await;
        r.check("wasmcloud: get-many, set-many, delete-many", wasmcloud_batch())
            .await;
        r.check(
            "wasmcloud: list-keys with a prefix: exactly its keys, in pages",
            wasmcloud_list_prefix(l),
        )
        .await;
        r.check(
            "wasmcloud: a garbage list-keys cursor is invalid-argument",
            wasmcloud_garbage_cursor(),
        )
        .await;
        r.check(
            "one store: spin3, wasmcloud and draft2 see each other's writes",
            one_store(),
        )
        .await;
        println!("{} passed, {} failed", r.0.passed, r.0.failed);
        if r.0.failed == 0 { Ok(()) } else { Err(()) }
    }
}

export!(Conformance);

// ---- spin:key-value@3.0.0 ----

async fn spin_store(label: &str) -> Result<spin3::Store, String> {
    ok(
        &format!("spin3 open({label:?})"),
        spin3::Store::open(label.into()).await,
    )
}

async fn spin_open() -> Result<(), String> {
    let by_name = spin_store(BUCKET).await?;
    let default = spin_store("default").await?;
    ok(
        "set",
        by_name.set("spin3/default".into(), b"by name".to_vec()).await,
    )?;
    let seen = ok("get", default.get("spin3/default".into()).await)?;
    ensure!(
        seen.as_deref() == Some(&b"by name"[..]),
        "\"default\" is not the default bucket: {seen:?}"
    );
    ok("delete", by_name.delete("spin3/default".into()).await)?;
    match spin3::Store::open(DENIED_BUCKET.into()).await {
        Err(spin3::Error::AccessDenied) => {}
        other => {
            return Err(format!(
                "open({DENIED_BUCKET:?}): expected access-denied, got {:?}",
                other.err()
            ));
        }
    }
    match spin3::Store::open("../escape".into()).await {
        Err(spin3::Error::Other(_)) => Ok(()),
        other => Err(format!(
            "open(\"../escape\"): expected other(..), got {:?}",
            other.err()
        )),
    }
}

async fn spin_basics() -> Result<(), String> {
    let s = spin_store(BUCKET).await?;
    let key = "spin3/basics".to_string();
    ok("delete", s.delete(key.clone()).await)?;
    ensure!(
        ok("get", s.get(key.clone()).await)?.is_none(),
        "a missing key has a value"
    );
    ensure!(
        !ok("exists", s.exists(key.clone()).await)?,
        "a missing key exists"
    );
    ok("delete of a missing key", s.delete(key.clone()).await)?;
    let binary: Vec<u8> = (0..=255).collect();
    ok("set", s.set(key.clone(), b"one".to_vec()).await)?;
    ok("overwrite", s.set(key.clone(), binary.clone()).await)?;
    ensure!(
        ok("get", s.get(key.clone()).await)? == Some(binary),
        "get does not read the last write"
    );
    ensure!(
        ok("exists", s.exists(key.clone()).await)?,
        "a key that was set does not exist"
    );
    ok("delete", s.delete(key.clone()).await)?;
    ensure!(
        ok("get", s.get(key).await)?.is_none(),
        "a deleted key has a value"
    );
    Ok(())
}

async fn spin_limits(limits: &Limits) -> Result<(), String> {
    let s = spin_store(BUCKET).await?;
    let longest = "k".repeat(limits.max_key_bytes);
    ok(
        "set of the longest key",
        s.set(longest.clone(), b"v".to_vec()).await,
    )?;
    ok("delete", s.delete(longest.clone()).await)?;
    match s.get(format!("{longest}k")).await {
        Err(spin3::Error::Other(message)) if message.contains("key limit") => {}
        other => {
            return Err(format!(
                "a key one byte over: expected other(key limit), got {other:?}"
            ));
        }
    }
    let value = vec![7u8; limits.max_value_bytes + 1];
    match s.set("spin3/too-large".into(), value).await {
        Err(spin3::Error::Other(message)) if message.contains("value limit") => Ok(()),
        other => Err(format!(
            "a value one byte over: expected other(value limit), got {other:?}"
        )),
    }
}

/// [`LIST_BUCKET`] holding exactly `keys`: everything else deleted.
async fn fill_list_bucket(keys: &BTreeSet<String>) -> Result<types::Bucket, String> {
    let bucket = wasmcloud_bucket(LIST_BUCKET).await?;
    let mut cursor = None;
    loop {
        let page = ok("list-keys", bucket.list_keys(None, cursor.take()).await)?;
        let stale: Vec<String> = page.keys.into_iter().filter(|key| !keys.contains(key)).collect();
        ok("delete-many", batch::delete_many(&bucket, stale).await)?;
        match page.cursor {
            Some(next) => cursor = Some(next),
            None => break,
        }
    }
    let entries: Vec<(String, Vec<u8>)> = keys.iter().map(|key| (key.clone(), Vec::new())).collect();
    for chunk in entries.chunks(500) {
        ok("set-many", batch::set_many(&bucket, chunk.to_vec()).await)?;
    }
    Ok(bucket)
}

/// 2,500 keys in three interleaved families (`a/`, `p/`, `q/`), long enough
/// that a small page byte limit cuts pages by bytes.
fn list_keys_fixture() -> BTreeSet<String> {
    (0..2500)
        .map(|i| format!("{}/{i:05}/{}", ["a", "p", "q"][i % 3], "x".repeat(i % 40)))
        .collect()
}

async fn spin_get_keys() -> Result<(), String> {
    let expected = list_keys_fixture();
    fill_list_bucket(&expected).await?;
    let s = spin_store(LIST_BUCKET).await?;
    let (keys, outcome) = s.get_keys().await;
    let listed = keys.collect().await;
    ok("get-keys' outcome", outcome.await)?;
    let unique: BTreeSet<String> = listed.iter().cloned().collect();
    ensure!(
        unique.len() == listed.len(),
        "get-keys repeated keys ({} of {})",
        listed.len() - unique.len(),
        listed.len()
    );
    ensure!(
        unique == expected,
        "get-keys listed {} keys, {} expected",
        unique.len(),
        expected.len()
    );
    Ok(())
}

async fn spin_get_keys_dropped() -> Result<(), String> {
    let s = spin_store(LIST_BUCKET).await?;
    let (mut keys, outcome) = s.get_keys().await;
    ensure!(
        keys.next().await.is_some(),
        "get-keys listed nothing in a full bucket"
    );
    drop(keys);
    // The stream's writer sees the reader gone and ends without error.
    ok("get-keys' outcome after the stream was dropped", outcome.await)
}

// ---- wasmcloud:keyvalue@0.2.0 ----

async fn wasmcloud_bucket(identifier: &str) -> Result<types::Bucket, String> {
    ok(
        &format!("wasmcloud open({identifier:?})"),
        store::open(identifier.into()).await,
    )
}

async fn wasmcloud_open() -> Result<(), String> {
    let by_name = wasmcloud_bucket(BUCKET).await?;
    let default = wasmcloud_bucket("").await?;
    ok(
        "set",
        by_name.set("wc/default".into(), b"by name".to_vec(), None).await,
    )?;
    let seen = ok("get", default.get("wc/default".into()).await)?;
    ensure!(
        seen.as_deref() == Some(&b"by name"[..]),
        "\"\" is not the default bucket: {seen:?}"
    );
    ok("delete", by_name.delete("wc/default".into()).await)?;
    match store::open(DENIED_BUCKET.into()).await {
        Err(types::Error::AccessDenied) => {}
        other => {
            return Err(format!(
                "open({DENIED_BUCKET:?}): expected access-denied, got {:?}",
                other.err()
            ));
        }
    }
    match store::open("a/b".into()).await {
        Err(types::Error::InvalidArgument) => Ok(()),
        other => Err(format!(
            "open(\"a/b\"): expected invalid-argument, got {:?}",
            other.err()
        )),
    }
}

async fn wasmcloud_basics() -> Result<(), String> {
    let b = wasmcloud_bucket(BUCKET).await?;
    let key = "wc/basics".to_string();
    ok("delete", b.delete(key.clone()).await)?;
    ensure!(
        ok("get", b.get(key.clone()).await)?.is_none(),
        "a missing key has a value"
    );
    ensure!(
        !ok("exists", b.exists(key.clone()).await)?,
        "a missing key exists"
    );
    ok("set", b.set(key.clone(), b"one".to_vec(), None).await)?;
    ok("overwrite", b.set(key.clone(), b"two\0".to_vec(), None).await)?;
    ensure!(
        ok("get", b.get(key.clone()).await)?.as_deref() == Some(&b"two\0"[..]),
        "get does not read the last write"
    );
    ensure!(
        ok("exists", b.exists(key.clone()).await)?,
        "a key that was set does not exist"
    );
    ok("delete", b.delete(key.clone()).await)?;
    ensure!(
        ok("get", b.get(key).await)?.is_none(),
        "a deleted key has a value"
    );
    Ok(())
}

async fn wasmcloud_limits(limits: &Limits) -> Result<(), String> {
    let b = wasmcloud_bucket(BUCKET).await?;
    let over_key = "k".repeat(limits.max_key_bytes + 1);
    for (what, result) in [
        ("get of an empty key", b.get(String::new()).await.map(drop)),
        (
            "get of a key one byte over",
            b.get(over_key.clone()).await.map(drop),
        ),
        (
            "set of a key one byte over",
            b.set(over_key, Vec::new(), None).await,
        ),
        (
            "set of a value one byte over",
            b.set("wc/large".into(), vec![0; limits.max_value_bytes + 1], None)
                .await,
        ),
    ] {
        ensure!(
            matches!(result, Err(types::Error::InvalidArgument)),
            "{what}: expected invalid-argument, got {result:?}"
        );
    }
    Ok(())
}

fn if_not_exists() -> Option<types::SetOptions> {
    Some(types::SetOptions {
        ttl_ms: None,
        if_not_exists: true,
    })
}

async fn wasmcloud_if_not_exists() -> Result<(), String> {
    let b = wasmcloud_bucket(BUCKET).await?;
    let key = "wc/lock".to_string();
    ok("delete", b.delete(key.clone()).await)?;
    ok(
        "the first set if-not-exists",
        b.set(key.clone(), b"first".to_vec(), if_not_exists()).await,
    )?;
    let second = b.set(key.clone(), b"second".to_vec(), if_not_exists()).await;
    ensure!(
        matches!(second, Err(types::Error::PreconditionFailed)),
        "the second: expected precondition-failed, got {second:?}"
    );
    ensure!(
        ok("get", b.get(key.clone()).await)?.as_deref() == Some(&b"first"[..]),
        "if-not-exists overwrote the key"
    );
    ok("delete", b.delete(key.clone()).await)?;
    ok(
        "set if-not-exists after a delete",
        b.set(key.clone(), b"third".to_vec(), if_not_exists()).await,
    )?;
    ok("delete", b.delete(key).await)
}

fn ttl(ttl_ms: u64, if_not_exists: bool) -> Option<types::SetOptions> {
    Some(types::SetOptions {
        ttl_ms: Some(ttl_ms),
        if_not_exists,
    })
}

/// Keys with a 1 s expiry are read 4 s later (after any backend's
/// rounding: etcd's leases are whole seconds of at least its minimum), and
/// one with a 10 min expiry at once: the margins cannot flake.
async fn wasmcloud_ttl() -> Result<(), String> {
    let b = wasmcloud_bucket(BUCKET).await?;
    let keys = ["wc/ttl/long", "wc/ttl/short", "wc/ttl/counter", "wc/ttl/lock"].map(String::from);
    ok("delete-many", batch::delete_many(&b, keys.to_vec()).await)?;
    let [long, short, counter, lock] = keys;
    ok(
        "set ttl 10 min",
        b.set(long.clone(), b"l".to_vec(), ttl(600_000, false)).await,
    )?;
    ok(
        "set ttl 1 s",
        b.set(short.clone(), b"s".to_vec(), ttl(1000, false)).await,
    )?;
    ok(
        "set counter ttl 1 s",
        b.set(counter.clone(), b"41".to_vec(), ttl(1000, false)).await,
    )?;
    ok(
        "set if-not-exists ttl 1 s",
        b.set(lock.clone(), b"a".to_vec(), ttl(1000, true)).await,
    )?;
    match b.set(lock.clone(), b"b".to_vec(), ttl(1000, true)).await {
        Err(types::Error::PreconditionFailed) => {}
        other => {
            return Err(format!(
                "if-not-exists over a live key: expected precondition-failed, got {other:?}"
            ));
        }
    }
    ensure!(
        ok("get", b.get(long.clone()).await)?.as_deref() == Some(&b"l"[..]),
        "a key with a 10 min ttl is not there"
    );
    match b.set(long.clone(), b"x".to_vec(), ttl(0, false)).await {
        Err(types::Error::InvalidArgument) => {}
        other => return Err(format!("ttl-ms 0: expected invalid-argument, got {other:?}")),
    }
    std::thread::sleep(std::time::Duration::from_secs(4));
    ensure!(
        ok("get", b.get(short.clone()).await)?.is_none(),
        "an expired key is still there"
    );
    ensure!(
        !ok("exists", b.exists(short.clone()).await)?,
        "exists sees an expired key"
    );
    let listed = ok("list-keys", b.list_keys(Some("wc/ttl/".into()), None).await)?.keys;
    ensure!(
        listed == [long.clone()],
        "list-keys with prefix wc/ttl/ gave {listed:?}, expected only {long:?}"
    );
    ensure!(
        ok("cas current", cas::current(&b, short.clone()).await)?.is_none(),
        "cas sees an expired key"
    );
    ensure!(
        ok("increment", atomics::increment(&b, counter.clone(), 1).await)? == 1,
        "an increment of an expired counter does not start from 0"
    );
    ok(
        "set if-not-exists over an expired key",
        b.set(lock.clone(), b"c".to_vec(), if_not_exists()).await,
    )?;
    ensure!(
        ok("get", b.get(lock.clone()).await)?.as_deref() == Some(&b"c"[..]),
        "if-not-exists over an expired key did not write"
    );
    ensure!(
        ok("get", b.get(long.clone()).await)?.as_deref() == Some(&b"l"[..]),
        "a key with a 10 min ttl is gone"
    );
    ok(
        "delete-many",
        batch::delete_many(&b, vec![long, counter, lock]).await,
    )
}

async fn wasmcloud_increment() -> Result<(), String> {
    let b = wasmcloud_bucket(BUCKET).await?;
    let key = "wc/counter".to_string();
    ok("delete", b.delete(key.clone()).await)?;
    ensure!(
        ok("increment", atomics::increment(&b, key.clone(), 5).await)? == 5,
        "an absent counter does not start at 0"
    );
    ensure!(
        ok("increment", atomics::increment(&b, key.clone(), -7).await)? == -2,
        "a negative delta does not decrement"
    );
    ensure!(
        ok("get", b.get(key.clone()).await)?.as_deref() == Some(&b"-2"[..]),
        "the counter is not stored as decimal"
    );
    ok(
        "set",
        b.set(key.clone(), i64::MAX.to_string().into_bytes(), None).await,
    )?;
    let over = atomics::increment(&b, key.clone(), 1).await;
    ensure!(
        matches!(over, Err(types::Error::Other(_))),
        "past s64: expected other(..), got {over:?}"
    );
    ok("set", b.set(key.clone(), b"text".to_vec(), None).await)?;
    let text = atomics::increment(&b, key.clone(), 1).await;
    ensure!(
        matches!(text, Err(types::Error::Other(_))),
        "a non-numeric value: expected other(..), got {text:?}"
    );
    ok("delete", b.delete(key).await)
}

fn require(version: Option<&str>, value: Option<&[u8]>) -> cas::CasOptions {
    cas::CasOptions {
        require_version: version.map(String::from),
        require_value: value.map(<[u8]>::to_vec),
    }
}

async fn current(b: &types::Bucket, key: &str) -> Result<Option<cas::Entry>, String> {
    ok("cas current", cas::current(b, key.into()).await)
}

async fn swap(
    b: &types::Bucket,
    key: &str,
    value: &[u8],
    options: cas::CasOptions,
) -> Result<cas::CasResult, String> {
    ok(
        "cas swap",
        cas::swap(b, key.into(), value.to_vec(), options).await,
    )
}

fn is_stale_with(result: &cas::CasResult, value: &[u8]) -> bool {
    matches!(result, cas::CasResult::Stale(Some(entry)) if entry.value == value)
}

async fn wasmcloud_cas() -> Result<(), String> {
    let b = wasmcloud_bucket(BUCKET).await?;
    let key = "wc/cas";
    ok("set", b.set(key.into(), b"one".to_vec(), None).await)?;
    let one = current(&b, key)
        .await?
        .ok_or("cas current of a key that exists is none")?;
    ensure!(one.value == b"one", "cas current read {:?}", one.value);
    let swapped = swap(&b, key, b"two", require(Some(&one.version), None)).await?;
    ensure!(
        matches!(swapped, cas::CasResult::Swapped),
        "a swap on the current version: {swapped:?}"
    );
    let stale = swap(&b, key, b"x", require(Some(&one.version), None)).await?;
    ensure!(
        is_stale_with(&stale, b"two"),
        "a swap on an old version: expected stale(two), got {stale:?}"
    );
    let by_value = swap(&b, key, b"three", require(None, Some(b"two"))).await?;
    ensure!(
        matches!(by_value, cas::CasResult::Swapped),
        "a swap on the current value: {by_value:?}"
    );
    let three = current(&b, key).await?.ok_or("the key vanished")?;
    ensure!(three.version != one.version, "a write did not change the version");
    let both_wrong = swap(&b, key, b"x", require(Some(&three.version), Some(b"two"))).await?;
    ensure!(
        is_stale_with(&both_wrong, b"three"),
        "a right version with a wrong value: {both_wrong:?}"
    );
    let both = swap(&b, key, b"four", require(Some(&three.version), Some(b"three"))).await?;
    ensure!(
        matches!(both, cas::CasResult::Swapped),
        "a swap on both: {both:?}"
    );
    ensure!(
        ok("get", b.get(key.into()).await)?.as_deref() == Some(&b"four"[..]),
        "swaps did not write"
    );
    ok("delete", b.delete(key.into()).await)?;
    let absent = swap(&b, key, b"x", require(None, Some(b"four"))).await?;
    ensure!(
        matches!(absent, cas::CasResult::Stale(None)),
        "a swap on an absent key: expected stale(none), got {absent:?}"
    );
    ensure!(current(&b, key).await?.is_none(), "a stale swap wrote");
    Ok(())
}

async fn wasmcloud_cas_misuse() -> Result<(), String> {
    let b = wasmcloud_bucket(BUCKET).await?;
    let result = cas::swap(&b, "wc/cas-misuse".into(), b"x".to_vec(), require(None, None)).await;
    ensure!(
        matches!(result, Err(types::Error::InvalidArgument)),
        "expected invalid-argument, got {result:?}"
    );
    ensure!(
        current(&b, "wc/cas-misuse").await?.is_none(),
        "a refused swap wrote"
    );
    Ok(())
}

async fn wasmcloud_batch() -> Result<(), String> {
    let b = wasmcloud_bucket(BUCKET).await?;
    let entries = vec![
        ("wc/m1".to_string(), b"v1".to_vec()),
        ("wc/m2".to_string(), Vec::new()),
    ];
    ok("set-many", batch::set_many(&b, entries).await)?;
    let keys = vec!["wc/m1".to_string(), "wc/missing".to_string(), "wc/m2".to_string()];
    let got = ok("get-many", batch::get_many(&b, keys.clone()).await)?;
    let expected = vec![
        Some(("wc/m1".to_string(), b"v1".to_vec())),
        None,
        Some(("wc/m2".to_string(), Vec::new())),
    ];
    ensure!(got == expected, "get-many returned {got:?}");
    ok("delete-many", batch::delete_many(&b, keys.clone()).await)?;
    let got = ok("get-many", batch::get_many(&b, keys).await)?;
    ensure!(got.iter().all(Option::is_none), "delete-many left {got:?}");
    Ok(())
}

async fn wasmcloud_list_prefix(limits: &Limits) -> Result<(), String> {
    let all = list_keys_fixture();
    let bucket = fill_list_bucket(&all).await?;
    for prefix in ["p/", "q/0001", "a/02499", "none/"] {
        let expected: BTreeSet<&String> = all.iter().filter(|key| key.starts_with(prefix)).collect();
        let mut listed = Vec::new();
        let mut cursor = None;
        for pages in 1.. {
            ensure!(
                pages <= all.len() + 1,
                "prefix {prefix:?}: the cursor does not advance"
            );
            let page = ok(
                "list-keys",
                bucket.list_keys(Some(prefix.into()), cursor.take()).await,
            )?;
            let bytes: usize = page.keys.iter().map(String::len).sum();
            ensure!(
                page.keys.len() <= 1 || bytes <= limits.list_page_bytes,
                "a page of {bytes} bytes is over the limit"
            );
            ensure!(
                !page.keys.is_empty() || page.cursor.is_none(),
                "an empty page with a cursor"
            );
            listed.extend(page.keys);
            match page.cursor {
                Some(next) => cursor = Some(next),
                None => break,
            }
        }
        let unique: BTreeSet<&String> = listed.iter().collect();
        ensure!(
            unique.len() == listed.len(),
            "prefix {prefix:?}: keys listed twice"
        );
        ensure!(
            unique == expected,
            "prefix {prefix:?}: listed {} keys, {} expected",
            unique.len(),
            expected.len()
        );
    }
    Ok(())
}

async fn wasmcloud_garbage_cursor() -> Result<(), String> {
    let b = wasmcloud_bucket(BUCKET).await?;
    for garbage in ["", "not a cursor", "kv2.AAAA"] {
        let result = b.list_keys(None, Some(garbage.into())).await;
        ensure!(
            matches!(result, Err(types::Error::InvalidArgument)),
            "cursor {garbage:?}: expected invalid-argument, got {:?}",
            result.err()
        );
    }
    Ok(())
}

// ---- one store ----

async fn one_store() -> Result<(), String> {
    let spin = spin_store(BUCKET).await?;
    let wc = wasmcloud_bucket(BUCKET).await?;
    let d2 = ok("draft2 open", draft2::store::open(BUCKET))?;
    ok(
        "spin3 set",
        spin.set("one/spin".into(), b"from spin".to_vec()).await,
    )?;
    ok(
        "wasmcloud set",
        wc.set("one/wc".into(), b"from wasmcloud".to_vec(), None).await,
    )?;
    ok("draft2 set", d2.set("one/d2", b"from draft2"))?;
    ensure!(
        ok("draft2 get", d2.get("one/spin"))?.as_deref() == Some(&b"from spin"[..]),
        "draft2 does not see spin3's write"
    );
    ensure!(
        ok("spin3 get", spin.get("one/wc".into()).await)?.as_deref() == Some(&b"from wasmcloud"[..]),
        "spin3 does not see wasmcloud's write"
    );
    ensure!(
        ok("wasmcloud get", wc.get("one/d2".into()).await)?.as_deref() == Some(&b"from draft2"[..]),
        "wasmcloud does not see draft2's write"
    );
    ok("delete", wc.delete("one/counter".into()).await)?;
    ok(
        "wasmcloud increment",
        atomics::increment(&wc, "one/counter".into(), 2).await,
    )?;
    let total = ok(
        "draft2 increment",
        draft2::atomics::increment(&d2, "one/counter", 3),
    )?;
    ensure!(total == 5, "one counter through two interfaces reads {total}");
    for key in ["one/spin", "one/wc", "one/d2", "one/counter"] {
        ok("delete", spin.delete(key.into()).await)?;
    }
    Ok(())
}
