//! Validated page and extent reads: every page is checked against the
//! pointer that led to it (FORMAT.md §1) before anything in it is used.

use alloc::sync::Arc;

use crate::cache::PageCache;
use crate::error::{Error, PageError, mismatch};
use crate::format::*;
use crate::io::{File, IoError, IoErrorKind};
use crate::prelude::*;
use crate::{MAX_KEY_LEN, MAX_VALUE_LEN};

/// What the snapshot being read allows: pages must lie in
/// `data_start..file_pages` (past the header, the checkpoint slots and the
/// log ring) and must not be newer than `max_seq`.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Bounds {
    pub data_start: u32,
    pub file_pages: u32,
    pub max_seq: u64,
}

/// The bucket file, its page geometry and the instance's page cache.
pub(crate) struct Pager<F> {
    pub file: F,
    pub name: String,
    pub geo: Geo,
    pub page_size: u32,
    pub cache: PageCache,
}

impl<F: File> Pager<F> {
    pub fn io(&self, op: &'static str, e: IoError) -> Error {
        Error::io(&self.name, op, e)
    }

    /// Reads exactly `buf.len()` bytes; `Ok(false)` if end of file came first.
    pub fn read_full(&self, buf: &mut [u8], off: u64) -> Result<bool, Error> {
        let mut done = 0usize;
        while done < buf.len() {
            match self.file.read_at(&mut buf[done..], off + done as u64) {
                Ok(0) => return Ok(false),
                Ok(n) => done += n.min(buf.len() - done),
                Err(e) if e.kind() == IoErrorKind::Interrupted => {}
                Err(e) => return Err(self.io("read", e)),
            }
        }
        Ok(true)
    }

    pub fn page_off(&self, page: u32) -> u64 {
        u64::from(page) * u64::from(self.page_size)
    }

    fn check_ptr(&self, page: u32, seq: u64, bounds: &Bounds) -> Result<(), PageError> {
        if page < bounds.data_start || page >= bounds.file_pages {
            return Err(mismatch(
                u64::from(page),
                format!("page pointer out of range (file has {} pages)", bounds.file_pages),
            ));
        }
        if seq > bounds.max_seq {
            return Err(mismatch(
                u64::from(page),
                format!(
                    "pointer names commit {seq}, newer than the snapshot {}",
                    bounds.max_seq
                ),
            ));
        }
        Ok(())
    }

    /// Reads a raw page and checks checksum, sequence and parent checksum.
    fn read_checked(&mut self, ptr: PagePtr, what: &str) -> Result<Vec<u8>, PageError> {
        let p = u64::from(ptr.page);
        let mut buf = vec![0u8; self.geo.page];
        if !self.read_full(&mut buf, self.page_off(ptr.page))? {
            return Err(mismatch(
                p,
                format!("{what} lies beyond the end of the file (truncated?)"),
            ));
        }
        let hdr = read_page_hdr(&buf).map_err(|b| mismatch(p, b))?;
        if checksums_enabled() {
            let crc = crc_with_page(ptr.page, &buf[4..]);
            if rd_u32(&buf, 0) != Some(crc) {
                return Err(mismatch(
                    p,
                    format!("{what} checksum mismatch (torn or overwritten page)"),
                ));
            }
            if crc != ptr.crc {
                return Err(mismatch(
                    p,
                    format!("{what} does not match the checksum recorded in its parent (page was rewritten)"),
                ));
            }
        }
        if hdr.seq != ptr.seq {
            return Err(mismatch(
                p,
                format!(
                    "{what} carries commit {} but its parent expects {}",
                    hdr.seq, ptr.seq
                ),
            ));
        }
        Ok(buf)
    }

    /// A B+tree node of `tree` at `level`, validated and cached.
    pub fn node(
        &mut self,
        ptr: PagePtr,
        tree: u8,
        level: u16,
        bounds: &Bounds,
    ) -> Result<Arc<[u8]>, PageError> {
        self.check_ptr(ptr.page, ptr.seq, bounds)?;
        let data = match self.cache.get(ptr.page, ptr.seq, ptr.crc) {
            Some(d) => d,
            None => {
                let buf = self.read_checked(ptr, "tree page")?;
                let v = NodeView::new(&buf, self.geo).map_err(|b| mismatch(u64::from(ptr.page), b))?;
                v.validate()
                    .map_err(|b| mismatch(u64::from(ptr.page), format!("malformed node: {b}")))?;
                let d: Arc<[u8]> = buf.into();
                self.cache.insert(ptr.page, ptr.seq, ptr.crc, d.clone());
                d
            }
        };
        let hdr = read_page_hdr(&data).map_err(|b| mismatch(u64::from(ptr.page), b))?;
        if hdr.tree != tree || hdr.level != level {
            return Err(mismatch(
                u64::from(ptr.page),
                format!(
                    "expected a node of tree {tree} at level {level}, found tree {} level {}",
                    hdr.tree, hdr.level
                ),
            ));
        }
        Ok(data)
    }

    /// A freed-page list page.
    pub fn list_page(&mut self, ptr: PagePtr, bounds: &Bounds) -> Result<Vec<u8>, PageError> {
        self.check_ptr(ptr.page, ptr.seq, bounds)?;
        let buf = self.read_checked(ptr, "free-list page")?;
        let hdr = read_page_hdr(&buf).map_err(|b| mismatch(u64::from(ptr.page), b))?;
        if hdr.ptype != T_LIST {
            return Err(mismatch(
                u64::from(ptr.page),
                format!("expected a free-list page, found type {}", hdr.ptype),
            ));
        }
        if hdr.count > self.geo.list_cap() {
            return Err(mismatch(
                u64::from(ptr.page),
                "free-list page count exceeds capacity",
            ));
        }
        Ok(buf)
    }

    /// Reads and validates an extent holding `len` bytes of `kind`.
    pub fn extent(&mut self, ptr: ExtPtr, len: u32, kind: u8, bounds: &Bounds) -> Result<Vec<u8>, PageError> {
        let p = u64::from(ptr.page);
        let max = if kind == KIND_KEY {
            MAX_KEY_LEN
        } else {
            MAX_VALUE_LEN
        };
        if len as usize > max {
            return Err(mismatch(p, format!("extent length {len} exceeds the limit")));
        }
        if u64::from(ptr.pages) != self.geo.extent_pages(u64::from(len)) {
            return Err(mismatch(
                p,
                format!("extent of {len} bytes cannot span {} pages", ptr.pages),
            ));
        }
        self.check_ptr(ptr.page, ptr.seq, bounds)?;
        match ptr.page.checked_add(ptr.pages) {
            Some(end) if end <= bounds.file_pages => {}
            _ => return Err(mismatch(p, "extent runs past the end of the file")),
        }
        if len > 1 << 20 {
            // Never allocate a large buffer on the word of a pointer alone.
            let flen = self.file.len().map_err(|e| self.io("stat", e))?;
            if self.page_off(ptr.page) + EXT_HDR as u64 + u64::from(len) > flen {
                return Err(mismatch(p, "extent runs past the end of the file (truncated?)"));
            }
        }
        let mut buf = vec![0u8; EXT_HDR + len as usize];
        if !self.read_full(&mut buf, self.page_off(ptr.page))? {
            return Err(mismatch(p, "extent lies beyond the end of the file (truncated?)"));
        }
        let hdr_ok = buf[4] == T_EXTENT
            && buf[5] == kind
            && rd_u64(&buf, 8) == Some(ptr.seq)
            && rd_u32(&buf, 16) == Some(len)
            && rd_u32(&buf, 20) == Some(ptr.pages);
        if !hdr_ok {
            return Err(mismatch(
                p,
                "extent header does not match its pointer (page was rewritten)",
            ));
        }
        if checksums_enabled() {
            let crc = crc_with_page(ptr.page, &buf[4..]);
            if rd_u32(&buf, 0) != Some(crc) || crc != ptr.crc {
                return Err(mismatch(p, "extent checksum mismatch (torn or overwritten)"));
            }
        }
        buf.drain(..EXT_HDR);
        Ok(buf)
    }
}
