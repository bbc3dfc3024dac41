//! The commit protocol (FORMAT.md §7, §9): appending a transaction's record
//! to the log, and checkpoints, which fold the log into a new copy-on-write
//! version of the tree.
//!
//! A commit is one record appended at the log's tail and one sync: its cost
//! does not depend on the tree. Once half the ring holds commits since the
//! last checkpoint, the next commit first checkpoints: the overlay (the
//! newest value of every key the log changed) is written into the tree,
//! the new pages are synced, the checkpoint record goes into the slot of
//! the older checkpoint and is synced, and a one-cell record announces it
//! in the log. A transaction too large for the log is committed the same
//! way, its changes folded with the log's.

use crate::bucket::{BucketFile, SyncPolicy};
use crate::error::{Error, PageError, mismatch};
use crate::format::*;
use crate::io::{Dir, File};
use crate::lock::LockGuard;
use crate::overlay::{Overlay, merged};
use crate::pager::Bounds;
use crate::prelude::*;
use crate::read::{View, newest_checkpoint};
use crate::space::{Alloc, Freed, list_pages_for, read_list, write_list};
use crate::tree::{Bound, StoredEntry, StoredKey, StoredValue, Tree, Walk};
use crate::txn::WriteTxn;
use crate::wal::{self, Op, Ring};

impl<D: Dir> WriteTxn<'_, D> {
    /// Commits the transaction's changes (FORMAT.md §9).
    pub(crate) fn commit(&mut self) -> Result<(), Error> {
        if self.changes.is_empty() {
            if self.force_checkpoint {
                self.checkpoint(None)?;
            }
            return Ok(());
        }
        let seq = self.commit_seq();
        let ops = self.changes.iter().map(|(k, l)| match &l.value {
            Some(v) => Op::Put(k, v, l.expires),
            None => Op::Delete(k),
        });
        let payload = wal::commit_payload(seq, ops, self.changes.bytes + 9 * self.changes.len());
        let cells = wal::cells_for(payload.len());
        // Keep the log under half the ring: fold it first if this record
        // (and the stamp after it) would take it past that. (The fold may
        // move the log to a ring of another size.)
        let v = &self.bucket.view;
        if cells <= v.ring.max_record_cells()
            && !self.force_checkpoint
            && v.tail + cells + 1 - v.ckpt.log_start > v.ring.checkpoint_after_cells()
        {
            self.checkpoint(None)?;
        }
        if cells > self.bucket.view.ring.max_record_cells() || self.force_checkpoint {
            // Too large for the log: straight into the tree.
            let changes = core::mem::take(&mut self.changes);
            return self.checkpoint(Some((&changes, seq)));
        }
        self.append(&payload, cells, seq)?;
        let changes = core::mem::take(&mut self.changes);
        let view = &mut self.bucket.view;
        for (k, l) in changes.iter() {
            view.overlay.set(k, l.value.as_deref(), seq, l.expires);
        }
        view.seq = seq;
        view.commits += 1;
        view.last_record = Some(view.tail);
        view.tail += cells;
        Ok(())
    }

    /// Appends the record of commit `seq` at the tail, syncs, and stamps it
    /// (FORMAT.md §9).
    fn append(&mut self, payload: &[u8], cells: u64, seq: u64) -> Result<(), Error> {
        let b = &mut *self.bucket;
        let (tail, ring) = (b.view.tail, b.view.ring);
        // Everything before the tail must be durable before anything is
        // written after it (else a power cut could keep this record and
        // lose an earlier one: a hole no reader could tell from damage);
        // and the cells this record and its stamp overwrite must not be
        // needed by the checkpoint a power cut would fall back to.
        if !b.view.durable || tail + cells + 1 > b.durable_log_start + ring.cells() {
            sync(b)?;
            b.durable_checkpoint = b.view.ckpt.number;
            b.durable_log_start = b.view.ckpt.log_start;
            b.view.durable = true;
        }
        let bytes = wal::frame(payload, tail, &ring);
        self.fence()?;
        let b = &mut *self.bucket;
        write_cells(b, &bytes, tail)?;
        sync(b)?;
        stamp(b, tail, cells, seq);
        Ok(())
    }

    /// Before writing: we must still hold the lock (verified if a quarter
    /// lease has passed since it was), and nobody may have committed since
    /// our view was taken: following the log must find nothing new.
    fn fence(&mut self) -> Result<(), Error> {
        self.keep_alive()?;
        let b = &mut *self.bucket;
        let (tail, number, durable) = (b.view.tail, b.view.ckpt.number, b.view.durable);
        b.refresh()?;
        b.view.durable |= durable;
        if b.view.tail != tail || b.view.ckpt.number != number {
            return Err(Error::LockLost {
                file: b.name.clone(),
                detail: format!(
                    "commit {} appeared in the log while this transaction held the lock",
                    b.view.seq
                ),
            });
        }
        Ok(())
    }

    /// Folds the log (and `extra`, a transaction's changes committed as
    /// commit `seq`) into a new checkpoint (FORMAT.md §7).
    pub(crate) fn checkpoint(&mut self, extra: Option<(&Overlay, u64)>) -> Result<(), Error> {
        // Start from the newest checkpoint record: an earlier attempt of
        // ours may have written one and then failed.
        let b = &mut *self.bucket;
        let slots = newest_checkpoint(&b.pager, &b.header)?;
        if slots.newest.number > b.view.ckpt.number {
            let start = slots.newest.log_start;
            b.view.adopt(slots.newest, slots.newest_crc);
            if start > b.view.tail {
                b.refresh()?;
            }
        }
        let base = b.view.ckpt.clone();
        let seq = extra.map_or(b.view.seq, |(_, s)| s);
        if seq == base.seq && extra.is_none() {
            return Ok(()); // nothing logged since it
        }
        // This checkpoint reuses the pages its base freed: the base must be
        // durable first (its writer may have died before its last sync).
        if base.number > b.durable_checkpoint {
            sync(b)?;
            b.durable_checkpoint = base.number;
            b.durable_log_start = base.log_start;
        }
        let empty = Overlay::default();
        let (top, _) = extra.unwrap_or((&empty, 0));
        let now = b.dir.now_millis();
        let mut update = TreeUpdate::new(self, &base, seq);
        let logged = core::mem::take(&mut update.txn.bucket.view.overlay);
        let r = (|| {
            // Expired entries are dropped here (FORMAT.md §7): the logged
            // ones as they are folded, the tree's by a sweep.
            let swept = update.sweep_expired(now)?;
            for (k, l) in merged(top, &logged, Bound::Start) {
                match &l.value {
                    Some(v) if !crate::is_expired(l.expires, now) => {
                        update.put(k, v, l.version, l.expires)?
                    }
                    _ => update.delete(k)?,
                }
            }
            for k in swept {
                if top.get(&k).is_none() && logged.get(&k).is_none() {
                    update.delete(&k)?;
                }
            }
            update.finish()
        })();
        let ckpt = match r {
            Ok(c) => c,
            Err(e) => {
                self.bucket.view.overlay = logged;
                return Err(self.fail(e));
            }
        };
        let (ckpt, crc, announced) = ckpt;
        let b = &mut *self.bucket;
        let start = ckpt.log_start;
        b.durable_checkpoint = ckpt.number;
        b.durable_log_start = start;
        b.view = View::at(ckpt, crc);
        // The record announcing it was written and synced with it; its stamp
        // follows. Had the announcement failed, the next record goes in its
        // place: the log after a checkpoint starts at its `log_start`.
        if announced {
            b.view.tail += 1;
            b.view.last_record = Some(start);
            b.view.durable = true;
            stamp(b, start, 1, b.view.seq);
        }
        Ok(())
    }
}

/// Writes the stamp of the record of `cells` cells at `lsn` after it (the
/// sync that made the record durable has returned). The stamp only tells a
/// later reader that the record was complete: losing it, or failing to
/// write it, loses nothing.
fn stamp<D: Dir>(b: &mut BucketFile<D>, lsn: u64, cells: u64, seq: u64) {
    let cell = wal::frame(&wal::stamp_payload(seq, lsn), lsn + cells, &b.view.ring);
    let _ = write_cells(b, &cell, lsn + cells);
    b.view.durable = true;
}

/// Writes framed cells at `lsn`, wrapping around the ring's end.
fn write_cells<D: Dir>(b: &BucketFile<D>, bytes: &[u8], lsn: u64) -> Result<(), Error> {
    let ring = b.view.ring;
    let cells = (bytes.len() / CELL) as u64;
    let first = (cells.min(ring.cells_to_end(lsn)) as usize) * CELL;
    let (a, rest) = bytes.split_at(first);
    let write = |buf: &[u8], lsn: u64| {
        b.pager
            .file
            .write_at(buf, ring.offset(lsn))
            .map_err(|e| Error::io(&b.name, "append to the log", e))
    };
    write(a, lsn)?;
    if !rest.is_empty() {
        write(rest, lsn + (first / CELL) as u64)?;
    }
    Ok(())
}

fn sync<D: Dir>(b: &BucketFile<D>) -> Result<(), Error> {
    if b.opts.sync == SyncPolicy::EveryCommit {
        b.pager.file.sync().map_err(|e| Error::io(&b.name, "sync", e))?;
    }
    Ok(())
}

/// The earlier of two expiries, 0 meaning none.
fn earliest(a: u64, b: u64) -> u64 {
    match (a, b) {
        (0, x) | (x, 0) => x,
        (a, b) => a.min(b),
    }
}

/// The largest log ring a bucket moves to: the live log is read when an
/// instance opens the file, and held in its memory.
const MAX_RING_BYTES: u64 = 16 << 20;

/// A copy-on-write update of the tree from one checkpoint to the next: the
/// key tree and the free-space tree with their dirty nodes in memory, the
/// pages freed, and the counts.
struct TreeUpdate<'t, 's, D: Dir> {
    txn: &'t mut WriteTxn<'s, D>,
    base: Checkpoint,
    seq: u64,
    main: Tree,
    alloc: Alloc,
    freed: Freed,
    key_count: u64,
    logical_bytes: u64,
    /// No entry of the new tree expires before this (0: none expires).
    next_expiry: u64,
    /// The base's freed list has been merged into the free tree.
    merged: bool,
}

/// A walk over the update's pages: reads also see the extents it wrote
/// itself, which may lie past the base's end of file and carry its seq.
macro_rules! walk {
    ($u:ident) => {
        Walk::new(
            &mut $u.txn.bucket.pager,
            Bounds {
                data_start: $u.alloc.data_start,
                file_pages: $u.base.file_pages.max($u.alloc.file_pages),
                max_seq: $u.seq,
            },
        )
    };
}

impl<'t, 's, D: Dir> TreeUpdate<'t, 's, D> {
    fn new(txn: &'t mut WriteTxn<'s, D>, base: &Checkpoint, seq: u64) -> Self {
        let geo = txn.bucket.pager.geo;
        let data_start = FIRST_RING_PAGE;
        TreeUpdate {
            main: Tree::new(TREE_KEYS, base.main_root, base.main_depth, geo),
            alloc: Alloc {
                free: Tree::new(TREE_FREE, base.free_root, base.free_depth, geo),
                data_start,
                file_pages: base.file_pages,
                free_pages: base.free_pages,
            },
            freed: Freed::default(),
            key_count: base.key_count,
            logical_bytes: base.logical_bytes,
            next_expiry: base.next_expiry,
            merged: false,
            base: base.clone(),
            seq,
            txn,
        }
    }

    /// The keys of the base's tree that expired at `now`, once the
    /// earliest expiry the base recorded has passed (else none): one scan
    /// of its leaves (no values), which also finds the earliest expiry of
    /// the entries that stay. Under a steady churn of expiring keys that
    /// is a scan per checkpoint, i.e. per half ring of commits, and the
    /// ring grows with the data (FORMAT.md §5).
    fn sweep_expired(&mut self, now: u64) -> Result<Vec<Vec<u8>>, PageError> {
        if self.next_expiry == 0 || self.next_expiry > now {
            return Ok(Vec::new());
        }
        let mut expired = Vec::new();
        let mut next = 0;
        let mut walk = walk!(self);
        self.main.scan(&mut walk, Bound::Start, false, &mut |_, item| {
            match item.expires {
                Some(at) if at <= now => expired.push(item.key),
                Some(at) => next = earliest(next, at),
                None => {}
            }
            Ok(true)
        })?;
        self.next_expiry = next;
        Ok(expired)
    }

    fn put(&mut self, key: &[u8], value: &[u8], version: u64, expires: Option<u64>) -> Result<(), PageError> {
        let geo = self.txn.bucket.pager.geo;
        if let Some(at) = expires {
            self.next_expiry = earliest(self.next_expiry, at);
        }
        let val = if geo.value_inline_ok(key.len(), value.len(), expires.is_some()) {
            StoredValue::Inline(value.to_vec())
        } else {
            let ext = self.write_extent(value, KIND_VALUE)?;
            StoredValue::Extent {
                len: value.len() as u32,
                ext,
            }
        };
        let entry = StoredEntry {
            key: StoredKey::new(key.to_vec()),
            val,
            version,
            expires,
        };
        let mut walk = walk!(self);
        let old = self.main.insert(&mut walk, &mut self.freed, entry)?;
        match old {
            Some(o) => {
                self.logical_bytes = self.logical_bytes.saturating_sub(o.val.len()) + value.len() as u64;
                if let StoredValue::Extent { ext, .. } = o.val {
                    self.freed.free_extent(ext)?;
                }
            }
            None => {
                self.key_count += 1;
                self.logical_bytes += (key.len() + value.len()) as u64;
            }
        }
        Ok(())
    }

    fn delete(&mut self, key: &[u8]) -> Result<(), PageError> {
        let mut walk = walk!(self);
        let Some(o) = self.main.delete(&mut walk, &mut self.freed, key)? else {
            return Ok(());
        };
        self.key_count = self.key_count.saturating_sub(1);
        self.logical_bytes = self
            .logical_bytes
            .saturating_sub(o.key.bytes.len() as u64 + o.val.len());
        if let Some(ext) = o.key.ext {
            self.freed.free_extent(ext)?;
        }
        if let StoredValue::Extent { ext, .. } = o.val {
            self.freed.free_extent(ext)?;
        }
        Ok(())
    }

    /// The pages the base checkpoint freed become allocatable now (the
    /// base is durable: no fallback after a crash needs them, FORMAT.md §7).
    fn merge_pending(&mut self) -> Result<(), PageError> {
        if self.merged {
            return Ok(());
        }
        self.merged = true;
        let bounds = self.txn.bucket.view.bounds();
        let (ext, own) = read_list(&mut self.txn.bucket.pager, &bounds, &self.base.freed)?;
        for (s, n) in ext {
            let mut walk = walk!(self);
            self.alloc.release(&mut walk, &mut self.freed, s, n)?;
        }
        for p in own {
            self.freed.free_page(p)?;
        }
        Ok(())
    }

    /// Allocates and writes an extent now (large values are not buffered).
    fn write_extent(&mut self, data: &[u8], kind: u8) -> Result<ExtPtr, PageError> {
        self.merge_pending()?;
        let geo = self.txn.bucket.pager.geo;
        let pages = geo.extent_pages(data.len() as u64) as u32;
        let name = self.txn.bucket.name.clone();
        let mut walk = walk!(self);
        let start = self.alloc.alloc(&mut walk, &mut self.freed, pages, &name)?;
        self.freed.allocated_extent(start);
        let (hdr, crc) = encode_ext_hdr(start, kind, self.seq, data.len() as u32, pages, data);
        self.txn.keep_alive()?;
        let pager = &self.txn.bucket.pager;
        let off = pager.page_off(start);
        let total = pages as usize * geo.page;
        let pad = total - EXT_HDR - data.len();
        let io = |e| PageError::Fatal(Error::io(&name, "write", e));
        if total <= 1 << 20 {
            let mut b = Vec::with_capacity(total);
            b.extend_from_slice(&hdr);
            b.extend_from_slice(data);
            b.resize(total, 0);
            pager.file.write_at(&b, off).map_err(io)?;
        } else {
            pager.file.write_at(&hdr, off).map_err(io)?;
            pager.file.write_at(data, off + EXT_HDR as u64).map_err(io)?;
            pager
                .file
                .write_at(&vec![0u8; pad], off + (EXT_HDR + data.len()) as u64)
                .map_err(io)?;
        }
        Ok(ExtPtr {
            page: start,
            pages,
            seq: self.seq,
            crc,
        })
    }

    /// The size (pages) of the ring to move the log to, if the current one
    /// no longer fits the data: a third of the logical bytes, at least
    /// `Options::log_bytes`, at most [`MAX_RING_BYTES`]; moved only when
    /// that is twice the current size, or a quarter of it.
    fn ring_to_move_to(&self, page_size: u32) -> Option<u32> {
        let min = u64::from(self.txn.bucket.opts.log_bytes);
        let want = (self.logical_bytes / 3).clamp(min, MAX_RING_BYTES);
        let pages = want.div_ceil(u64::from(page_size)) as u32;
        let current = self.base.ring.pages;
        (pages >= current.saturating_mul(2) || pages.saturating_mul(4) <= current).then_some(pages)
    }

    /// Writes the new tree and the checkpoint record (FORMAT.md §7): pages,
    /// sync, fence, record and its announcement in the log, sync. Returns
    /// the record, its checksum, and whether the announcement was written.
    fn finish(mut self) -> Result<(Checkpoint, u32, bool), PageError> {
        let geo = self.txn.bucket.pager.geo;
        let name = self.txn.bucket.name.clone();
        self.merge_pending()?;
        for (s, n) in core::mem::take(&mut self.freed.local) {
            let mut walk = walk!(self);
            self.alloc.release(&mut walk, &mut self.freed, s, n)?;
        }
        // Long keys get their extents now, then the key tree gets its pages.
        let order = self.main.dirty_postorder();
        for (id, i, bytes) in self.main.unwritten_long_keys(&order) {
            let ext = self.write_extent(&bytes, KIND_KEY)?;
            self.main.set_key_ext(id, i, ext);
        }
        // The log ring follows the size of the data (FORMAT.md §5): a new
        // one, filled with fillers, replaces the old, which is freed. It is
        // allocated first, from the lowest run long enough, so that it does
        // not end up at the end of the file where it would stop shrinking.
        let old_ring = self.base.ring;
        let ring = match self.ring_to_move_to(geo.page as u32) {
            Some(pages) => {
                let mut walk = walk!(self);
                let first_page = self.alloc.alloc(&mut walk, &mut self.freed, pages, &name)?;
                self.freed.free_run(old_ring.first_page, old_ring.pages)?;
                RingRef { first_page, pages }
            }
            None => old_ring,
        };
        let mut main_pages = Vec::with_capacity(order.len());
        for _ in 0..order.len() {
            let mut walk = walk!(self);
            main_pages.push(self.alloc.alloc(&mut walk, &mut self.freed, 1, &name)?);
        }
        let shrunk = {
            let mut walk = walk!(self);
            self.alloc.shrink(&mut walk, &mut self.freed)?
        };
        // The free tree and this checkpoint's freed list need pages too,
        // and allocating them changes the free tree: iterate to a fixpoint.
        // Allocation only shrinks runs from the front, so it converges fast.
        let cap = geo.list_cap();
        let mut reserved: Vec<u32> = Vec::new();
        let mut rounds = 0u32;
        let (free_order, list_pages) = loop {
            let free_order = self.alloc.free.dirty_postorder();
            let list_pages = list_pages_for(self.freed.pending.extents() + reserved.len(), cap);
            if reserved.len() >= free_order.len() + list_pages {
                break (free_order, list_pages);
            }
            rounds += 1;
            if rounds > 10_000 {
                return Err(mismatch(0, "free-space allocation did not converge"));
            }
            for _ in reserved.len()..free_order.len() + list_pages {
                let mut walk = walk!(self);
                reserved.push(self.alloc.alloc(&mut walk, &mut self.freed, 1, &name)?);
            }
        };
        let free_nodes = free_order.len();
        for &p in &reserved[free_nodes + list_pages..] {
            self.freed.free_page(p)?;
        }
        let seq = self.seq;
        let mut out: Vec<(u32, Vec<u8>, u32)> = Vec::new();
        let main_root = self.main.serialize(&order, &main_pages, seq, &mut out)?;
        let free_root = self
            .alloc
            .free
            .serialize(&free_order, &reserved[..free_nodes], seq, &mut out)?;
        let freed = write_list(
            geo,
            &self.freed.pending,
            &reserved[free_nodes..free_nodes + list_pages],
            seq,
            &mut out,
        );
        let b = &*self.txn.bucket;
        let ckpt = Checkpoint {
            number: self.base.number + 1,
            seq,
            page_size: b.header.page_size,
            file_pages: self.alloc.file_pages,
            main_root: main_root.unwrap_or_default(),
            main_depth: if main_root.is_some() { self.main.depth } else { 0 },
            free_depth: if free_root.is_some() {
                self.alloc.free.depth
            } else {
                0
            },
            free_root: free_root.unwrap_or_default(),
            freed,
            key_count: self.key_count,
            logical_bytes: self.logical_bytes,
            next_expiry: self.next_expiry,
            free_pages: self.alloc.free_pages,
            writer_token: self.txn.lock.as_ref().map_or(0, |l: &LockGuard| l.token),
            commit_millis: b.dir.now_millis(),
            file_id: b.header.file_id,
            // A new ring starts a lap of LSNs further on: its fillers need
            // the lap before (FORMAT.md §5).
            log_start: if ring == old_ring {
                b.view.tail
            } else {
                b.view.tail + ring_cells(ring, b.header.page_size)
            },
            ring,
        };

        // 1. A new ring's fillers, then the pages (all into pages free in
        //    both intact checkpoints), sorted, adjacent ones coalesced into
        //    one write.
        if ring != old_ring {
            self.txn.keep_alive()?;
            let pager = &self.txn.bucket.pager;
            let image = Ring::new(ring, pager.page_size).fillers(ckpt.log_start);
            pager
                .file
                .write_at(&image, pager.page_off(ring.first_page))
                .map_err(|e| Error::io(&name, "write", e))?;
        }
        // Sorted by page (distinct, so the tuples' order is the pages'):
        // a heap sort, whose code is a tenth of `sort`'s in kv-fs's `.wasm`.
        let out = alloc::collections::BinaryHeap::from(out).into_sorted_vec();
        let p = geo.page;
        let mut i = 0;
        while i < out.len() {
            let mut j = i + 1;
            while j < out.len() && out[j].0 == out[j - 1].0 + 1 && (j - i) * p < (4 << 20) {
                j += 1;
            }
            self.txn.keep_alive()?;
            let pager = &self.txn.bucket.pager;
            let off = pager.page_off(out[i].0);
            let r = if j - i == 1 {
                pager.file.write_at(&out[i].1, off)
            } else {
                let mut buf = Vec::with_capacity((j - i) * p);
                for x in &out[i..j] {
                    buf.extend_from_slice(&x.1);
                }
                pager.file.write_at(&buf, off)
            };
            r.map_err(|e| Error::io(&name, "write", e))?;
            i = j;
        }
        // Pages allocated at the end of the file but not written (surplus
        // reservations that went straight to the freed list) must still
        // exist: the file always covers `file_pages`.
        let pager = &self.txn.bucket.pager;
        if ckpt.file_pages > self.base.file_pages {
            let want = u64::from(ckpt.file_pages) * p as u64;
            let len = pager.file.len().map_err(|e| Error::io(&name, "stat", e))?;
            if len < want {
                pager
                    .file
                    .set_len(want)
                    .map_err(|e| Error::io(&name, "extend", e))?;
            }
        }
        // 2. One sync makes the pages durable, with the log records folded
        //    into them and the older checkpoint record.
        sync(self.txn.bucket)?;
        // 3. Fence: nobody may have checkpointed or appended since our base.
        self.txn.fence()?;
        let b = &*self.txn.bucket;
        let slot_at = slot_offset(b.header.page_size, ckpt.slot());
        let mut raw = vec![0u8; CKPT_LEN];
        b.pager.read_full(&mut raw, slot_at)?;
        if let Some(other) = Checkpoint::decode(&raw, ckpt.slot(), &b.header)
            && other.number > self.base.number
        {
            return Err(PageError::Fatal(Error::LockLost {
                file: name,
                detail: format!(
                    "checkpoint {} appeared after this transaction started from {}",
                    other.number, self.base.number
                ),
            }));
        }
        // 4. The record, into the slot of the older checkpoint, the record
        //    announcing it at the log's tail (it overwrites no cell the
        //    older checkpoint needs: the log is kept under half the ring),
        //    and a sync: from now on the log before `log_start` may be
        //    overwritten.
        let payload = wal::checkpoint_payload(ckpt.seq, ckpt.number);
        if ring != old_ring {
            // Moving to a new ring: the old one is closed at its tail first,
            // so that no reader or writer following it can miss the move
            // (nothing may be appended to it once the record below exists).
            let old = b.view.ring;
            let closing = wal::frame(&payload, b.view.tail, &old);
            b.pager
                .file
                .write_at(&closing, old.offset(b.view.tail))
                .map_err(|e| Error::io(&name, "append to the log", e))?;
        }
        let rec = ckpt.encode();
        let crc = rd_u32(&rec, 0).unwrap_or(0);
        b.pager
            .file
            .write_at(&rec, slot_at)
            .map_err(|e| Error::io(&name, "write checkpoint record", e))?;
        let new_ring = Ring::new(ring, b.header.page_size);
        let marker = wal::frame(&payload, ckpt.log_start, &new_ring);
        let announced = b
            .pager
            .file
            .write_at(&marker, new_ring.offset(ckpt.log_start))
            .is_ok();
        sync(b)?;
        if shrunk {
            let _ = b.pager.file.set_len(u64::from(ckpt.file_pages) * p as u64);
        }
        let pager = &mut self.txn.bucket.pager;
        for (page, buf, crc) in out {
            if buf[4] == T_LEAF || buf[4] == T_BRANCH {
                pager.cache.insert(page, seq, crc, buf.into());
            }
        }
        Ok((ckpt, crc, announced))
    }
}
