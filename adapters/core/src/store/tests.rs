//! [`Store`] and [`OpenBucket`], natively, over a small in-memory backend
//! made for these tests: every rule of the contract the core enforces for
//! all backends (names, allow-list, limits, list pages and cursors of both
//! drafts, counters, compare-and-swap).

use alloc::boxed::Box;
use alloc::collections::BTreeMap;
use alloc::string::ToString;
use alloc::vec;
use core::cell::{Cell, RefCell};

use proptest::prelude::*;

use super::*;
use crate::config::{BackendConfig, MemConfig};
use crate::{KeyPage, Limits, Versioned, increment_by_cas};

/// The test backend's limits: small, to test them cheaply.
const LIMITS: Limits = Limits {
    max_key_bytes: 64,
    max_value_bytes: 32,
};

/// How the test backend orders its listing.
#[derive(Clone, Copy, Debug)]
enum Order {
    /// By the keys' bytes (kv-mem, kv-fs, etcd, Redis, DynamoDB).
    Bytes,
    /// By the bytes of an escaped form, as S3 and Azure Table store keys
    /// (`%` and control characters as `%XX`): not the keys' own order.
    Escaped,
}

impl Order {
    fn sort_key(self, key: &str) -> Vec<u8> {
        match self {
            Order::Bytes => key.as_bytes().to_vec(),
            Order::Escaped => key
                .chars()
                .flat_map(|c| match c {
                    '%' | '\0'..='\u{1f}' => format!("%{:02X}", u32::from(c)).into_bytes(),
                    c => c.to_string().into_bytes(),
                })
                .collect(),
        }
    }
}

/// A key's value, the write that made it and its expiry, by listing order.
type Entries = BTreeMap<Vec<u8>, (String, Vec<u8>, u64, Option<u64>)>;

std::thread_local! {
    /// The tests' wall clock (per test thread), moved by [`advance_clock`].
    static NOW: Cell<u64> = const { Cell::new(1_000_000) };
}

fn test_clock() -> u64 {
    NOW.with(Cell::get)
}

fn advance_clock(ms: u64) {
    NOW.with(|now| now.set(now.get() + ms));
}

#[derive(Default)]
struct Shared {
    buckets: RefCell<BTreeMap<String, Rc<RefCell<Entries>>>>,
    writes: Cell<u64>,
    /// The `max_keys` of every list request, in order.
    list_requests: RefCell<Vec<usize>>,
    /// Calls of the bucket's own `increment`.
    increments: Cell<usize>,
}

/// Buckets chosen at run time (`dyn Bucket`, as kv-http's), listing in
/// `order` at most `service_page` keys per call (a service's own page
/// limit, S3's 1,000 keys or DynamoDB's 1 MB).
struct TestBackend {
    shared: Rc<Shared>,
    order: Order,
    service_page: usize,
}

struct TestBucket {
    shared: Rc<Shared>,
    entries: Rc<RefCell<Entries>>,
    order: Order,
    service_page: usize,
}

impl Backend for TestBackend {
    type Bucket = dyn Bucket;

    fn name(&self, _bucket: &str) -> &'static str {
        "kv-test"
    }

    fn limits(&self, _bucket: &str) -> Limits {
        LIMITS
    }

    fn open(&self, name: &str) -> Result<Box<dyn Bucket>> {
        let entries = Rc::clone(self.shared.buckets.borrow_mut().entry(name.into()).or_default());
        Ok(Box::new(TestBucket {
            shared: Rc::clone(&self.shared),
            entries,
            order: self.order,
            service_page: self.service_page,
        }))
    }
}

impl TestBucket {
    fn write(&self, key: &str, value: &[u8], expires_at: Option<u64>) {
        let at = self.shared.writes.get() + 1;
        self.shared.writes.set(at);
        let entry = (key.to_string(), value.to_vec(), at, expires_at);
        self.entries.borrow_mut().insert(self.order.sort_key(key), entry);
    }
}

impl Bucket for TestBucket {
    fn get(&self, key: &str) -> Result<Option<Vec<u8>>> {
        Ok(self.get_versioned(key)?.value)
    }

    fn get_versioned(&self, key: &str) -> Result<Versioned> {
        let entries = self.entries.borrow();
        Ok(entries
            .get(&self.order.sort_key(key))
            .filter(|(.., expires_at)| !crate::is_expired(*expires_at, test_clock()))
            .map(|(_, value, at, expires_at)| {
                Versioned::found(value.clone(), Version(at.to_le_bytes().to_vec())).expiring(*expires_at)
            })
            .unwrap_or_default())
    }

    fn set(&self, key: &str, value: &[u8], expires_at: Option<u64>) -> Result<()> {
        self.write(key, value, expires_at);
        Ok(())
    }

    fn delete(&self, key: &str) -> Result<()> {
        self.entries.borrow_mut().remove(&self.order.sort_key(key));
        Ok(())
    }

    fn list_keys(&self, request: ListRequest<'_>) -> Result<KeyPage> {
        use core::ops::Bound;
        self.shared.list_requests.borrow_mut().push(request.max_keys);
        let entries = self.entries.borrow();
        let start = match request.after {
            Some(after) => Bound::Excluded(self.order.sort_key(after)),
            None => Bound::Unbounded,
        };
        let mut after = entries.range((start, Bound::Unbounded));
        let take = request.max_keys.min(self.service_page);
        // Expired keys are left out, but the prefix is not applied: the
        // core must keep only the matching keys itself.
        let keys = after
            .by_ref()
            .filter(|(_, (.., expires_at))| !crate::is_expired(*expires_at, test_clock()))
            .take(take)
            .map(|(_, (key, ..))| key.clone())
            .collect();
        Ok(KeyPage {
            keys,
            more: after.next().is_some(),
        })
    }

    fn compare_and_swap(
        &self,
        key: &str,
        expected: Option<&Version>,
        value: &[u8],
        expires_at: Option<u64>,
    ) -> Result<bool> {
        if self.get_versioned(key)?.version.as_ref() != expected {
            return Ok(false);
        }
        self.write(key, value, expires_at);
        Ok(true)
    }

    /// An override, to see that calls reach it through `dyn Bucket`.
    fn increment(
        &self,
        key: &str,
        delta: i128,
        range: CounterRange,
        expires_at_if_created: Option<u64>,
    ) -> Result<i128> {
        self.shared.increments.set(self.shared.increments.get() + 1);
        increment_by_cas(self, key, delta, range, expires_at_if_created)
    }
}

struct Setup {
    order: Order,
    service_page: usize,
    page_keys: u32,
    page_bytes: u32,
    allowed: Option<&'static [&'static str]>,
    default_bucket: Option<&'static str>,
    ttl_ms: Option<u64>,
}

impl Default for Setup {
    fn default() -> Self {
        Setup {
            order: Order::Bytes,
            service_page: usize::MAX,
            page_keys: 1000,
            page_bytes: 1 << 20,
            allowed: None,
            default_bucket: None,
            ttl_ms: None,
        }
    }
}

impl Setup {
    fn store(&self) -> (Rc<Store<TestBackend>>, Rc<Shared>) {
        self.store_on(Rc::default())
    }

    /// A store (an instance) on existing data.
    fn store_on(&self, shared: Rc<Shared>) -> (Rc<Store<TestBackend>>, Rc<Shared>) {
        let mut config = AdapterConfig::new(BackendConfig::Mem(MemConfig {}));
        config.list_page_keys = self.page_keys;
        config.list_page_bytes = self.page_bytes;
        config.allowed_buckets = self
            .allowed
            .map(|names| names.iter().map(|n| n.to_string()).collect());
        if let Some(name) = self.default_bucket {
            config.default_bucket = name.into();
        }
        let backend = TestBackend {
            shared: Rc::clone(&shared),
            order: self.order,
            service_page: self.service_page,
        };
        config.ttl_ms = self.ttl_ms;
        (Store::new(backend, &config, test_clock), shared)
    }

    fn bucket(&self) -> OpenBucket<TestBackend> {
        self.store().0.open("b").unwrap()
    }
}

fn message<T: core::fmt::Debug>(result: Result<T>) -> String {
    match result {
        Err(Error::Other(message)) => message,
        other => panic!("expected other(..), got {other:?}"),
    }
}

fn invalid<T: core::fmt::Debug>(result: Result<T>) -> String {
    match result {
        Err(Error::InvalidArgument(message)) => message,
        other => panic!("expected invalid-argument(..), got {other:?}"),
    }
}

#[test]
fn bucket_names_are_validated_before_the_backend_sees_them() {
    let (store, shared) = Setup::default().store();
    for bad in [
        "..",
        "../x",
        "a/b",
        "a\\b",
        "nul\0",
        "new\nline",
        &"n".repeat(129),
    ] {
        assert!(
            invalid(store.open(bad).map(drop)).contains("invalid bucket name"),
            "{bad:?}"
        );
    }
    assert!(
        shared.buckets.borrow().is_empty(),
        "a bad name reached the backend"
    );
    assert_eq!(store.open("ok.name").unwrap().name(), "ok.name");
}

#[test]
fn the_allow_list_denies_other_names() {
    let setup = Setup {
        allowed: Some(&["app"]),
        ..Setup::default()
    };
    let (store, shared) = setup.store();
    assert!(store.open("app").is_ok());
    assert!(matches!(store.open("other"), Err(Error::AccessDenied)));
    // A bad name is a bad name, allowed or not.
    assert!(invalid(store.open("../app").map(drop)).contains("invalid bucket name"));
    assert_eq!(shared.buckets.borrow().keys().collect::<Vec<_>>(), ["app"]);
}

#[test]
fn the_empty_identifier_and_default_open_the_default_bucket() {
    let (store, _) = Setup::default().store();
    for identifier in ["", "default"] {
        assert_eq!(store.open(identifier).unwrap().name(), "default");
    }
    // A configured default bucket: both identifiers open it, and the
    // allow-list is checked against the name they resolve to.
    let setup = Setup {
        allowed: Some(&["app"]),
        default_bucket: Some("app"),
        ..Setup::default()
    };
    let (store, shared) = setup.store();
    store.open("").unwrap().set("k", b"v").unwrap();
    let bucket = store.open("default").unwrap();
    assert_eq!(bucket.name(), "app");
    assert_eq!(bucket.get("k").unwrap().as_deref(), Some(&b"v"[..]));
    assert_eq!(shared.buckets.borrow().keys().collect::<Vec<_>>(), ["app"]);
}

#[test]
fn keys_and_values_over_the_limits_fail_before_the_backend() {
    let bucket = Setup::default().bucket();
    let longest = "k".repeat(LIMITS.max_key_bytes);
    let largest = vec![7; LIMITS.max_value_bytes];
    bucket.set(&longest, &largest).unwrap();
    assert_eq!(bucket.get(&longest).unwrap(), Some(largest.clone()));
    let too_long = "k".repeat(LIMITS.max_key_bytes + 1);
    let over = invalid(bucket.set(&too_long, b"x"));
    assert!(over.contains("kv-test's key limit of 64 bytes"), "{over}");
    assert!(invalid(bucket.get(&too_long)).contains("key limit"));
    assert!(invalid(bucket.delete(&too_long)).contains("key limit"));
    assert!(invalid(bucket.exists(&too_long)).contains("key limit"));
    assert!(invalid(bucket.increment(&too_long, 1, CounterRange::S64)).contains("key limit"));
    assert!(invalid(bucket.cas(too_long).map(drop)).contains("key limit"));
    let too_large = invalid(bucket.set("k", &[0; LIMITS.max_value_bytes + 1]));
    assert!(too_large.contains("value limit of 32 bytes"), "{too_large}");
    assert!(invalid(bucket.set("", b"x")).contains("empty"));
    // A batch is checked whole before anything is written.
    let batch = [
        ("fine".to_string(), b"1".to_vec()),
        ("bad".to_string(), largest.repeat(2)),
    ];
    assert!(invalid(bucket.set_many(&batch)).contains("value limit"));
    assert_eq!(bucket.get("fine").unwrap(), None);
    let keys = ["fine".to_string(), String::new()];
    assert!(invalid(bucket.get_many(&keys)).contains("empty"));
    assert!(invalid(bucket.delete_many(&keys)).contains("empty"));
}

#[test]
fn counters_are_decimal_and_reach_the_backends_own_increment() {
    let (store, shared) = Setup::default().store();
    let bucket = store.open("b").unwrap();
    assert_eq!(bucket.increment("n", 5, CounterRange::U64), Ok(5));
    assert_eq!(bucket.increment("n", -7, CounterRange::S64), Ok(-2));
    assert_eq!(bucket.get("n").unwrap().as_deref(), Some(&b"-2"[..]));
    assert!(message(bucket.increment("n", 1, CounterRange::U64)).contains("outside the u64"));
    bucket.set("n", i64::MAX.to_string().as_bytes()).unwrap();
    assert!(message(bucket.increment("n", 1, CounterRange::S64)).contains("overflows"));
    bucket.set("t", b"text").unwrap();
    assert!(message(bucket.increment("t", 1, CounterRange::S64)).contains("not a decimal"));
    assert_eq!(bucket.get("t").unwrap().as_deref(), Some(&b"text"[..]));
    // Every call went to the bucket's override, through `dyn Bucket`.
    assert_eq!(shared.increments.get(), 5);
}

#[test]
fn cas_swaps_an_unchanged_key_and_hands_back_a_fresh_snapshot_on_conflict() {
    let bucket = Setup::default().bucket();
    bucket.set("k", b"v1").unwrap();
    let snapshot = bucket.cas("k".into()).unwrap();
    assert_eq!(snapshot.current(), Some(&b"v1"[..]));
    assert!(snapshot.swap(b"v2").is_ok());
    assert_eq!(bucket.get("k").unwrap().as_deref(), Some(&b"v2"[..]));

    let stale = bucket.cas("k".into()).unwrap();
    bucket.set("k", b"someone else").unwrap();
    let Err(CasError::Conflict(fresh)) = stale.swap(b"mine") else {
        panic!("a swap over a changed key succeeded");
    };
    assert_eq!(fresh.current(), Some(&b"someone else"[..]));
    assert!(fresh.swap(b"mine").is_ok());
    assert_eq!(bucket.get("k").unwrap().as_deref(), Some(&b"mine"[..]));

    // An insert fails if someone created the key since the snapshot.
    let insert = bucket.cas("new".into()).unwrap();
    assert_eq!(insert.current(), None);
    bucket.set("new", b"creator").unwrap();
    let Err(CasError::Conflict(fresh)) = insert.swap(b"mine") else {
        panic!("an insert over a key created since succeeded");
    };
    assert_eq!(fresh.current(), Some(&b"creator"[..]));
    assert_eq!(bucket.get("new").unwrap().as_deref(), Some(&b"creator"[..]));

    let over = bucket
        .cas("k".into())
        .unwrap()
        .swap(&[0; LIMITS.max_value_bytes + 1]);
    let Err(CasError::Store(Error::InvalidArgument(message))) = over else {
        panic!("a swap over the value limit did not fail");
    };
    assert!(message.contains("value limit"));
}

/// Every page of a listing, each asked for with the cursor of the one
/// before (`list` is either draft's `list-keys`).
fn pages<C>(list: impl Fn(Option<C>) -> Result<(Vec<String>, Option<C>)>, limit: usize) -> Vec<Vec<String>> {
    let mut pages = Vec::new();
    let mut cursor = None;
    loop {
        let (keys, next) = list(cursor.take()).unwrap();
        pages.push(keys);
        assert!(pages.len() <= limit, "the cursor does not advance");
        match next {
            Some(next) => cursor = Some(next),
            None => return pages,
        }
    }
}

/// Every page of a listing through 0.2.0-draft2's string cursors.
fn pages_by_string(bucket: &OpenBucket<TestBackend>, limit: usize) -> Vec<Vec<String>> {
    pages(
        |cursor: Option<String>| bucket.list_keys_string(cursor.as_deref()),
        limit,
    )
}

/// Every page of a listing through 0.2.0-draft's `u64` cursors.
fn pages_by_u64(bucket: &OpenBucket<TestBackend>, limit: usize) -> Vec<Vec<String>> {
    pages(|cursor| bucket.list_keys_u64(cursor), limit)
}

fn key_bytes(page: &[String]) -> usize {
    page.iter().map(String::len).sum()
}

proptest! {
    /// Pages are cut by the core's rules (keys and key bytes, at least one
    /// key) wherever the backend's own pages end, and the listing goes on
    /// right after the last key returned: every key once, in the backend's
    /// order, through both drafts' cursors.
    #[test]
    fn pages_are_cut_in_core_and_continue_exactly(
        keys in prop::collection::btree_set("[a%\u{1}ü]{1,12}", 0..60),
        page_keys in 1u32..12,
        page_bytes in 1u32..40,
        service_page in 1usize..15,
        escaped: bool,
    ) {
        let order = if escaped { Order::Escaped } else { Order::Bytes };
        let setup = Setup { order, service_page, page_keys, page_bytes, ..Setup::default() };
        let (store, shared) = setup.store();
        let bucket = store.open("b").unwrap();
        for key in &keys {
            bucket.set(key, b"").unwrap();
        }
        let mut expected: Vec<&String> = keys.iter().collect();
        expected.sort_by_key(|key| order.sort_key(key));
        let by_string = pages_by_string(&bucket, keys.len() + 2);
        prop_assert_eq!(&by_string, &pages_by_u64(&bucket, keys.len() + 2));
        let listed: Vec<&String> = by_string.iter().flatten().collect();
        prop_assert_eq!(listed, expected);
        let (last, full) = by_string.split_last().unwrap();
        for (i, page) in full.iter().enumerate() {
            prop_assert!(!page.is_empty(), "page {} of {:?} is empty", i, by_string);
        }
        for page in &by_string {
            prop_assert!(page.len() <= page_keys as usize);
            prop_assert!(page.len() <= 1 || key_bytes(page) <= page_bytes as usize, "{:?}", page);
        }
        // A page stops early only where the backend's own page did.
        if service_page >= page_keys as usize {
            for (page, next) in full.iter().zip(&by_string[1..]) {
                let room = page.len() < page_keys as usize
                    && key_bytes(page) + next.first().map_or(0, String::len) <= page_bytes as usize;
                prop_assert!(!room || next.is_empty(), "{:?} could hold {:?}", page, next.first());
            }
        }
        prop_assert!(last.len() <= page_keys as usize);
        prop_assert!(shared.list_requests.borrow().iter().all(|&n| n == page_keys as usize));
    }
}

#[test]
fn a_listing_resumes_after_its_last_key_even_if_it_was_deleted() {
    let setup = Setup {
        page_keys: 2,
        ..Setup::default()
    };
    let bucket = setup.bucket();
    for key in ["a", "b", "c", "d"] {
        bucket.set(key, b"").unwrap();
    }
    let (first, cursor) = bucket.list_keys_string(None).unwrap();
    assert_eq!(first, ["a", "b"]);
    bucket.delete("b").unwrap();
    bucket.set("a2", b"").unwrap();
    bucket.set("b2", b"").unwrap();
    let (rest, cursor) = bucket.list_keys_string(cursor.as_deref()).unwrap();
    assert_eq!(rest, ["b2", "c"]);
    let (rest, cursor) = bucket.list_keys_string(cursor.as_deref()).unwrap();
    assert_eq!((rest, cursor), (vec!["d".to_string()], None));
}

#[test]
fn one_key_over_the_byte_limit_is_a_page_of_its_own() {
    let setup = Setup {
        page_bytes: 3,
        ..Setup::default()
    };
    let bucket = setup.bucket();
    for key in ["aaaaa", "b", "c", "dd", "eeee"] {
        bucket.set(key, b"").unwrap();
    }
    let pages = pages_by_string(&bucket, 10);
    assert_eq!(pages, [vec!["aaaaa"], vec!["b", "c"], vec!["dd"], vec!["eeee"]]);
}

#[test]
fn cursors_are_checked_and_string_cursors_outlive_the_instance() {
    let setup = Setup {
        page_keys: 1,
        ..Setup::default()
    };
    let (store, shared) = setup.store();
    let bucket = store.open("b").unwrap();
    bucket.set("x", b"").unwrap();
    bucket.set("y", b"").unwrap();
    let other = store.open("other").unwrap();
    let (_, Some(cursor)) = bucket.list_keys_u64(None).unwrap() else {
        panic!("no cursor for a second page");
    };
    assert!(invalid(other.list_keys_u64(Some(cursor))).contains("issued for bucket \"b\""));
    for garbage in [0, 1, cursor + 1, u64::MAX] {
        assert!(invalid(bucket.list_keys_u64(Some(garbage))).contains("did not issue it"));
    }
    let (_, Some(cursor)) = bucket.list_keys_string(None).unwrap() else {
        panic!("no cursor for a second page");
    };
    for garbage in ["", "x", "kv2.AAAA", "kv1.AAAAAAAAAA", &cursor[..cursor.len() - 1]] {
        assert!(invalid(bucket.list_keys_string(Some(garbage))).contains("invalid list-keys cursor"));
    }
    // A new instance on the same data continues a draft2 listing.
    let (store, _) = setup.store_on(shared);
    let (keys, next) = store.open("b").unwrap().list_keys_string(Some(&cursor)).unwrap();
    assert_eq!((keys, next), (vec!["y".to_string()], None));
}

proptest! {
    /// wasmCloud's `list-keys(prefix, cursor)`: exactly the keys with the
    /// prefix, once each, in the backend's order, in pages cut by the
    /// core's rules, whatever the prefix's keys share pages with.
    #[test]
    fn prefix_listings_return_exactly_the_prefixed_keys(
        keys in prop::collection::btree_set("[ab%]{1,6}", 0..60),
        prefix in "[ab%]{0,2}",
        page_keys in 1u32..8,
        page_bytes in 1u32..20,
        service_page in 1usize..10,
        escaped: bool,
    ) {
        let order = if escaped { Order::Escaped } else { Order::Bytes };
        let setup = Setup { order, service_page, page_keys, page_bytes, ..Setup::default() };
        let bucket = setup.bucket();
        for key in &keys {
            bucket.set(key, b"").unwrap();
        }
        let mut expected: Vec<&String> = keys.iter().filter(|key| key.starts_with(&prefix)).collect();
        expected.sort_by_key(|key| order.sort_key(key));
        let pages = pages(
            |cursor: Option<String>| bucket.list_keys_with_prefix(&prefix, cursor.as_deref()),
            keys.len() + 2,
        );
        let listed: Vec<&String> = pages.iter().flatten().collect();
        prop_assert_eq!(listed, expected);
        for page in &pages {
            prop_assert!(page.len() <= page_keys as usize);
            prop_assert!(page.len() <= 1 || key_bytes(page) <= page_bytes as usize, "{:?}", page);
        }
        // Only the last page may be empty (a bucket with no match).
        for page in &pages[..pages.len() - 1] {
            prop_assert!(!page.is_empty(), "{:?}", pages);
        }
    }
}

#[test]
fn if_not_exists_writes_only_an_absent_key() {
    let bucket = Setup::default().bucket();
    let once = SetOptions {
        if_not_exists: true,
        ..SetOptions::default()
    };
    bucket.set_with_options("lock", b"first", once).unwrap();
    let Err(Error::PreconditionFailed(message)) = bucket.set_with_options("lock", b"second", once) else {
        panic!("if-not-exists overwrote an existing key");
    };
    assert!(message.contains("exists"), "{message}");
    assert_eq!(bucket.get("lock").unwrap().as_deref(), Some(&b"first"[..]));
    bucket.delete("lock").unwrap();
    bucket.set_with_options("lock", b"third", once).unwrap();
    bucket
        .set_with_options("lock", b"plain", SetOptions::default())
        .unwrap();
    assert_eq!(bucket.get("lock").unwrap().as_deref(), Some(&b"plain"[..]));
}

fn ttl(ms: u64) -> SetOptions {
    SetOptions {
        ttl_ms: Some(ms),
        ..SetOptions::default()
    }
}

#[test]
fn an_expired_key_is_absent_to_every_operation_from_its_instant() {
    let bucket = Setup::default().bucket();
    bucket.set_with_options("gone", b"v", ttl(1000)).unwrap();
    bucket.set("kept", b"7").unwrap();
    advance_clock(999);
    assert_eq!(bucket.get("gone").unwrap().as_deref(), Some(&b"v"[..]));
    advance_clock(1);
    assert_eq!(bucket.get("gone").unwrap(), None);
    assert!(!bucket.exists("gone").unwrap());
    assert_eq!(
        bucket.get_many(&["gone".into(), "kept".into()]).unwrap(),
        vec![None, Some(b"7".to_vec())]
    );
    assert_eq!(bucket.list_keys_string(None).unwrap().0, vec!["kept".to_string()]);
    assert_eq!(bucket.current_entry("gone").unwrap(), None);
    assert!(bucket.cas("gone".into()).unwrap().current().is_none());
    // An increment starts from 0; if-not-exists succeeds.
    bucket.set_with_options("n", b"41", ttl(10)).unwrap();
    advance_clock(10);
    assert_eq!(bucket.increment("n", 1, CounterRange::S64).unwrap(), 1);
    let once = SetOptions {
        if_not_exists: true,
        ttl_ms: Some(5),
    };
    bucket.set_with_options("lock", b"a", once).unwrap();
    assert!(matches!(
        bucket.set_with_options("lock", b"b", once),
        Err(Error::PreconditionFailed(_))
    ));
    advance_clock(5);
    bucket.set_with_options("lock", b"c", once).unwrap();
    assert_eq!(bucket.get("lock").unwrap().as_deref(), Some(&b"c"[..]));
    // A plain write clears an expiry.
    bucket.set("lock", b"d").unwrap();
    advance_clock(1_000_000);
    assert_eq!(bucket.get("lock").unwrap().as_deref(), Some(&b"d"[..]));
}

#[test]
fn a_bucket_ttl_expires_keys_written_without_their_own() {
    let setup = Setup {
        ttl_ms: Some(100),
        ..Setup::default()
    };
    let bucket = setup.bucket();
    bucket.set("plain", b"v").unwrap();
    bucket.set_many(&[("many".into(), b"v".to_vec())]).unwrap();
    bucket.set_with_options("own", b"v", ttl(500)).unwrap();
    assert_eq!(bucket.increment("counter", 2, CounterRange::S64).unwrap(), 2);
    bucket.cas("swapped".into()).unwrap().swap(b"v").ok().unwrap();
    advance_clock(50);
    // An increment keeps the counter's expiry: a fixed-window rate limit.
    assert_eq!(bucket.increment("counter", 2, CounterRange::S64).unwrap(), 4);
    advance_clock(50);
    for key in ["plain", "many", "counter", "swapped"] {
        assert_eq!(bucket.get(key).unwrap(), None, "{key} outlived the bucket ttl");
    }
    assert!(
        bucket.exists("own").unwrap(),
        "a key's own ttl wins over the bucket's"
    );
    assert_eq!(bucket.increment("counter", 1, CounterRange::S64).unwrap(), 1);
}

#[test]
fn ttls_must_be_positive_and_bounded() {
    let bucket = Setup::default().bucket();
    assert!(invalid(bucket.set_with_options("k", b"v", ttl(0))).contains("at least 1"));
    assert!(
        invalid(bucket.set_with_options("k", b"v", ttl(crate::config::MAX_TTL_MS + 1))).contains("100 years")
    );
    assert_eq!(bucket.get("k").unwrap(), None);
    // Limits come first, as for every write.
    invalid(bucket.set_with_options("", b"v", ttl(1)));
}

#[test]
fn an_import_keeps_each_expiry_and_skips_what_has_expired() {
    let setup = Setup {
        ttl_ms: Some(100),
        ..Setup::default()
    };
    let bucket = setup.bucket();
    let now = test_clock();
    bucket
        .set_many_with_expiry(&[
            ("a".into(), b"1".to_vec(), Some(now + 1000)),
            ("b".into(), b"2".to_vec(), Some(now + 1000)),
            ("past".into(), b"3".to_vec(), Some(now)),
            ("c".into(), b"4".to_vec(), None),
        ])
        .unwrap();
    let read = bucket
        .get_many_with_expiry(&["a".into(), "b".into(), "past".into(), "c".into()])
        .unwrap();
    assert_eq!(
        read,
        vec![
            Some((b"1".to_vec(), Some(now + 1000))),
            Some((b"2".to_vec(), Some(now + 1000))),
            None,
            // No expiry of its own: the bucket's.
            Some((b"4".to_vec(), Some(now + 100))),
        ]
    );
}

#[test]
fn swaps_check_every_precondition_and_hand_back_the_current_entry() {
    let bucket = Setup::default().bucket();
    let by_version = |version| SwapPreconditions {
        version: Some(version),
        value: None,
    };
    let by_value = |value| SwapPreconditions {
        version: None,
        value: Some(value),
    };
    invalid(bucket.swap_if("k", b"v", SwapPreconditions::default()));
    // An absent key matches no precondition.
    assert_eq!(
        bucket.swap_if("k", b"v", by_value(b"")).unwrap(),
        SwapOutcome::Stale(None)
    );
    assert_eq!(bucket.current_entry("k").unwrap(), None);

    bucket.set("k", b"one").unwrap();
    let one = bucket.current_entry("k").unwrap().unwrap();
    assert_eq!(one.value, b"one");
    assert!(
        one.version.bytes().all(|b| b.is_ascii_hexdigit()),
        "{}",
        one.version
    );
    assert_eq!(
        bucket.swap_if("k", b"two", by_version(&one.version)).unwrap(),
        SwapOutcome::Swapped
    );
    let two = bucket.current_entry("k").unwrap().unwrap();
    assert_ne!(two.version, one.version);
    // The old version is stale, and the answer carries what is there now.
    assert_eq!(
        bucket.swap_if("k", b"three", by_version(&one.version)).unwrap(),
        SwapOutcome::Stale(Some(two.clone()))
    );
    assert_eq!(
        bucket.swap_if("k", b"x", by_value(b"one")).unwrap(),
        SwapOutcome::Stale(Some(two.clone()))
    );
    assert_eq!(
        bucket.swap_if("k", b"three", by_value(b"two")).unwrap(),
        SwapOutcome::Swapped
    );
    let three = bucket.current_entry("k").unwrap().unwrap();
    // Both preconditions must hold.
    let both = |version, value| SwapPreconditions {
        version: Some(version),
        value: Some(value),
    };
    assert_eq!(
        bucket.swap_if("k", b"x", both(&three.version, b"two")).unwrap(),
        SwapOutcome::Stale(Some(three.clone()))
    );
    assert_eq!(
        bucket
            .swap_if("k", b"four", both(&three.version, b"three"))
            .unwrap(),
        SwapOutcome::Swapped
    );
    // A version that is not one of ours matches nothing.
    assert!(matches!(
        bucket.swap_if("k", b"x", by_version("zz")).unwrap(),
        SwapOutcome::Stale(Some(_))
    ));
    assert_eq!(bucket.get("k").unwrap().as_deref(), Some(&b"four"[..]));
    invalid(bucket.swap_if("k", &[0; LIMITS.max_value_bytes + 1], by_value(b"four")));
}

#[test]
fn versions_are_lowercase_hex_of_the_backends_bytes() {
    assert_eq!(version_string(&Version(vec![0x00, 0xab, 0x7f])), "00ab7f");
    assert_eq!(version_string(&Version(Vec::new())), "");
}
