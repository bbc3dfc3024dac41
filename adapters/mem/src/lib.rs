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

use kv_core::config::{AdapterConfig, BackendConfig};
use kv_core::{KeyPage, Limits, ListRequest, Result, Version, Versioned};

/// kv-mem's limits (the project's contract for local stores).
pub const LIMITS: Limits = Limits {
    max_key_bytes: 64 << 10,
    max_value_bytes: 64 << 20,
};

/// A key's value and the write that produced it.
struct Entry {
    value: Vec<u8>,
    written_at: u64,
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
    fn from_config(config: &AdapterConfig) -> Result<Self> {
        match &config.backend {
            BackendConfig::Mem(_) => Ok(MemBackend::default()),
            other => Err(other.wrong_adapter("kv-mem")),
        }
    }
}

fn version(written_at: u64) -> Version {
    Version(written_at.to_le_bytes().to_vec())
}

impl MemBucket {
    fn write(&self, key: &str, value: &[u8]) {
        let written_at = self.shared.writes.get() + 1;
        self.shared.writes.set(written_at);
        let entry = Entry {
            value: value.to_vec(),
            written_at,
        };
        self.entries.borrow_mut().insert(key.to_string(), entry);
    }
}

impl kv_core::Bucket for MemBucket {
    fn get(&self, key: &str) -> Result<Option<Vec<u8>>> {
        Ok(self.entries.borrow().get(key).map(|e| e.value.clone()))
    }

    fn get_versioned(&self, key: &str) -> Result<Versioned> {
        Ok(self
            .entries
            .borrow()
            .get(key)
            .map(|e| Versioned::found(e.value.clone(), version(e.written_at)))
            .unwrap_or_default())
    }

    fn set(&self, key: &str, value: &[u8]) -> Result<()> {
        self.write(key, value);
        Ok(())
    }

    fn delete(&self, key: &str) -> Result<()> {
        self.entries.borrow_mut().remove(key);
        Ok(())
    }

    fn exists(&self, key: &str) -> Result<bool> {
        Ok(self.entries.borrow().contains_key(key))
    }

    /// Keys in byte order, from just after `request.after`.
    fn list_keys(&self, request: ListRequest<'_>) -> Result<KeyPage> {
        let entries = self.entries.borrow();
        let start = request.after.map_or(Bound::Unbounded, Bound::Excluded);
        let after = entries.range::<str, _>((start, Bound::Unbounded)).map(|(k, _)| k);
        let (keys, more) = request.page_of(after);
        Ok(KeyPage {
            keys: keys.into_iter().cloned().collect(),
            more,
        })
    }

    fn compare_and_swap(&self, key: &str, expected: Option<&Version>, value: &[u8]) -> Result<bool> {
        let current = self.entries.borrow().get(key).map(|e| version(e.written_at));
        if current.as_ref() != expected {
            return Ok(false);
        }
        self.write(key, value);
        Ok(true)
    }
}

// The component's exports; kv-route links this crate without them.
#[cfg(feature = "component")]
kv_glue::export_adapter!(MemBackend);
