//! The commit log (FORMAT.md §5, §6): a ring of 256-byte cells in the bucket
//! file, each carrying its absolute log sequence number (LSN), into which
//! every commit appends one record.
//!
//! This module only encodes and decodes: where a record goes and what it
//! says. Who reads and writes it, and when, is in `read.rs` (readers
//! following the log) and `commit.rs` (appending, checkpoints).

use crate::format::*;
use crate::prelude::*;
use crate::{MAX_KEY_LEN, MAX_VALUE_LEN};

/// Bytes of a cell header: checksum, LSN, index within the record.
pub(crate) const CELL_HDR: usize = 16;
/// Payload bytes per cell.
pub(crate) const CELL_PAYLOAD: usize = CELL - CELL_HDR;
/// Bytes of a record header (the start of its payload).
pub(crate) const RECORD_HDR: usize = 24;

pub(crate) const REC_COMMIT: u8 = 1;
pub(crate) const REC_CHECKPOINT: u8 = 2;
/// Written in the cell after a commit's record once its sync returned: the
/// record before it is complete, so if it fails its checksums later, that
/// is corruption, not a crash (FORMAT.md §6).
pub(crate) const REC_STAMP: u8 = 3;

const OP_PUT: u8 = 1;
const OP_DELETE: u8 = 2;
/// A put of an entry that expires (format 3): the put's fields, then the
/// expiry (u64, wall-clock ms).
const OP_PUT_EXPIRING: u8 = 3;

/// The log ring of a file: where each LSN lives.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Ring {
    pub first_page: u32,
    pub pages: u32,
    pub page_size: u32,
}

impl Ring {
    pub fn new(r: RingRef, page_size: u32) -> Ring {
        Ring {
            first_page: r.first_page,
            pages: r.pages,
            page_size,
        }
    }

    /// Number of cells.
    pub fn cells(&self) -> u64 {
        ring_cells(
            RingRef {
                first_page: self.first_page,
                pages: self.pages,
            },
            self.page_size,
        )
    }

    /// Byte offset of the cell holding `lsn`.
    pub fn offset(&self, lsn: u64) -> u64 {
        u64::from(self.first_page) * u64::from(self.page_size) + (lsn % self.cells()) * CELL as u64
    }

    /// Cells from `lsn` to the end of the ring (a read or write of more
    /// wraps around to the start).
    pub fn cells_to_end(&self, lsn: u64) -> u64 {
        self.cells() - lsn % self.cells()
    }

    /// The first page past the ring (where data pages begin).
    pub fn end_page(&self) -> u32 {
        self.first_page + self.pages
    }

    /// The largest record (in cells) a commit may append; a larger one is
    /// written straight into the tree by a checkpoint (FORMAT.md §7).
    pub fn max_record_cells(&self) -> u64 {
        self.cells() / 2
    }

    /// A checkpoint folds the log into the tree once the log since the
    /// last one holds this many cells.
    pub fn checkpoint_after_cells(&self) -> u64 {
        self.cells() / 2
    }
}

impl Ring {
    /// What a cell's checksum folds in besides its bytes: the ring's place
    /// and size, so that a cell of another ring (one that lived on these
    /// pages before, FORMAT.md §5) never passes for one of this ring.
    fn tag(&self) -> [u8; 8] {
        let mut t = [0u8; 8];
        t[..4].copy_from_slice(&self.first_page.to_le_bytes());
        t[4..].copy_from_slice(&self.pages.to_le_bytes());
        t
    }

    /// The image of a new ring whose first record will be at `first_lsn`
    /// (at least one ring's worth of cells): every cell a *filler* of the
    /// lap before, so that a reader at the tail finds a valid cell of an
    /// earlier lap there (nothing written since) in one read.
    pub fn fillers(&self, first_lsn: u64) -> Vec<u8> {
        let c = self.cells();
        let mut out = vec![0u8; (c as usize) * CELL];
        for (p, cell) in out.chunks_exact_mut(CELL).enumerate() {
            // The LSN that will first land in cell `p`, one lap earlier.
            let lsn = first_lsn + (p as u64 + c - first_lsn % c) % c - c;
            wr_u64(cell, 4, lsn);
            wr_u32(cell, 12, FILLER);
            let crc = cell_crc(cell, self);
            wr_u32(cell, 0, crc);
        }
        out
    }
}

/// The index of a filler cell (FORMAT.md §5).
pub(crate) const FILLER: u32 = u32::MAX;

/// What one cell of the ring holds.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Cell<'a> {
    /// Never written (all zero).
    Empty,
    /// Fails its checksum: torn, being written, or not a cell at all.
    Invalid,
    /// A valid cell: its LSN, its index within its record, its payload.
    Valid { lsn: u64, index: u32, payload: &'a [u8] },
}

pub(crate) fn parse_cell<'a>(b: &'a [u8], ring: &Ring) -> Cell<'a> {
    let Some(b) = b.get(..CELL) else {
        return Cell::Invalid;
    };
    if b.iter().all(|&x| x == 0) {
        return Cell::Empty;
    }
    let (Some(crc), Some(lsn), Some(index)) = (rd_u32(b, 0), rd_u64(b, 4), rd_u32(b, 12)) else {
        return Cell::Invalid;
    };
    if checksums_enabled() && crc != cell_crc(b, ring) {
        return Cell::Invalid;
    }
    Cell::Valid {
        lsn,
        index,
        payload: &b[CELL_HDR..],
    }
}

/// The checksum of a cell covers its ring and everything after it, LSN
/// included, so a cell written at the wrong place, a stale one from an
/// earlier lap, or one of another ring, never passes for another.
fn cell_crc(b: &[u8], ring: &Ring) -> u32 {
    crate::crc::crc32c_append(crate::crc::crc32c(&ring.tag()), &b[4..CELL])
}

/// Frames `payload` as the cells of a record starting at `lsn` in `ring`.
pub(crate) fn frame(payload: &[u8], lsn: u64, ring: &Ring) -> Vec<u8> {
    let n = payload.len().div_ceil(CELL_PAYLOAD).max(1);
    let mut out = vec![0u8; n * CELL];
    for (i, cell) in out.chunks_exact_mut(CELL).enumerate() {
        let lo = (i * CELL_PAYLOAD).min(payload.len());
        let hi = ((i + 1) * CELL_PAYLOAD).min(payload.len());
        cell[CELL_HDR..CELL_HDR + hi - lo].copy_from_slice(&payload[lo..hi]);
        wr_u64(cell, 4, lsn + i as u64);
        wr_u32(cell, 12, i as u32);
        let crc = cell_crc(cell, ring);
        wr_u32(cell, 0, crc);
    }
    out
}

/// Cells a payload of `len` bytes takes.
pub(crate) fn cells_for(len: usize) -> u64 {
    len.div_ceil(CELL_PAYLOAD).max(1) as u64
}

/// The fixed part of a record.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct RecordHead {
    pub kind: u8,
    /// Total payload bytes, this header included.
    pub len: u32,
    /// Commit: its sequence number. Checkpoint: the checkpoint's `seq`.
    pub seq: u64,
    /// Commit: number of operations. Checkpoint: the checkpoint's number.
    pub arg: u64,
}

impl RecordHead {
    pub fn cells(&self) -> u64 {
        cells_for(self.len as usize)
    }

    /// Reads the header at the start of a record's first cell payload.
    pub fn parse(payload: &[u8]) -> Option<RecordHead> {
        let h = RecordHead {
            kind: *payload.first()?,
            len: rd_u32(payload, 4)?,
            seq: rd_u64(payload, 8)?,
            arg: rd_u64(payload, 16)?,
        };
        let ok = matches!(h.kind, REC_COMMIT | REC_CHECKPOINT | REC_STAMP) && h.len as usize >= RECORD_HDR;
        ok.then_some(h)
    }

    fn write(&self, b: &mut Vec<u8>) {
        b.push(self.kind);
        b.extend_from_slice(&[0; 3]);
        b.extend_from_slice(&self.len.to_le_bytes());
        b.extend_from_slice(&self.seq.to_le_bytes());
        b.extend_from_slice(&self.arg.to_le_bytes());
    }
}

/// One change of a commit record.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Op<'a> {
    /// Key, value, expiry.
    Put(&'a [u8], &'a [u8], Option<u64>),
    Delete(&'a [u8]),
}

/// The payload of a commit record of `ops` (changes in key order).
pub(crate) fn commit_payload<'a>(
    seq: u64,
    ops: impl ExactSizeIterator<Item = Op<'a>>,
    len_hint: usize,
) -> Vec<u8> {
    let mut b = Vec::with_capacity(RECORD_HDR + len_hint);
    let head = RecordHead {
        kind: REC_COMMIT,
        len: 0,
        seq,
        arg: ops.len() as u64,
    };
    head.write(&mut b);
    for op in ops {
        match op {
            Op::Put(k, v, expires) => {
                b.push(if expires.is_some() {
                    OP_PUT_EXPIRING
                } else {
                    OP_PUT
                });
                b.extend_from_slice(&(k.len() as u32).to_le_bytes());
                b.extend_from_slice(k);
                b.extend_from_slice(&(v.len() as u32).to_le_bytes());
                b.extend_from_slice(v);
                if let Some(at) = expires {
                    b.extend_from_slice(&at.to_le_bytes());
                }
            }
            Op::Delete(k) => {
                b.push(OP_DELETE);
                b.extend_from_slice(&(k.len() as u32).to_le_bytes());
                b.extend_from_slice(k);
            }
        }
    }
    let len = b.len() as u32;
    wr_u32(&mut b, 4, len);
    b
}

/// The payload of the record a checkpoint appends to announce itself.
pub(crate) fn checkpoint_payload(seq: u64, number: u64) -> Vec<u8> {
    head_only(REC_CHECKPOINT, seq, number)
}

/// The payload of the stamp of commit `seq`, whose record is at `lsn`.
pub(crate) fn stamp_payload(seq: u64, lsn: u64) -> Vec<u8> {
    head_only(REC_STAMP, seq, lsn)
}

fn head_only(kind: u8, seq: u64, arg: u64) -> Vec<u8> {
    let mut b = Vec::with_capacity(RECORD_HDR);
    RecordHead {
        kind,
        len: RECORD_HDR as u32,
        seq,
        arg,
    }
    .write(&mut b);
    b
}

/// Decodes the operations of a commit record's payload; `Err` says what
/// is malformed.
pub(crate) fn commit_ops<'a>(payload: &'a [u8], head: &RecordHead) -> Result<Vec<Op<'a>>, String> {
    let body = payload
        .get(RECORD_HDR..head.len as usize)
        .ok_or("record payload truncated")?;
    // Every op takes at least 5 bytes: never allocate on the word of a count alone.
    if head.arg > (body.len() / 5) as u64 {
        return Err(format!(
            "record claims {} operations in {} bytes",
            head.arg,
            body.len()
        ));
    }
    let mut ops = Vec::with_capacity(head.arg as usize);
    let mut o = 0usize;
    let take = |o: &mut usize, n: usize| -> Result<&[u8], String> {
        let s = body.get(*o..*o + n).ok_or("operation runs past the record")?;
        *o += n;
        Ok(s)
    };
    for i in 0..head.arg {
        let tag = take(&mut o, 1)?[0];
        let klen = rd_u32(take(&mut o, 4)?, 0).unwrap_or(0) as usize;
        if klen > MAX_KEY_LEN {
            return Err(format!("operation {i}: key of {klen} bytes exceeds the limit"));
        }
        let key = take(&mut o, klen)?;
        match tag {
            OP_PUT | OP_PUT_EXPIRING => {
                let vlen = rd_u32(take(&mut o, 4)?, 0).unwrap_or(0) as usize;
                if vlen > MAX_VALUE_LEN {
                    return Err(format!("operation {i}: value of {vlen} bytes exceeds the limit"));
                }
                let value = take(&mut o, vlen)?;
                let expires = if tag == OP_PUT_EXPIRING {
                    Some(rd_u64(take(&mut o, 8)?, 0).unwrap_or(0))
                } else {
                    None
                };
                ops.push(Op::Put(key, value, expires));
            }
            OP_DELETE => ops.push(Op::Delete(key)),
            t => return Err(format!("operation {i} has unknown tag {t}")),
        }
    }
    if o != body.len() {
        return Err("record has bytes after its last operation".into());
    }
    Ok(ops)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_round_trip_through_cells() {
        let big = vec![7u8; 1000];
        let ops = [
            Op::Put(b"a", b"1", None),
            Op::Delete(b"b"),
            Op::Put(b"c", &big, Some(1_767_225_600_000)),
        ];
        let payload = commit_payload(42, ops.iter().copied(), 0);
        let ring = Ring {
            first_page: 2,
            pages: 4,
            page_size: 1024,
        };
        let cells = frame(&payload, 1000, &ring);
        assert_eq!(cells.len() as u64 / CELL as u64, cells_for(payload.len()));
        let mut joined = Vec::new();
        for (i, c) in cells.chunks(CELL).enumerate() {
            let Cell::Valid { lsn, index, payload } = parse_cell(c, &ring) else {
                panic!("cell {i} invalid")
            };
            assert_eq!((lsn, index), (1000 + i as u64, i as u32));
            joined.extend_from_slice(payload);
        }
        let head = RecordHead::parse(&joined).unwrap();
        assert_eq!((head.kind, head.seq, head.arg), (REC_COMMIT, 42, 3));
        assert_eq!(commit_ops(&joined, &head).unwrap(), ops);
        // A flipped bit anywhere fails that cell's checksum.
        let mut torn = cells.clone();
        torn[CELL + 100] ^= 1;
        assert_eq!(parse_cell(&torn[CELL..], &ring), Cell::Invalid);
        assert_eq!(parse_cell(&[0u8; CELL], &ring), Cell::Empty);
        // A cell of another ring (same LSN, same bytes) does not pass.
        let other = Ring { pages: 8, ..ring };
        assert_eq!(parse_cell(&cells[..CELL], &other), Cell::Invalid);
        // Fillers: every cell holds the LSN one lap before the first that
        // will land there.
        let image = ring.fillers(1000);
        for (p, cell) in image.chunks_exact(CELL).enumerate() {
            let Cell::Valid { lsn, index, .. } = parse_cell(cell, &ring) else {
                panic!("filler {p} invalid")
            };
            assert_eq!(index, FILLER);
            assert_eq!(ring.offset(lsn + ring.cells()), 2048 + (p * CELL) as u64);
            assert!((1000 - ring.cells()..1000).contains(&lsn), "{lsn}");
        }
    }

    #[test]
    fn malformed_records_are_errors() {
        let payload = commit_payload(1, [Op::Put(b"k", b"v", None)].into_iter(), 0);
        let head = RecordHead::parse(&payload).unwrap();
        let lying = RecordHead { arg: 1 << 40, ..head };
        assert!(commit_ops(&payload, &lying).is_err());
        let short = RecordHead {
            len: head.len - 1,
            ..head
        };
        assert!(commit_ops(&payload, &short).is_err());
        let mut bad_tag = payload.clone();
        bad_tag[RECORD_HDR] = 9;
        assert!(commit_ops(&bad_tag, &head).is_err());
    }
}
