//! `kv-fs-engine`: the storage engine behind kv-fs (file format version 3;
//! `FORMAT.md` beside this crate is the authoritative description).
//!
//! Each key-value bucket is **one file** of fixed-size pages: a header, two
//! checkpoint slots, a **log ring** of 256-byte cells, and copy-on-write
//! B+tree pages (keys ordered bytewise) with large values (and very long
//! keys) in extents of contiguous pages. Every page, cell and record
//! carries a crc32c.
//!
//! * **A commit is one log record and one sync**: a write transaction
//!   appends one record of its changes at the log's tail, syncs once, then
//!   writes an unsynced stamp that tells a crash's torn tail from damage.
//!   Readers lay the logged changes (the **overlay**) over the tree of the
//!   newest **checkpoint**. Once half the ring holds commits, the next
//!   commit first checkpoints: it folds the log into a new copy-on-write
//!   version of the tree and writes a checkpoint record into the older of
//!   the two slots; a torn one falls back to the other, whose log is still
//!   in the ring. Freed pages are reused.
//! * **Many instances, no file locks**: writers exclude each other with an
//!   exclusively created lock file carrying an owner token and a lease
//!   (stale locks are broken by exactly one waiter); readers take no lock:
//!   they follow the log's tail and validate every tree page against the
//!   sequence and checksum recorded in its parent pointer, moving to a newer
//!   checkpoint if a writer recycled a page under them.
//! * **Cheap to open**: the header, the checkpoint page and the log since
//!   the last checkpoint; lookups read O(depth) pages through a per-instance
//!   cache that stays valid across other instances' checkpoints.
//! * **Expiring entries**: an entry may carry an expiry (wall-clock ms,
//!   [`WriteTxn::put_expiring`]); from that instant on it is absent to
//!   every read and write ([`is_expired`], on the [`Dir`]'s clock), and
//!   checkpoints drop it from the file: logged ones as they fold the log,
//!   the tree's by a sweep once the earliest expiry the checkpoint record
//!   keeps has passed.
//! * **Prefix scans** ([`BucketFile::keys_with_prefix_after`]) read only
//!   the range of keys that start with the prefix.
//! * Corruption is always reported as an [`Error`] naming the file.
//!
//! The modules, in the order a call meets them:
//!
//! | module | what |
//! |---|---|
//! | `bucket` | [`BucketFile`]: one bucket file, its options, statistics and the entry points of every operation |
//! | `open` | opening and creating a file: header, checkpoint slots, the log since the newest checkpoint |
//! | `read` | lock-free reads: following the log, lookups and scans of a checkpoint's tree under the overlay |
//! | `overlay` | the changes logged since a checkpoint, held in memory on top of its tree |
//! | `txn` | [`WriteTxn`]: a write transaction's changes, collected under the writer lock |
//! | `commit` | appending a transaction's record to the log, and checkpoints |
//! | `wal` | the log ring: cells, records, the tail stamp |
//! | `tree` | the copy-on-write B+tree |
//! | `space` | free-space management: the free tree and freed-page lists |
//! | `pager`, `cache` | validated page and extent reads, and the per-instance page cache |
//! | `lock` | the writer lock from exclusive file creation, with leases |
//! | `format`, `crc` | on-disk constants, record codecs, bounds-checked page views; the checksum |
//! | `check` | the full consistency check (fsck) |
//! | `upgrade` | [`upgrade`]: converting a format-version-1 or -2 file in place |
//! | `error`, `io` | [`Error`] and [`Problem`]; the [`Dir`] and [`File`] traits the engine runs on |
//!
//! The engine has no WASI dependency: it runs over the small [`Dir`] and
//! [`File`] traits, which report failures as the crate's own [`IoError`].
//! `std_dir::StdDir` implements them with `std::fs`; [`testing::MemDir`] is
//! an in-memory, fault-injecting implementation; kv-fs's `wasi_dir`
//! implements them on `wasi:filesystem`.
//!
//! The crate is `no_std` (it needs only `alloc`). The default `std` feature
//! adds `std_dir` (native targets), `From<std::io::Error>` for [`IoError`],
//! per-thread switches and real clocks in [`testing`], and a
//! hardware-accelerated crc32c; without it a portable crc32c is used (same
//! results, same file format).
#![no_std]
#![forbid(unsafe_code)]
#![warn(missing_docs)]

extern crate alloc;
#[cfg(feature = "std")]
extern crate std;

mod bucket;
mod cache;
mod check;
mod commit;
mod crc;
mod error;
mod format;
mod io;
mod lock;
mod open;
mod overlay;
mod pager;
mod read;
mod space;
mod tree;
mod txn;
mod upgrade;
mod wal;

#[cfg(all(feature = "std", not(target_os = "wasi")))]
pub mod std_dir;
pub mod testing;

pub use bucket::{BucketFile, Entry, Found, Iter, Options, Stats, SyncPolicy};
pub use error::{Error, Problem};
pub use format::{MAX_PAGE as MAX_PAGE_SIZE, MIN_PAGE as MIN_PAGE_SIZE};
pub use io::{Dir, File, IoError, IoErrorKind, IoResult};
pub use txn::WriteTxn;
pub use upgrade::upgrade;

/// Whether an entry that expires at `expires_at` (wall-clock ms since the
/// Unix epoch) has expired at `now`: from that very instant on (the rule of
/// `kv_core::is_expired`). An expired entry is absent to every read and
/// write; checkpoints drop it from the file.
pub fn is_expired(expires_at: Option<u64>, now: u64) -> bool {
    expires_at.is_some_and(|at| at <= now)
}

/// Longest key accepted (64 KiB).
pub const MAX_KEY_LEN: usize = 64 * 1024;
/// Longest value accepted (64 MiB).
pub const MAX_VALUE_LEN: usize = 64 * 1024 * 1024;

/// Fuzzing entry point: opens `bytes` as a bucket file in an in-memory directory
/// and exercises every read path (and a few small writes, the writer lock
/// kept, handed over and broken), ignoring errors.
/// It must never panic, loop forever or allocate without bound.
pub fn fuzz_open_and_read(bytes: &[u8]) {
    use crate::io::Dir as _;
    use crate::prelude::*;
    let dir = testing::MemDir::new_untracked();
    dir.put_file("fuzz.kvfs", bytes);
    let opts = Options {
        create_if_missing: false,
        sync: SyncPolicy::Never,
        lock_lease_millis: 10,
        lock_wait_millis: 50,
        max_read_retries: 3,
        cache_pages: 16,
        ..Options::default()
    };
    let Ok(Some(mut s)) = BucketFile::open(dir.clone(), "fuzz.kvfs", opts) else {
        return;
    };
    let _ = s.stats();
    let _ = s.check();
    let mut after: Option<Vec<u8>> = None;
    for _ in 0..256 {
        match s.entries_after(after.as_deref(), 64, 1 << 24) {
            Ok(v) if !v.is_empty() => {
                for e in &v {
                    let _ = s.get_versioned(&e.key);
                }
                after = v.last().map(|e| e.key.clone());
            }
            _ => break,
        }
    }
    let _ = s.keys_after(None, 1000);
    let _ = s.keys_with_prefix_after(b"k", Some(b"a"), 100);
    let _ = s.expiry_counts();
    let _ = s.get(b"");
    let _ = s.get(b"key");
    let _ = s.write(|t| {
        t.put(b"fuzz", b"value")?;
        t.put_expiring(b"fuzz-expiring", b"value", Some(u64::MAX))?;
        t.put(&[7u8; 300], &[1u8; 3000])?;
        let _ = t.delete(b"a")?;
        let _ = t.keys_after(None, 10)?;
        Ok(())
    });
    // The lock kept from that write: handed over on request, then taken
    // over by a second instance from a holder that makes no call.
    let _ = testing::ask_for_lock(&dir, "fuzz.kvfs", 100);
    let _ = s.put(b"fuzz", b"handed over");
    if let Ok(Some(mut other)) = BucketFile::open(dir.clone(), "fuzz.kvfs", s.opts.clone()) {
        let _ = other.put(b"fuzz", b"other");
    }
    let _ = s.put(b"fuzz", b"again");
    let _ = s.check();
    dir.sleep_millis(0);
}

/// The `alloc` items every module uses (the `std` prelude is not there).
mod prelude {
    pub(crate) use alloc::boxed::Box;
    pub(crate) use alloc::format;
    pub(crate) use alloc::string::{String, ToString};
    pub(crate) use alloc::vec;
    pub(crate) use alloc::vec::Vec;
}
