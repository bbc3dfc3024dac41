//! Converting a format-version-1 file (FORMAT.md §16): the layout before the
//! commit log, whose newest commit record (pages 1 and 2) points at a tree
//! in the same page format as version 2. [`upgrade_v1`] reads that tree and
//! writes its keys and values into a new version-2 file, which then replaces
//! the old one.

use crate::bucket::{BucketFile, Options, SyncPolicy};
use crate::cache::PageCache;
use crate::error::{Error, PageError};
use crate::format::*;
use crate::io::{Dir, File};
use crate::lock;
use crate::pager::{Bounds, Pager};
use crate::prelude::*;
use crate::read::resolve;
use crate::tree::{Bound, Tree, Walk};

/// Version 1 put its two commit records at the start of pages 1 and 2, and
/// its data pages from page 3 on.
const V1_RECORD_LEN: usize = 160;
const V1_FIRST_DATA_PAGE: u32 = 3;

/// The fields of a version-1 commit record the conversion needs.
struct V1Commit {
    seq: u64,
    file_pages: u32,
    root: PagePtr,
    depth: u16,
}

fn decode_v1(b: &[u8], slot_page: u32, h: &Header) -> Option<V1Commit> {
    let b = b.get(..V1_RECORD_LEN)?;
    if b[4] != T_CHECKPOINT || rd_u32(b, 0)? != crc_with_page(slot_page, &b[4..]) {
        return None;
    }
    let c = V1Commit {
        seq: rd_u64(b, 8)?,
        file_pages: rd_u32(b, 20)?,
        root: PagePtr::read(b, 24)?,
        depth: rd_u16(b, 40)?,
    };
    let ok = rd_u32(b, 16)? == h.page_size
        && rd_u64(b, 152)? == h.file_id
        && c.depth <= MAX_DEPTH
        && (c.depth == 0) == (c.root.page == 0);
    ok.then_some(c)
}

/// Replaces the version-1 bucket file `name` in `dir` by a version-2 file
/// holding the same keys and values (versions start afresh), with the page
/// size of the old file and `options` otherwise. Takes the writer lock for
/// the whole conversion; instances that still have the old file open keep
/// reading it, so stop them first. Returns the number of keys converted.
pub fn upgrade_v1<D: Dir + Clone>(dir: &D, name: &str, options: Options) -> Result<u64, Error> {
    let mut guard = lock::acquire(
        dir,
        name,
        &format!("{name}.lock"),
        options.lock_lease_millis,
        options.lock_wait_millis,
        None,
    )?;
    let r = convert(dir, name, options, &mut guard);
    let released = guard.release(dir);
    let n = r?;
    released?;
    Ok(n)
}

fn convert<D: Dir + Clone>(
    dir: &D,
    name: &str,
    options: Options,
    guard: &mut lock::LockGuard,
) -> Result<u64, Error> {
    let file = dir
        .open(name, false)
        .map_err(|e| Error::io(name, "open", e))?
        .ok_or_else(|| {
            Error::io(
                name,
                "open",
                crate::io::IoError::new(crate::io::IoErrorKind::NotFound, "no such file".into()),
            )
        })?;
    let mut pager = Pager {
        file,
        name: name.to_string(),
        geo: Geo::new(MIN_PAGE),
        page_size: MIN_PAGE,
        cache: PageCache::new(0),
    };
    let mut hb = vec![0u8; HEADER_LEN];
    if !pager.read_full(&mut hb, 0)? {
        return Err(Error::corrupt(name, "file header truncated"));
    }
    let header = Header::decode_version(&hb, 1).map_err(|e| e.for_file(name))?;
    pager.geo = Geo::new(header.page_size);
    pager.page_size = header.page_size;
    let mut commits = Vec::new();
    for slot_page in [1u32, 2] {
        let mut b = vec![0u8; V1_RECORD_LEN];
        if pager.read_full(&mut b, pager.page_off(slot_page))?
            && let Some(c) = decode_v1(&b, slot_page, &header)
        {
            commits.push(c);
        }
    }
    // The newest first; if its pages did not all reach the disk (a power
    // cut during its commit, FORMAT.md version 1 §12), the older one.
    commits.sort_by_key(|c| core::cmp::Reverse(c.seq));
    if commits.is_empty() {
        return Err(Error::corrupt(name, "no valid commit record in pages 1 and 2"));
    }
    let mut last_err = None;
    for c in &commits {
        let tmp = format!("{name}.upgrade-{:016x}", dir.random_u64());
        match copy_tree(dir, &mut pager, c, &tmp, &options, header.page_size, guard) {
            Ok(n) => {
                dir.rename(&tmp, name).map_err(|e| Error::io(name, "rename", e))?;
                dir.sync_dir().map_err(|e| Error::io(name, "sync directory", e))?;
                return Ok(n);
            }
            Err(e) => {
                let _ = dir.remove(&tmp);
                let _ = dir.remove(&format!("{tmp}.lock"));
                if !e.is_corruption() {
                    return Err(e);
                }
                last_err = Some(e);
            }
        }
    }
    Err(last_err.unwrap_or_else(|| Error::corrupt(name, "no readable commit")))
}

/// Writes every entry of the tree of `c` into a new file `tmp`.
fn copy_tree<D: Dir + Clone, F: File>(
    dir: &D,
    pager: &mut Pager<F>,
    c: &V1Commit,
    tmp: &str,
    options: &Options,
    page_size: u32,
    guard: &mut lock::LockGuard,
) -> Result<u64, Error> {
    let o = Options {
        page_size,
        sync: SyncPolicy::Never,
        create_if_missing: true,
        ..options.clone()
    };
    let mut out =
        BucketFile::open(dir.clone(), tmp, o)?.ok_or_else(|| Error::corrupt(tmp, "the new file vanished"))?;
    let bounds = Bounds {
        data_start: V1_FIRST_DATA_PAGE,
        file_pages: c.file_pages,
        max_seq: c.seq,
    };
    let tree = Tree::new(TREE_KEYS, c.root, c.depth, pager.geo);
    let mut walk = Walk::new(pager, bounds);
    let mut batch: Vec<(Vec<u8>, Vec<u8>)> = Vec::new();
    let mut bytes = 0usize;
    let mut keys = 0u64;
    let name = walk.pager.name.clone();
    let r = tree.scan(&mut walk, Bound::Start, true, &mut |walk, item| {
        let value = resolve(walk, item.val)?;
        bytes += item.key.len() + value.len();
        batch.push((item.key, value));
        keys += 1;
        if batch.len() >= 1000 || bytes >= 8 << 20 {
            guard.ensure(dir, &name)?;
            out.put_many(&batch)?;
            batch.clear();
            bytes = 0;
        }
        Ok(true)
    });
    match r {
        Ok(()) => {}
        Err(PageError::Fatal(e)) => return Err(e),
        Err(PageError::Mismatch { page, what }) => {
            return Err(Error::corrupt(&name, format!("page {page}: {what}")));
        }
    }
    out.put_many(&batch)?;
    drop(out);
    // Fold the log into the tree and make the new file durable.
    let o = Options {
        page_size,
        sync: SyncPolicy::EveryCommit,
        create_if_missing: false,
        ..options.clone()
    };
    let mut out =
        BucketFile::open(dir.clone(), tmp, o)?.ok_or_else(|| Error::corrupt(tmp, "the new file vanished"))?;
    out.checkpoint()?;
    out.pager.file.sync().map_err(|e| Error::io(tmp, "sync", e))?;
    Ok(keys)
}
