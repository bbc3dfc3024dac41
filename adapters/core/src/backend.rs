//! What a storage backend implements. Only storage: every `wasi:keyvalue`
//! rule (validation, limits, cursors, counters, CAS snapshots) lives in
//! [`crate::Store`] and is shared by all backends.

use alloc::boxed::Box;
use alloc::format;
use alloc::string::{String, ToString};
use alloc::vec::Vec;

use crate::counter::{self, CounterRange};
use crate::error::Quoted;
use crate::{Error, Result};

/// The largest key and value a backend stores. Requests over them fail
/// before they reach the backend, with an error naming the limit.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    pub max_key_bytes: usize,
    pub max_value_bytes: usize,
}

/// An opaque version of a key's value, for compare-and-swap: two reads give
/// equal versions only if the key was not written in between.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Version(pub Vec<u8>);

/// When an entry expires: wall-clock milliseconds since the Unix epoch.
/// From that instant on the entry is absent to every operation, whether or
/// not the backend has removed it yet.
pub type ExpiresAt = u64;

/// A value (or its absence) and the version it was read at (`None` iff absent).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Versioned {
    pub value: Option<Vec<u8>>,
    pub version: Option<Version>,
    /// When the value expires (`None`: never, or absent). A backend whose
    /// service expires entries itself and cannot say when (an etcd lease)
    /// may leave it `None` if its own `increment` keeps the expiry.
    pub expires_at: Option<ExpiresAt>,
}

impl Versioned {
    /// A present value, read at `version` (an absent one is the default).
    pub fn found(value: Vec<u8>, version: Version) -> Versioned {
        Versioned {
            value: Some(value),
            version: Some(version),
            expires_at: None,
        }
    }

    /// This value, expiring at `expires_at`.
    pub fn expiring(self, expires_at: Option<ExpiresAt>) -> Versioned {
        Versioned { expires_at, ..self }
    }

    /// Whether it holds a value that has expired by `now`: a backend that
    /// filters its reads itself uses this one rule.
    pub fn is_expired(&self, now: ExpiresAt) -> bool {
        self.value.is_some() && is_expired(self.expires_at, now)
    }
}

/// Whether an entry expiring at `expires_at` is gone at `now` (it expires
/// at that instant: a TTL of 1 ms written at t is gone at t + 1).
pub fn is_expired(expires_at: Option<ExpiresAt>, now: ExpiresAt) -> bool {
    expires_at.is_some_and(|at| at <= now)
}

/// One `list-keys` request as a backend sees it.
///
/// A backend lists its keys in an order of its own (the keys' bytes, or
/// the escaped names a service stores them under), the same every time, and
/// can resume after any key it listed: that is all the core needs to cut
/// pages where its own rules say and continue exactly after the last key
/// it returned (see `OpenBucket::page_after`).
#[derive(Clone, Copy, Debug)]
pub struct ListRequest<'a> {
    /// List only the keys after this one (the last key of the previous
    /// page, possibly deleted since); `None`: from the first key.
    pub after: Option<&'a str>,
    /// At most this many keys (fewer is fine: `more` says if there are).
    pub max_keys: usize,
    /// Only keys that start with this (`""`: every key). A backend narrows
    /// its listing to them natively where its service can (a range scan, a
    /// prefix query); listing more is correct, only slower: the core keeps
    /// just the matching keys and reads on past a page with none.
    pub prefix: &'a str,
}

impl ListRequest<'_> {
    /// How many keys a backend fetches for this request: one more than
    /// asked, so that [`ListRequest::page_of`] can tell whether more follow.
    pub fn fetch_keys(&self) -> usize {
        self.max_keys.saturating_add(1)
    }

    /// The page of `keys` (listed from just after `after`, as fetched for
    /// [`ListRequest::fetch_keys`]): the first `max_keys` of them, and
    /// whether more follow. Takes at most `fetch_keys` from `keys`.
    pub fn page_of<K>(&self, keys: impl IntoIterator<Item = K>) -> (Vec<K>, bool) {
        let mut keys: Vec<K> = keys.into_iter().take(self.fetch_keys()).collect();
        let more = keys.len() > self.max_keys;
        keys.truncate(self.max_keys);
        (keys, more)
    }
}

/// One page of keys, in the backend's listing order.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct KeyPage {
    pub keys: Vec<String>,
    /// Whether keys may follow the last one. A page is empty only when no
    /// key follows `after`.
    pub more: bool,
}

/// A storage backend: opens buckets by (already validated and allowed) name.
pub trait Backend: 'static {
    /// A backend's bucket type, or `dyn Bucket` for one chosen at run time
    /// (kv-http picks its protocol from the configuration). Calls go
    /// straight to it (through its vtable if `dyn`): there is no forwarding
    /// impl that could miss a method a bucket overrides.
    type Bucket: Bucket + ?Sized;

    /// The name of the backend that serves `bucket`, for messages
    /// ("kv-mem"): this one, but for a router, which names the route's.
    fn name(&self, bucket: &str) -> &'static str;

    /// The largest key and value `bucket` takes.
    fn limits(&self, bucket: &str) -> Limits;

    /// The bucket expiry `bucket` has, overriding the configuration's: a
    /// router's, for the buckets of a route with a `ttl_ms`.
    fn bucket_ttl_ms(&self, _bucket: &str) -> Option<u64> {
        None
    }

    /// Opens the named bucket. `Error::NoSuchStore` if it does not exist and
    /// the backend does not create buckets.
    fn open(&self, name: &str) -> Result<Box<Self::Bucket>>;
}

/// A backend whose bucket type is erased to `dyn Bucket`: what a router
/// holds, one per route, whatever the backends are.
pub type DynBackend = dyn Backend<Bucket = dyn Bucket>;

/// `backend` as a [`DynBackend`].
pub fn erase<B: Backend>(backend: B) -> Box<DynBackend>
where
    B::Bucket: Sized,
{
    Box::new(Erased(backend))
}

struct Erased<B>(B);

impl<B: Backend> Backend for Erased<B>
where
    B::Bucket: Sized,
{
    type Bucket = dyn Bucket;

    fn name(&self, bucket: &str) -> &'static str {
        self.0.name(bucket)
    }

    fn limits(&self, bucket: &str) -> Limits {
        self.0.limits(bucket)
    }

    fn open(&self, name: &str) -> Result<Box<dyn Bucket>> {
        Ok(self.0.open(name)?)
    }
}

/// For a backend that cannot keep an expiry: a write with one is refused
/// (nothing is written), never stored without it.
pub fn refuse_expiry(backend: &str, expires_at: Option<ExpiresAt>) -> Result<()> {
    match expires_at {
        Some(_) => Err(Error::other(format!(
            "{backend} does not support expiring entries yet; nothing was written"
        ))),
        None => Ok(()),
    }
}

/// How many times the default read-modify-write loops retry on conflict
/// before giving up with a clear error.
const MAX_CAS_ATTEMPTS: usize = 10_000;

/// The increment every backend can do: read, add, compare-and-swap, and
/// again on conflict. The backend's `get_versioned` must give the
/// counter's expiry, which the write keeps.
pub fn increment_by_cas<B: Bucket + ?Sized>(
    bucket: &B,
    key: &str,
    delta: i128,
    range: CounterRange,
    expires_at_if_created: Option<ExpiresAt>,
) -> Result<i128> {
    for _ in 0..MAX_CAS_ATTEMPTS {
        let current = bucket.get_versioned(key)?;
        let next = counter::next_value(key, current.value.as_deref(), delta, range)?;
        // A counter keeps its expiry; a new one gets the creation's.
        let expires_at = match current.value {
            Some(_) => current.expires_at,
            None => expires_at_if_created,
        };
        if bucket.compare_and_swap(
            key,
            current.version.as_ref(),
            counter::Decimal(next).to_string().as_bytes(),
            expires_at,
        )? {
            return Ok(next);
        }
    }
    Err(Error::other(format!(
        "increment of key {} gave up after {MAX_CAS_ATTEMPTS} conflicting concurrent writes",
        Quoted(key)
    )))
}

/// One open bucket of a backend. Keys and values passed here are already
/// validated against [`Limits`].
///
/// Expiry: every write says when its entry expires (`expires_at`, `None`:
/// never). From that instant every read treats the entry as absent (`get`,
/// `exists`, `list-keys`, `get-many`, the version a compare-and-swap
/// expects, the value an increment starts from), whether the backend
/// removes it natively or lazily; removal is the backend's business, but
/// space must not grow without bound under a churn of expiring keys.
pub trait Bucket: 'static {
    fn get(&self, key: &str) -> Result<Option<Vec<u8>>>;

    /// The value, its version and its expiry, for compare-and-swap.
    fn get_versioned(&self, key: &str) -> Result<Versioned>;

    fn set(&self, key: &str, value: &[u8], expires_at: Option<ExpiresAt>) -> Result<()>;

    /// Deleting a missing key is not an error.
    fn delete(&self, key: &str) -> Result<()>;

    fn exists(&self, key: &str) -> Result<bool> {
        Ok(self.get(key)?.is_some())
    }

    /// The next keys after `request.after` (see [`ListRequest`]).
    fn list_keys(&self, request: ListRequest<'_>) -> Result<KeyPage>;

    /// Writes `value` only if the key's version is still `expected`
    /// (`None`: only if the key is still absent, or expired). `Ok(false)`
    /// on conflict.
    fn compare_and_swap(
        &self,
        key: &str,
        expected: Option<&Version>,
        value: &[u8],
        expires_at: Option<ExpiresAt>,
    ) -> Result<bool>;

    /// Adds `delta` to the decimal counter at `key` (absent counts as 0) and
    /// returns the new value. An existing counter keeps its expiry; one this
    /// creates expires at `expires_at_if_created`. The default is a
    /// compare-and-swap loop; backends with a native atomic increment may
    /// override it, keeping the rules of [`counter::next_value`].
    fn increment(
        &self,
        key: &str,
        delta: i128,
        range: CounterRange,
        expires_at_if_created: Option<ExpiresAt>,
    ) -> Result<i128> {
        increment_by_cas(self, key, delta, range, expires_at_if_created)
    }

    fn get_many(&self, keys: &[String]) -> Result<Vec<Option<Vec<u8>>>> {
        keys.iter().map(|key| self.get(key)).collect()
    }

    /// The values and expiries of `keys` (an export's read).
    fn get_many_versioned(&self, keys: &[String]) -> Result<Vec<Versioned>> {
        keys.iter().map(|key| self.get_versioned(key)).collect()
    }

    fn set_many(&self, entries: &[(String, Vec<u8>)], expires_at: Option<ExpiresAt>) -> Result<()> {
        entries
            .iter()
            .try_for_each(|(key, value)| self.set(key, value, expires_at))
    }

    fn delete_many(&self, keys: &[String]) -> Result<()> {
        keys.iter().try_for_each(|key| self.delete(key))
    }
}

#[cfg(test)]
mod tests {
    use super::ListRequest;
    use std::vec::Vec;

    #[test]
    fn a_page_takes_one_key_more_than_asked_to_say_whether_more_follow() {
        let request = ListRequest {
            after: None,
            max_keys: 2,
            prefix: "",
        };
        assert_eq!(request.fetch_keys(), 3);
        let page = |n: u32| request.page_of(0..n);
        assert_eq!(page(0), (Vec::new(), false));
        assert_eq!(page(2), (Vec::from([0, 1]), false));
        assert_eq!(page(3), (Vec::from([0, 1]), true));
        // An endless listing is read only as far as it needs.
        assert_eq!(request.page_of(0..), (Vec::from([0, 1]), true));
    }
}
