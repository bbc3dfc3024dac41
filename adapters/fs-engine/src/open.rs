//! Opening and creating a bucket file (FORMAT.md §2, §11, §12).
//!
//! Opening reads the header, the two checkpoint slots and the log after the
//! newest checkpoint: O(1) in the size of the tree, O(log) in the commits
//! logged since the last checkpoint (at most half the ring). There is no
//! recovery step that writes: a torn checkpoint record fails its checksum
//! and the other slot is used; a torn log record fails its cells'
//! checksums and ends the log.

use crate::bucket::{BucketFile, Options, SyncPolicy};
use crate::cache::PageCache;
use crate::error::Error;
use crate::format::*;
use crate::io::{Dir, File, IoError, IoErrorKind};
use crate::lock;
use crate::pager::Pager;
use crate::prelude::*;
use crate::read::{View, newest_checkpoint};
use crate::wal::Ring;

impl<D: Dir> BucketFile<D> {
    /// Opens (or, with `create_if_missing`, creates) the bucket file `name`
    /// in `dir`. Returns `Ok(None)` if it is missing and may not be created.
    pub fn open(dir: D, name: &str, options: Options) -> Result<Option<Self>, Error> {
        Self::open_version(dir, name, options, FORMAT_VERSION)
    }

    /// Opens a file of format `version`: this build's, or (read only, for
    /// the upgrade) version 2, whose layout is format 3 without expiries.
    pub(crate) fn open_version(
        dir: D,
        name: &str,
        options: Options,
        version: u32,
    ) -> Result<Option<Self>, Error> {
        options.validate()?;
        let file = match dir.open(name, false).map_err(|e| Error::io(name, "open", e))? {
            Some(f) => f,
            None => {
                if !options.create_if_missing {
                    return Ok(None);
                }
                create(&dir, name, &options)?;
                dir.open(name, false)
                    .map_err(|e| Error::io(name, "open", e))?
                    .ok_or_else(|| {
                        Error::io(
                            name,
                            "open",
                            IoError::new(
                                IoErrorKind::NotFound,
                                "bucket file vanished after creation".into(),
                            ),
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
        let header = Header::decode_version(&hb, version).map_err(|e| e.for_file(name))?;
        let p = u64::from(header.page_size);
        let need = u64::from(FIRST_RING_PAGE) * p;
        if len < need {
            return Err(Error::corrupt(
                name,
                format!(
                    "file is truncated: {len} bytes, less than the header and checkpoint pages ({need} bytes)"
                ),
            ));
        }
        let read_only = if version != FORMAT_VERSION {
            Some(format!("format version {version}: upgrade it first"))
        } else {
            (header.ro_compat & !KNOWN_RO_COMPAT != 0).then(|| {
                format!(
                    "unknown read-only-compatible feature bits {:#x}",
                    header.ro_compat & !KNOWN_RO_COMPAT
                )
            })
        };
        let pager = Pager {
            file: probe.file,
            name: name.to_string(),
            geo: Geo::new(header.page_size),
            page_size: header.page_size,
            cache: PageCache::new(options.cache_pages),
        };
        let slots = newest_checkpoint(&pager, &header)?;
        let covered = u64::from(slots.newest.file_pages) * p;
        // A writer grows the file before it publishes the checkpoint that
        // covers the new pages: measured before that checkpoint was read,
        // the file may look short. Measure again.
        let len = if len < covered {
            pager.file.len().map_err(|e| Error::io(name, "stat", e))?
        } else {
            len
        };
        if len < covered {
            return Err(Error::corrupt(
                name,
                format!(
                    "file is truncated: {len} bytes, but checkpoint {} covers {} pages ({covered} bytes)",
                    slots.newest.number, slots.newest.file_pages
                ),
            ));
        }
        let view = View::at(slots.newest.clone(), slots.newest_crc);
        let (durable_checkpoint, durable_log_start) = slots.durable();
        let mut bucket = BucketFile {
            lock_name: format!("{name}.lock"),
            dir,
            name: name.to_string(),
            opts: options,
            header,
            pager,
            view,
            durable_checkpoint,
            durable_log_start,
            read_only,
            leftover_lock: None,
            held_lock: None,
            read_retries: 0,
        };
        bucket.refresh()?;
        Ok(Some(bucket))
    }
}

impl HeaderError {
    /// The error of opening `file` with this header.
    pub(crate) fn for_file(self, file: &str) -> Error {
        match self {
            HeaderError::NotAStore(detail) => Error::NotAStore {
                file: file.to_string(),
                detail,
            },
            HeaderError::Corrupt(d) => Error::corrupt(file, d),
            HeaderError::Unsupported(detail) => Error::UnsupportedFormat {
                file: file.to_string(),
                detail,
            },
        }
    }
}

/// The checkpoint record of an empty bucket: numbers 0 and 1 fill the two
/// slots of a new file. The log starts one ring's worth of cells in (the
/// fillers of the lap before need LSNs, FORMAT.md §5).
fn empty_checkpoint(number: u64, header: &Header, ring: RingRef, now: u64) -> Checkpoint {
    Checkpoint {
        number,
        seq: 0,
        page_size: header.page_size,
        file_pages: ring.first_page + ring.pages,
        main_root: PagePtr::default(),
        main_depth: 0,
        free_depth: 0,
        free_root: PagePtr::default(),
        freed: ListRef::default(),
        key_count: 0,
        logical_bytes: 0,
        next_expiry: 0,
        free_pages: 0,
        writer_token: 0,
        commit_millis: now,
        file_id: header.file_id,
        log_start: ring_cells(ring, header.page_size),
        ring,
    }
}

/// Writes a new bucket file completely under a temporary name, then
/// publishes it (FORMAT.md §11).
fn create<D: Dir>(dir: &D, name: &str, o: &Options) -> Result<(), Error> {
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
    let ring = RingRef {
        first_page: FIRST_RING_PAGE,
        pages: o.ring_pages(),
    };
    // The whole file: header, both slots, and the ring of fillers (its
    // blocks exist: appending to the log never allocates).
    let mut buf = vec![0u8; (ring.first_page + ring.pages) as usize * p];
    buf[..HEADER_LEN].copy_from_slice(&header.encode());
    let fillers = Ring::new(ring, o.page_size).fillers(ring_cells(ring, o.page_size));
    buf[ring.first_page as usize * p..].copy_from_slice(&fillers);
    for number in 0..2 {
        let c = empty_checkpoint(number, &header, ring, now);
        let off = slot_offset(o.page_size, c.slot()) as usize;
        buf[off..off + CKPT_LEN].copy_from_slice(&c.encode());
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
    let sync = o.sync == SyncPolicy::EveryCommit;
    if sync {
        f.sync().map_err(|e| cleanup(Error::io(&tmp, "sync", e)))?;
    }
    drop(f);
    // Publish atomically: link never replaces, so of several instances
    // creating the bucket at once exactly one file wins, always complete.
    match dir.link(&tmp, name) {
        Ok(won) => {
            let _ = dir.remove(&tmp);
            if won && sync {
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
                false,
            )
            .map_err(cleanup)?;
            let r = (|| {
                if dir
                    .open(name, false)
                    .map_err(|e| Error::io(name, "open", e))?
                    .is_none()
                {
                    dir.rename(&tmp, name).map_err(|e| Error::io(name, "rename", e))?;
                    if sync {
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
