//! Lock-free reads (FORMAT.md §8): following the log to the newest commit,
//! and lookups and scans of a checkpoint's tree under the log's overlay.
//!
//! An instance's [`View`] is a checkpoint, the records of the log after it
//! that the instance has read (applied to an [`Overlay`]), and the LSN of
//! the next record to look for (the tail). Every read operation first
//! reads the cell at the tail: one small read tells whether anything was
//! committed since (§8.1). A page that fails validation sends the reader
//! to the checkpoint slots: a newer checkpoint means a writer recycled the
//! page (retry from it), the same one means corruption.

use crate::MAX_KEY_LEN;
use crate::bucket::{BucketFile, Entry, Found, Stats};
use crate::error::{Error, PageError, Problem};
use crate::format::*;
use crate::io::{Dir, File};
use crate::overlay::{Overlay, merged};
use crate::pager::{Bounds, Pager};
use crate::prelude::*;
use crate::tree::{Bound, Item, StoredValue, Tree, Visitor, Walk};
use crate::wal::{self, CELL_PAYLOAD, Cell, RecordHead, Ring};

/// What an instance has read of the bucket.
#[derive(Clone, Debug)]
pub(crate) struct View {
    /// The checkpoint whose tree this instance reads.
    pub ckpt: Checkpoint,
    /// Its record's checksum (with `number`, it names the record exactly).
    pub ckpt_crc: u32,
    pub ring: Ring,
    /// The commits logged after `ckpt` that this instance has read.
    pub overlay: Overlay,
    /// LSN of the next record to look for.
    pub tail: u64,
    /// Sequence number of the newest commit read.
    pub seq: u64,
    /// Commit records read since `ckpt` (statistics).
    pub commits: u64,
    /// LSN of the last record read (or written) by this view.
    pub last_record: Option<u64>,
    /// Everything in the log before the tail is known to be durable: the
    /// tail holds the stamp of the last record, or this instance synced it.
    /// A writer appends after records of unknown durability only after a
    /// sync of its own (FORMAT.md §9).
    pub durable: bool,
    /// The tail cell as it was when it last proved to be the stamp of
    /// `last_record`: finding the same bytes at the same place again means
    /// the log has not moved, with no need to check the cell again (most
    /// reads of an idle bucket end there).
    pub settled_tail: Option<SettledTail>,
}

/// A tail cell already checked (see [`View::settled_tail`]).
#[derive(Clone, Debug)]
pub(crate) struct SettledTail {
    ring: Ring,
    lsn: u64,
    last_record: Option<u64>,
    cell: Vec<u8>,
}

impl View {
    pub fn at(ckpt: Checkpoint, crc: u32) -> View {
        View {
            ring: Ring::new(ckpt.ring, ckpt.page_size),
            tail: ckpt.log_start,
            seq: ckpt.seq,
            ckpt_crc: crc,
            ckpt,
            overlay: Overlay::default(),
            commits: 0,
            last_record: None,
            durable: false,
            settled_tail: None,
        }
    }

    /// Whether `cell`, read at the tail, is the stamp this view settled on.
    fn tail_is_settled(&self, cell: &[u8]) -> bool {
        self.settled_tail.as_ref().is_some_and(|s| {
            s.lsn == self.tail && s.ring == self.ring && s.last_record == self.last_record && s.cell == cell
        })
    }

    /// Remembers `cell`, read at the tail, as the stamp of the last record.
    fn settle_tail(&mut self, cell: &[u8]) {
        self.settled_tail = Some(SettledTail {
            ring: self.ring,
            lsn: self.tail,
            last_record: self.last_record,
            cell: cell.to_vec(),
        });
    }

    /// What pages of the checkpoint's tree may be.
    pub fn bounds(&self) -> Bounds {
        Bounds {
            data_start: FIRST_RING_PAGE,
            file_pages: self.ckpt.file_pages,
            max_seq: self.ckpt.seq,
        }
    }

    pub fn tree(&self, geo: Geo) -> Tree {
        Tree::new(TREE_KEYS, self.ckpt.main_root, self.ckpt.main_depth, geo)
    }

    /// Moves to the newer checkpoint `c` (FORMAT.md §8.2): what it folded
    /// into its tree leaves the overlay, and the log is followed from its
    /// start unless this view is already past it.
    pub fn adopt(&mut self, c: Checkpoint, crc: u32) {
        if c.number < self.ckpt.number || (c.number == self.ckpt.number && crc == self.ckpt_crc) {
            return;
        }
        self.overlay.forget_up_to(c.seq);
        if c.seq >= self.seq {
            self.seq = c.seq;
            self.commits = 0;
        }
        if c.log_start > self.tail {
            self.tail = c.log_start;
            self.last_record = None;
            self.durable = false;
        }
        self.ring = Ring::new(c.ring, c.page_size);
        self.ckpt = c;
        self.ckpt_crc = crc;
    }
}

/// Both checkpoint slots as read at one moment.
pub(crate) struct Slots {
    pub newest: Checkpoint,
    pub newest_crc: u32,
    /// The other slot's checkpoint, when it is valid.
    pub older: Option<Checkpoint>,
}

impl Slots {
    /// A checkpoint that is certainly durable: the older one (the newest
    /// was written only after a sync that covered it, FORMAT.md §7), or
    /// the only valid one. Its number and log start.
    pub fn durable(&self) -> (u64, u64) {
        let c = self.older.as_ref().unwrap_or(&self.newest);
        (c.number, c.log_start)
    }
}

/// Reads both checkpoint slots and returns the newest valid record. A slot
/// that fails validation is read again (up to twice) in case it was being
/// written at that instant; one whose bytes do not change (torn by a crash)
/// is ignored.
pub(crate) fn newest_checkpoint<F: File>(pager: &Pager<F>, header: &Header) -> Result<Slots, Error> {
    let mut last_raw: Option<Vec<u8>> = None;
    for attempt in 0..4 {
        let mut raw = vec![0u8; SLOTS_LEN];
        if !pager.read_full(&mut raw, slot_offset(header.page_size, 0))? {
            return Err(Error::corrupt(
                &pager.name,
                "file is truncated inside the checkpoint slots",
            ));
        }
        let decode = |slot: usize| {
            let b = &raw[slot * SLOT_STRIDE..slot * SLOT_STRIDE + CKPT_LEN];
            Checkpoint::decode(b, slot, header).map(|c| (c, rd_u32(b, 0).unwrap_or(0)))
        };
        match (decode(0), decode(1)) {
            (Some(a), Some(b)) => {
                let (newest, older) = if a.0.number >= b.0.number { (a, b) } else { (b, a) };
                return Ok(Slots {
                    newest: newest.0,
                    newest_crc: newest.1,
                    older: Some(older.0),
                });
            }
            (Some(c), None) | (None, Some(c)) => {
                if attempt >= 2 || last_raw.as_ref() == Some(&raw) {
                    return Ok(Slots {
                        newest: c.0,
                        newest_crc: c.1,
                        older: None,
                    });
                }
            }
            (None, None) => {
                if attempt >= 2 {
                    return Err(Error::corrupt(
                        &pager.name,
                        "no valid checkpoint record: both slots of page 1 fail validation",
                    ));
                }
            }
        }
        last_raw = Some(raw);
    }
    Err(Error::corrupt(&pager.name, "checkpoint records keep changing"))
}

/// What one look at the log found.
enum Step {
    /// Nothing was committed after the tail.
    UpToDate,
    /// Records were applied; there may be more.
    Progress,
    /// The cell at the tail does not say: read the checkpoint slots.
    Unsure,
}

/// Looks at most this many cells ahead in one read (a lookup reads one;
/// catching up after many commits reads more at a time).
const MAX_CHUNK_CELLS: u64 = 1024;

impl<D: Dir> BucketFile<D> {
    /// Reads `count` cells from `lsn` (wrapping around the ring's end).
    pub(crate) fn read_cells(&self, lsn: u64, count: u64) -> Result<Vec<u8>, Error> {
        let ring = self.view.ring;
        let mut buf = vec![0u8; (count as usize) * CELL];
        let first = count.min(ring.cells_to_end(lsn)) as usize * CELL;
        let (a, b) = buf.split_at_mut(first);
        if !self.pager.read_full(a, ring.offset(lsn))?
            || !self
                .pager
                .read_full(b, ring.offset(lsn + (first / CELL) as u64))?
        {
            return Err(Error::corrupt(
                &self.name,
                "file is truncated inside the log ring",
            ));
        }
        Ok(buf)
    }

    /// Follows the log from the tail to the newest commit (FORMAT.md §8.1).
    pub(crate) fn refresh(&mut self) -> Result<(), Error> {
        self.release_lock_if_idle();
        // A view that follows the log reads one cell (the stamp of the last
        // record, normally); a fresh one two (a checkpoint's record and its
        // stamp, normally).
        let mut chunk = if self.view.last_record.is_some() { 1 } else { 2 };
        let mut suspect: Option<u64> = None;
        for _ in 0..64 {
            match self.log_step(chunk)? {
                Step::UpToDate => return Ok(()),
                Step::Progress => chunk = (chunk * 4).min(MAX_CHUNK_CELLS),
                Step::Unsure => {
                    let tail = self.view.tail;
                    let slots = newest_checkpoint(&self.pager, &self.header)?;
                    let start = slots.newest.log_start;
                    self.view.adopt(slots.newest, slots.newest_crc);
                    if start > tail {
                        continue; // the log was folded past us: follow it from there
                    }
                    // No checkpoint has moved the log past the tail, so no
                    // writer has lapped it: the cell there is a record being
                    // written, or one a crash cut short, and nothing follows
                    // it. Unless a complete record or stamp lies after it:
                    // then it was damaged after it was written (looked at
                    // twice, for a writer may have just completed it).
                    if !self.written_after_tail()? {
                        return Ok(());
                    }
                    if suspect == Some(tail) {
                        return Err(self.log_corrupt(
                            tail,
                            "the record fails its checksums, but records written after it are intact",
                        ));
                    }
                    suspect = Some(tail);
                }
            }
        }
        Err(Error::Busy {
            file: self.name.clone(),
            retries: 64,
        })
    }

    /// Whether the log holds a record start or a stamp after the unreadable
    /// cell at the tail, before it runs into cells of an earlier lap.
    fn written_after_tail(&self) -> Result<bool, Error> {
        let ring = self.view.ring;
        let tail = self.view.tail;
        let mut lsn = tail + 1;
        let end = tail + ring.max_record_cells() + 2;
        while lsn < end {
            let n = (end - lsn).min(MAX_CHUNK_CELLS).min(ring.cells_to_end(lsn));
            let buf = self.read_cells(lsn, n)?;
            for (i, cell) in buf.chunks_exact(CELL).enumerate() {
                let at = lsn + i as u64;
                match wal::parse_cell(cell, &ring) {
                    Cell::Empty => return Ok(false),
                    Cell::Valid { lsn: l, .. } if l < tail => return Ok(false),
                    Cell::Valid { lsn: l, index: 0, .. } if l == at => return Ok(true),
                    _ => {}
                }
            }
            lsn += n;
        }
        Ok(false)
    }

    fn log_step(&mut self, chunk: u64) -> Result<Step, Error> {
        let ring = self.view.ring;
        let tail = self.view.tail;
        let n = chunk.min(ring.cells_to_end(tail));
        let buf = self.read_cells(tail, n)?;
        let mut pos = 0usize;
        while pos < n as usize {
            let at = self.view.tail;
            let cell = &buf[pos * CELL..(pos + 1) * CELL];
            if self.view.tail_is_settled(cell) {
                return Ok(Step::UpToDate);
            }
            let head = match wal::parse_cell(cell, &ring) {
                // Zeros are not a cell of this ring (its cells are written,
                // fillers included, before it is used): a page recycled
                // after a reader's ring moved on.
                Cell::Empty | Cell::Invalid => return Ok(Step::Unsure),
                Cell::Valid { lsn, index, payload } => {
                    if lsn == at && index == 0 {
                        match RecordHead::parse(payload) {
                            Some(h) => h,
                            None => return Err(self.log_corrupt(at, "record header is malformed")),
                        }
                    } else if lsn < at && (at - lsn).is_multiple_of(ring.cells()) {
                        // A cell of an earlier lap: nothing after the tail yet.
                        return Ok(Step::UpToDate);
                    } else {
                        return Ok(Step::Unsure);
                    }
                }
            };
            if head.kind == wal::REC_STAMP {
                // The stamp of the last record: nothing after it yet.
                return Ok(if Some(head.arg) == self.view.last_record {
                    self.view.durable = true;
                    self.view.settle_tail(cell);
                    Step::UpToDate
                } else {
                    Step::Unsure
                });
            }
            let cells = head.cells();
            if cells > ring.cells() / 2 {
                return Err(self.log_corrupt(
                    at,
                    &format!("record of {cells} cells is larger than half the ring"),
                ));
            }
            if cells * CELL as u64 > 1 << 20 {
                // Never allocate a large buffer on the word of a header alone.
                let len = self.pager.file.len().map_err(|e| self.pager.io("stat", e))?;
                if u64::from(ring.end_page()) * u64::from(self.header.page_size) > len {
                    return Err(self.log_corrupt(at, "the log ring runs past the end of the file"));
                }
            }
            let record = if pos as u64 + cells <= n {
                buf[pos * CELL..(pos + cells as usize) * CELL].to_vec()
            } else {
                self.read_cells(at, cells)?
            };
            let Some(payload) = assemble(&record, at, head.len as usize, &ring) else {
                // Not all of it is there: being written, or cut short.
                return Ok(Step::Unsure);
            };
            if !self.apply_record(&payload, &head, at)? {
                return Ok(Step::Unsure);
            }
            pos += cells as usize;
            if self.view.tail != at + cells {
                // A checkpoint record moved the view: look again from there.
                return Ok(Step::Progress);
            }
        }
        Ok(Step::Progress)
    }

    /// Applies one complete record at `lsn`. `Ok(false)`: it does not follow
    /// this view (a record of a commit this view has not seen the base of).
    fn apply_record(&mut self, payload: &[u8], head: &RecordHead, lsn: u64) -> Result<bool, Error> {
        match head.kind {
            wal::REC_COMMIT => {
                if head.seq != self.view.seq + 1 {
                    return Ok(false);
                }
                let ops = wal::commit_ops(payload, head).map_err(|e| self.log_corrupt(lsn, &e))?;
                self.view.overlay.apply(&ops, head.seq);
                self.view.seq = head.seq;
                self.view.commits += 1;
                self.view.tail = lsn + head.cells();
                self.view.last_record = Some(lsn);
                self.view.durable = false;
            }
            _ => {
                // A checkpoint announcing itself: when it is newer than
                // ours, its tree holds what this view has not read.
                self.view.tail = lsn + head.cells();
                self.view.last_record = Some(lsn);
                self.view.durable = false;
                if head.arg > self.view.ckpt.number {
                    let slots = newest_checkpoint(&self.pager, &self.header)?;
                    self.view.adopt(slots.newest, slots.newest_crc);
                }
            }
        }
        Ok(true)
    }

    fn log_corrupt(&self, lsn: u64, what: &str) -> Error {
        let page = self.view.ring.offset(lsn) / u64::from(self.header.page_size);
        Error::corrupt(
            &self.name,
            format!("page {page}: log record at LSN {lsn}: {what}"),
        )
    }

    /// Runs a read against the newest commit; when a page fails validation
    /// and a newer checkpoint has appeared meanwhile, restarts from it.
    pub(crate) fn read_op<T>(
        &mut self,
        mut f: impl FnMut(&mut Pager<D::File>, &View) -> Result<T, PageError>,
    ) -> Result<T, Error> {
        let mut attempt = 0u32;
        loop {
            self.refresh()?;
            match f(&mut self.pager, &self.view) {
                Ok(v) => return Ok(v),
                Err(PageError::Fatal(e)) => return Err(e),
                Err(PageError::Mismatch { page, what }) => {
                    let slots = newest_checkpoint(&self.pager, &self.header)?;
                    if slots.newest.number == self.view.ckpt.number && slots.newest_crc == self.view.ckpt_crc
                    {
                        return Err(Error::corrupt(&self.name, mismatch_text(page, &what)));
                    }
                    self.view.adopt(slots.newest, slots.newest_crc);
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
        Ok(self.get_versioned(key)?.map(|f| f.value))
    }

    /// Value of `key`, its version (the sequence number of the commit that
    /// last wrote it: strictly increases with every write of the key) and
    /// its expiry. An expired entry is absent.
    pub fn get_versioned(&mut self, key: &[u8]) -> Result<Option<Found>, Error> {
        if key.len() > MAX_KEY_LEN {
            return Ok(None);
        }
        let found = self.read_op(|pager, view| lookup(pager, view, None, key))?;
        Ok(unexpired(found, || self.dir.now_millis()))
    }

    /// Whether `key` exists.
    pub fn contains(&mut self, key: &[u8]) -> Result<bool, Error> {
        Ok(self.get_versioned(key)?.is_some())
    }

    /// Up to `limit` keys strictly greater than `after` (all keys from the
    /// start if `None`), in bytewise order, from one consistent snapshot.
    /// Passing the last key returned as the next `after` never repeats a
    /// key and never skips a key that existed throughout the iteration.
    pub fn keys_after(&mut self, after: Option<&[u8]>, limit: usize) -> Result<Vec<Vec<u8>>, Error> {
        self.keys_with_prefix_after(b"", after, limit)
    }

    /// Like [`BucketFile::keys_after`], but only keys starting with
    /// `prefix`: the scan starts at the prefix (or after `after`, if that
    /// is further on) and stops at the first key past it.
    pub fn keys_with_prefix_after(
        &mut self,
        prefix: &[u8],
        after: Option<&[u8]>,
        limit: usize,
    ) -> Result<Vec<Vec<u8>>, Error> {
        if limit == 0 {
            return Ok(Vec::new());
        }
        let range = Range {
            after,
            prefix,
            now: Some(self.dir.now_millis()),
        };
        self.read_op(|pager, view| {
            let mut out = Vec::new();
            scan(pager, view, None, &range, false, &mut |_, it| {
                out.push(it.key);
                Ok(out.len() < limit)
            })?;
            Ok(out)
        })
    }

    /// How many entries expire (`.0`) and how many of those have expired
    /// but are still stored (`.1`, dropped by a later checkpoint): one
    /// scan of every key, for tools.
    pub fn expiry_counts(&mut self) -> Result<(u64, u64), Error> {
        let now = self.dir.now_millis();
        let all = Range {
            after: None,
            prefix: b"",
            now: None,
        };
        self.read_op(|pager, view| {
            let (mut expiring, mut expired) = (0, 0);
            scan(pager, view, None, &all, false, &mut |_, it| {
                expiring += u64::from(it.expires.is_some());
                expired += u64::from(crate::is_expired(it.expires, now));
                Ok(true)
            })?;
            Ok((expiring, expired))
        })
    }

    /// Like [`BucketFile::keys_after`] but with values and versions; stops
    /// early once `max_bytes` of keys and values have been collected (at
    /// least one entry is always returned if there is one).
    pub fn entries_after(
        &mut self,
        after: Option<&[u8]>,
        limit: usize,
        max_bytes: usize,
    ) -> Result<Vec<Entry>, Error> {
        if limit == 0 {
            return Ok(Vec::new());
        }
        let range = Range {
            after,
            prefix: b"",
            now: Some(self.dir.now_millis()),
        };
        self.read_op(|pager, view| {
            let mut out = Vec::new();
            let mut bytes = 0usize;
            scan(pager, view, None, &range, true, &mut |walk, it| {
                let value = resolve(walk, it.val)?;
                bytes += it.key.len() + value.len();
                out.push(Entry {
                    key: it.key,
                    value,
                    version: it.version,
                    expires_at: it.expires,
                });
                Ok(out.len() < limit && bytes < max_bytes)
            })?;
            Ok(out)
        })
    }

    /// Statistics of the newest commit. The key count and logical size
    /// look up every key the log changed since the checkpoint in its tree.
    pub fn stats(&mut self) -> Result<Stats, Error> {
        let (keys, logical_bytes) = self.read_op(|pager, view| {
            let mut keys = view.ckpt.key_count as i64;
            let mut bytes = view.ckpt.logical_bytes as i64;
            let tree = view.tree(pager.geo);
            let mut walk = Walk::new(pager, view.bounds());
            for (k, l) in view.overlay.iter() {
                if let Some((old, _, _)) = tree.get(&mut walk, k)? {
                    keys -= 1;
                    bytes -= (k.len() as u64 + old.len()) as i64;
                }
                if let Some(v) = &l.value {
                    keys += 1;
                    bytes += (k.len() + v.len()) as i64;
                }
            }
            Ok((keys.max(0) as u64, bytes.max(0) as u64))
        })?;
        let c = &self.view.ckpt;
        let file_bytes = self
            .pager
            .file
            .len()
            .map_err(|e| Error::io(&self.name, "stat", e))?;
        let total = u64::from(c.file_pages);
        let pending = u64::from(c.freed.pages);
        Ok(Stats {
            keys,
            depth: c.main_depth,
            page_size: self.header.page_size,
            pages_total: total,
            pages_free: c.free_pages,
            pages_pending: pending,
            pages_used: total.saturating_sub(c.free_pages).saturating_sub(pending),
            log_pages: u64::from(c.ring.pages),
            log_bytes_live: (self.view.tail - c.log_start) * CELL as u64,
            log_commits: self.view.commits,
            logical_bytes,
            file_bytes,
            commit_seq: self.view.seq,
            checkpoint: c.number,
        })
    }

    /// Reads the log after the checkpoint again, from its start, and
    /// reports records that pass their checksums but do not decode.
    pub(crate) fn check_log(&mut self) -> Result<Vec<Problem>, Error> {
        let mut fresh = View::at(self.view.ckpt.clone(), self.view.ckpt_crc);
        core::mem::swap(&mut self.view, &mut fresh);
        let r = self.refresh();
        core::mem::swap(&mut self.view, &mut fresh);
        match r {
            Ok(()) => Ok(Vec::new()),
            Err(e) if e.is_corruption() => Ok(vec![Problem {
                page: None,
                message: e.to_string(),
            }]),
            Err(e) => Err(e),
        }
    }
}

/// The payload of the record in `cells` starting at `lsn`, if every cell
/// is there (valid, consecutive).
fn assemble(cells: &[u8], lsn: u64, len: usize, ring: &Ring) -> Option<Vec<u8>> {
    let mut payload = Vec::with_capacity(cells.len());
    for (i, cell) in cells.chunks_exact(CELL).enumerate() {
        match wal::parse_cell(cell, ring) {
            Cell::Valid {
                lsn: l,
                index,
                payload: p,
            } if l == lsn + i as u64 && index as usize == i => payload.extend_from_slice(p),
            _ => return None,
        }
    }
    (len <= payload.len() && payload.len() - len < CELL_PAYLOAD).then(|| {
        payload.truncate(len);
        payload
    })
}

fn mismatch_text(page: u64, what: &str) -> String {
    if page == 0 {
        what.to_string()
    } else {
        format!("page {page}: {what}")
    }
}

/// The bytes of a stored value (reading its extent if it has one).
pub(crate) fn resolve<F: File>(walk: &mut Walk<F>, v: Option<StoredValue>) -> Result<Vec<u8>, PageError> {
    match v {
        None => Ok(Vec::new()),
        Some(StoredValue::Inline(b)) => Ok(b),
        Some(StoredValue::Extent { len, ext }) => walk.pager.extent(ext, len, KIND_VALUE, &walk.bounds),
    }
}

/// Looks `key` up in `top` (a transaction's changes), then the view's
/// overlay, then the view's tree; expired or not (see [`unexpired`]).
pub(crate) fn lookup<F: File>(
    pager: &mut Pager<F>,
    view: &View,
    top: Option<&Overlay>,
    key: &[u8],
) -> Result<Option<Found>, PageError> {
    for layer in top.into_iter().chain([&view.overlay]) {
        if let Some(l) = layer.get(key) {
            return Ok(l.value.clone().map(|value| Found {
                value,
                version: l.version,
                expires_at: l.expires,
            }));
        }
    }
    let tree = view.tree(pager.geo);
    let mut walk = Walk::new(pager, view.bounds());
    match tree.get(&mut walk, key)? {
        Some((val, version, expires)) => Ok(Some(Found {
            value: resolve(&mut walk, Some(val))?,
            version,
            expires_at: expires,
        })),
        None => Ok(None),
    }
}

/// `found` unless it has expired by `now()`, which is asked only of an
/// entry that expires: most do not, and under WASI the clock is a host
/// call (a tenth of a warm get's time).
pub(crate) fn unexpired(found: Option<Found>, now: impl FnOnce() -> u64) -> Option<Found> {
    match found {
        Some(f) if f.expires_at.is_some() && crate::is_expired(f.expires_at, now()) => None,
        other => other,
    }
}

/// What a scan visits: the keys after `after` that start with `prefix`,
/// leaving out the entries expired at `now` (all are visited if `None`).
pub(crate) struct Range<'a> {
    pub after: Option<&'a [u8]>,
    pub prefix: &'a [u8],
    pub now: Option<u64>,
}

impl Range<'_> {
    /// Where the scan starts: after `after`, or at `prefix` if that is
    /// further on.
    fn start(&self) -> Bound<'_> {
        match self.after {
            Some(a) if a >= self.prefix => Bound::Excl(a),
            _ if !self.prefix.is_empty() => Bound::Incl(self.prefix),
            _ => Bound::Start,
        }
    }

    fn skips(&self, expires: Option<u64>) -> bool {
        self.now.is_some_and(|now| crate::is_expired(expires, now))
    }
}

/// Scans the view (tree under overlay, under `top`) in key order over
/// `range`, stopping at the first key past its prefix; `visit` returns
/// false to stop.
pub(crate) fn scan<F: File>(
    pager: &mut Pager<F>,
    view: &View,
    top: Option<&Overlay>,
    range: &Range<'_>,
    want_val: bool,
    visit: &mut Visitor<'_, F>,
) -> Result<(), PageError> {
    let from = range.start();
    let empty = Overlay::default();
    let mut logged = merged(top.unwrap_or(&empty), &view.overlay, from).peekable();
    let tree = view.tree(pager.geo);
    let mut walk = Walk::new(pager, view.bounds());
    let as_item = |k: &Vec<u8>, v: &Vec<u8>, l: &crate::overlay::Logged| Item {
        key: k.clone(),
        val: want_val.then(|| StoredValue::Inline(v.clone())),
        version: l.version,
        expires: l.expires,
    };
    // Visits `item` unless it expired; `false` once the scan must stop
    // (past the prefix, or `visit` said so).
    let mut offer = |walk: &mut Walk<F>, item: Item| -> Result<bool, PageError> {
        if !item.key.starts_with(range.prefix) {
            return Ok(false);
        }
        if range.skips(item.expires) {
            return Ok(true);
        }
        visit(walk, item)
    };
    let mut stopped = false;
    tree.scan(&mut walk, from, want_val, &mut |walk, item| {
        // Logged entries before this key come first; one for this very key
        // replaces it (or, deleted, hides it).
        while let Some((k, l)) = logged.peek() {
            match k.as_slice().cmp(item.key.as_slice()) {
                core::cmp::Ordering::Greater => break,
                order => {
                    let (k, l) = (*k, *l);
                    logged.next();
                    if let Some(v) = &l.value
                        && !offer(walk, as_item(k, v, l))?
                    {
                        stopped = true;
                        return Ok(false);
                    }
                    if order == core::cmp::Ordering::Equal {
                        return Ok(true);
                    }
                }
            }
        }
        let go = offer(walk, item)?;
        stopped = !go;
        Ok(go)
    })?;
    if stopped {
        return Ok(());
    }
    for (k, l) in logged {
        if let Some(v) = &l.value
            && !offer(&mut walk, as_item(k, v, l))?
        {
            break;
        }
    }
    Ok(())
}
