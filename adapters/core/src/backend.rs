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

/// A value (or its absence) and the version it was read at (`None` iff absent).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Versioned {
    pub value: Option<Vec<u8>>,
    pub version: Option<Version>,
}

impl Versioned {
    /// A present value, read at `version` (an absent one is the default).
    pub fn found(value: Vec<u8>, version: Version) -> Versioned {
        Versioned {
            value: Some(value),
            version: Some(version),
        }
    }
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

/// How many times the default read-modify-write loops retry on conflict
/// before giving up with a clear error.
const MAX_CAS_ATTEMPTS: usize = 10_000;

/// The increment every backend can do: read, add, compare-and-swap, and
/// again on conflict.
pub fn increment_by_cas<B: Bucket + ?Sized>(
    bucket: &B,
    key: &str,
    delta: i128,
    range: CounterRange,
) -> Result<i128> {
    for _ in 0..MAX_CAS_ATTEMPTS {
        let current = bucket.get_versioned(key)?;
        let next = counter::next_value(key, current.value.as_deref(), delta, range)?;
        if bucket.compare_and_swap(key, current.version.as_ref(), next.to_string().as_bytes())? {
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
pub trait Bucket: 'static {
    fn get(&self, key: &str) -> Result<Option<Vec<u8>>>;

    /// The value and its version, for compare-and-swap.
    fn get_versioned(&self, key: &str) -> Result<Versioned>;

    fn set(&self, key: &str, value: &[u8]) -> Result<()>;

    /// Deleting a missing key is not an error.
    fn delete(&self, key: &str) -> Result<()>;

    fn exists(&self, key: &str) -> Result<bool> {
        Ok(self.get(key)?.is_some())
    }

    /// The next keys after `request.after` (see [`ListRequest`]).
    fn list_keys(&self, request: ListRequest<'_>) -> Result<KeyPage>;

    /// Writes `value` only if the key's version is still `expected`
    /// (`None`: only if the key is still absent). `Ok(false)` on conflict.
    fn compare_and_swap(&self, key: &str, expected: Option<&Version>, value: &[u8]) -> Result<bool>;

    /// Adds `delta` to the decimal counter at `key` (absent counts as 0) and
    /// returns the new value. The default is a compare-and-swap loop;
    /// backends with a native atomic increment may override it, keeping the
    /// rules of [`counter::next_value`].
    fn increment(&self, key: &str, delta: i128, range: CounterRange) -> Result<i128> {
        increment_by_cas(self, key, delta, range)
    }

    fn get_many(&self, keys: &[String]) -> Result<Vec<Option<Vec<u8>>>> {
        keys.iter().map(|key| self.get(key)).collect()
    }

    fn set_many(&self, entries: &[(String, Vec<u8>)]) -> Result<()> {
        entries.iter().try_for_each(|(key, value)| self.set(key, value))
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
