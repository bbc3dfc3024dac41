//! On-disk format: constants, record codecs and bounds-checked page views.
//! See FORMAT.md for the authoritative description.

use crate::prelude::*;
use crate::{MAX_KEY_LEN, MAX_VALUE_LEN};

/// File magic (PNG-style: high bit, CR LF, ^Z catch text-mode mangling).
pub(crate) const MAGIC: [u8; 8] = *b"\x89KVFS\r\n\x1a";
/// Major format version written by this build. A reader refuses a higher
/// one, and versions 1 (no log) and 2 (no expiries) with a message saying
/// how to convert them.
pub(crate) const FORMAT_VERSION: u32 = 3;
/// Feature bits this build understands (none defined yet).
pub(crate) const KNOWN_INCOMPAT: u64 = 0;
pub(crate) const KNOWN_RO_COMPAT: u64 = 0;

pub(crate) const HEADER_LEN: usize = 64;
pub(crate) const PAGE_HDR: usize = 24;
/// A checkpoint record (FORMAT.md §4).
pub(crate) const CKPT_LEN: usize = 192;
/// Page 1 holds the two checkpoint slots, 512 bytes apart (each in a
/// sector of its own).
pub(crate) const CHECKPOINT_PAGE: u32 = 1;
pub(crate) const SLOT_STRIDE: usize = 512;
/// Bytes read to see both slots at once.
pub(crate) const SLOTS_LEN: usize = SLOT_STRIDE + CKPT_LEN;
/// The log ring of a new file starts here (FORMAT.md §5).
pub(crate) const FIRST_RING_PAGE: u32 = 2;
/// A log cell (FORMAT.md §5): the unit of the log ring.
pub(crate) const CELL: usize = 256;
/// The smallest ring accepted.
pub(crate) const MIN_RING_CELLS: u64 = 16;
pub(crate) const PTR_LEN: usize = 16;
pub(crate) const EXT_PTR_LEN: usize = 20;
pub(crate) const EXT_HDR: usize = 24;
pub(crate) const LIST_HDR: usize = PAGE_HDR + PTR_LEN;
pub(crate) const LOCK_LEN: usize = 64;
pub(crate) const MAX_DEPTH: u16 = 40;
/// The smallest page size a file may have.
pub const MIN_PAGE: u32 = 1024;
/// The largest page size a file may have.
pub const MAX_PAGE: u32 = 65536;

pub(crate) const T_CHECKPOINT: u8 = 2;
pub(crate) const T_LEAF: u8 = 3;
pub(crate) const T_BRANCH: u8 = 4;
pub(crate) const T_EXTENT: u8 = 5;
pub(crate) const T_LIST: u8 = 6;

pub(crate) const TREE_KEYS: u8 = 0;
pub(crate) const TREE_FREE: u8 = 1;

pub(crate) const KIND_VALUE: u8 = 0;
pub(crate) const KIND_KEY: u8 = 1;

pub(crate) const F_KEY_OUT: u8 = 1;
pub(crate) const F_VAL_OUT: u8 = 2;
/// Leaf entry flag (format 3): the entry ends with its expiry, a u64.
pub(crate) const F_EXPIRES: u8 = 4;
const LEAF_FLAGS: u8 = F_KEY_OUT | F_VAL_OUT | F_EXPIRES;

#[cfg(feature = "std")]
std::thread_local! {
    static VERIFY_CHECKSUMS: core::cell::Cell<bool> = const { core::cell::Cell::new(true) };
}

/// Without `std` there are no thread-locals: the switch is process-wide.
#[cfg(not(feature = "std"))]
static VERIFY_CHECKSUMS: core::sync::atomic::AtomicBool = core::sync::atomic::AtomicBool::new(true);

/// Whether checksums are enforced. They always are, except under
/// `cfg(fuzzing)` (so a fuzzer can reach the parsers) and in tests that
/// switch them off explicitly to exercise the structural validation.
pub(crate) fn checksums_enabled() -> bool {
    !cfg!(fuzzing) && verify_checksums()
}

#[cfg(feature = "std")]
fn verify_checksums() -> bool {
    VERIFY_CHECKSUMS.with(|c| c.get())
}

#[cfg(not(feature = "std"))]
fn verify_checksums() -> bool {
    VERIFY_CHECKSUMS.load(core::sync::atomic::Ordering::Relaxed)
}

pub(crate) fn set_checksums_enabled(on: bool) {
    #[cfg(feature = "std")]
    VERIFY_CHECKSUMS.with(|c| c.set(on));
    #[cfg(not(feature = "std"))]
    VERIFY_CHECKSUMS.store(on, core::sync::atomic::Ordering::Relaxed);
}

// ---------------------------------------------------------------- bytes

pub(crate) fn rd_u16(b: &[u8], o: usize) -> Option<u16> {
    Some(u16::from_le_bytes(b.get(o..o.checked_add(2)?)?.try_into().ok()?))
}
pub(crate) fn rd_u32(b: &[u8], o: usize) -> Option<u32> {
    Some(u32::from_le_bytes(b.get(o..o.checked_add(4)?)?.try_into().ok()?))
}
pub(crate) fn rd_u64(b: &[u8], o: usize) -> Option<u64> {
    Some(u64::from_le_bytes(b.get(o..o.checked_add(8)?)?.try_into().ok()?))
}
pub(crate) fn wr_u16(b: &mut [u8], o: usize, v: u16) {
    b[o..o + 2].copy_from_slice(&v.to_le_bytes());
}
pub(crate) fn wr_u32(b: &mut [u8], o: usize, v: u32) {
    b[o..o + 4].copy_from_slice(&v.to_le_bytes());
}
pub(crate) fn wr_u64(b: &mut [u8], o: usize, v: u64) {
    b[o..o + 8].copy_from_slice(&v.to_le_bytes());
}

/// crc32c over the page number followed by `bytes` (everything after the
/// stored checksum). Including the page number catches misdirected writes.
pub(crate) fn crc_with_page(page: u32, bytes: &[u8]) -> u32 {
    let c = crate::crc::crc32c(&u64::from(page).to_le_bytes());
    crate::crc::crc32c_append(c, bytes)
}

/// Computes and stores the checksum of a full page; returns it.
pub(crate) fn seal_page(page: u32, buf: &mut [u8]) -> u32 {
    let crc = crc_with_page(page, &buf[4..]);
    wr_u32(buf, 0, crc);
    crc
}

// ---------------------------------------------------------------- pointers

/// Pointer to a tree/list page: page number plus the sequence and checksum
/// the page must carry (Merkle-style: a recycled or torn page never matches).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub(crate) struct PagePtr {
    pub page: u32,
    pub seq: u64,
    pub crc: u32,
}

impl PagePtr {
    pub fn read(b: &[u8], o: usize) -> Option<PagePtr> {
        Some(PagePtr {
            page: rd_u32(b, o)?,
            seq: rd_u64(b, o + 4)?,
            crc: rd_u32(b, o + 12)?,
        })
    }
    pub fn write(&self, b: &mut [u8], o: usize) {
        wr_u32(b, o, self.page);
        wr_u64(b, o + 4, self.seq);
        wr_u32(b, o + 12, self.crc);
    }
}

/// Pointer to an extent (run of contiguous pages holding one large value or key).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct ExtPtr {
    pub page: u32,
    pub pages: u32,
    pub seq: u64,
    pub crc: u32,
}

impl ExtPtr {
    pub fn read(b: &[u8], o: usize) -> Option<ExtPtr> {
        Some(ExtPtr {
            page: rd_u32(b, o)?,
            pages: rd_u32(b, o + 4)?,
            seq: rd_u64(b, o + 8)?,
            crc: rd_u32(b, o + 16)?,
        })
    }
    pub fn write(&self, b: &mut [u8], o: usize) {
        wr_u32(b, o, self.page);
        wr_u32(b, o + 4, self.pages);
        wr_u64(b, o + 8, self.seq);
        wr_u32(b, o + 16, self.crc);
    }
}

// ---------------------------------------------------------------- geometry

/// Size of a value as stored in a leaf entry.
#[derive(Clone, Copy)]
pub(crate) enum ValSize {
    Inline(usize),
    Outline,
}

/// Page-size dependent limits.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Geo {
    pub page: usize,
    /// Largest encoded entry (leaf or branch), excluding its 2-byte slot.
    /// A quarter of the usable space, so any split yields two fitting halves.
    pub max_entry: usize,
    /// Longest key stored inline.
    pub kmax: usize,
    /// Bytes of a long (out-of-line) key kept inline as a prefix.
    pub kprefix: usize,
}

impl Geo {
    pub fn new(page_size: u32) -> Geo {
        let page = page_size as usize;
        let max_entry = (page - PAGE_HDR - PTR_LEN) / 4 - 2;
        Geo {
            page,
            max_entry,
            kmax: max_entry - 35,
            kprefix: max_entry - 59,
        }
    }
    pub fn key_part(&self, klen: usize) -> usize {
        if klen <= self.kmax {
            2 + klen
        } else {
            2 + 4 + EXT_PTR_LEN + self.kprefix
        }
    }
    /// An expiring entry takes 8 bytes more (its expiry). It may then
    /// exceed `max_entry` by those 8 bytes (an inline key of `kmax` bytes
    /// with an out-of-line value): a node still splits into two halves
    /// that fit, since `max_entry` is a quarter of the page.
    pub fn leaf_entry_size(&self, klen: usize, v: ValSize, expires: bool) -> usize {
        1 + 8
            + self.key_part(klen)
            + match v {
                ValSize::Inline(n) => 2 + n,
                ValSize::Outline => 4 + EXT_PTR_LEN,
            }
            + if expires { 8 } else { 0 }
    }
    pub fn branch_entry_size(&self, klen: usize) -> usize {
        1 + self.key_part(klen) + PTR_LEN
    }
    pub fn value_inline_ok(&self, klen: usize, vlen: usize, expires: bool) -> bool {
        self.leaf_entry_size(klen, ValSize::Inline(vlen), expires) <= self.max_entry
    }
    pub fn extent_pages(&self, len: u64) -> u64 {
        (EXT_HDR as u64 + len).div_ceil(self.page as u64)
    }
    pub fn list_cap(&self) -> usize {
        (self.page - LIST_HDR) / 8
    }
    pub fn underflow(&self) -> usize {
        self.page / 4
    }
}

pub(crate) fn valid_page_size(p: u32) -> bool {
    p.is_power_of_two() && (MIN_PAGE..=MAX_PAGE).contains(&p)
}

// ---------------------------------------------------------------- header

#[derive(Clone, Debug)]
pub(crate) struct Header {
    pub version: u32,
    pub page_size: u32,
    pub incompat: u64,
    pub ro_compat: u64,
    pub compat: u64,
    pub file_id: u64,
    pub created_millis: u64,
}

pub(crate) enum HeaderError {
    NotAStore(String),
    Corrupt(String),
    Unsupported(String),
}

impl Header {
    pub fn encode(&self) -> [u8; HEADER_LEN] {
        let mut b = [0u8; HEADER_LEN];
        b[0..8].copy_from_slice(&MAGIC);
        wr_u32(&mut b, 8, self.version);
        wr_u32(&mut b, 12, self.page_size);
        wr_u64(&mut b, 16, self.incompat);
        wr_u64(&mut b, 24, self.ro_compat);
        wr_u64(&mut b, 32, self.compat);
        wr_u64(&mut b, 40, self.file_id);
        wr_u64(&mut b, 48, self.created_millis);
        let crc = crate::crc::crc32c(&b[..60]);
        wr_u32(&mut b, 60, crc);
        b
    }

    /// Decodes a header of format version `want` (this build's, or an
    /// older one for the upgrade tool).
    pub fn decode_version(b: &[u8], want: u32) -> Result<Header, HeaderError> {
        let n = b.len().min(MAGIC.len());
        if b.get(..n) != MAGIC.get(..n) || n == 0 {
            return Err(HeaderError::NotAStore("bad magic number in file header".into()));
        }
        if b.len() < HEADER_LEN {
            return Err(HeaderError::Corrupt(format!(
                "file header truncated ({} of {HEADER_LEN} bytes)",
                b.len()
            )));
        }
        if b.get(0..8) != Some(&MAGIC[..]) {
            return Err(HeaderError::NotAStore("bad magic number in file header".into()));
        }
        let crc = rd_u32(b, 60).unwrap_or(0);
        if checksums_enabled() && crc != crate::crc::crc32c(&b[..60]) {
            return Err(HeaderError::Corrupt("file header checksum mismatch".into()));
        }
        let h = Header {
            version: rd_u32(b, 8).unwrap_or(0),
            page_size: rd_u32(b, 12).unwrap_or(0),
            incompat: rd_u64(b, 16).unwrap_or(0),
            ro_compat: rd_u64(b, 24).unwrap_or(0),
            compat: rd_u64(b, 32).unwrap_or(0),
            file_id: rd_u64(b, 40).unwrap_or(0),
            created_millis: rd_u64(b, 48).unwrap_or(0),
        };
        if h.version == 0 {
            return Err(HeaderError::Corrupt("format version 0 is invalid".into()));
        }
        if h.version < FORMAT_VERSION && h.version != want {
            let what = if h.version == 1 {
                "kv-fs before the commit log"
            } else {
                "kv-fs before expiring entries"
            };
            return Err(HeaderError::Unsupported(format!(
                "format version {} ({what}); convert it with `kv-virt fs upgrade <file>`",
                h.version
            )));
        }
        if h.version > FORMAT_VERSION {
            return Err(HeaderError::Unsupported(format!(
                "format version {} is newer than the {} this build understands",
                h.version, FORMAT_VERSION
            )));
        }
        if h.version != want {
            return Err(HeaderError::Unsupported(format!(
                "format version {}, not {want}",
                h.version
            )));
        }
        if h.incompat & !KNOWN_INCOMPAT != 0 {
            return Err(HeaderError::Unsupported(format!(
                "unknown incompatible feature bits {:#x}",
                h.incompat & !KNOWN_INCOMPAT
            )));
        }
        if !valid_page_size(h.page_size) {
            return Err(HeaderError::Corrupt(format!(
                "invalid page size {} in file header",
                h.page_size
            )));
        }
        Ok(h)
    }
}

// ---------------------------------------------------------------- checkpoint

/// Reference to a chained list of freed-page extents.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct ListRef {
    pub head: PagePtr,
    pub list_pages: u32,
    pub pages: u32,
}

/// The log ring: `pages` pages from `first_page` (FORMAT.md §5).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct RingRef {
    pub first_page: u32,
    pub pages: u32,
}

/// A checkpoint record (FORMAT.md §4): the B+tree and free space as of
/// commit `seq`, and where the log of the commits after it begins.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Checkpoint {
    /// Counts checkpoints; checkpoint `n` lives in slot `n % 2`.
    pub number: u64,
    /// The newest commit the tree includes (and the version of the pages
    /// this checkpoint wrote).
    pub seq: u64,
    pub page_size: u32,
    pub file_pages: u32,
    pub main_root: PagePtr,
    pub main_depth: u16,
    pub free_depth: u16,
    pub free_root: PagePtr,
    /// The pages this checkpoint stopped using: free from the next
    /// checkpoint on (FORMAT.md §7).
    pub freed: ListRef,
    pub key_count: u64,
    pub logical_bytes: u64,
    /// No entry of the tree expires before this (wall-clock ms; 0: none
    /// expires): a checkpoint sweeps the tree for expired entries only
    /// once it has passed (FORMAT.md §7).
    pub next_expiry: u64,
    pub free_pages: u64,
    pub writer_token: u64,
    pub commit_millis: u64,
    pub file_id: u64,
    /// Log sequence number (cell) of the first record after this checkpoint.
    pub log_start: u64,
    pub ring: RingRef,
}

impl Checkpoint {
    /// The slot this checkpoint is written to.
    pub fn slot(&self) -> usize {
        (self.number % 2) as usize
    }

    pub fn encode(&self) -> [u8; CKPT_LEN] {
        let mut b = [0u8; CKPT_LEN];
        b[4] = T_CHECKPOINT;
        wr_u64(&mut b, 8, self.number);
        wr_u64(&mut b, 16, self.seq);
        wr_u32(&mut b, 24, self.page_size);
        wr_u32(&mut b, 28, self.file_pages);
        self.main_root.write(&mut b, 32);
        wr_u16(&mut b, 48, self.main_depth);
        wr_u16(&mut b, 50, self.free_depth);
        self.free_root.write(&mut b, 56);
        self.freed.head.write(&mut b, 72);
        wr_u32(&mut b, 88, self.freed.list_pages);
        wr_u32(&mut b, 92, self.freed.pages);
        wr_u64(&mut b, 96, self.next_expiry);
        wr_u64(&mut b, 120, self.key_count);
        wr_u64(&mut b, 128, self.logical_bytes);
        wr_u64(&mut b, 136, self.free_pages);
        wr_u64(&mut b, 144, self.writer_token);
        wr_u64(&mut b, 152, self.commit_millis);
        wr_u64(&mut b, 160, self.file_id);
        wr_u64(&mut b, 168, self.log_start);
        wr_u32(&mut b, 176, self.ring.first_page);
        wr_u32(&mut b, 180, self.ring.pages);
        let crc = crc_with_page(slot_tag(self.slot()), &b[4..]);
        wr_u32(&mut b, 0, crc);
        b
    }

    /// Decodes and validates the record in `slot`; `None` if it is torn,
    /// empty or makes no sense.
    pub fn decode(b: &[u8], slot: usize, h: &Header) -> Option<Checkpoint> {
        let b = b.get(..CKPT_LEN)?;
        if b[4] != T_CHECKPOINT {
            return None;
        }
        if checksums_enabled() && rd_u32(b, 0)? != crc_with_page(slot_tag(slot), &b[4..]) {
            return None;
        }
        let c = Checkpoint {
            number: rd_u64(b, 8)?,
            seq: rd_u64(b, 16)?,
            page_size: rd_u32(b, 24)?,
            file_pages: rd_u32(b, 28)?,
            main_root: PagePtr::read(b, 32)?,
            main_depth: rd_u16(b, 48)?,
            free_depth: rd_u16(b, 50)?,
            free_root: PagePtr::read(b, 56)?,
            freed: ListRef {
                head: PagePtr::read(b, 72)?,
                list_pages: rd_u32(b, 88)?,
                pages: rd_u32(b, 92)?,
            },
            key_count: rd_u64(b, 120)?,
            logical_bytes: rd_u64(b, 128)?,
            next_expiry: rd_u64(b, 96)?,
            free_pages: rd_u64(b, 136)?,
            writer_token: rd_u64(b, 144)?,
            commit_millis: rd_u64(b, 152)?,
            file_id: rd_u64(b, 160)?,
            log_start: rd_u64(b, 168)?,
            ring: RingRef {
                first_page: rd_u32(b, 176)?,
                pages: rd_u32(b, 180)?,
            },
        };
        // Internal consistency: a record that passes its checksum but makes
        // no sense is treated as invalid too.
        let ring_end = u64::from(c.ring.first_page) + u64::from(c.ring.pages);
        // Counters far from overflowing: arithmetic on them never wraps.
        let sane = |x: u64| x < 1 << 62;
        let ok = c.page_size == h.page_size
            && c.file_id == h.file_id
            && sane(c.number)
            && sane(c.seq)
            && sane(c.log_start)
            && (c.number % 2) as usize == slot
            && c.ring.first_page >= FIRST_RING_PAGE
            && c.ring.pages > 0
            && ring_cells(c.ring, c.page_size) >= MIN_RING_CELLS
            && ring_end <= u64::from(c.file_pages)
            && c.main_depth <= MAX_DEPTH
            && c.free_depth <= MAX_DEPTH
            && ((c.main_depth == 0) == (c.main_root.page == 0))
            && ((c.free_depth == 0) == (c.free_root.page == 0))
            && ((c.freed.list_pages == 0) == (c.freed.head.page == 0));
        ok.then_some(c)
    }
}

/// Byte offset of checkpoint slot `slot` (both live in page 1, FORMAT.md §4).
pub(crate) fn slot_offset(page_size: u32, slot: usize) -> u64 {
    u64::from(page_size) * u64::from(CHECKPOINT_PAGE) + (slot * SLOT_STRIDE) as u64
}

/// What a slot's checksum folds in instead of a page number: the slot's
/// place (a record written into the wrong slot never validates).
fn slot_tag(slot: usize) -> u32 {
    CHECKPOINT_PAGE << 8 | slot as u32
}

/// Number of log cells in `ring`.
pub(crate) fn ring_cells(ring: RingRef, page_size: u32) -> u64 {
    u64::from(ring.pages) * u64::from(page_size) / CELL as u64
}

// ---------------------------------------------------------------- lock record

/// Contents of a lock file (and of a stale-lock break marker).
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct LockRecord {
    pub token: u64,
    pub heartbeat: u64,
    pub acquired_millis: u64,
    pub expires_millis: u64,
    pub lease_millis: u64,
    pub kind: u32,
}

pub(crate) const LOCK_MAGIC: [u8; 8] = *b"KVFSLOCK";

impl LockRecord {
    /// A new record (heartbeat 0) taken at `now` for `lease` milliseconds.
    pub fn fresh(token: u64, now: u64, lease: u64, kind: u32) -> Self {
        LockRecord {
            token,
            heartbeat: 0,
            acquired_millis: now,
            expires_millis: now.saturating_add(lease),
            lease_millis: lease,
            kind,
        }
    }

    pub fn encode(&self) -> [u8; LOCK_LEN] {
        let mut b = [0u8; LOCK_LEN];
        b[0..8].copy_from_slice(&LOCK_MAGIC);
        wr_u32(&mut b, 8, 1);
        wr_u64(&mut b, 16, self.token);
        wr_u64(&mut b, 24, self.heartbeat);
        wr_u64(&mut b, 32, self.acquired_millis);
        wr_u64(&mut b, 40, self.expires_millis);
        wr_u64(&mut b, 48, self.lease_millis);
        wr_u32(&mut b, 56, self.kind);
        let crc = crate::crc::crc32c(&b[..60]);
        wr_u32(&mut b, 60, crc);
        b
    }
    pub fn decode(b: &[u8]) -> Option<LockRecord> {
        let b = b.get(..LOCK_LEN)?;
        if b[0..8] != LOCK_MAGIC || rd_u32(b, 8)? != 1 || rd_u32(b, 60)? != crate::crc::crc32c(&b[..60]) {
            return None;
        }
        Some(LockRecord {
            token: rd_u64(b, 16)?,
            heartbeat: rd_u64(b, 24)?,
            acquired_millis: rd_u64(b, 32)?,
            expires_millis: rd_u64(b, 40)?,
            lease_millis: rd_u64(b, 48)?,
            kind: rd_u32(b, 56)?,
        })
    }
}

// ---------------------------------------------------------------- page views

/// Reason a page failed structural validation.
pub(crate) type Bad = String;

/// Common page header.
#[derive(Clone, Copy, Debug)]
pub(crate) struct PageHdr {
    pub ptype: u8,
    pub tree: u8,
    pub level: u16,
    pub seq: u64,
    pub count: usize,
}

pub(crate) fn write_page_hdr(b: &mut [u8], h: &PageHdr) {
    b[4] = h.ptype;
    b[5] = h.tree;
    wr_u16(b, 6, h.level);
    wr_u64(b, 8, h.seq);
    wr_u16(b, 16, h.count as u16);
}

pub(crate) fn read_page_hdr(b: &[u8]) -> Result<PageHdr, Bad> {
    let bad = || "page header truncated".to_string();
    Ok(PageHdr {
        ptype: *b.get(4).ok_or_else(bad)?,
        tree: *b.get(5).ok_or_else(bad)?,
        level: rd_u16(b, 6).ok_or_else(bad)?,
        seq: rd_u64(b, 8).ok_or_else(bad)?,
        count: rd_u16(b, 16).ok_or_else(bad)? as usize,
    })
}

/// A key as stored in a page.
#[derive(Clone, Copy, Debug)]
pub(crate) struct KeyRef<'a> {
    /// The whole key (inline) or its prefix (out of line).
    pub inline: &'a [u8],
    /// For out-of-line keys: full length and extent.
    pub outline: Option<(u32, ExtPtr)>,
}

/// A value as stored in a leaf entry.
#[derive(Clone, Copy, Debug)]
pub(crate) enum ValRef<'a> {
    Inline(&'a [u8]),
    Outline(u32, ExtPtr),
}

/// A parsed leaf entry.
#[derive(Clone, Copy, Debug)]
pub(crate) struct LeafRef<'a> {
    pub version: u64,
    /// When the entry expires (wall-clock ms), if it does.
    pub expires: Option<u64>,
    pub key: KeyRef<'a>,
    pub val: ValRef<'a>,
}

/// Bounds-checked read-only view of a B+tree node page.
pub(crate) struct NodeView<'a> {
    pub b: &'a [u8],
    pub hdr: PageHdr,
    pub geo: Geo,
}

impl<'a> NodeView<'a> {
    pub fn new(b: &'a [u8], geo: Geo) -> Result<NodeView<'a>, Bad> {
        let hdr = read_page_hdr(b)?;
        if hdr.ptype != T_LEAF && hdr.ptype != T_BRANCH {
            return Err(format!("page type {} is not a tree node", hdr.ptype));
        }
        if (hdr.ptype == T_LEAF) != (hdr.level == 0) {
            return Err(format!(
                "page type {} inconsistent with level {}",
                hdr.ptype, hdr.level
            ));
        }
        let v = NodeView { b, hdr, geo };
        if v.slots_end() > b.len() {
            return Err(format!("entry count {} does not fit in the page", hdr.count));
        }
        Ok(v)
    }
    pub fn is_leaf(&self) -> bool {
        self.hdr.ptype == T_LEAF
    }
    fn slots_start(&self) -> usize {
        if self.is_leaf() {
            PAGE_HDR
        } else {
            PAGE_HDR + PTR_LEN
        }
    }
    fn slots_end(&self) -> usize {
        self.slots_start() + 2 * self.hdr.count
    }
    fn entry_off(&self, i: usize) -> Result<usize, Bad> {
        if i >= self.hdr.count {
            return Err(format!("entry index {i} out of range"));
        }
        let off = rd_u16(self.b, self.slots_start() + 2 * i)
            .ok_or_else(|| "slot array truncated".to_string())? as usize;
        if off < self.slots_end() || off >= self.b.len() {
            return Err(format!("entry {i} offset {off} outside the entry area"));
        }
        Ok(off)
    }

    fn key_at(&self, o: usize, flags: u8) -> Result<(KeyRef<'a>, usize), Bad> {
        let b = self.b;
        let kil = rd_u16(b, o).ok_or("key length truncated")? as usize;
        let mut o = o + 2;
        let outline = if flags & F_KEY_OUT != 0 {
            let full = rd_u32(b, o).ok_or("key length truncated")?;
            let ext = ExtPtr::read(b, o + 4).ok_or("key extent pointer truncated")?;
            o += 4 + EXT_PTR_LEN;
            if full as usize > MAX_KEY_LEN || full as usize <= kil || kil != self.geo.kprefix {
                return Err(format!("bad out-of-line key length {full} (prefix {kil})"));
            }
            Some((full, ext))
        } else {
            if kil > self.geo.kmax {
                return Err(format!("inline key length {kil} exceeds the limit"));
            }
            None
        };
        let inline = b.get(o..o + kil).ok_or("key bytes run past the page end")?;
        Ok((KeyRef { inline, outline }, o + kil))
    }

    pub fn leaf_entry(&self, i: usize) -> Result<LeafRef<'a>, Bad> {
        let o = self.entry_off(i)?;
        let b = self.b;
        let flags = *b.get(o).ok_or("entry truncated")?;
        if flags & !LEAF_FLAGS != 0 {
            return Err(format!("entry {i} has unknown flags {flags:#x}"));
        }
        let version = rd_u64(b, o + 1).ok_or("entry truncated")?;
        let (key, o) = self.key_at(o + 9, flags)?;
        let (val, o) = if flags & F_VAL_OUT != 0 {
            let len = rd_u32(b, o).ok_or("value length truncated")?;
            let ext = ExtPtr::read(b, o + 4).ok_or("value extent pointer truncated")?;
            if len as usize > MAX_VALUE_LEN {
                return Err(format!("value length {len} exceeds the limit"));
            }
            (ValRef::Outline(len, ext), o + 4 + EXT_PTR_LEN)
        } else {
            let len = rd_u16(b, o).ok_or("value length truncated")? as usize;
            let v = b
                .get(o + 2..o + 2 + len)
                .ok_or("value bytes run past the page end")?;
            (ValRef::Inline(v), o + 2 + len)
        };
        let expires = if flags & F_EXPIRES != 0 {
            Some(rd_u64(b, o).ok_or("expiry runs past the page end")?)
        } else {
            None
        };
        Ok(LeafRef {
            version,
            expires,
            key,
            val,
        })
    }

    /// Key `i` of a leaf or a branch, without decoding the rest of the
    /// entry (the binary search of a lookup reads only keys).
    pub fn key(&self, i: usize) -> Result<KeyRef<'a>, Bad> {
        if !self.is_leaf() {
            return self.branch_key(i);
        }
        let o = self.entry_off(i)?;
        let flags = *self.b.get(o).ok_or("entry truncated")?;
        if flags & !LEAF_FLAGS != 0 {
            return Err(format!("entry {i} has unknown flags {flags:#x}"));
        }
        Ok(self.key_at(o + 9, flags)?.0)
    }

    /// Key `i` if it is stored whole in the page, else `None`: the fast
    /// path of a lookup's binary search. It reads only the offset, flags
    /// and length it needs; a cached page was checked whole by
    /// [`NodeView::validate`] when it was read, and anything else (an
    /// out-of-line key, a malformed entry) is left to [`NodeView::key`].
    pub fn inline_key(&self, i: usize) -> Option<&'a [u8]> {
        if i >= self.hdr.count {
            return None;
        }
        let off = usize::from(rd_u16(self.b, self.slots_start() + 2 * i)?);
        let flags = *self.b.get(off)?;
        if flags & F_KEY_OUT != 0 {
            return None;
        }
        let at = off + if self.is_leaf() { 9 } else { 1 };
        let len = usize::from(rd_u16(self.b, at)?);
        self.b.get(at + 2..at + 2 + len)
    }

    pub fn branch_key(&self, i: usize) -> Result<KeyRef<'a>, Bad> {
        let o = self.entry_off(i)?;
        let flags = *self.b.get(o).ok_or("entry truncated")?;
        if flags & !F_KEY_OUT != 0 {
            return Err(format!("separator {i} has unknown flags {flags:#x}"));
        }
        Ok(self.key_at(o + 1, flags)?.0)
    }

    /// Child `i` of a branch, `0..=count`.
    pub fn child(&self, i: usize) -> Result<PagePtr, Bad> {
        let o = if i == 0 {
            PAGE_HDR
        } else {
            let o = self.entry_off(i - 1)?;
            let flags = *self.b.get(o).ok_or("entry truncated")?;
            self.key_at(o + 1, flags)?.1
        };
        PagePtr::read(self.b, o).ok_or_else(|| "child pointer truncated".to_string())
    }

    /// Full structural validation (run once when a page enters the cache).
    pub fn validate(&self) -> Result<(), Bad> {
        if self.is_leaf() {
            if self.hdr.count == 0 {
                return Err("empty leaf (an empty tree has no root page)".into());
            }
            for i in 0..self.hdr.count {
                self.leaf_entry(i)?;
            }
        } else {
            for i in 0..=self.hdr.count {
                self.child(i)?;
            }
        }
        Ok(())
    }
}

/// Extent header helpers.
pub(crate) fn encode_ext_hdr(
    first_page: u32,
    kind: u8,
    seq: u64,
    len: u32,
    pages: u32,
    data: &[u8],
) -> ([u8; EXT_HDR], u32) {
    let mut h = [0u8; EXT_HDR];
    h[4] = T_EXTENT;
    h[5] = kind;
    wr_u64(&mut h, 8, seq);
    wr_u32(&mut h, 16, len);
    wr_u32(&mut h, 20, pages);
    let crc = crate::crc::crc32c_append(crc_with_page(first_page, &h[4..]), data);
    wr_u32(&mut h, 0, crc);
    (h, crc)
}
