//! Converting an older file to this format (FORMAT.md §16). [`upgrade`]
//! writes the keys and values of the old file into a new file of this
//! format, which then replaces the old one:
//!
//! * version 1, the layout before the commit log: its newest commit record
//!   (pages 1 and 2) points at a tree in the page format of version 2,
//!   read here directly;
//! * version 2, format 3 without expiries: read by this engine itself,
//!   opened read only.

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

/// Replaces the version-1 or version-2 bucket file `name` in `dir` by a
/// file of this format holding the same keys and values (versions start
/// afresh), with the page size of the old file and `options` otherwise.
/// Takes the writer lock for the whole conversion; instances that still
/// have the old file open keep reading it, so stop them first. Returns the
/// number of keys converted.
pub fn upgrade<D: Dir + Clone>(dir: &D, name: &str, options: Options) -> Result<u64, Error> {
    let mut guard = lock::acquire(
        dir,
        name,
        &format!("{name}.lock"),
        options.lock_lease_millis,
        options.lock_wait_millis,
        None,
        false,
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
    let version = rd_u32(&hb, 8).unwrap_or(0);
    if version == FORMAT_VERSION {
        return Err(Error::UnsupportedFormat {
            file: name.to_string(),
            detail: format!("already format version {FORMAT_VERSION}: nothing to upgrade"),
        });
    }
    let header = Header::decode_version(&hb, version.clamp(1, 2)).map_err(|e| e.for_file(name))?;
    if header.version == 2 {
        let tmp = format!("{name}.upgrade-{:016x}", dir.random_u64());
        return publish(
            dir,
            name,
            &tmp,
            copy_v2(dir, name, &tmp, &options, header.page_size, guard),
        );
    }
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
    // (At most two: a swap, not a sort, whose code kv-fs would carry.)
    if commits.len() == 2 && commits[1].seq > commits[0].seq {
        commits.swap(0, 1);
    }
    if commits.is_empty() {
        return Err(Error::corrupt(name, "no valid commit record in pages 1 and 2"));
    }
    let mut last_err = None;
    for c in &commits {
        let tmp = format!("{name}.upgrade-{:016x}", dir.random_u64());
        let copied = copy_tree(dir, &mut pager, c, &tmp, &options, header.page_size, guard);
        match publish(dir, name, &tmp, copied) {
            Err(e) if e.is_corruption() => last_err = Some(e),
            r => return r,
        }
    }
    Err(last_err.unwrap_or_else(|| Error::corrupt(name, "no readable commit")))
}

/// Puts the new file `tmp` in the place of `name` once `copied` says it
/// is complete; else removes it.
fn publish<D: Dir>(dir: &D, name: &str, tmp: &str, copied: Result<u64, Error>) -> Result<u64, Error> {
    match copied {
        Ok(n) => {
            dir.rename(tmp, name).map_err(|e| Error::io(name, "rename", e))?;
            dir.sync_dir().map_err(|e| Error::io(name, "sync directory", e))?;
            Ok(n)
        }
        Err(e) => {
            let _ = dir.remove(tmp);
            let _ = dir.remove(&format!("{tmp}.lock"));
            Err(e)
        }
    }
}

/// The new file being filled: entries are written in batches of up to
/// 1,000 keys or 8 MiB, each one transaction (unsynced: the file is made
/// durable once, at the end).
struct NewFile<D: Dir> {
    out: BucketFile<D>,
    batch: Vec<(Vec<u8>, Vec<u8>)>,
    bytes: usize,
    keys: u64,
}

impl<D: Dir + Clone> NewFile<D> {
    fn create(dir: &D, tmp: &str, options: &Options, page_size: u32) -> Result<Self, Error> {
        let o = Options {
            page_size,
            sync: SyncPolicy::Never,
            create_if_missing: true,
            ..options.clone()
        };
        let out = BucketFile::open(dir.clone(), tmp, o)?
            .ok_or_else(|| Error::corrupt(tmp, "the new file vanished"))?;
        Ok(NewFile {
            out,
            batch: Vec::new(),
            bytes: 0,
            keys: 0,
        })
    }

    fn add(
        &mut self,
        key: Vec<u8>,
        value: Vec<u8>,
        guard: &mut lock::LockGuard,
        name: &str,
    ) -> Result<(), Error> {
        self.bytes += key.len() + value.len();
        self.batch.push((key, value));
        self.keys += 1;
        if self.batch.len() >= 1000 || self.bytes >= 8 << 20 {
            guard.ensure(self.out.dir(), name)?;
            self.out.put_many(&self.batch)?;
            self.batch.clear();
            self.bytes = 0;
        }
        Ok(())
    }

    /// Writes the last batch, folds the log into the tree and makes the
    /// file durable. Returns the number of keys written.
    fn finish(mut self, tmp: &str, options: &Options, page_size: u32) -> Result<u64, Error> {
        self.out.put_many(&self.batch)?;
        let dir = self.out.dir().clone();
        drop(self.out);
        let o = Options {
            page_size,
            sync: SyncPolicy::EveryCommit,
            create_if_missing: false,
            ..options.clone()
        };
        let mut out =
            BucketFile::open(dir, tmp, o)?.ok_or_else(|| Error::corrupt(tmp, "the new file vanished"))?;
        out.checkpoint()?;
        out.pager.file.sync().map_err(|e| Error::io(tmp, "sync", e))?;
        Ok(self.keys)
    }
}

/// Writes every entry of the version-2 file `name` (its tree and its log)
/// into a new file `tmp`.
fn copy_v2<D: Dir + Clone>(
    dir: &D,
    name: &str,
    tmp: &str,
    options: &Options,
    page_size: u32,
    guard: &mut lock::LockGuard,
) -> Result<u64, Error> {
    let o = Options {
        create_if_missing: false,
        ..options.clone()
    };
    let mut old = BucketFile::open_version(dir.clone(), name, o, 2)?
        .ok_or_else(|| Error::corrupt(name, "the file vanished"))?;
    let mut out = NewFile::create(dir, tmp, options, page_size)?;
    for e in old.iter(1000) {
        let e = e?;
        out.add(e.key, e.value, guard, name)?;
    }
    out.finish(tmp, options, page_size)
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
    let mut out = NewFile::create(dir, tmp, options, page_size)?;
    let bounds = Bounds {
        data_start: V1_FIRST_DATA_PAGE,
        file_pages: c.file_pages,
        max_seq: c.seq,
    };
    let tree = Tree::new(TREE_KEYS, c.root, c.depth, pager.geo);
    let mut walk = Walk::new(pager, bounds);
    let name = walk.pager.name.clone();
    let r = tree.scan(&mut walk, Bound::Start, true, &mut |walk, item| {
        let value = resolve(walk, item.val)?;
        out.add(item.key, value, guard, &name)?;
        Ok(true)
    });
    match r {
        Ok(()) => {}
        Err(PageError::Fatal(e)) => return Err(e),
        Err(PageError::Mismatch { page, what }) => {
            return Err(Error::corrupt(&name, format!("page {page}: {what}")));
        }
    }
    out.finish(tmp, options, page_size)
}
