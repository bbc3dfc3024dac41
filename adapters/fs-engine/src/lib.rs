//! `kv-fs-engine`: the storage engine behind kv-fs.
//!
//! Each key-value bucket is **one file**: a header page, two alternating
//! commit records, and copy-on-write B+tree pages (keys ordered bytewise),
//! large values (and very long keys) in extents of contiguous pages, and a
//! copy-on-write free-space tree. Every page and record carries a crc32c.
//!
//! * **Atomic, durable commits, one sync each**: pages are written to free
//!   space, the commit record into the slot of the older commit, then one
//!   sync, then an unsynced completion stamp. A torn or missing newest
//!   record, or an unstamped one whose own pages did not all reach the disk
//!   (checked at open), falls back to the previous commit.
//! * **Many instances, no file locks**: writers exclude each other with an
//!   exclusively created lock file carrying an owner token and a lease
//!   (stale locks are broken safely); readers take no lock at all and
//!   validate every page against the commit sequence and checksum recorded
//!   in its parent pointer, restarting from the newest commit if a
//!   concurrent writer recycled a page under them.
//! * **Cheap to open**: O(1) page reads; lookups read O(depth) pages through
//!   a per-instance cache that stays valid across other instances' commits.
//! * Corruption is always reported as an [`Error`] naming the file.
//!
//! The engine has no WASI dependency: it runs over the small [`Dir`] and
//! [`File`] traits, which report failures as the crate's own [`IoError`].
//! `std_dir::StdDir` implements them with `std::fs`; [`testing::MemDir`] is
//! an in-memory, fault-injecting implementation.
//! See `FORMAT.md` for the file format and the protocols.
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

pub use bucket::{BucketFile, Entry, Iter, Options, Stats, SyncPolicy};
pub use error::{Error, Problem};
pub use format::{MAX_PAGE as MAX_PAGE_SIZE, MIN_PAGE as MIN_PAGE_SIZE};
pub use io::{Dir, File, IoError, IoErrorKind, IoResult};
pub use txn::WriteTxn;
pub use upgrade::upgrade_v1;

/// Longest key accepted (64 KiB).
pub const MAX_KEY_LEN: usize = 64 * 1024;
/// Longest value accepted (64 MiB).
pub const MAX_VALUE_LEN: usize = 64 * 1024 * 1024;

/// Fuzzing entry point: opens `bytes` as a store in an in-memory directory
/// and exercises every read path (and one small write), ignoring errors.
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
    let _ = s.get(b"");
    let _ = s.get(b"key");
    let _ = s.write(|t| {
        t.put(b"fuzz", b"value")?;
        t.put(&[7u8; 300], &[1u8; 3000])?;
        let _ = t.delete(b"a")?;
        let _ = t.keys_after(None, 10)?;
        Ok(())
    });
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
