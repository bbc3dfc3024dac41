//! The store: opening/creating, lock-free snapshot reads with validation
//! and retry, and write transactions with the commit protocol.

use alloc::collections::VecDeque;

use crate::cache::PageCache;
use crate::error::{E, Error, Problem};
use crate::format::*;
use crate::io::{Dir, File, IoError, IoErrorKind};
use crate::lock::{self, LockGuard};
use crate::pager::{Limits, Pager};
use crate::prelude::*;
use crate::space::{Alloc, Freed, list_pages_for, read_list, write_list};
use crate::tree::{Bound, Env, MEntry, MKey, MVal, Tree};
use crate::{MAX_KEY_LEN, MAX_VALUE_LEN};

/// When a write is acknowledged.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Durability {
    /// `write` returns `Ok` only once the commit is durable: the new pages
    /// and the commit record are written, then synced once. Survives power
    /// loss (a commit cut short is detected at open and falls back to the
    /// previous one, FORMAT.md §12).
    #[default]
    Sync,
    /// No fsync at all. Survives process crashes (the OS page cache is
    /// coherent), but a power loss may lose recent commits or, in the worst
    /// case, leave the newest commit pointing at pages that never reached
    /// the disk (reported as corruption).
    None,
}

/// Options for [`Store::open`].
#[derive(Clone, Debug)]
pub struct Options {
    /// Page size for a *new* file (power of two, 1 KiB..=64 KiB). An
    /// existing file keeps the page size recorded in its header.
    pub page_size: u32,
    /// See [`Durability`].
    pub durability: Durability,
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
    /// Per-instance page cache capacity, in pages (filled only as pages are
    /// read). See [`Options::cache_pages_for`].
    pub cache_pages: usize,
    /// How many times a reader restarts from the newest commit when writers
    /// recycle the pages it is reading, before `Error::Busy`.
    pub max_read_retries: u32,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            page_size: 4096,
            durability: Durability::Sync,
            create_if_missing: true,
            lock_lease_millis: 5_000,
            lock_wait_millis: 15_000,
            cache_pages: Options::cache_pages_for(4096),
            max_read_retries: 200,
        }
    }
}

impl Options {
    /// The default page-cache budget of one open store: 32 MiB. A warm
    /// lookup then reads no page at all in a bucket of ~100,000 small keys
    /// (~5,000 leaves of 4 KiB), and only the leaf in one of millions (the
    /// branch pages stay cached); a miss costs a read and a checksum of the
    /// page, several times the cost of the whole lookup.
    pub const DEFAULT_CACHE_BYTES: usize = 32 << 20;

    /// The default cache capacity in pages of `page_size` bytes.
    pub fn cache_pages_for(page_size: u32) -> usize {
        Self::DEFAULT_CACHE_BYTES / page_size.max(1) as usize
    }

    fn validate(&self) -> Result<(), Error> {
        if !valid_page_size(self.page_size) {
            return Err(Error::InvalidOptions(format!(
                "page_size {} must be a power of two between {MIN_PAGE} and {MAX_PAGE}",
                self.page_size
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
}

/// Statistics for tooling.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Stats {
    /// Number of keys.
    pub keys: u64,
    /// B+tree depth (0 = empty, 1 = a single leaf).
    pub depth: u16,
    /// Page size in bytes.
    pub page_size: u32,
    /// Pages covered by the newest commit (the logical file size).
    pub pages_total: u64,
    /// Pages in the free tree (reusable by the next commit).
    pub pages_free: u64,
    /// Pages freed by the last two commits (reusable two commits later).
    pub pages_pending: u64,
    /// Pages in use (header, commit records, trees, extents, lists).
    pub pages_used: u64,
    /// Sum of key and value lengths.
    pub logical_bytes: u64,
    /// Physical file size in bytes.
    pub file_bytes: u64,
    /// Sequence number of the newest commit.
    pub commit_seq: u64,
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
}

/// A bucket stored in one file. One `Store` per instance (not shared
/// between threads); any number of instances may open the same file.
pub struct Store<D: Dir> {
    pub(crate) dir: D,
    pub(crate) name: String,
    lock_name: String,
    opts: Options,
    pub(crate) header: Header,
    pub(crate) pager: Pager<D::File>,
    last: Commit,
    rejected: Option<Rejected>,
    read_only: Option<String>,
    leftover_lock: Option<u64>,
    read_retries: u64,
}

pub(crate) fn limits(m: &Meta) -> Limits {
    Limits {
        file_pages: m.file_pages,
        max_seq: m.seq,
    }
}

fn resolve<F: File>(env: &mut Env<F>, v: Option<MVal>) -> Result<Vec<u8>, E> {
    match v {
        None => Ok(Vec::new()),
        Some(MVal::Inline(b)) => Ok(b),
        Some(MVal::Outline { len, ext }) => env.pager.extent(ext, len, KIND_VALUE, &env.lim),
    }
}

fn mismatch_text(page: u64, what: &str) -> String {
    if page == 0 {
        what.to_string()
    } else {
        format!("page {page}: {what}")
    }
}

/// A commit record as read from its slot.
#[derive(Clone, Debug)]
pub(crate) struct Commit {
    pub meta: Meta,
    /// The record's checksum: with `seq`, it identifies the record exactly.
    pub crc: u32,
    /// Its completion stamp is there: the writer's sync returned, so every
    /// page of the commit is durable (FORMAT.md §4, §9).
    pub stamped: bool,
}

/// A record found at open to be the torn commit of a power cut (§12): its
/// own pages did not all reach the disk. It is ignored wherever it is read,
/// until a new commit overwrites it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Rejected {
    seq: u64,
    crc: u32,
}

/// What one commit record slot holds.
pub(crate) enum Slot {
    Valid(Commit),
    Rejected,
    /// No valid record: its raw bytes (to tell a record being written from
    /// a damaged one).
    Invalid(Vec<u8>),
}

fn slot_of(seq: u64) -> u32 {
    META_PAGES[(seq % 2) as usize]
}

/// Reads one commit record slot (the record and its completion stamp).
pub(crate) fn read_slot<F: File>(
    pager: &Pager<F>,
    header: &Header,
    slot: u32,
    rejected: Option<Rejected>,
) -> Result<Slot, Error> {
    let mut b = vec![0u8; META_LEN + STAMP_LEN];
    if !pager.read_full(&mut b, pager.page_off(slot))? {
        return Ok(Slot::Invalid(b));
    }
    let Some(meta) = Meta::decode(&b, slot, header) else {
        return Ok(Slot::Invalid(b));
    };
    let crc = rd_u32(&b, 0).unwrap_or(0);
    if rejected == Some(Rejected { seq: meta.seq, crc }) {
        return Ok(Slot::Rejected);
    }
    let stamped = is_stamp_of(&b[META_LEN..], slot, meta.seq, crc);
    Ok(Slot::Valid(Commit { meta, crc, stamped }))
}

/// Reads both commit records and returns the newest valid one.
pub(crate) fn newest_commit<F: File>(
    pager: &Pager<F>,
    header: &Header,
    rejected: Option<Rejected>,
) -> Result<Commit, Error> {
    let mut last_bad: [Option<Vec<u8>>; 2] = [None, None];
    for attempt in 0..4 {
        let mut got: [Option<Commit>; 2] = [None, None];
        let mut bad: [Option<Vec<u8>>; 2] = [None, None];
        for (i, &slot) in META_PAGES.iter().enumerate() {
            match read_slot(pager, header, slot, rejected)? {
                Slot::Valid(c) => got[i] = Some(c),
                // A rejected record stays as it is until overwritten.
                Slot::Rejected => bad[i] = Some(Vec::new()),
                Slot::Invalid(b) => bad[i] = Some(b),
            }
        }
        match (&got[0], &got[1]) {
            (Some(a), Some(b)) => {
                return Ok(if a.meta.seq >= b.meta.seq {
                    a.clone()
                } else {
                    b.clone()
                });
            }
            (Some(c), None) | (None, Some(c)) => {
                // The other slot may be in the middle of being written by a
                // concurrent commit: look again unless it is persistently
                // damaged (unchanged), as after a crash.
                if attempt >= 2 || bad == last_bad {
                    return Ok(c.clone());
                }
            }
            (None, None) => {
                if attempt >= 2 {
                    return Err(Error::corrupt(
                        &pager.name,
                        "no valid commit record: both meta pages (1 and 2) fail validation",
                    ));
                }
            }
        }
        last_bad = bad;
    }
    Err(Error::corrupt(&pager.name, "commit records keep changing"))
}

/// Reads and validates every page commit `m` wrote itself (those carrying
/// its sequence number: new tree nodes, extents, its freed list). Older
/// pages were durable before its record was written (§9), so they need no
/// look. A mismatch means the commit's pages did not all reach the disk.
fn verify_own_pages<F: File>(pager: &mut Pager<F>, m: &Meta) -> Result<(), E> {
    let lim = limits(m);
    let mut todo: Vec<(u8, PagePtr, u16)> = Vec::new();
    for (tree, root, depth) in [
        (TREE_KEYS, m.main_root, m.main_depth),
        (TREE_FREE, m.free_root, m.free_depth),
    ] {
        if depth > 0 && root.seq == m.seq {
            todo.push((tree, root, depth - 1));
        }
    }
    let own = |ext: ExtPtr| ext.seq == m.seq;
    while let Some((tree, ptr, level)) = todo.pop() {
        let d = pager.node(ptr, tree, level, &lim)?;
        let v = NodeView::new(&d, pager.geo).map_err(|b| crate::error::mismatch(u64::from(ptr.page), b))?;
        let bad = |b: String| crate::error::mismatch(u64::from(ptr.page), b);
        let mut extents: Vec<(ExtPtr, u32, u8)> = Vec::new();
        if v.is_leaf() {
            for i in 0..v.hdr.count {
                let e = v.leaf_entry(i).map_err(bad)?;
                if let Some((len, ext)) = e.key.outline.filter(|&(_, x)| own(x)) {
                    extents.push((ext, len, KIND_KEY));
                }
                if let ValRef::Outline(len, ext) = e.val
                    && own(ext)
                {
                    extents.push((ext, len, KIND_VALUE));
                }
            }
        } else {
            for i in 0..=v.hdr.count {
                let child = v.child(i).map_err(bad)?;
                if child.seq == m.seq {
                    todo.push((tree, child, level - 1));
                }
            }
            for i in 0..v.hdr.count {
                if let Some((len, ext)) = v.branch_key(i).map_err(bad)?.outline.filter(|&(_, x)| own(x)) {
                    extents.push((ext, len, KIND_KEY));
                }
            }
        }
        for (ext, len, kind) in extents {
            pager.extent(ext, len, kind, &lim)?;
        }
    }
    read_list(pager, &lim, &m.pend_cur)?;
    // The commit may have extended the file past pages it did not write.
    let len = pager.file.len().map_err(|e| E::Fatal(pager.io("stat", e)))?;
    if len < u64::from(m.file_pages) * u64::from(pager.page_size) {
        return Err(crate::error::mismatch(
            0,
            format!(
                "file is shorter than the {} pages commit {} covers",
                m.file_pages, m.seq
            ),
        ));
    }
    Ok(())
}

/// The newest commit when a store is opened. A commit without its
/// completion stamp may be the one a power cut interrupted: its own pages
/// are read and checked, and if they did not all reach the disk (and the
/// record is still there, so no later commit can have recycled them) it is
/// rejected and the previous commit, durable before it was written, is the
/// newest.
fn open_newest<F: File>(pager: &mut Pager<F>, header: &Header) -> Result<(Commit, Option<Rejected>), Error> {
    for _ in 0..8 {
        let newest = newest_commit(pager, header, None)?;
        if newest.stamped {
            return Ok((newest, None));
        }
        match verify_own_pages(pager, &newest.meta) {
            Ok(()) => return Ok((newest, None)),
            Err(E::Fatal(e)) => return Err(e),
            Err(E::Mismatch { .. }) => {}
        }
        let same = matches!(
            read_slot(pager, header, slot_of(newest.meta.seq), None)?,
            Slot::Valid(c) if c.crc == newest.crc && c.meta.seq == newest.meta.seq
        );
        if same {
            let rejected = Rejected {
                seq: newest.meta.seq,
                crc: newest.crc,
            };
            pager.cache.clear();
            return Ok((newest_commit(pager, header, Some(rejected))?, Some(rejected)));
        }
    }
    Err(Error::corrupt(&pager.name, "commit records keep changing"))
}

fn create_store<D: Dir>(dir: &D, name: &str, o: &Options) -> Result<(), Error> {
    let p = o.page_size as usize;
    let now = dir.now_millis();
    let header = Header {
        version: FORMAT_VERSION,
        page_size: o.page_size,
        incompat: 0,
        ro_compat: 0,
        compat: 0,
        file_id: dir.random_u64(),
        created_millis: now,
    };
    let mut buf = vec![0u8; 3 * p];
    buf[..HEADER_LEN].copy_from_slice(&header.encode());
    for (i, &slot) in META_PAGES.iter().enumerate() {
        let m = Meta {
            seq: i as u64,
            page_size: o.page_size,
            file_pages: FIRST_DATA_PAGE,
            main_root: PagePtr::default(),
            main_depth: 0,
            free_depth: 0,
            free_root: PagePtr::default(),
            pend_prev: ListRef::default(),
            pend_cur: ListRef::default(),
            key_count: 0,
            logical_bytes: 0,
            free_pages: 0,
            writer_token: 0,
            commit_millis: now,
            file_id: header.file_id,
        };
        let off = slot as usize * p;
        let rec = m.encode(slot);
        buf[off..off + META_LEN].copy_from_slice(&rec);
        let crc = rd_u32(&rec, 0).unwrap_or(0);
        buf[off + META_LEN..off + META_LEN + STAMP_LEN].copy_from_slice(&encode_stamp(slot, m.seq, crc));
    }
    let tmp = format!("{name}.new-{:016x}", dir.random_u64());
    let f = dir
        .create_exclusive(&tmp)
        .map_err(|e| Error::io(&tmp, "create", e))?
        .ok_or_else(|| {
            Error::io(
                &tmp,
                "create",
                IoError::new(IoErrorKind::AlreadyExists, "temporary name taken".into()),
            )
        })?;
    let cleanup = |e: Error| {
        let _ = dir.remove(&tmp);
        e
    };
    f.write_at(&buf, 0)
        .map_err(|e| cleanup(Error::io(&tmp, "write", e)))?;
    if o.durability == Durability::Sync {
        f.sync().map_err(|e| cleanup(Error::io(&tmp, "sync", e)))?;
    }
    drop(f);
    // Publish atomically: link never replaces, so of several instances
    // creating the store at once exactly one file wins, always complete.
    match dir.link(&tmp, name) {
        Ok(won) => {
            let _ = dir.remove(&tmp);
            if won && o.durability == Durability::Sync {
                dir.sync_dir().map_err(|e| Error::io(name, "sync directory", e))?;
            }
            Ok(())
        }
        Err(e) if e.kind() == IoErrorKind::Unsupported => {
            // No hard links here: publish with rename under the writer lock.
            let lock_name = format!("{name}.lock");
            let mut g = lock::acquire(
                dir,
                name,
                &lock_name,
                o.lock_lease_millis,
                o.lock_wait_millis,
                None,
            )
            .map_err(cleanup)?;
            let r = (|| {
                if dir
                    .open(name, false)
                    .map_err(|e| Error::io(name, "open", e))?
                    .is_none()
                {
                    dir.rename(&tmp, name).map_err(|e| Error::io(name, "rename", e))?;
                    if o.durability == Durability::Sync {
                        dir.sync_dir().map_err(|e| Error::io(name, "sync directory", e))?;
                    }
                }
                Ok(())
            })();
            let _ = dir.remove(&tmp);
            let _ = g.release(dir);
            r
        }
        Err(e) => Err(cleanup(Error::io(name, "link", e))),
    }
}

impl<D: Dir> Store<D> {
    /// Opens (or, with `create_if_missing`, creates) the bucket file `name`
    /// in `dir`. Returns `Ok(None)` if it is missing and may not be created.
    /// Reads O(1) pages: the header and the two commit records.
    pub fn open(dir: D, name: &str, options: Options) -> Result<Option<Self>, Error> {
        options.validate()?;
        let file = match dir.open(name, false).map_err(|e| Error::io(name, "open", e))? {
            Some(f) => f,
            None => {
                if !options.create_if_missing {
                    return Ok(None);
                }
                create_store(&dir, name, &options)?;
                dir.open(name, false)
                    .map_err(|e| Error::io(name, "open", e))?
                    .ok_or_else(|| {
                        Error::io(
                            name,
                            "open",
                            IoError::new(IoErrorKind::NotFound, "store vanished after creation".into()),
                        )
                    })?
            }
        };
        let len = file.len().map_err(|e| Error::io(name, "stat", e))?;
        if len == 0 {
            return Err(Error::NotAStore {
                file: name.to_string(),
                detail: "the file is empty".into(),
            });
        }
        let mut hb = vec![0u8; HEADER_LEN.min(len as usize)];
        let probe = Pager {
            file,
            name: name.to_string(),
            geo: Geo::new(MIN_PAGE),
            page_size: MIN_PAGE,
            cache: PageCache::new(0),
        };
        if !probe.read_full(&mut hb, 0)? {
            return Err(Error::corrupt(name, "file header truncated"));
        }
        let header = Header::decode(&hb).map_err(|e| match e {
            HeaderError::NotAStore(d) => Error::NotAStore {
                file: name.to_string(),
                detail: d,
            },
            HeaderError::Corrupt(d) => Error::corrupt(name, d),
            HeaderError::Unsupported(d) => Error::UnsupportedFormat {
                file: name.to_string(),
                detail: d,
            },
        })?;
        let p = u64::from(header.page_size);
        if len < 3 * p {
            return Err(Error::corrupt(
                name,
                format!(
                    "file is truncated: {len} bytes, less than the header and commit pages ({} bytes)",
                    3 * p
                ),
            ));
        }
        let read_only = (header.ro_compat & !KNOWN_RO_COMPAT != 0).then(|| {
            format!(
                "unknown read-only-compatible feature bits {:#x}",
                header.ro_compat & !KNOWN_RO_COMPAT
            )
        });
        let mut pager = Pager {
            file: probe.file,
            name: name.to_string(),
            geo: Geo::new(header.page_size),
            page_size: header.page_size,
            cache: PageCache::new(options.cache_pages),
        };
        let (last, rejected) = open_newest(&mut pager, &header)?;
        Ok(Some(Store {
            lock_name: format!("{name}.lock"),
            dir,
            name: name.to_string(),
            opts: options,
            header,
            pager,
            last,
            rejected,
            read_only,
            leftover_lock: None,
            read_retries: 0,
        }))
    }

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

    /// Sequence number of the newest commit (re-reads the commit records).
    pub fn commit_seq(&mut self) -> Result<u64, Error> {
        Ok(self.refresh_meta()?.seq)
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

    /// The newest commit. Commits alternate slots, so commit `S+1` can only
    /// be written over the record of `S-1`: while that slot still holds a
    /// valid older commit, the last one seen is still the newest, and one
    /// record read (not two) tells so. When it holds a newer one, the other
    /// slot is read too (commit `S+2` may be there); anything unreadable
    /// falls back to [`newest_commit`], which handles records being written.
    /// A rejected record (§12) counts as older: a new commit replaces it.
    fn refresh_meta(&mut self) -> Result<Meta, Error> {
        let last = self.last.meta.seq;
        let slot = |seq: u64| read_slot(&self.pager, &self.header, slot_of(seq), self.rejected);
        let newest = match slot(last + 1)? {
            Slot::Valid(older) if older.meta.seq < last => return Ok(self.last.meta.clone()),
            Slot::Rejected => return Ok(self.last.meta.clone()),
            Slot::Valid(newer) => match slot(last)? {
                Slot::Valid(other) if other.meta.seq > newer.meta.seq => Some(other),
                Slot::Valid(_) => Some(newer),
                _ => None,
            },
            Slot::Invalid(_) => None,
        };
        let c = match newest {
            Some(c) => c,
            None => newest_commit(&self.pager, &self.header, self.rejected)?,
        };
        self.last = c;
        Ok(self.last.meta.clone())
    }

    /// Runs a read against the newest commit; when a page fails validation
    /// and a newer commit has appeared meanwhile, restarts from it.
    fn read_op<T>(
        &mut self,
        mut f: impl FnMut(&mut Pager<D::File>, &Meta) -> Result<T, E>,
    ) -> Result<T, Error> {
        let mut attempt = 0u32;
        loop {
            let meta = self.refresh_meta()?;
            match f(&mut self.pager, &meta) {
                Ok(v) => return Ok(v),
                Err(E::Fatal(e)) => return Err(e),
                Err(E::Mismatch { page, what }) => {
                    let now = self.refresh_meta()?;
                    if now.seq == meta.seq {
                        return Err(Error::corrupt(&self.name, mismatch_text(page, &what)));
                    }
                    attempt += 1;
                    self.read_retries += 1;
                    if attempt >= self.opts.max_read_retries {
                        return Err(Error::Busy {
                            file: self.name.clone(),
                            retries: attempt,
                        });
                    }
                    if attempt > 2 {
                        self.dir.sleep_millis(u64::from(attempt.min(20)));
                    }
                }
            }
        }
    }

    /// Value of `key`.
    pub fn get(&mut self, key: &[u8]) -> Result<Option<Vec<u8>>, Error> {
        Ok(self.get_versioned(key)?.map(|(v, _)| v))
    }

    /// Value of `key` and its version: the sequence number of the commit
    /// that last wrote it (strictly increases with every write of the key).
    pub fn get_versioned(&mut self, key: &[u8]) -> Result<Option<(Vec<u8>, u64)>, Error> {
        if key.len() > MAX_KEY_LEN {
            return Ok(None);
        }
        self.read_op(|pager, meta| {
            let tree = Tree::new(TREE_KEYS, meta.main_root, meta.main_depth, pager.geo);
            let mut env = Env::new(pager, limits(meta));
            match tree.get(&mut env, key)? {
                None => Ok(None),
                Some(it) => Ok(Some((resolve(&mut env, it.val)?, it.version))),
            }
        })
    }

    /// Whether `key` exists.
    pub fn contains(&mut self, key: &[u8]) -> Result<bool, Error> {
        if key.len() > MAX_KEY_LEN {
            return Ok(false);
        }
        self.read_op(|pager, meta| {
            let tree = Tree::new(TREE_KEYS, meta.main_root, meta.main_depth, pager.geo);
            let mut env = Env::new(pager, limits(meta));
            Ok(tree.get(&mut env, key)?.is_some())
        })
    }

    /// Up to `limit` keys strictly greater than `after` (all keys from the
    /// start if `None`), in bytewise order, from one consistent snapshot.
    /// Passing the last key returned as the next `after` never repeats a
    /// key and never skips a key that existed throughout the iteration.
    pub fn keys_after(&mut self, after: Option<&[u8]>, limit: usize) -> Result<Vec<Vec<u8>>, Error> {
        if limit == 0 {
            return Ok(Vec::new());
        }
        self.read_op(|pager, meta| {
            let tree = Tree::new(TREE_KEYS, meta.main_root, meta.main_depth, pager.geo);
            let mut env = Env::new(pager, limits(meta));
            let mut out = Vec::new();
            let from = after.map_or(Bound::Start, Bound::Excl);
            tree.scan(&mut env, from, false, &mut |_, it| {
                out.push(it.key);
                Ok(out.len() < limit)
            })?;
            Ok(out)
        })
    }

    /// Like [`Store::keys_after`] but with values and versions; stops early
    /// once `max_bytes` of keys and values have been collected (at least
    /// one entry is always returned if there is one).
    pub fn entries_after(
        &mut self,
        after: Option<&[u8]>,
        limit: usize,
        max_bytes: usize,
    ) -> Result<Vec<Entry>, Error> {
        if limit == 0 {
            return Ok(Vec::new());
        }
        self.read_op(|pager, meta| {
            let tree = Tree::new(TREE_KEYS, meta.main_root, meta.main_depth, pager.geo);
            let mut env = Env::new(pager, limits(meta));
            let mut out = Vec::new();
            let mut bytes = 0usize;
            let from = after.map_or(Bound::Start, Bound::Excl);
            tree.scan(&mut env, from, true, &mut |env, it| {
                let value = resolve(env, it.val)?;
                bytes += it.key.len() + value.len();
                out.push(Entry {
                    key: it.key,
                    value,
                    version: it.version,
                });
                Ok(out.len() < limit && bytes < max_bytes)
            })?;
            Ok(out)
        })
    }

    /// Ordered iteration over all entries, fetched in batches of `batch`
    /// entries. Each batch is a consistent snapshot; across batches the
    /// guarantees of [`Store::keys_after`] apply.
    pub fn iter(&mut self, batch: usize) -> Iter<'_, D> {
        Iter {
            store: self,
            buf: VecDeque::new(),
            last: None,
            done: false,
            batch: batch.max(1),
        }
    }

    /// Statistics of the newest commit.
    pub fn stats(&mut self) -> Result<Stats, Error> {
        let m = self.refresh_meta()?;
        let file_bytes = self
            .pager
            .file
            .len()
            .map_err(|e| Error::io(&self.name, "stat", e))?;
        let total = u64::from(m.file_pages);
        let pending = u64::from(m.pend_prev.pages) + u64::from(m.pend_cur.pages);
        Ok(Stats {
            keys: m.key_count,
            depth: m.main_depth,
            page_size: self.header.page_size,
            pages_total: total,
            pages_free: m.free_pages,
            pages_pending: pending,
            pages_used: total.saturating_sub(m.free_pages).saturating_sub(pending),
            logical_bytes: m.logical_bytes,
            file_bytes,
            commit_seq: m.seq,
        })
    }

    /// Verifies the newest commit completely: every reachable page and
    /// extent (checksums, sequence numbers, structure, key order, counts),
    /// the free tree and freed lists, and that every page of the file is
    /// accounted for exactly once. Returns the problems found (empty = ok).
    pub fn check(&mut self) -> Result<Vec<Problem>, Error> {
        let mut attempt = 0u32;
        loop {
            let meta = self.refresh_meta()?;
            let problems = crate::check::run(&mut self.pager, &meta)?;
            if problems.is_empty() || self.refresh_meta()?.seq == meta.seq {
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

    /// Runs `f` as one atomic write transaction: takes the writer lock,
    /// reads the newest commit, runs `f`, and commits its changes with one
    /// commit record (unless `f` returns `Err`: then nothing is written).
    /// With `Durability::Sync`, returns only once the commit is durable.
    ///
    /// If an error is returned after the commit record was written (e.g. a
    /// failed final sync) the transaction may or may not be committed; it is
    /// atomic either way.
    pub fn write<T>(&mut self, f: impl FnOnce(&mut WriteTxn<'_, D>) -> Result<T, Error>) -> Result<T, Error> {
        if let Some(d) = &self.read_only {
            return Err(Error::ReadOnly {
                file: self.name.clone(),
                detail: d.clone(),
            });
        }
        let mut guard = lock::acquire(
            &self.dir,
            &self.name,
            &self.lock_name,
            self.opts.lock_lease_millis,
            self.opts.lock_wait_millis,
            self.leftover_lock,
        )?;
        self.leftover_lock = None;
        let base = match self
            .refresh_meta()
            .and_then(|m| self.make_base_durable().map(|()| m))
        {
            Ok(m) => m,
            Err(e) => {
                if guard.release(&self.dir).is_err() {
                    self.leftover_lock = Some(guard.token);
                }
                return Err(e);
            }
        };
        let mut txn = WriteTxn::new(self, guard, base);
        let r = match f(&mut txn) {
            Ok(v) => txn.commit().map(|_| v),
            Err(e) => Err(e),
        };
        let leftover = txn.finish();
        if leftover.is_some() {
            self.leftover_lock = leftover;
        }
        r
    }

    /// Under the writer lock, before a new commit is based on the newest
    /// one: that commit must be durable, since the new record overwrites its
    /// predecessor's slot with a single sync (FORMAT.md §9). It is unless
    /// its completion stamp is missing (its writer died before its sync
    /// returned): then it is synced and stamped here.
    fn make_base_durable(&mut self) -> Result<(), Error> {
        if self.last.stamped {
            return Ok(());
        }
        let (seq, slot) = (self.last.meta.seq, slot_of(self.last.meta.seq));
        // The stamp may have been written since this instance read the record.
        if let Slot::Valid(c) = read_slot(&self.pager, &self.header, slot, self.rejected)?
            && c.meta.seq == seq
            && c.crc == self.last.crc
            && c.stamped
        {
            self.last.stamped = true;
            return Ok(());
        }
        if self.opts.durability == Durability::Sync {
            self.pager.file.sync().map_err(|e| self.pager.io("sync", e))?;
        }
        self.pager
            .file
            .write_at(
                &encode_stamp(slot, seq, self.last.crc),
                self.pager.page_off(slot) + META_LEN as u64,
            )
            .map_err(|e| self.pager.io("write completion stamp", e))?;
        self.last.stamped = true;
        Ok(())
    }

    /// Sets one key (one transaction).
    pub fn put(&mut self, key: &[u8], value: &[u8]) -> Result<(), Error> {
        self.write(|t| t.put(key, value))
    }

    /// Deletes one key (one transaction); returns whether it existed.
    pub fn delete(&mut self, key: &[u8]) -> Result<bool, Error> {
        self.write(|t| t.delete(key))
    }

    /// Sets several keys in one transaction (one commit).
    pub fn put_many<K: AsRef<[u8]>, V: AsRef<[u8]>>(&mut self, items: &[(K, V)]) -> Result<(), Error> {
        self.write(|t| {
            for (k, v) in items {
                t.put(k.as_ref(), v.as_ref())?;
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
}

/// Batched ordered iterator, see [`Store::iter`].
pub struct Iter<'s, D: Dir> {
    store: &'s mut Store<D>,
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
                .store
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
                            &self.store.name,
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

/// A write transaction (see [`Store::write`]). Reads see the transaction's
/// own writes on top of the newest commit at the time the lock was taken.
pub struct WriteTxn<'s, D: Dir> {
    store: &'s mut Store<D>,
    base: Meta,
    main: Tree,
    alloc: Alloc,
    freed: Freed,
    lock: Option<LockGuard>,
    changed: bool,
    key_count: u64,
    logical_bytes: u64,
    merged: bool,
}

/// Reads inside a transaction also see the extents it wrote itself: they
/// may lie past the base commit's end of file and carry the new sequence.
macro_rules! env {
    ($s:ident) => {
        Env::new(
            &mut $s.store.pager,
            Limits {
                file_pages: $s.base.file_pages.max($s.alloc.file_pages),
                max_seq: $s.base.seq + 1,
            },
        )
    };
}

impl<'s, D: Dir> WriteTxn<'s, D> {
    fn new(store: &'s mut Store<D>, lock: LockGuard, base: Meta) -> Self {
        let geo = store.pager.geo;
        WriteTxn {
            main: Tree::new(TREE_KEYS, base.main_root, base.main_depth, geo),
            alloc: Alloc {
                free: Tree::new(TREE_FREE, base.free_root, base.free_depth, geo),
                file_pages: base.file_pages,
                free_pages: base.free_pages,
            },
            freed: Freed::default(),
            lock: Some(lock),
            changed: false,
            key_count: base.key_count,
            logical_bytes: base.logical_bytes,
            merged: false,
            base,
            store,
        }
    }

    /// Sequence of the commit this transaction started from.
    pub fn base_seq(&self) -> u64 {
        self.base.seq
    }

    /// Sequence this transaction will commit as (and the version its writes get).
    pub fn commit_seq(&self) -> u64 {
        self.base.seq + 1
    }

    /// Maps an internal error: a validation mismatch means corruption,
    /// unless another writer committed meanwhile (our lock was broken).
    fn fail(&mut self, e: E) -> Error {
        match e {
            E::Fatal(e) => e,
            E::Mismatch { page, what } => {
                match newest_commit(&self.store.pager, &self.store.header, self.store.rejected) {
                    Ok(c) if c.meta.seq != self.base.seq => Error::LockLost {
                        file: self.store.name.clone(),
                        detail: format!(
                            "commit {} appeared while this transaction (based on commit {}) held the lock",
                            c.meta.seq, self.base.seq
                        ),
                    },
                    Ok(_) => Error::corrupt(&self.store.name, mismatch_text(page, &what)),
                    Err(e) => e,
                }
            }
        }
    }

    fn keep_alive(&mut self) -> Result<(), Error> {
        match self.lock.as_mut() {
            Some(l) => l.ensure(&self.store.dir, &self.store.name),
            None => Err(Error::LockLost {
                file: self.store.name.clone(),
                detail: "transaction already finished".into(),
            }),
        }
    }

    /// Value of `key` as seen by this transaction.
    pub fn get(&mut self, key: &[u8]) -> Result<Option<Vec<u8>>, Error> {
        Ok(self.get_versioned(key)?.map(|(v, _)| v))
    }

    /// Value and version of `key` as seen by this transaction (keys written
    /// by it report [`WriteTxn::commit_seq`]).
    pub fn get_versioned(&mut self, key: &[u8]) -> Result<Option<(Vec<u8>, u64)>, Error> {
        if key.len() > MAX_KEY_LEN {
            return Ok(None);
        }
        self.keep_alive()?;
        let r = (|| {
            let mut env = env!(self);
            match self.main.get(&mut env, key)? {
                None => Ok(None),
                Some(it) => Ok(Some((resolve(&mut env, it.val)?, it.version))),
            }
        })();
        r.map_err(|e| self.fail(e))
    }

    /// Up to `limit` keys greater than `after`, as seen by this transaction.
    pub fn keys_after(&mut self, after: Option<&[u8]>, limit: usize) -> Result<Vec<Vec<u8>>, Error> {
        if limit == 0 {
            return Ok(Vec::new());
        }
        self.keep_alive()?;
        let r = (|| {
            let mut env = env!(self);
            let mut out = Vec::new();
            self.main.scan(
                &mut env,
                after.map_or(Bound::Start, Bound::Excl),
                false,
                &mut |_, it| {
                    out.push(it.key);
                    Ok(out.len() < limit)
                },
            )?;
            Ok(out)
        })();
        r.map_err(|e| self.fail(e))
    }

    /// Sets `key` to `value`.
    pub fn put(&mut self, key: &[u8], value: &[u8]) -> Result<(), Error> {
        if key.len() > MAX_KEY_LEN {
            return Err(Error::KeyTooLarge { len: key.len() });
        }
        if value.len() > MAX_VALUE_LEN {
            return Err(Error::ValueTooLarge { len: value.len() });
        }
        self.keep_alive()?;
        let r = self.put_inner(key, value);
        r.map_err(|e| self.fail(e))
    }

    fn put_inner(&mut self, key: &[u8], value: &[u8]) -> Result<(), E> {
        let geo = self.store.pager.geo;
        let val = if geo.value_inline_ok(key.len(), value.len()) {
            MVal::Inline(value.to_vec())
        } else {
            let ext = self.write_extent(value, KIND_VALUE)?;
            MVal::Outline {
                len: value.len() as u32,
                ext,
            }
        };
        let entry = MEntry {
            key: MKey::new(key.to_vec()),
            val,
            version: self.base.seq + 1,
        };
        let mut env = env!(self);
        let old = self.main.insert(&mut env, &mut self.freed, entry)?;
        match old {
            Some(o) => {
                self.logical_bytes = self.logical_bytes.saturating_sub(o.val.len()) + value.len() as u64;
                if let MVal::Outline { ext, .. } = o.val {
                    self.freed.free_extent(ext)?;
                }
            }
            None => {
                self.key_count += 1;
                self.logical_bytes += (key.len() + value.len()) as u64;
            }
        }
        self.changed = true;
        Ok(())
    }

    /// Deletes `key`; returns whether it existed.
    pub fn delete(&mut self, key: &[u8]) -> Result<bool, Error> {
        if key.len() > MAX_KEY_LEN {
            return Ok(false);
        }
        self.keep_alive()?;
        let r = (|| {
            let mut env = env!(self);
            let Some(o) = self.main.delete(&mut env, &mut self.freed, key)? else {
                return Ok(false);
            };
            self.key_count = self.key_count.saturating_sub(1);
            self.logical_bytes = self
                .logical_bytes
                .saturating_sub(o.key.bytes.len() as u64 + o.val.len());
            if let Some(ext) = o.key.ext {
                self.freed.free_extent(ext)?;
            }
            if let MVal::Outline { ext, .. } = o.val {
                self.freed.free_extent(ext)?;
            }
            self.changed = true;
            Ok(true)
        })();
        r.map_err(|e| self.fail(e))
    }

    /// Pages freed by the commit before the base become allocatable now.
    fn merge_pending(&mut self) -> Result<(), E> {
        if self.merged {
            return Ok(());
        }
        self.merged = true;
        let lim = limits(&self.base);
        let (ext, own) = read_list(&mut self.store.pager, &lim, &self.base.pend_prev)?;
        for (s, n) in ext {
            let mut env = env!(self);
            self.alloc.release(&mut env, &mut self.freed, s, n)?;
        }
        for p in own {
            self.freed.free_page(p)?;
        }
        Ok(())
    }

    /// Allocates and writes an extent now (large values are not buffered).
    fn write_extent(&mut self, data: &[u8], kind: u8) -> Result<ExtPtr, E> {
        self.merge_pending()?;
        let geo = self.store.pager.geo;
        let pages = geo.extent_pages(data.len() as u64) as u32;
        let mut env = env!(self);
        let start = self
            .alloc
            .alloc(&mut env, &mut self.freed, pages, &self.store.name)?;
        self.freed.txn_allocs.insert(start, pages);
        let seq = self.base.seq + 1;
        let (hdr, crc) = encode_ext_hdr(start, kind, seq, data.len() as u32, pages, data);
        self.keep_alive()?;
        let off = self.store.pager.page_off(start);
        let total = pages as usize * geo.page;
        let pad = total - EXT_HDR - data.len();
        let file = &self.store.pager.file;
        let name = &self.store.name;
        let io = |e| E::Fatal(Error::io(name, "write", e));
        if total <= 1 << 20 {
            let mut b = Vec::with_capacity(total);
            b.extend_from_slice(&hdr);
            b.extend_from_slice(data);
            b.resize(total, 0);
            file.write_at(&b, off).map_err(io)?;
        } else {
            file.write_at(&hdr, off).map_err(io)?;
            file.write_at(data, off + EXT_HDR as u64).map_err(io)?;
            file.write_at(&vec![0u8; pad], off + (EXT_HDR + data.len()) as u64)
                .map_err(io)?;
        }
        Ok(ExtPtr {
            page: start,
            pages,
            seq,
            crc,
        })
    }

    fn commit(&mut self) -> Result<(), Error> {
        match self.commit_inner() {
            Ok(Some(c)) => {
                self.store.last = c;
                Ok(())
            }
            Ok(None) => Ok(()),
            Err(e) => Err(self.fail(e)),
        }
    }

    fn commit_inner(&mut self) -> Result<Option<Commit>, E> {
        if !self.changed {
            return Ok(None);
        }
        let seq = self.base.seq + 1;
        let geo = self.store.pager.geo;
        let name = self.store.name.clone();
        self.merge_pending()?;
        for (s, n) in core::mem::take(&mut self.freed.local) {
            let mut env = env!(self);
            self.alloc.release(&mut env, &mut self.freed, s, n)?;
        }
        // Long keys get their extents now, then the key tree gets its pages.
        let order = self.main.dirty_postorder();
        for (id, i, bytes) in self.main.unwritten_long_keys(&order) {
            let ext = self.write_extent(&bytes, KIND_KEY)?;
            self.main.set_key_ext(id, i, ext);
        }
        let mut main_pages = Vec::with_capacity(order.len());
        for _ in 0..order.len() {
            let mut env = env!(self);
            main_pages.push(self.alloc.alloc(&mut env, &mut self.freed, 1, &name)?);
        }
        let shrunk = {
            let mut env = env!(self);
            self.alloc.shrink(&mut env, &mut self.freed)?
        };
        // The free tree and this commit's freed list need pages too, and
        // allocating them changes the free tree: iterate to a fixpoint.
        // Allocation only shrinks runs from the front, so it converges fast.
        let cap = geo.list_cap();
        let mut reserved: Vec<u32> = Vec::new();
        let mut rounds = 0u32;
        let (free_order, nlist) = loop {
            let fo = self.alloc.free.dirty_postorder();
            let nl = list_pages_for(self.freed.pending.extents() + reserved.len(), cap);
            if reserved.len() >= fo.len() + nl {
                break (fo, nl);
            }
            rounds += 1;
            if rounds > 10_000 {
                return Err(crate::error::mismatch(
                    0,
                    "free-space allocation did not converge",
                ));
            }
            for _ in reserved.len()..fo.len() + nl {
                let mut env = env!(self);
                reserved.push(self.alloc.alloc(&mut env, &mut self.freed, 1, &name)?);
            }
        };
        let nf = free_order.len();
        for &p in &reserved[nf + nlist..] {
            self.freed.free_page(p)?;
        }
        let mut out: Vec<(u32, Vec<u8>, u32)> = Vec::new();
        let main_root = self.main.serialize(&order, &main_pages, seq, &mut out)?;
        let free_root = self
            .alloc
            .free
            .serialize(&free_order, &reserved[..nf], seq, &mut out)?;
        let pend_cur = write_list(geo, &self.freed.pending, &reserved[nf..nf + nlist], seq, &mut out);
        let token = self.lock.as_ref().map_or(0, |l| l.token);
        let meta = Meta {
            seq,
            page_size: self.store.header.page_size,
            file_pages: self.alloc.file_pages,
            main_root: main_root.unwrap_or_default(),
            main_depth: if main_root.is_some() { self.main.depth } else { 0 },
            free_depth: if free_root.is_some() {
                self.alloc.free.depth
            } else {
                0
            },
            free_root: free_root.unwrap_or_default(),
            pend_prev: self.base.pend_cur,
            pend_cur,
            key_count: self.key_count,
            logical_bytes: self.logical_bytes,
            free_pages: self.alloc.free_pages,
            writer_token: token,
            commit_millis: self.store.dir.now_millis(),
            file_id: self.store.header.file_id,
        };

        // 1. Data pages (all into pages free in both intact commits).
        out.sort_by_key(|x| x.0);
        let p = geo.page;
        let mut i = 0;
        while i < out.len() {
            let mut j = i + 1;
            while j < out.len() && out[j].0 == out[j - 1].0 + 1 && (j - i) * p < (4 << 20) {
                j += 1;
            }
            self.keep_alive()?;
            let off = self.store.pager.page_off(out[i].0);
            let r = if j - i == 1 {
                self.store.pager.file.write_at(&out[i].1, off)
            } else {
                let mut b = Vec::with_capacity((j - i) * p);
                for x in &out[i..j] {
                    b.extend_from_slice(&x.1);
                }
                self.store.pager.file.write_at(&b, off)
            };
            r.map_err(|e| Error::io(&name, "write", e))?;
            i = j;
        }
        // Pages allocated at the end of the file but not written (surplus
        // reservations that went straight to the freed list) must still
        // exist: the file always covers `file_pages`.
        if meta.file_pages > self.base.file_pages {
            let want = u64::from(meta.file_pages) * p as u64;
            let len = self
                .store
                .pager
                .file
                .len()
                .map_err(|e| Error::io(&name, "stat", e))?;
            if len < want {
                self.store
                    .pager
                    .file
                    .set_len(want)
                    .map_err(|e| Error::io(&name, "extend", e))?;
            }
        }
        // 2. Fence: we must still hold the lock (verified if a quarter
        //    lease has passed since it was), and nobody may have committed
        //    since our base: commit `seq` would be in the very slot we are
        //    about to overwrite.
        self.keep_alive()?;
        let slot = slot_of(seq);
        if let Slot::Valid(other) =
            read_slot(&self.store.pager, &self.store.header, slot, self.store.rejected)?
            && other.meta.seq > self.base.seq
        {
            return Err(E::Fatal(Error::LockLost {
                file: name,
                detail: format!(
                    "commit {} appeared after this transaction started from {}",
                    other.meta.seq, self.base.seq
                ),
            }));
        }
        // 3. The commit record, into the slot of the older commit. Until the
        //    sync returns, a power cut may keep any part of what was written:
        //    a record whose pages did not all land is found at open by its
        //    missing completion stamp and its pages' checksums (§12).
        let rec = meta.encode(slot);
        let crc = rd_u32(&rec, 0).unwrap_or(0);
        self.store
            .pager
            .file
            .write_at(&rec, self.store.pager.page_off(slot))
            .map_err(|e| Error::io(&name, "write commit record", e))?;
        // 4. One sync makes the pages and the record durable.
        if self.store.opts.durability == Durability::Sync {
            self.store
                .pager
                .file
                .sync()
                .map_err(|e| Error::io(&name, "sync", e))?;
        }
        // 5. The completion stamp (not synced: if it is lost, the next
        //    opener checks the commit's pages and the next writer syncs).
        let stamped = self
            .store
            .pager
            .file
            .write_at(
                &encode_stamp(slot, seq, crc),
                self.store.pager.page_off(slot) + META_LEN as u64,
            )
            .is_ok();
        if shrunk {
            let _ = self
                .store
                .pager
                .file
                .set_len(u64::from(meta.file_pages) * p as u64);
        }
        for (page, b, crc) in out {
            if b[4] == T_LEAF || b[4] == T_BRANCH {
                self.store.pager.cache.insert(page, seq, crc, b.into());
            }
        }
        Ok(Some(Commit { meta, crc, stamped }))
    }

    /// Releases the lock; returns the token if that failed (so the next
    /// write of this instance can recognise its own leftover lock).
    fn finish(mut self) -> Option<u64> {
        let mut l = self.lock.take()?;
        match l.release(&self.store.dir) {
            Ok(()) => None,
            Err(_) => Some(l.token),
        }
    }
}

impl<D: Dir> Drop for WriteTxn<'_, D> {
    fn drop(&mut self) {
        if let Some(mut l) = self.lock.take() {
            let _ = l.release(&self.store.dir);
        }
    }
}
