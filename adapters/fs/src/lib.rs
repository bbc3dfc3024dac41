//! kv-fs: `wasi:keyvalue` on `wasi:filesystem`. Each bucket is one file of
//! the `kv-fs-engine` format (see `adapters/fs-engine/FORMAT.md`) in the
//! configured directory; many instances may use the same files at once.
//!
//! This crate is the thin part: the engine's storage traits over
//! `wasi:filesystem` ([`wasi_dir`]) and the [`kv_core::Backend`] over the
//! engine.

#![no_std]

extern crate alloc;

mod wasi_dir;

use alloc::boxed::Box;
use alloc::format;
use alloc::rc::Rc;
use alloc::string::{String, ToString};
use alloc::vec::Vec;
use core::cell::RefCell;

use kv_core::config::{Durability, FsConfig, Own};
use kv_core::{CounterRange, Error, KeyPage, Limits, ListRequest, Quoted, Result, Version, Versioned};
use kv_fs_engine::{BucketFile, Options, SyncPolicy};

use crate::wasi_dir::WasiDir;

/// kv-fs's limits (the engine's).
pub const LIMITS: Limits = Limits {
    max_key_bytes: kv_fs_engine::MAX_KEY_LEN,
    max_value_bytes: kv_fs_engine::MAX_VALUE_LEN,
};

type SharedFile = Rc<RefCell<BucketFile<WasiDir>>>;

/// The file-backed backend: each bucket's file, opened once and kept open for
/// the life of the instance so its page cache is reused.
pub struct FsBackend {
    dir: WasiDir,
    options: Options,
    /// Bucket name → its open file: a few buckets, searched in turn (a map
    /// would add another copy of `BTreeMap`'s code to the component).
    files: RefCell<Vec<(String, SharedFile)>>,
}

pub struct FsBucket {
    file: SharedFile,
}

/// The engine keeps the writer lock from one commit to the next; when the
/// app drops its last handle on the bucket, other instances may have it.
impl Drop for FsBucket {
    fn drop(&mut self) {
        // One reference is the backend's: this was the last handle.
        if Rc::strong_count(&self.file) == 2
            && let Ok(mut file) = self.file.try_borrow_mut()
        {
            file.release_lock();
        }
    }
}

/// The engine's messages already name kv-fs and the file.
fn engine_error(e: kv_fs_engine::Error) -> Error {
    Error::other(format!("{e}"))
}

/// A bucket's file name: the name itself where it is made of `[a-z0-9._-]`,
/// every other byte (upper case included, for case-insensitive file
/// systems) as `%XX`, then `.kvfs`.
pub fn file_name(bucket: &str) -> Result<String> {
    let mut name = kv_core::percent::encode(
        bucket.as_bytes(),
        |c| matches!(c, 'a'..='z' | '0'..='9' | '.' | '_' | '-'),
    );
    name.push_str(".kvfs");
    // Leave room for the engine's lock and temporary file suffixes.
    if name.len() > 200 {
        return Err(Error::other(format!(
            "bucket name {} is too long for kv-fs: its file name would be {} bytes (at most 200)",
            Quoted(bucket),
            name.len()
        )));
    }
    Ok(name)
}

impl kv_core::Backend for FsBackend {
    type Bucket = FsBucket;

    fn name(&self, _bucket: &str) -> &'static str {
        "kv-fs"
    }

    fn limits(&self, _bucket: &str) -> Limits {
        LIMITS
    }

    fn open(&self, name: &str) -> Result<Box<FsBucket>> {
        if let Some((_, file)) = self.files.borrow().iter().find(|(bucket, _)| bucket == name) {
            return Ok(Box::new(FsBucket {
                file: Rc::clone(file),
            }));
        }
        let file = file_name(name)?;
        let file = BucketFile::open(self.dir.clone(), &file, self.options.clone())
            .map_err(engine_error)?
            .ok_or(Error::NoSuchStore)?;
        let file = Rc::new(RefCell::new(file));
        self.files.borrow_mut().push((name.into(), Rc::clone(&file)));
        Ok(Box::new(FsBucket { file }))
    }
}

impl FsBackend {
    /// kv-fs on the directory the configuration names.
    pub fn new(fs: &FsConfig) -> Result<Self> {
        Ok(FsBackend {
            dir: WasiDir::open(&fs.dir)?,
            options: options(fs),
            files: RefCell::default(),
        })
    }
}

impl kv_glue::Adapter for FsBackend {
    type Options = Own<FsConfig>;
    fn from_config(Own(fs): &Own<FsConfig>) -> Result<Self> {
        FsBackend::new(fs)
    }
}

fn options(config: &FsConfig) -> Options {
    Options {
        page_size: config.page_size,
        sync: match config.durability {
            Durability::Sync => SyncPolicy::EveryCommit,
            Durability::None => SyncPolicy::Never,
        },
        create_if_missing: config.create_buckets,
        lock_lease_millis: u64::from(config.lock_lease_ms),
        lock_wait_millis: config.lock_wait_ms(),
        lock_idle_millis: u64::from(config.lock_idle_ms),
        cache_pages: Options::cache_pages_for(config.page_size),
        ..Options::default()
    }
}

fn version(seq: u64) -> Version {
    Version(seq.to_le_bytes().to_vec())
}

fn utf8_key(file: &str, key: Vec<u8>) -> Result<String> {
    String::from_utf8(key).map_err(|_| Error::other(format!("kv-fs: {file}: a stored key is not UTF-8")))
}

impl kv_core::Bucket for FsBucket {
    fn get(&self, key: &str) -> Result<Option<Vec<u8>>> {
        self.file.borrow_mut().get(key.as_bytes()).map_err(engine_error)
    }

    fn get_versioned(&self, key: &str) -> Result<Versioned> {
        let found = self
            .file
            .borrow_mut()
            .get_versioned(key.as_bytes())
            .map_err(engine_error)?;
        Ok(found
            .map(|f| Versioned::found(f.value, version(f.version)).expiring(f.expires_at))
            .unwrap_or_default())
    }

    fn set(&self, key: &str, value: &[u8], expires_at: Option<u64>) -> Result<()> {
        self.file
            .borrow_mut()
            .put_expiring(key.as_bytes(), value, expires_at)
            .map_err(engine_error)
    }

    fn delete(&self, key: &str) -> Result<()> {
        self.file
            .borrow_mut()
            .delete(key.as_bytes())
            .map(drop)
            .map_err(engine_error)
    }

    fn exists(&self, key: &str) -> Result<bool> {
        self.file
            .borrow_mut()
            .contains(key.as_bytes())
            .map_err(engine_error)
    }

    /// Keys in byte order, from just after `request.after`, so a listing
    /// resumes correctly after concurrent inserts and deletes; a prefix is
    /// a range scan of the keys that start with it.
    fn list_keys(&self, request: ListRequest<'_>) -> Result<KeyPage> {
        let mut file = self.file.borrow_mut();
        let fetched = file
            .keys_with_prefix_after(
                request.prefix.as_bytes(),
                request.after.map(str::as_bytes),
                request.fetch_keys(),
            )
            .map_err(engine_error)?;
        let (keys, more) = request.page_of(fetched);
        let name = String::from(file.file_name());
        let keys = keys
            .into_iter()
            .map(|key| utf8_key(&name, key))
            .collect::<Result<Vec<_>>>()?;
        Ok(KeyPage { keys, more })
    }

    fn compare_and_swap(
        &self,
        key: &str,
        expected: Option<&Version>,
        value: &[u8],
        expires_at: Option<u64>,
    ) -> Result<bool> {
        self.file
            .borrow_mut()
            .write(|txn| {
                // An expired entry is absent: `expected: None` matches it.
                let current = txn.get_versioned(key.as_bytes())?.map(|f| version(f.version));
                if current.as_ref() != expected {
                    return Ok(false);
                }
                txn.put_expiring(key.as_bytes(), value, expires_at)?;
                Ok(true)
            })
            .map_err(engine_error)
    }

    /// One write transaction: atomic across instances without retries. An
    /// existing counter keeps its expiry; one it creates (absent or
    /// expired: counting from 0) gets `expires_at_if_created`.
    fn increment(
        &self,
        key: &str,
        delta: i128,
        range: CounterRange,
        expires_at_if_created: Option<u64>,
    ) -> Result<i128> {
        let mut outcome = Ok(0);
        self.file
            .borrow_mut()
            .write(|txn| {
                let current = txn.get_versioned(key.as_bytes())?;
                let value = current.as_ref().map(|f| f.value.as_slice());
                outcome = kv_core::next_counter_value(key, value, delta, range);
                if let Ok(next) = &outcome {
                    let expires_at = match &current {
                        Some(f) => f.expires_at,
                        None => expires_at_if_created,
                    };
                    txn.put_expiring(
                        key.as_bytes(),
                        kv_core::Decimal(*next).to_string().as_bytes(),
                        expires_at,
                    )?;
                }
                Ok(())
            })
            .map_err(engine_error)?;
        outcome
    }

    /// One transaction, one sync.
    fn set_many(&self, entries: &[(String, Vec<u8>)], expires_at: Option<u64>) -> Result<()> {
        self.file
            .borrow_mut()
            .put_many_expiring(entries, expires_at)
            .map_err(engine_error)
    }

    fn delete_many(&self, keys: &[String]) -> Result<()> {
        self.file
            .borrow_mut()
            .delete_many(keys)
            .map(drop)
            .map_err(engine_error)
    }
}

// The component's exports; kv-route links this crate without them.
#[cfg(feature = "component")]
kv_glue::export_adapter!(FsBackend);
