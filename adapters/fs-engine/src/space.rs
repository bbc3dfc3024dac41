//! Free-space management (FORMAT.md §7).
//!
//! * The **free tree** (a B+tree of `start page (u32 BE) -> run length
//!   (u32 LE)`, coalesced) holds the pages a checkpoint may allocate.
//! * Pages a checkpoint stops using are *not* free yet: they go to its
//!   **freed list**, a chain of list pages, which the next checkpoint merges
//!   into the free tree. So a page freed by checkpoint N is first
//!   overwritten by checkpoint N+1, once N is durable: the checkpoint a
//!   crash falls back to always describes an intact tree, and a reader's
//!   snapshot is only disturbed by the checkpoint after the next.

use crate::error::{Error, PageError, mismatch};
use crate::format::*;
use crate::io::File;
use crate::pager::{Bounds, Pager};
use crate::prelude::*;
use crate::tree::{Bound, StoredEntry, StoredKey, StoredValue, Tree, Walk};

/// Set of page runs `(start, pages)`, sorted by start and coalesced;
/// overlapping inserts are rejected. A sorted `Vec`: it holds one
/// checkpoint's frees, and a `BTreeMap<u32, u32>` would be a second copy of
/// `BTreeMap`'s code in kv-fs (about 5 KB of its `.wasm`).
#[derive(Default, Debug, Clone)]
pub(crate) struct RangeSet {
    runs: Vec<(u32, u32)>,
}

impl RangeSet {
    /// Adds `[s, s+n)`; `Err` if it overlaps what is already there.
    pub fn insert(&mut self, s: u32, n: u32) -> Result<(), ()> {
        let end = s.checked_add(n).ok_or(())?;
        // `runs[..at]` start at or before `s`, `runs[at..]` after it.
        let at = self.runs.partition_point(|&(start, _)| start <= s);
        let before = at.checked_sub(1).map(|i| self.runs[i]);
        let after = self.runs.get(at).copied();
        if before.is_some_and(|(ps, pl)| ps + pl > s) || after.is_some_and(|(ns, _)| ns < end) {
            return Err(());
        }
        let joins_before = before.is_some_and(|(ps, pl)| ps + pl == s);
        let joins_after = after.is_some_and(|(ns, _)| ns == end);
        match (joins_before, joins_after) {
            (true, true) => {
                self.runs[at - 1].1 += n + self.runs[at].1;
                self.runs.remove(at);
            }
            (true, false) => self.runs[at - 1].1 += n,
            (false, true) => self.runs[at] = (s, n + self.runs[at].1),
            (false, false) => self.runs.insert(at, (s, n)),
        }
        Ok(())
    }
    /// The runs, by start page.
    pub fn runs(&self) -> &[(u32, u32)] {
        &self.runs
    }
    pub fn extents(&self) -> usize {
        self.runs.len()
    }
    pub fn pages(&self) -> u64 {
        self.runs.iter().map(|&(_, n)| u64::from(n)).sum()
    }
}

/// Pages released by the running transaction.
#[derive(Default)]
pub(crate) struct Freed {
    /// Reachable from the base checkpoint: reusable from the next one on.
    pub pending: RangeSet,
    /// Extents allocated by this transaction (start page), sorted.
    txn_allocs: Vec<u32>,
    /// Allocated and released again by this transaction: reusable now.
    pub local: Vec<(u32, u32)>,
}

impl Freed {
    /// Notes an extent this transaction allocated, which it may free again.
    pub fn allocated_extent(&mut self, start: u32) {
        if let Err(at) = self.txn_allocs.binary_search(&start) {
            self.txn_allocs.insert(at, start);
        }
    }
    pub fn free_page(&mut self, p: u32) -> Result<(), PageError> {
        self.pending
            .insert(p, 1)
            .map_err(|_| mismatch(u64::from(p), "page is referenced twice (freed twice)"))
    }
    /// Frees a run the base checkpoint used (the log ring it leaves).
    pub fn free_run(&mut self, s: u32, n: u32) -> Result<(), PageError> {
        self.pending
            .insert(s, n)
            .map_err(|_| mismatch(u64::from(s), "run is referenced twice (freed twice)"))
    }

    pub fn free_extent(&mut self, ext: ExtPtr) -> Result<(), PageError> {
        if let Ok(at) = self.txn_allocs.binary_search(&ext.page) {
            self.txn_allocs.remove(at);
            self.local.push((ext.page, ext.pages));
            return Ok(());
        }
        self.pending
            .insert(ext.page, ext.pages)
            .map_err(|_| mismatch(u64::from(ext.page), "extent is referenced twice (freed twice)"))
    }
}

pub(crate) fn free_key(s: u32) -> [u8; 4] {
    s.to_be_bytes()
}

fn free_entry(s: u32, n: u32) -> StoredEntry {
    StoredEntry {
        key: StoredKey::new(free_key(s).to_vec()),
        val: StoredValue::Inline(n.to_le_bytes().to_vec()),
        version: 0,
        expires: None,
    }
}

/// Decodes a free-tree item into `(start, len)`, validating it.
pub(crate) fn decode_free(
    key: &[u8],
    val: Option<&StoredValue>,
    bounds: &Bounds,
) -> Result<(u32, u32), PageError> {
    let s = <[u8; 4]>::try_from(key).map(u32::from_be_bytes);
    let n = match val {
        Some(StoredValue::Inline(v)) => <[u8; 4]>::try_from(v.as_slice()).map(u32::from_le_bytes).ok(),
        _ => None,
    };
    match (s, n) {
        (Ok(s), Some(n))
            if s >= bounds.data_start
                && n > 0
                && s.checked_add(n).is_some_and(|e| e <= bounds.file_pages) =>
        {
            Ok((s, n))
        }
        _ => Err(mismatch(
            0,
            format!("malformed free-space entry (a {}-byte key)", key.len()),
        )),
    }
}

pub(crate) struct Alloc {
    pub free: Tree,
    /// The first page past the log ring: free runs never start before it.
    pub data_start: u32,
    pub file_pages: u32,
    pub free_pages: u64,
}

impl Alloc {
    /// The bounds free runs are checked against.
    fn run_bounds(&self) -> Bounds {
        Bounds {
            data_start: self.data_start,
            file_pages: self.file_pages,
            max_seq: u64::MAX,
        }
    }

    /// Allocates `n` contiguous pages: the first free run that is long
    /// enough (lowest address first), else the end of the file.
    pub fn alloc<F: File>(
        &mut self,
        walk: &mut Walk<F>,
        freed: &mut Freed,
        n: u32,
        file: &str,
    ) -> Result<u32, PageError> {
        let rb = self.run_bounds();
        let mut found = None;
        let mut scanned = 0u32;
        self.free.scan(walk, Bound::Start, true, &mut |_, it| {
            let (s, l) = decode_free(&it.key, it.val.as_ref(), &rb)?;
            scanned += 1;
            if l >= n {
                found = Some((s, l));
                return Ok(false);
            }
            Ok(scanned < 4096)
        })?;
        if let Some((s, l)) = found {
            self.free.delete(walk, freed, &free_key(s))?;
            if l > n {
                self.free.insert(walk, freed, free_entry(s + n, l - n))?;
            }
            self.free_pages = self.free_pages.saturating_sub(u64::from(n));
            return Ok(s);
        }
        let s = self.file_pages;
        self.file_pages = s.checked_add(n).ok_or_else(|| {
            PageError::Fatal(Error::Full {
                file: file.to_string(),
            })
        })?;
        Ok(s)
    }

    /// Returns `[s, s+n)` to the free tree, coalescing with neighbours.
    pub fn release<F: File>(
        &mut self,
        walk: &mut Walk<F>,
        freed: &mut Freed,
        s: u32,
        n: u32,
    ) -> Result<(), PageError> {
        let rb = self.run_bounds();
        let end = s
            .checked_add(n)
            .filter(|&e| e <= rb.file_pages && s >= rb.data_start && n > 0);
        let Some(end) = end else {
            return Err(mismatch(
                u64::from(s),
                format!("freed run of {n} pages is out of range"),
            ));
        };
        let mut start = s;
        let mut len = n;
        if let Some(it) = self.free.last_lt(walk, &free_key(s))? {
            let (ps, pl) = decode_free(&it.key, it.val.as_ref(), &rb)?;
            if ps + pl > s {
                return Err(mismatch(u64::from(s), "page freed while already free"));
            }
            if ps + pl == s {
                self.free.delete(walk, freed, &free_key(ps))?;
                start = ps;
                len += pl;
            }
        }
        let mut next = None;
        self.free
            .scan(walk, Bound::Incl(&free_key(s)), true, &mut |_, it| {
                next = Some(decode_free(&it.key, it.val.as_ref(), &rb)?);
                Ok(false)
            })?;
        if let Some((ns, nl)) = next {
            if ns < end {
                return Err(mismatch(u64::from(s), "page freed while already free"));
            }
            if ns == end {
                self.free.delete(walk, freed, &free_key(ns))?;
                len += nl;
            }
        }
        self.free.insert(walk, freed, free_entry(start, len))?;
        self.free_pages += u64::from(n);
        Ok(())
    }

    /// If the last free run ends at the end of the file and is large,
    /// removes it so the file can be truncated. Returns true if it did.
    pub fn shrink<F: File>(&mut self, walk: &mut Walk<F>, freed: &mut Freed) -> Result<bool, PageError> {
        let rb = self.run_bounds();
        let fp = rb.file_pages;
        let Some(it) = self.free.last_lt(walk, &[0xff; 5])? else {
            return Ok(false);
        };
        let (s, l) = decode_free(&it.key, it.val.as_ref(), &rb)?;
        if s + l != fp || l < 16 || u64::from(l) * 8 < u64::from(fp) {
            return Ok(false);
        }
        self.free.delete(walk, freed, &free_key(s))?;
        self.file_pages = s;
        self.free_pages = self.free_pages.saturating_sub(u64::from(l));
        Ok(true)
    }
}

/// Number of list pages needed for `extents` extents.
pub(crate) fn list_pages_for(extents: usize, cap: usize) -> usize {
    extents.div_ceil(cap)
}

/// Encodes `set` into the list pages `pages` (chained in order).
pub(crate) fn write_list(
    geo: Geo,
    set: &RangeSet,
    pages: &[u32],
    seq: u64,
    out: &mut Vec<(u32, Vec<u8>, u32)>,
) -> ListRef {
    let cap = geo.list_cap();
    let ext = set.runs();
    let mut next = PagePtr::default();
    for (j, &p) in pages.iter().enumerate().rev() {
        let lo = (j * cap).min(ext.len());
        let hi = ((j + 1) * cap).min(ext.len());
        let chunk = &ext[lo..hi];
        let mut b = vec![0u8; geo.page];
        write_page_hdr(
            &mut b,
            &PageHdr {
                ptype: T_LIST,
                tree: 0,
                level: 0,
                seq,
                count: chunk.len(),
            },
        );
        next.write(&mut b, PAGE_HDR);
        for (i, &(s, n)) in chunk.iter().enumerate() {
            wr_u32(&mut b, LIST_HDR + 8 * i, s);
            wr_u32(&mut b, LIST_HDR + 8 * i + 4, n);
        }
        let crc = seal_page(p, &mut b);
        next = PagePtr { page: p, seq, crc };
        out.push((p, b, crc));
    }
    ListRef {
        head: if pages.is_empty() {
            PagePtr::default()
        } else {
            next
        },
        list_pages: pages.len() as u32,
        pages: set.pages().min(u64::from(u32::MAX)) as u32,
    }
}

/// Reads a freed list: its extents and the pages of the list itself.
#[allow(clippy::type_complexity)]
pub(crate) fn read_list<F: File>(
    pager: &mut Pager<F>,
    bounds: &Bounds,
    l: &ListRef,
) -> Result<(Vec<(u32, u32)>, Vec<u32>), PageError> {
    let mut ext = Vec::new();
    let mut own = Vec::new();
    let mut ptr = l.head;
    let mut total: u64 = 0;
    for _ in 0..l.list_pages {
        if ptr.page == 0 {
            return Err(mismatch(
                0,
                "freed-page list is shorter than its checkpoint record says",
            ));
        }
        let b = pager.list_page(ptr, bounds)?;
        let p = u64::from(ptr.page);
        own.push(ptr.page);
        let count = rd_u16(&b, 16).unwrap_or(0) as usize;
        for i in 0..count {
            let (Some(s), Some(n)) = (rd_u32(&b, LIST_HDR + 8 * i), rd_u32(&b, LIST_HDR + 8 * i + 4)) else {
                return Err(mismatch(p, "freed-page list entry truncated"));
            };
            if s < bounds.data_start || n == 0 || s.checked_add(n).is_none_or(|e| e > bounds.file_pages) {
                return Err(mismatch(p, format!("freed-page list entry {s}+{n} out of range")));
            }
            total += u64::from(n);
            ext.push((s, n));
        }
        ptr = PagePtr::read(&b, PAGE_HDR).ok_or_else(|| mismatch(p, "freed-page list link truncated"))?;
    }
    if ptr.page != 0 {
        return Err(mismatch(
            u64::from(ptr.page),
            "freed-page list is longer than its checkpoint record says",
        ));
    }
    if total != u64::from(l.pages) {
        return Err(mismatch(
            0,
            format!(
                "freed-page list holds {total} pages, its checkpoint record says {}",
                l.pages
            ),
        ));
    }
    Ok((ext, own))
}

#[cfg(test)]
mod tests {
    use super::RangeSet;

    #[test]
    fn a_range_set_coalesces_neighbours_and_refuses_overlaps() {
        let mut set = RangeSet::default();
        for (s, n) in [(10, 2), (20, 5), (14, 2)] {
            set.insert(s, n).unwrap();
        }
        assert_eq!(set.runs(), [(10, 2), (14, 2), (20, 5)]);
        // Joins the run before, the run after, and both.
        set.insert(12, 1).unwrap();
        assert_eq!(set.runs(), [(10, 3), (14, 2), (20, 5)]);
        set.insert(18, 2).unwrap();
        assert_eq!(set.runs(), [(10, 3), (14, 2), (18, 7)]);
        set.insert(13, 1).unwrap();
        assert_eq!(set.runs(), [(10, 6), (18, 7)]);
        assert_eq!((set.extents(), set.pages()), (2, 13));
        // Overlaps: inside a run, across its start or its end, the same start.
        for (s, n) in [(11, 1), (9, 2), (15, 2), (18, 1), (16, 3), (0, 100)] {
            assert_eq!(set.insert(s, n), Err(()), "[{s}, {})", s + n);
        }
        assert_eq!(set.insert(u32::MAX, 2), Err(()));
        assert_eq!(set.runs(), [(10, 6), (18, 7)]);
        set.insert(0, 10).unwrap();
        set.insert(16, 2).unwrap();
        assert_eq!(set.runs(), [(0, 25)]);
    }
}
