//! kv-mem: `wasi:keyvalue` in the adapter's own memory. Data lives as long
//! as the instance: for tests and demos.

#![no_std]

extern crate alloc;

use alloc::boxed::Box;
use alloc::collections::BTreeMap;
use alloc::rc::Rc;
use alloc::string::{String, ToString};
use alloc::vec::Vec;
use core::cell::{Cell, RefCell};
use core::ops::Bound;

use kv_core::config::{MemConfig, Own};
use kv_core::{KeyPage, Limits, ListRequest, Result, Version, Versioned, is_expired};

/// kv-mem's limits (the project's contract for local stores).
pub const LIMITS: Limits = Limits {
    max_key_bytes: 64 << 10,
    max_value_bytes: 64 << 20,
};

/// A key's value, the write that produced it and when it expires.
struct Entry {
    value: Vec<u8>,
    written_at: u64,
    expires_at: Option<u64>,
}

/// One bucket's entries, shared by every handle on it.
type Entries = Rc<RefCell<BTreeMap<String, Entry>>>;

#[derive(Default)]
struct Shared {
    /// Bumped on every write: the version of what it wrote.
    writes: Cell<u64>,
    /// Bucket name → its entries: a few buckets, searched in turn (a map
    /// would add a second copy of `BTreeMap`'s code to the component).
    buckets: RefCell<Vec<(String, Entries)>>,
}

/// The in-memory backend: buckets are created on first `open`.
#[derive(Default)]
pub struct MemBackend {
    shared: Rc<Shared>,
}

pub struct MemBucket {
    shared: Rc<Shared>,
    entries: Entries,
}

impl kv_core::Backend for MemBackend {
    type Bucket = MemBucket;

    fn name(&self, _bucket: &str) -> &'static str {
        "kv-mem"
    }

    fn limits(&self, _bucket: &str) -> Limits {
        LIMITS
    }

    fn open(&self, name: &str) -> Result<Box<MemBucket>> {
        let mut buckets = self.shared.buckets.borrow_mut();
        let entries = match buckets.iter().find(|(bucket, _)| bucket == name) {
            Some((_, entries)) => Rc::clone(entries),
            None => {
                let entries = Entries::default();
                buckets.push((name.to_string(), Rc::clone(&entries)));
                entries
            }
        };
        Ok(Box::new(MemBucket {
            shared: Rc::clone(&self.shared),
            entries,
        }))
    }
}

impl kv_glue::Adapter for MemBackend {
    type Options = Own<MemConfig>;
    fn from_config(_: &Own<MemConfig>) -> Result<Self> {
        Ok(MemBackend::default())
    }
}

fn version(written_at: u64) -> Version {
    Version(written_at.to_le_bytes().to_vec())
}

impl MemBucket {
    fn write(&self, key: &str, value: &[u8], expires_at: Option<u64>) {
        let written_at = self.shared.writes.get() + 1;
        self.shared.writes.set(written_at);
        let entry = Entry {
            value: value.to_vec(),
            written_at,
            expires_at,
        };
        self.entries.borrow_mut().insert(key.to_string(), entry);
    }

    /// The live entry at `key`: an expired one is removed as it is found.
    fn live<T>(&self, key: &str, read: impl FnOnce(&Entry) -> T) -> Option<T> {
        let mut entries = self.entries.borrow_mut();
        let expired = is_expired(entries.get(key)?.expires_at, kv_glue::wall_clock_ms());
        if expired {
            entries.remove(key);
            return None;
        }
        entries.get(key).map(read)
    }

    /// Removes every expired entry: run as often as entries are written,
    /// so memory stays within a constant factor of the live entries.
    fn collect_expired(&self) {
        let now = kv_glue::wall_clock_ms();
        self.entries
            .borrow_mut()
            .retain(|_, entry| !is_expired(entry.expires_at, now));
    }
}

impl kv_core::Bucket for MemBucket {
    fn get(&self, key: &str) -> Result<Option<Vec<u8>>> {
        Ok(self.live(key, |e| e.value.clone()))
    }

    fn get_versioned(&self, key: &str) -> Result<Versioned> {
        Ok(self
            .live(key, |e| {
                Versioned::found(e.value.clone(), version(e.written_at)).expiring(e.expires_at)
            })
            .unwrap_or_default())
    }

    fn set(&self, key: &str, value: &[u8], expires_at: Option<u64>) -> Result<()> {
        self.write(key, value, expires_at);
        self.after_write();
        Ok(())
    }

    fn delete(&self, key: &str) -> Result<()> {
        self.entries.borrow_mut().remove(key);
        Ok(())
    }

    fn exists(&self, key: &str) -> Result<bool> {
        Ok(self.live(key, |_| ()).is_some())
    }

    /// Live keys in byte order, from just after `request.after`, starting
    /// with `request.prefix` (a range of the map).
    fn list_keys(&self, request: ListRequest<'_>) -> Result<KeyPage> {
        let entries = self.entries.borrow();
        let now = kv_glue::wall_clock_ms();
        let start = match request.after {
            Some(after) if after >= request.prefix => Bound::Excluded(after),
            _ => Bound::Included(request.prefix),
        };
        let after = entries
            .range::<str, _>((start, Bound::Unbounded))
            .take_while(|(key, _)| key.starts_with(request.prefix))
            .filter(|(_, entry)| !is_expired(entry.expires_at, now))
            .map(|(key, _)| key);
        let (keys, more) = request.page_of(after);
        Ok(KeyPage {
            keys: keys.into_iter().cloned().collect(),
            more,
        })
    }

    fn compare_and_swap(
        &self,
        key: &str,
        expected: Option<&Version>,
        value: &[u8],
        expires_at: Option<u64>,
    ) -> Result<bool> {
        let current = self.live(key, |e| version(e.written_at));
        if current.as_ref() != expected {
            return Ok(false);
        }
        self.write(key, value, expires_at);
        self.after_write();
        Ok(true)
    }
}

impl MemBucket {
    /// Collects expired entries once per as many writes as there are
    /// entries: amortized O(log n) a write, and at most about twice the
    /// live entries in memory.
    fn after_write(&self) {
        let writes = self.shared.writes.get();
        let len = self.entries.borrow().len() as u64;
        if writes.is_multiple_of(len.max(64)) {
            self.collect_expired();
        }
    }
}

// The component's exports; kv-route links this crate without them.
#[cfg(feature = "component")]
kv_glue::export_adapter!(MemBackend);
