//! The `wasi:keyvalue` contract on top of any [`Backend`]: what `open`,
//! `get`, `list-keys`, `increment`, `cas` ... mean, for both drafts.

use alloc::boxed::Box;
use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;

use alloc::rc::Rc;
use core::cell::RefCell;

use crate::config::validate_ttl_ms;
use crate::config::{AdapterConfig, DEFAULT_BUCKET};
use crate::counter::CounterRange;
use crate::cursor::{DraftCursors, decode_string_cursor, encode_string_cursor};
use crate::error::Quoted;
use crate::{
    Backend, Bucket, Error, ExpiresAt, Limits, ListRequest, Result, Version, Versioned, validate_bucket_name,
};

/// The wall clock: milliseconds since the Unix epoch (the WASI wall clock
/// in an adapter; a test's own clock natively).
pub type Clock = fn() -> u64;

/// A configured backend: the state of one adapter instance.
pub struct Store<B: Backend> {
    backend: B,
    /// The bucket expiry of buckets whose backend has none of its own.
    ttl_ms: Option<u64>,
    clock: Clock,
    /// A short list (a set would add its code to every adapter).
    allowed_buckets: Option<Vec<String>>,
    default_bucket: String,
    page_keys: usize,
    page_bytes: usize,
    draft_cursors: RefCell<DraftCursors>,
}

impl<B: Backend> Store<B> {
    pub fn new<O>(backend: B, config: &AdapterConfig<O>, clock: Clock) -> Rc<Self> {
        Rc::new(Store {
            backend,
            ttl_ms: config.ttl_ms,
            clock,
            allowed_buckets: config.allowed_buckets.clone(),
            default_bucket: config.default_bucket.clone(),
            page_keys: config.list_page_keys as usize,
            page_bytes: config.list_page_bytes as usize,
            draft_cursors: RefCell::default(),
        })
    }

    pub fn backend(&self) -> &B {
        &self.backend
    }

    /// The bucket an identifier names: `""` (wasmtime, wasmCloud) and Spin's
    /// `default` label are the configured default bucket; any other name is
    /// itself.
    pub fn resolve<'a>(&'a self, identifier: &'a str) -> &'a str {
        if identifier.is_empty() || identifier == DEFAULT_BUCKET {
            &self.default_bucket
        } else {
            identifier
        }
    }

    /// `store.open`: the resolved name, valid and on the allow-list if
    /// there is one.
    pub fn open(self: &Rc<Self>, identifier: &str) -> Result<OpenBucket<B>> {
        let name = self.resolve(identifier);
        validate_bucket_name(name)?;
        if let Some(allowed) = &self.allowed_buckets
            && !allowed.iter().any(|allowed| allowed == name)
        {
            return Err(Error::AccessDenied);
        }
        let bucket = self.backend.open(name)?;
        Ok(OpenBucket {
            store: Rc::clone(self),
            ttl_ms: self.backend.bucket_ttl_ms(name).or(self.ttl_ms),
            name: name.into(),
            backend_name: self.backend.name(name),
            limits: self.backend.limits(name),
            bucket: Rc::from(bucket),
        })
    }
}

/// An open bucket: every operation of both drafts, validated.
pub struct OpenBucket<B: Backend> {
    store: Rc<Store<B>>,
    name: Rc<str>,
    /// The bucket expiry of keys written without their own.
    ttl_ms: Option<u64>,
    /// The backend that serves it and its limits (a route's, under a router).
    backend_name: &'static str,
    limits: Limits,
    bucket: Rc<B::Bucket>,
}

impl<B: Backend> Clone for OpenBucket<B> {
    fn clone(&self) -> Self {
        OpenBucket {
            store: Rc::clone(&self.store),
            name: Rc::clone(&self.name),
            ttl_ms: self.ttl_ms,
            backend_name: self.backend_name,
            limits: self.limits,
            bucket: Rc::clone(&self.bucket),
        }
    }
}

/// Why a compare-and-swap did not happen.
pub enum CasError<B: Backend> {
    /// The key changed since the snapshot: here is a fresh one.
    Conflict(Box<CasSnapshot<B>>),
    Store(Error),
}

impl<B: Backend> From<Error> for CasError<B> {
    fn from(e: Error) -> Self {
        CasError::Store(e)
    }
}

/// A key's value and version, read by `cas.new`.
pub struct CasSnapshot<B: Backend> {
    bucket: OpenBucket<B>,
    key: String,
    current: Option<Vec<u8>>,
    version: Option<Version>,
}

impl<B: Backend> CasSnapshot<B> {
    pub fn current(&self) -> Option<&[u8]> {
        self.current.as_deref()
    }

    /// Writes `value` if the key is unchanged since the snapshot (still
    /// absent, if it was absent); otherwise returns a fresh snapshot.
    pub fn swap(self, value: &[u8]) -> Result<(), CasError<B>> {
        let bucket = self.bucket;
        bucket.check_value(&self.key, value)?;
        if bucket
            .bucket
            .compare_and_swap(&self.key, self.version.as_ref(), value, bucket.expiry(None))?
        {
            Ok(())
        } else {
            Err(CasError::Conflict(Box::new(bucket.cas(self.key)?)))
        }
    }
}

fn size(bytes: usize) -> String {
    match bytes {
        b if b >= 1 << 20 && b % (1 << 20) == 0 => format!("{} MiB", b >> 20),
        b if b >= 1 << 10 && b % (1 << 10) == 0 => format!("{} KiB", b >> 10),
        b => format!("{b} bytes"),
    }
}

impl<B: Backend> OpenBucket<B> {
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The bucket expiry of keys written without their own (`ttl-ms`).
    pub fn ttl_ms(&self) -> Option<u64> {
        self.ttl_ms
    }

    /// When a write made now expires: after its own `ttl_ms`, else the
    /// bucket's, else never.
    fn expiry(&self, ttl_ms: Option<u64>) -> Option<ExpiresAt> {
        let ttl_ms = ttl_ms.or(self.ttl_ms)?;
        Some((self.store.clock)().saturating_add(ttl_ms))
    }

    fn check_key(&self, key: &str) -> Result<()> {
        let max = self.limits.max_key_bytes;
        if key.is_empty() {
            Err(Error::invalid("key must not be empty"))
        } else if key.len() > max {
            Err(Error::invalid(format!(
                "key of {} bytes is over {}'s key limit of {}",
                key.len(),
                self.backend_name,
                size(max)
            )))
        } else {
            Ok(())
        }
    }

    fn check_value(&self, key: &str, value: &[u8]) -> Result<()> {
        self.check_key(key)?;
        let max = self.limits.max_value_bytes;
        if value.len() > max {
            return Err(Error::invalid(format!(
                "value of {} bytes for key {} is over {}'s value limit of {}",
                value.len(),
                Quoted(&shorten(key)),
                self.backend_name,
                size(max)
            )));
        }
        Ok(())
    }

    pub fn get(&self, key: &str) -> Result<Option<Vec<u8>>> {
        self.check_key(key)?;
        self.bucket.get(key)
    }

    pub fn set(&self, key: &str, value: &[u8]) -> Result<()> {
        self.check_value(key, value)?;
        self.bucket.set(key, value, self.expiry(None))
    }

    pub fn delete(&self, key: &str) -> Result<()> {
        self.check_key(key)?;
        self.bucket.delete(key)
    }

    pub fn exists(&self, key: &str) -> Result<bool> {
        self.check_key(key)?;
        self.bucket.exists(key)
    }

    /// One `list-keys` page: the keys after `after` (the last key of the
    /// previous page) that start with `prefix`, at most `list_page_keys`
    /// of them and at most `list_page_bytes` of key bytes (but always one
    /// key if there is one), and the key to continue after when more may
    /// follow.
    ///
    /// The page is cut here, the same way for every backend: a backend
    /// lists in its own order and resumes after any key it listed (see
    /// [`ListRequest`]), so continuing after the last key returned (or, on
    /// a page cut by the prefix alone, the last key listed) is exact
    /// wherever the cut falls, whatever the backend's own paging (a
    /// service's page limit, a cut the service makes early). The cost: a
    /// backend reads up to `list_page_keys` keys whatever their size, and
    /// the keys past a byte cut are read again for the next page (pages
    /// are cut by bytes only when keys average over 1 KiB, by default).
    /// The backend narrows its listing to the prefix where its service can
    /// (see [`ListRequest::prefix`]); the core keeps only matching keys and
    /// reads on past a page with none, so a backend that cannot still
    /// lists correctly, at the cost of reading the whole bucket.
    pub fn page_after(&self, after: Option<&str>, prefix: &str) -> Result<(Vec<String>, Option<String>)> {
        let max_keys = self.store.page_keys;
        let mut after = after.map(String::from);
        loop {
            let page = self.bucket.list_keys(ListRequest {
                after: after.as_deref(),
                max_keys,
                prefix,
            })?;
            let listed_last = page.keys.last().cloned();
            let mut keys: Vec<String> = page
                .keys
                .into_iter()
                .filter(|key| key.starts_with(prefix))
                .collect();
            let mut bytes = 0;
            let within = keys
                .iter()
                .take(max_keys)
                .take_while(|key| {
                    bytes += key.len();
                    bytes <= self.store.page_bytes
                })
                .count()
                .max(1);
            if within < keys.len() {
                keys.truncate(within);
                let next = keys.last().cloned();
                return Ok((keys, next));
            }
            let next = if page.more { listed_last } else { None };
            match next {
                // Nothing on this page has the prefix: read on.
                Some(last) if keys.is_empty() => after = Some(last),
                next => return Ok((keys, next)),
            }
        }
    }

    /// Every key, in key order, page after page (Spin's `get-keys`).
    pub fn all_keys(&self) -> Result<Vec<String>> {
        let (mut keys, mut next) = self.page_after(None, "")?;
        while let Some(after) = next {
            let (page, more) = self.page_after(Some(&after), "")?;
            keys.extend(page);
            next = more;
        }
        Ok(keys)
    }

    /// 0.2.0-draft `list-keys` (`u64` cursors).
    pub fn list_keys_u64(&self, cursor: Option<u64>) -> Result<(Vec<String>, Option<u64>)> {
        let after = cursor
            .map(|id| self.store.draft_cursors.borrow().resolve(&self.name, id))
            .transpose()?;
        let (keys, next) = self.page_after(after.as_deref(), "")?;
        let next = next.map(|after| self.store.draft_cursors.borrow_mut().issue(&self.name, after));
        Ok((keys, next))
    }

    /// 0.2.0-draft2 `list-keys` (`string` cursors).
    pub fn list_keys_string(&self, cursor: Option<&str>) -> Result<(Vec<String>, Option<String>)> {
        self.list_keys_with_prefix("", cursor)
    }

    /// wasmCloud's `list-keys(prefix, cursor)`: draft2's string cursors,
    /// over the keys that start with `prefix` (the same prefix is given
    /// with each cursor).
    pub fn list_keys_with_prefix(
        &self,
        prefix: &str,
        cursor: Option<&str>,
    ) -> Result<(Vec<String>, Option<String>)> {
        let after = cursor.map(decode_string_cursor).transpose()?;
        let (keys, next) = self.page_after(after.as_deref(), prefix)?;
        Ok((keys, next.as_deref().map(encode_string_cursor)))
    }

    pub fn increment(&self, key: &str, delta: i128, range: CounterRange) -> Result<i128> {
        self.check_key(key)?;
        self.bucket.increment(key, delta, range, self.expiry(None))
    }

    /// `get-many`: one entry per requested key, `None` where it is missing.
    pub fn get_many(&self, keys: &[String]) -> Result<Vec<Option<Vec<u8>>>> {
        keys.iter().try_for_each(|key| self.check_key(key))?;
        let values = self.bucket.get_many(keys)?;
        self.check_one_read_per_key(values.len(), keys)?;
        Ok(values)
    }

    /// A backend's get-many answers each key once.
    fn check_one_read_per_key(&self, reads: usize, keys: &[String]) -> Result<()> {
        if reads != keys.len() {
            return Err(Error::other(format!(
                "{}: get-many returned {reads} values for {} keys",
                self.backend_name,
                keys.len()
            )));
        }
        Ok(())
    }

    /// `set-many`: every entry is validated before anything is written.
    pub fn set_many(&self, entries: &[(String, Vec<u8>)]) -> Result<()> {
        entries
            .iter()
            .try_for_each(|(key, value)| self.check_value(key, value))?;
        self.bucket.set_many(entries, self.expiry(None))
    }

    /// The values of `keys` with their expiries, `None` where a key is
    /// missing (an export's read: expired keys are missing).
    pub fn get_many_with_expiry(&self, keys: &[String]) -> Result<Vec<Option<ValueWithExpiry>>> {
        keys.iter().try_for_each(|key| self.check_key(key))?;
        let read = self.bucket.get_many_versioned(keys)?;
        self.check_one_read_per_key(read.len(), keys)?;
        Ok(read
            .into_iter()
            .map(|versioned| versioned.value.map(|value| (value, versioned.expires_at)))
            .collect())
    }

    /// Writes entries each with its own expiry (an import's write; `None`:
    /// the bucket's `ttl-ms`, if any). An entry whose expiry has passed is
    /// not written.
    pub fn set_many_with_expiry(&self, entries: &[(String, Vec<u8>, Option<ExpiresAt>)]) -> Result<()> {
        entries
            .iter()
            .try_for_each(|(key, value, _)| self.check_value(key, value))?;
        let now = (self.store.clock)();
        let bucket_expiry = self.expiry(None);
        // Consecutive entries with one expiry go in one `set_many`.
        let mut batch: Vec<(String, Vec<u8>)> = Vec::new();
        let mut batch_expiry = None;
        for (key, value, expires_at) in entries {
            if crate::is_expired(*expires_at, now) {
                continue;
            }
            let expiry = expires_at.or(bucket_expiry);
            if expiry != batch_expiry && !batch.is_empty() {
                self.bucket.set_many(&batch, batch_expiry)?;
                batch.clear();
            }
            batch_expiry = expiry;
            batch.push((key.clone(), value.clone()));
        }
        if !batch.is_empty() {
            self.bucket.set_many(&batch, batch_expiry)?;
        }
        Ok(())
    }

    pub fn delete_many(&self, keys: &[String]) -> Result<()> {
        keys.iter().try_for_each(|key| self.check_key(key))?;
        self.bucket.delete_many(keys)
    }

    /// `cas.new`: snapshot the key's value and version.
    pub fn cas(&self, key: String) -> Result<CasSnapshot<B>> {
        self.check_key(&key)?;
        let versioned = self.bucket.get_versioned(&key)?;
        Ok(CasSnapshot {
            bucket: self.clone(),
            key,
            current: versioned.value,
            version: versioned.version,
        })
    }
}

/// A value and when it expires (`None`: never), as an export reads it.
pub type ValueWithExpiry = (Vec<u8>, Option<ExpiresAt>);

/// The options of a `set` (wasmCloud's `set-options`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SetOptions {
    /// Expire the entry this many milliseconds after the write (else the
    /// bucket's `ttl-ms`, else never).
    pub ttl_ms: Option<u64>,
    /// Write only if the key does not exist.
    pub if_not_exists: bool,
}

/// A key's value and its version as a string (wasmCloud's `cas.entry`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Entry {
    pub value: Vec<u8>,
    pub version: String,
}

/// What a conditional swap did (wasmCloud's `cas-result`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SwapOutcome {
    Swapped,
    /// A precondition did not hold: nothing was written; the key's current
    /// entry (`None`: absent).
    Stale(Option<Entry>),
}

/// The preconditions of a swap (wasmCloud's `cas-options`): every one
/// given must hold.
#[derive(Clone, Copy, Debug, Default)]
pub struct SwapPreconditions<'a> {
    pub version: Option<&'a str>,
    pub value: Option<&'a [u8]>,
}

/// A version as a string: the lowercase hex of the backend's version bytes
/// (an etcd revision, an ETag, a kv-fs commit stamp). Opaque to the app;
/// only equality means anything.
pub fn version_string(version: &Version) -> String {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    version
        .0
        .iter()
        .flat_map(|b| [HEX[usize::from(b >> 4)] as char, HEX[usize::from(b & 15)] as char])
        .collect()
}

fn entry_of(versioned: Versioned) -> Option<Entry> {
    match versioned {
        Versioned {
            value: Some(value),
            version: Some(version),
            ..
        } => Some(Entry {
            value,
            version: version_string(&version),
        }),
        _ => None,
    }
}

impl<B: Backend> OpenBucket<B> {
    /// `set` with options: `if_not_exists` writes only over an absent key
    /// (atomically: the backend's insert-if-absent compare-and-swap), else
    /// `precondition-failed`.
    pub fn set_with_options(&self, key: &str, value: &[u8], options: SetOptions) -> Result<()> {
        self.check_value(key, value)?;
        validate_ttl_ms(options.ttl_ms)?;
        let expires_at = self.expiry(options.ttl_ms);
        if !options.if_not_exists {
            return self.bucket.set(key, value, expires_at);
        }
        if self.bucket.compare_and_swap(key, None, value, expires_at)? {
            Ok(())
        } else {
            Err(Error::PreconditionFailed(format!(
                "set of key {} with if-not-exists: the key exists",
                Quoted(&shorten(key))
            )))
        }
    }

    /// The key's value and version (wasmCloud's `cas.current`).
    pub fn current_entry(&self, key: &str) -> Result<Option<Entry>> {
        self.check_key(key)?;
        Ok(entry_of(self.bucket.get_versioned(key)?))
    }

    /// Writes `value` if every precondition holds of the key's current
    /// entry, atomically (wasmCloud's `cas.swap`); else the current entry.
    /// A value precondition that still holds after a concurrent write is
    /// checked again, so only a real mismatch is `stale`.
    pub fn swap_if(&self, key: &str, value: &[u8], require: SwapPreconditions<'_>) -> Result<SwapOutcome> {
        self.check_value(key, value)?;
        if require.version.is_none() && require.value.is_none() {
            return Err(Error::invalid(
                "cas swap with no precondition: set require-version or require-value (or use set)",
            ));
        }
        for _ in 0..MAX_SWAP_ATTEMPTS {
            let current = self.bucket.get_versioned(key)?;
            let holds = match (&current.value, &current.version) {
                (Some(current_value), Some(version)) => {
                    require
                        .version
                        .is_none_or(|wanted| wanted == version_string(version))
                        && require
                            .value
                            .is_none_or(|wanted| wanted == current_value.as_slice())
                }
                // An absent key has no version or value to match.
                _ => false,
            };
            if !holds {
                return Ok(SwapOutcome::Stale(entry_of(current)));
            }
            if self
                .bucket
                .compare_and_swap(key, current.version.as_ref(), value, self.expiry(None))?
            {
                return Ok(SwapOutcome::Swapped);
            }
            if require.version.is_some() {
                // The version read is gone: report what replaced it.
                return Ok(SwapOutcome::Stale(entry_of(self.bucket.get_versioned(key)?)));
            }
        }
        Err(Error::other(format!(
            "cas swap of key {} gave up after {MAX_SWAP_ATTEMPTS} conflicting concurrent writes",
            Quoted(&shorten(key))
        )))
    }
}

/// How often a value-only swap re-reads after losing a race to a write
/// that left its precondition true.
const MAX_SWAP_ATTEMPTS: usize = 1_000;

/// A key in a message: its first 64 characters.
fn shorten(key: &str) -> String {
    key.chars().take(64).collect()
}

#[cfg(test)]
mod tests;
