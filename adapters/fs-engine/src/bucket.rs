//! [`BucketFile`]: one bucket in one file, its options and statistics, and
//! the entry points of its operations. The work is done in `open.rs`
//! (opening and creating), `read.rs` (lock-free reads following the log),
//! `txn.rs` (write transactions) and `commit.rs` (appending commits to the
//! log, checkpoints); see FORMAT.md for the layout and protocols.

use alloc::collections::VecDeque;

use crate::error::{Error, Problem};
use crate::format::*;
use crate::io::Dir;
use crate::lock::{self, LockGuard};
use crate::pager::Pager;
use crate::prelude::*;
use crate::read::View;
use crate::txn::WriteTxn;

/// When a commit is made durable.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum SyncPolicy {
    /// `write` returns `Ok` only once the commit is durable: its log record
    /// is appended and the file synced once. Survives power loss (a record
    /// cut short fails its checksums and ends the log, FORMAT.md §9).
    #[default]
    EveryCommit,
    /// No sync at all. Survives process crashes (the OS page cache is
    /// coherent), but a power loss may lose recent commits or, in the worst
    /// case, leave a checkpoint pointing at pages that never reached the
    /// disk (reported as corruption).
    Never,
}

/// Options for [`BucketFile::open`].
#[derive(Clone, Debug)]
pub struct Options {
    /// Page size for a *new* file (power of two, 1 KiB..=64 KiB). An
    /// existing file keeps the page size recorded in its header.
    pub page_size: u32,
    /// The smallest commit log ring, in bytes (rounded up to whole pages,
    /// at least 4 KiB): a new file's. Commits are appended to the ring;
    /// once half of it holds commits since the last checkpoint, the next
    /// commit folds them into the tree first. Checkpoints move the log to a
    /// larger ring as the data grows (a third of the logical size, up to
    /// 16 MiB) and back: fewer checkpoints for more data, a longer log to
    /// read when opening.
    pub log_bytes: u32,
    /// See [`SyncPolicy`].
    pub sync: SyncPolicy,
    /// Create the file if it does not exist (else `open` returns `Ok(None)`).
    pub create_if_missing: bool,
    /// Writer-lock lease. A writer that stops refreshing its lock for this
    /// long is presumed dead and its lock may be broken. Must be much longer
    /// than any single I/O call (see FORMAT.md for the exact assumption).
    pub lock_lease_millis: u64,
    /// How long `write` waits for the lock before `Error::LockTimeout`.
    /// Should exceed the lease, so that a dead writer's lock is always
    /// recovered within one wait.
    pub lock_wait_millis: u64,
    /// A writer keeps the lock after a commit, for its next one, until it
    /// has not written for this long (noticed at its next call), a waiter
    /// asks for it, or the bucket is closed (FORMAT.md §10). 0: the lock
    /// is released at the end of every commit.
    pub lock_idle_millis: u64,
    /// Per-instance page cache capacity, in pages (filled only as pages are
    /// read). See [`Options::cache_pages_for`].
    pub cache_pages: usize,
    /// How many times a reader restarts from the newest checkpoint when
    /// writers recycle the pages it is reading, before `Error::Busy`.
    pub max_read_retries: u32,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            page_size: 4096,
            log_bytes: Options::DEFAULT_LOG_BYTES,
            sync: SyncPolicy::EveryCommit,
            create_if_missing: true,
            lock_lease_millis: 5_000,
            lock_wait_millis: 15_000,
            lock_idle_millis: 50,
            cache_pages: Options::cache_pages_for(4096),
            max_read_retries: 200,
        }
    }
}

impl Options {
    /// The default page-cache budget of one open bucket: 32 MiB. A warm
    /// lookup then reads no page at all in a bucket of ~100,000 small keys
    /// (~5,000 leaves of 4 KiB), and only the leaf in one of millions (the
    /// branch pages stay cached); a miss costs a read and a checksum of the
    /// page, several times the cost of the whole lookup.
    pub const DEFAULT_CACHE_BYTES: usize = 32 << 20;

    /// The default smallest log ring: 256 KiB, so even a small bucket's
    /// checkpoint folds up to 128 KiB of commits (~500 single-key sets of
    /// small values) at once.
    pub const DEFAULT_LOG_BYTES: u32 = 256 << 10;

    /// The default cache capacity in pages of `page_size` bytes.
    pub fn cache_pages_for(page_size: u32) -> usize {
        Self::DEFAULT_CACHE_BYTES / page_size.max(1) as usize
    }

    pub(crate) fn validate(&self) -> Result<(), Error> {
        if !valid_page_size(self.page_size) {
            return Err(Error::InvalidOptions(format!(
                "page_size {} must be a power of two between {MIN_PAGE} and {MAX_PAGE}",
                self.page_size
            )));
        }
        if self.log_bytes < 4096 || self.log_bytes > 1 << 30 {
            return Err(Error::InvalidOptions(format!(
                "log_bytes {} must be between 4 KiB and 1 GiB",
                self.log_bytes
            )));
        }
        if self.lock_lease_millis < 4 {
            return Err(Error::InvalidOptions(
                "lock_lease_millis must be at least 4".into(),
            ));
        }
        if self.max_read_retries == 0 {
            return Err(Error::InvalidOptions(
                "max_read_retries must be at least 1".into(),
            ));
        }
        Ok(())
    }

    /// Pages of the log ring of a new file.
    pub(crate) fn ring_pages(&self) -> u32 {
        self.log_bytes.div_ceil(self.page_size).max(1)
    }
}

/// Statistics for tooling.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Stats {
    /// Number of keys.
    pub keys: u64,
    /// B+tree depth as of the last checkpoint (0 = empty, 1 = a single leaf).
    pub depth: u16,
    /// Page size in bytes.
    pub page_size: u32,
    /// Pages covered by the last checkpoint (the logical file size).
    pub pages_total: u64,
    /// Pages in the free tree (reusable by the next checkpoint).
    pub pages_free: u64,
    /// Pages freed by the last two checkpoints (reusable two later).
    pub pages_pending: u64,
    /// Pages in use (header, checkpoint slots, log ring, trees, extents, lists).
    pub pages_used: u64,
    /// Pages of the log ring.
    pub log_pages: u64,
    /// Bytes of log (cells) written since the last checkpoint.
    pub log_bytes_live: u64,
    /// Commits in the log since the last checkpoint.
    pub log_commits: u64,
    /// Sum of key and value lengths.
    pub logical_bytes: u64,
    /// Physical file size in bytes.
    pub file_bytes: u64,
    /// Sequence number of the newest commit.
    pub commit_seq: u64,
    /// Number of the newest checkpoint.
    pub checkpoint: u64,
}

/// One key/value pair with its version.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Entry {
    /// Key.
    pub key: Vec<u8>,
    /// Value.
    pub value: Vec<u8>,
    /// Sequence of the commit that last wrote the key.
    pub version: u64,
    /// When the entry expires (wall-clock ms since the Unix epoch), if it does.
    pub expires_at: Option<u64>,
}

/// A value found by a lookup, with its version and expiry.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Found {
    /// Value.
    pub value: Vec<u8>,
    /// Sequence of the commit that last wrote the key.
    pub version: u64,
    /// When the entry expires (wall-clock ms since the Unix epoch), if it does.
    pub expires_at: Option<u64>,
}

/// A bucket stored in one file. One `BucketFile` per instance (not shared
/// between threads); any number of instances may open the same file.
pub struct BucketFile<D: Dir> {
    pub(crate) dir: D,
    pub(crate) name: String,
    pub(crate) lock_name: String,
    pub(crate) opts: Options,
    pub(crate) header: Header,
    pub(crate) pager: Pager<D::File>,
    /// What this instance has read: a checkpoint and the log after it.
    pub(crate) view: View,
    /// The number of a checkpoint known to be durable, and its log start:
    /// an append never overwrites a cell of the log it needs, and a
    /// checkpoint reuses the pages its base freed only once the base is
    /// durable (FORMAT.md §7, §9).
    pub(crate) durable_checkpoint: u64,
    pub(crate) durable_log_start: u64,
    pub(crate) read_only: Option<String>,
    /// The token of a lock this instance failed to release (FORMAT.md §10).
    pub(crate) leftover_lock: Option<u64>,
    /// The writer lock, kept from this instance's last commit for its next.
    pub(crate) held_lock: Option<HeldLock>,
    pub(crate) read_retries: u64,
}

/// The writer lock between two commits of one instance, and the log as that
/// instance left it: while the lock is ours nobody else appends.
pub(crate) struct HeldLock {
    guard: LockGuard,
    idle_since_mono: u64,
    tail: u64,
    checkpoint: u64,
}

impl HeldLock {
    /// Whether its holder has not written for `idle_millis`: then it lets
    /// the lock go (at its next write or read).
    fn is_idle<D: Dir>(&self, dir: &D, idle_millis: u64) -> bool {
        dir.monotonic_millis().saturating_sub(self.idle_since_mono) >= idle_millis
    }
}

/// What becomes of the lock kept from the last commit.
enum Reuse {
    Kept(LockGuard),
    /// Released: idle, too old to keep, or lost.
    Released,
    /// Released because a waiter asked for it.
    HandedOver,
}

/// A writer hands the lock over on request once it has held it this long.
/// Each hand-over leaves the lock unused until the waiter that asked next
/// looks (a millisecond or two): handing it over at every commit would
/// spend more time there than in commits. A waiter waits at most about this
/// long plus a look; the lock taken and released per commit, a waiter could
/// wait for as long as the other writer kept writing.
const HAND_OVER_AFTER_MILLIS: u64 = 2;

impl<D: Dir> BucketFile<D> {
    /// Name of the bucket file.
    pub fn file_name(&self) -> &str {
        &self.name
    }

    /// The directory handle.
    pub fn dir(&self) -> &D {
        &self.dir
    }

    /// Page size of the file.
    pub fn page_size(&self) -> u32 {
        self.header.page_size
    }

    /// Sequence number of the newest commit (follows the log first).
    pub fn commit_seq(&mut self) -> Result<u64, Error> {
        self.refresh()?;
        Ok(self.view.seq)
    }

    /// How many times reads of this instance restarted because a concurrent
    /// writer recycled a page they were reading (observability).
    pub fn read_retries(&self) -> u64 {
        self.read_retries
    }

    /// Drops all cached pages.
    pub fn clear_cache(&mut self) {
        self.pager.cache.clear();
    }

    /// Runs `f` as one atomic write transaction: takes the writer lock (or
    /// reuses the one kept from this instance's last commit, FORMAT.md §10),
    /// follows the log to the newest commit, runs `f`, and commits its
    /// changes (unless `f` returns `Err`: then nothing is written). The lock
    /// is kept for the next commit; see [`BucketFile::release_lock`]. With
    /// [`SyncPolicy::EveryCommit`], returns only once the commit is durable.
    ///
    /// If an error is returned after the commit's record was written (e.g.
    /// a failed sync) the transaction may or may not be committed; it is
    /// atomic either way.
    pub fn write<T>(&mut self, f: impl FnOnce(&mut WriteTxn<'_, D>) -> Result<T, Error>) -> Result<T, Error> {
        if let Some(d) = &self.read_only {
            return Err(Error::ReadOnly {
                file: self.name.clone(),
                detail: d.clone(),
            });
        }
        let guard = self.lock_for_write()?;
        let mut txn = WriteTxn::new(self, guard);
        let r = match f(&mut txn) {
            Ok(v) => txn.commit().map(|_| v),
            Err(e) => Err(e),
        };
        if let Some(guard) = txn.into_lock() {
            match &r {
                Ok(_) if self.opts.lock_idle_millis == 0 => self.release_lock_guard(guard),
                Ok(_) => {
                    self.held_lock = Some(HeldLock {
                        guard,
                        idle_since_mono: self.dir.monotonic_millis(),
                        tail: self.view.tail,
                        checkpoint: self.view.ckpt.number,
                    })
                }
                Err(Error::LockLost { .. }) => self.forget_lock(guard),
                Err(_) => self.release_lock_guard(guard),
            }
        }
        r
    }

    /// The writer lock for a transaction, with the view at the newest
    /// commit: the lock kept from this instance's last commit if it may
    /// serve, else taken anew.
    fn lock_for_write(&mut self) -> Result<LockGuard, Error> {
        let mut after_hand_over = false;
        if let Some(held) = self.held_lock.take() {
            match self.reuse(held)? {
                Reuse::Kept(guard) => return Ok(guard),
                Reuse::Released => {}
                Reuse::HandedOver => after_hand_over = true,
            }
        }
        let guard = lock::acquire(
            &self.dir,
            &self.name,
            &self.lock_name,
            self.opts.lock_lease_millis,
            self.opts.lock_wait_millis,
            self.leftover_lock,
            after_hand_over,
        )?;
        self.leftover_lock = None;
        // Another instance may have committed while we waited.
        if let Err(e) = self.refresh() {
            self.release_lock_guard(guard);
            return Err(e);
        }
        Ok(guard)
    }

    /// Decides whether the lock kept from the last commit serves the next:
    /// not if this instance has been idle, if the lock is too old to keep
    /// (half a lease since its refresh), or if a waiter asked for it; and
    /// not if another writer appended meanwhile (then it was broken).
    fn reuse(&mut self, held: HeldLock) -> Result<Reuse, Error> {
        let idle = held.is_idle(&self.dir, self.opts.lock_idle_millis);
        let HeldLock {
            guard,
            tail,
            checkpoint,
            ..
        } = held;
        if idle || !guard.is_fresh(&self.dir) {
            self.release_lock_guard(guard);
            return Ok(Reuse::Released);
        }
        let held_for = self.dir.monotonic_millis().saturating_sub(guard.acquired_mono);
        if held_for >= HAND_OVER_AFTER_MILLIS && lock::requested(&self.dir, &self.lock_name) {
            self.release_lock_guard(guard);
            return Ok(Reuse::HandedOver);
        }
        if let Err(e) = self.refresh() {
            self.release_lock_guard(guard);
            return Err(e);
        }
        if self.view.tail != tail || self.view.ckpt.number != checkpoint {
            self.forget_lock(guard);
            return Ok(Reuse::Released);
        }
        Ok(Reuse::Kept(guard))
    }

    /// Releases the writer lock this instance kept from its last commit, if
    /// any (the adapter calls this when the app drops its last handle on
    /// the bucket; dropping the `BucketFile` does it too).
    pub fn release_lock(&mut self) {
        if let Some(held) = self.held_lock.take() {
            self.release_lock_guard(held.guard);
        }
    }

    /// Releases the kept lock if this instance has not written for
    /// `lock_idle_millis` (every read checks, on its way in).
    pub(crate) fn release_lock_if_idle(&mut self) {
        if let Some(held) = &self.held_lock
            && held.is_idle(&self.dir, self.opts.lock_idle_millis)
        {
            self.release_lock();
        }
    }

    fn release_lock_guard(&mut self, mut guard: LockGuard) {
        if guard.release(&self.dir).is_err() {
            self.leftover_lock = Some(guard.token);
        }
    }

    /// Gives up a lock another writer broke, leaving the lock file alone
    /// (if it still carries our token, our next acquisition breaks it).
    fn forget_lock(&mut self, mut guard: LockGuard) {
        self.leftover_lock = Some(guard.token);
        guard.forget();
    }

    /// Sets one key (one transaction).
    pub fn put(&mut self, key: &[u8], value: &[u8]) -> Result<(), Error> {
        self.write(|t| t.put(key, value))
    }

    /// Deletes one key (one transaction); returns whether it existed.
    pub fn delete(&mut self, key: &[u8]) -> Result<bool, Error> {
        self.write(|t| t.delete(key))
    }

    /// Sets one key that expires at `expires_at` (wall-clock ms; `None`:
    /// never), in one transaction.
    pub fn put_expiring(&mut self, key: &[u8], value: &[u8], expires_at: Option<u64>) -> Result<(), Error> {
        self.write(|t| t.put_expiring(key, value, expires_at))
    }

    /// Sets several keys in one transaction (one commit).
    pub fn put_many<K: AsRef<[u8]>, V: AsRef<[u8]>>(&mut self, items: &[(K, V)]) -> Result<(), Error> {
        self.put_many_expiring(items, None)
    }

    /// Sets several keys that all expire at `expires_at`, in one transaction.
    pub fn put_many_expiring<K: AsRef<[u8]>, V: AsRef<[u8]>>(
        &mut self,
        items: &[(K, V)],
        expires_at: Option<u64>,
    ) -> Result<(), Error> {
        self.write(|t| {
            for (k, v) in items {
                t.put_expiring(k.as_ref(), v.as_ref(), expires_at)?;
            }
            Ok(())
        })
    }

    /// Deletes several keys in one transaction; returns how many existed.
    pub fn delete_many<K: AsRef<[u8]>>(&mut self, keys: &[K]) -> Result<usize, Error> {
        self.write(|t| {
            let mut n = 0;
            for k in keys {
                n += usize::from(t.delete(k.as_ref())?);
            }
            Ok(n)
        })
    }

    /// Folds the log into the tree now (a checkpoint, FORMAT.md §7), under
    /// the writer lock. Writers do this on their own once half the log ring
    /// is used; tools call it to leave a file with an empty log.
    pub fn checkpoint(&mut self) -> Result<(), Error> {
        self.write(|t| t.checkpoint_on_commit())
    }

    /// Verifies the newest checkpoint completely (every reachable page and
    /// extent: checksums, sequence numbers, structure, key order, counts;
    /// the free tree and freed lists; every page of the file accounted for
    /// exactly once) and every record of the log after it. Returns the
    /// problems found (empty = ok).
    pub fn check(&mut self) -> Result<Vec<Problem>, Error> {
        let mut attempt = 0u32;
        loop {
            self.refresh()?;
            let number = self.view.ckpt.number;
            let mut problems = crate::check::run(&mut self.pager, &self.view.ckpt)?;
            problems.extend(self.check_log()?);
            self.refresh()?;
            if problems.is_empty() || self.view.ckpt.number == number {
                return Ok(problems);
            }
            attempt += 1;
            if attempt >= self.opts.max_read_retries {
                return Err(Error::Busy {
                    file: self.name.clone(),
                    retries: attempt,
                });
            }
        }
    }

    /// Ordered iteration over all entries, fetched in batches of `batch`
    /// entries. Each batch is a consistent snapshot; across batches the
    /// guarantees of [`BucketFile::keys_after`] apply.
    pub fn iter(&mut self, batch: usize) -> Iter<'_, D> {
        Iter {
            bucket: self,
            buf: VecDeque::new(),
            last: None,
            done: false,
            batch: batch.max(1),
        }
    }
}

impl<D: Dir> Drop for BucketFile<D> {
    fn drop(&mut self) {
        self.release_lock();
    }
}

/// Batched ordered iterator, see [`BucketFile::iter`].
pub struct Iter<'s, D: Dir> {
    bucket: &'s mut BucketFile<D>,
    buf: VecDeque<Entry>,
    last: Option<Vec<u8>>,
    done: bool,
    batch: usize,
}

impl<D: Dir> Iterator for Iter<'_, D> {
    type Item = Result<Entry, Error>;
    fn next(&mut self) -> Option<Self::Item> {
        if self.buf.is_empty() && !self.done {
            match self
                .bucket
                .entries_after(self.last.as_deref(), self.batch, 16 << 20)
            {
                Ok(v) => {
                    if v.is_empty() {
                        self.done = true;
                    }
                    if let (Some(last), Some(first)) = (&self.last, v.first())
                        && first.key <= *last
                    {
                        self.done = true;
                        return Some(Err(Error::corrupt(
                            &self.bucket.name,
                            "keys out of order in the key tree",
                        )));
                    }
                    if let Some(e) = v.last() {
                        self.last = Some(e.key.clone());
                    }
                    self.buf.extend(v);
                }
                Err(e) => {
                    self.done = true;
                    return Some(Err(e));
                }
            }
        }
        self.buf.pop_front().map(Ok)
    }
}
