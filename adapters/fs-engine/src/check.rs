//! Full consistency check of one checkpoint (fsck): FORMAT.md §7 accounting.

use crate::error::{Error, PageError, Problem};
use crate::format::*;
use crate::io::File;
use crate::pager::{Bounds, Pager};
use crate::prelude::*;
use crate::space::{decode_free, read_list};
use crate::tree::{Walk, full_key};
use crate::wal::Ring;

const UNSEEN: u8 = 0;
const USED: u8 = 1;
const FREE: u8 = 2;
const PENDING: u8 = 3;

fn owner_name(o: u8) -> &'static str {
    match o {
        USED => "in use",
        FREE => "free",
        PENDING => "recently freed",
        _ => "unknown",
    }
}

struct Checker<'p, F> {
    pager: &'p mut Pager<F>,
    bounds: Bounds,
    seq: u64,
    owners: Vec<u8>,
    problems: Vec<Problem>,
    keys: u64,
    bytes: u64,
}

impl<F: File> Checker<'_, F> {
    fn problem(&mut self, page: Option<u64>, message: impl Into<String>) {
        if self.problems.len() < 1000 {
            self.problems.push(Problem {
                page,
                message: message.into(),
            });
        }
    }

    /// Records a fatal error as a problem; passes fatal I/O errors up.
    fn handle(&mut self, e: PageError) -> Result<(), Error> {
        match e {
            PageError::Mismatch { page, what } => {
                self.problem((page != 0).then_some(page), what);
                Ok(())
            }
            PageError::Fatal(e) if e.is_corruption() => {
                self.problem(None, e.to_string());
                Ok(())
            }
            PageError::Fatal(e) => Err(e),
        }
    }

    /// Claims pages for `owner`; false if any was already claimed.
    fn mark(&mut self, start: u32, n: u32, owner: u8, what: &str) -> bool {
        let mut fresh = true;
        for p in u64::from(start)..u64::from(start) + u64::from(n) {
            match self.owners.get_mut(p as usize) {
                None => {
                    self.problem(Some(p), format!("{what} lies beyond the end of the file"));
                    return false;
                }
                Some(o) if *o != UNSEEN => {
                    let prev = *o;
                    fresh = false;
                    self.problem(
                        Some(p),
                        format!(
                            "page is both {} and {} ({what})",
                            owner_name(prev),
                            owner_name(owner)
                        ),
                    );
                }
                Some(o) => *o = owner,
            }
        }
        fresh
    }

    fn ext(&mut self, ext: ExtPtr, len: u32, kind: u8, what: &str) -> Result<Option<Vec<u8>>, Error> {
        let bounds = self.bounds;
        match self.pager.extent(ext, len, kind, &bounds) {
            Ok(v) => {
                self.mark(ext.page, ext.pages, USED, what);
                if ext.seq > self.seq {
                    self.problem(Some(u64::from(ext.page)), "extent newer than the checkpoint");
                }
                Ok(Some(v))
            }
            Err(e) => self.handle(e).map(|_| None),
        }
    }

    fn key(&mut self, kr: KeyRef<'_>) -> Result<Option<Vec<u8>>, Error> {
        match kr.outline {
            None => Ok(Some(kr.inline.to_vec())),
            Some((len, ext)) => {
                let bounds = self.bounds;
                let r = {
                    let mut walk = Walk::new(&mut *self.pager, bounds);
                    full_key(&mut walk, kr)
                };
                match r {
                    Ok(k) => {
                        let _ = len;
                        self.mark(ext.page, ext.pages, USED, "key extent");
                        Ok(Some(k))
                    }
                    Err(e) => self.handle(e).map(|_| None),
                }
            }
        }
    }

    /// Walks a subtree; keys must lie in `[lo, hi)`.
    fn walk(
        &mut self,
        tree: u8,
        ptr: PagePtr,
        level: u16,
        lo: Option<&[u8]>,
        hi: Option<&[u8]>,
    ) -> Result<(), Error> {
        let bounds = self.bounds;
        let data = match self.pager.node(ptr, tree, level, &bounds) {
            Ok(d) => d,
            Err(e) => return self.handle(e),
        };
        let page = u64::from(ptr.page);
        let what = if tree == TREE_KEYS {
            "key tree node"
        } else {
            "free tree node"
        };
        if !self.mark(ptr.page, 1, USED, what) {
            return Ok(()); // shared subtree: reported, not walked twice
        }
        let v = match NodeView::new(&data, self.pager.geo) {
            Ok(v) => v,
            Err(b) => {
                self.problem(Some(page), b);
                return Ok(());
            }
        };
        let in_range = |k: &[u8]| lo.is_none_or(|l| k >= l) && hi.is_none_or(|h| k < h);
        if v.is_leaf() {
            let mut prev: Option<Vec<u8>> = None;
            for i in 0..v.hdr.count {
                let e = match v.leaf_entry(i) {
                    Ok(e) => e,
                    Err(b) => {
                        self.problem(Some(page), b);
                        continue;
                    }
                };
                let Some(key) = self.key(e.key)? else { continue };
                if prev.as_ref().is_some_and(|p| p.as_slice() >= key.as_slice()) {
                    self.problem(Some(page), format!("leaf keys out of order at entry {i}"));
                }
                if !in_range(&key) {
                    self.problem(
                        Some(page),
                        format!("leaf key at entry {i} lies outside its parent's separator range"),
                    );
                }
                if e.version > self.seq {
                    self.problem(
                        Some(page),
                        format!("entry {i} has version {} newer than the checkpoint", e.version),
                    );
                }
                if tree == TREE_FREE {
                    let val = match e.val {
                        ValRef::Inline(b) => Some(crate::tree::StoredValue::Inline(b.to_vec())),
                        ValRef::Outline(..) => None,
                    };
                    match decode_free(&key, val.as_ref(), &self.bounds) {
                        Ok((s, n)) => {
                            self.mark(s, n, FREE, "free run");
                            self.bytes += u64::from(n);
                        }
                        Err(e) => self.handle(e)?,
                    }
                } else {
                    self.keys += 1;
                    let vlen = match e.val {
                        ValRef::Inline(b) => b.len() as u64,
                        ValRef::Outline(len, ext) => {
                            self.ext(ext, len, KIND_VALUE, "value extent")?;
                            u64::from(len)
                        }
                    };
                    self.bytes += key.len() as u64 + vlen;
                }
                prev = Some(key);
            }
            return Ok(());
        }
        let mut seps: Vec<Vec<u8>> = Vec::with_capacity(v.hdr.count);
        for i in 0..v.hdr.count {
            let kr = match v.branch_key(i) {
                Ok(k) => k,
                Err(b) => {
                    self.problem(Some(page), b);
                    return Ok(());
                }
            };
            let Some(k) = self.key(kr)? else { return Ok(()) };
            if seps.last().is_some_and(|p| p.as_slice() >= k.as_slice()) {
                self.problem(Some(page), format!("separators out of order at {i}"));
            }
            if !in_range(&k) {
                self.problem(
                    Some(page),
                    format!("separator {i} lies outside its parent's range"),
                );
            }
            seps.push(k);
        }
        for i in 0..=v.hdr.count {
            let c = match v.child(i) {
                Ok(c) => c,
                Err(b) => {
                    self.problem(Some(page), b);
                    continue;
                }
            };
            let clo = if i == 0 {
                lo
            } else {
                seps.get(i - 1).map(|s| s.as_slice())
            };
            let chi = if i == v.hdr.count {
                hi
            } else {
                seps.get(i).map(|s| s.as_slice())
            };
            self.walk(tree, c, level - 1, clo, chi)?;
        }
        Ok(())
    }
}

/// Checks checkpoint `meta`: its trees, lists and the accounting of every page.
pub(crate) fn run<F: File>(pager: &mut Pager<F>, meta: &Checkpoint) -> Result<Vec<Problem>, Error> {
    let len = pager.file.len().map_err(|e| pager.io("stat", e))?;
    let need = u64::from(meta.file_pages) * u64::from(pager.page_size);
    if len < need {
        return Ok(vec![Problem {
            page: None,
            message: format!(
                "file is truncated: {len} bytes, but checkpoint {} covers {} pages ({need} bytes)",
                meta.number, meta.file_pages
            ),
        }]);
    }
    let ring = Ring::new(meta.ring, meta.page_size);
    let mut c = Checker {
        bounds: Bounds {
            data_start: FIRST_RING_PAGE,
            file_pages: meta.file_pages,
            max_seq: meta.seq,
        },
        seq: meta.seq,
        owners: vec![UNSEEN; meta.file_pages as usize],
        problems: Vec::new(),
        keys: 0,
        bytes: 0,
        pager,
    };
    c.mark(0, FIRST_RING_PAGE, USED, "header and checkpoint records");
    c.mark(ring.first_page, ring.pages, USED, "log ring");
    if meta.main_depth > 0 {
        c.walk(TREE_KEYS, meta.main_root, meta.main_depth - 1, None, None)?;
    }
    if c.keys != meta.key_count {
        let m = format!(
            "key tree holds {} keys, the commit record says {}",
            c.keys, meta.key_count
        );
        c.problem(None, m);
    }
    if c.bytes != meta.logical_bytes {
        let m = format!(
            "key tree holds {} bytes, the commit record says {}",
            c.bytes, meta.logical_bytes
        );
        c.problem(None, m);
    }
    c.bytes = 0;
    if meta.free_depth > 0 {
        c.walk(TREE_FREE, meta.free_root, meta.free_depth - 1, None, None)?;
    }
    if c.bytes != meta.free_pages {
        let m = format!(
            "free tree holds {} pages, the commit record says {}",
            c.bytes, meta.free_pages
        );
        c.problem(None, m);
    }
    for l in [&meta.freed] {
        let bounds = c.bounds;
        match read_list(c.pager, &bounds, l) {
            Ok((ext, own)) => {
                for p in own {
                    c.mark(p, 1, USED, "freed-list page");
                }
                for (s, n) in ext {
                    c.mark(s, n, PENDING, "recently freed run");
                }
            }
            Err(e) => c.handle(e)?,
        }
    }
    let leaked: Vec<usize> = c
        .owners
        .iter()
        .enumerate()
        .filter(|(_, o)| **o == UNSEEN)
        .map(|(i, _)| i)
        .collect();
    if let Some(&first) = leaked.first() {
        let m = format!("{} pages are neither reachable nor free (leaked)", leaked.len());
        c.problem(Some(first as u64), m);
    }
    Ok(c.problems)
}
