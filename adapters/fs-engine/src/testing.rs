//! In-memory, fault-injecting [`Dir`] for tests (this crate's and others').
//!
//! [`MemDir`] models a POSIX-like file system with a page cache:
//!
//! * every file has *volatile* contents (what reads see) and *durable*
//!   contents (what survives a power cut); `sync` copies one to the other;
//! * every unsynced write / set-len is logged; [`MemDir::crash_image`]
//!   builds the file system as it could look after a power cut: it keeps a
//!   random subset of the unsynced operations (in any order: each one
//!   independently, or a prefix), and tears the last kept write (only a
//!   random subset of its 512-byte sectors lands);
//! * directory operations (create, link, rename, remove) are likewise
//!   durable only after `sync_dir`; a crash keeps a random prefix of them;
//! * it can crash at the N-th mutating operation (that operation and every
//!   later one fail, as if the process died there) or fail one operation
//!   with an I/O error;
//! * it counts reads, writes and syncs, and can trace writes (or every
//!   mutating operation: the crash points);
//! * its clocks are virtual by default: `sleep_millis` advances them
//!   instantly, so lease expiry costs no real time (with `std`, use
//!   `MemDir::with_real_clock` for multi-threaded tests).
//!
//! Clones of a `MemDir` share one file system, like two instances opening
//! the same preopened directory. With `std` the file system sits behind a
//! mutex (`MemDir` is `Send + Sync`); without, behind a `RefCell` (for
//! single-threaded use).

use alloc::collections::BTreeMap;

use crate::io::{Dir, File, IoError, IoErrorKind, IoResult};
use crate::prelude::*;

#[cfg(feature = "std")]
type Shared = alloc::sync::Arc<std::sync::Mutex<MemFs>>;
#[cfg(not(feature = "std"))]
type Shared = alloc::rc::Rc<core::cell::RefCell<MemFs>>;

fn shared(fs: MemFs) -> Shared {
    Shared::new(fs.into())
}

#[cfg(feature = "std")]
fn lock(fs: &Shared) -> std::sync::MutexGuard<'_, MemFs> {
    fs.lock().unwrap_or_else(|p| p.into_inner())
}

#[cfg(not(feature = "std"))]
fn lock(fs: &Shared) -> core::cell::RefMut<'_, MemFs> {
    fs.borrow_mut()
}

/// Small deterministic PRNG (SplitMix64) for tests and fault injection.
#[derive(Clone, Debug)]
pub struct Rng(u64);

impl Rng {
    /// Seeded generator.
    pub fn new(seed: u64) -> Rng {
        Rng(seed ^ 0x9E37_79B9_7F4A_7C15)
    }
    /// Next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    /// Uniform in `0..n` (0 if `n == 0`).
    pub fn below(&mut self, n: u64) -> u64 {
        if n == 0 { 0 } else { self.next_u64() % n }
    }
    /// True with probability `num/den`.
    pub fn chance(&mut self, num: u64, den: u64) -> bool {
        self.below(den) < num
    }
    /// Random bytes.
    pub fn bytes(&mut self, n: usize) -> Vec<u8> {
        (0..n).map(|_| self.next_u64() as u8).collect()
    }
}

/// Operation counters.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Counters {
    /// `read_at` calls.
    pub reads: u64,
    /// Bytes returned by `read_at`.
    pub read_bytes: u64,
    /// `write_at` calls.
    pub writes: u64,
    /// Bytes written.
    pub write_bytes: u64,
    /// File `sync` calls.
    pub syncs: u64,
    /// `sync_dir` calls.
    pub dir_syncs: u64,
    /// `set_len` calls.
    pub set_lens: u64,
    /// `open` / `create_exclusive` calls.
    pub opens: u64,
}

/// One traced write.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WriteEvent {
    /// Name the file had when opened.
    pub file: String,
    /// Offset.
    pub offset: u64,
    /// Length.
    pub len: usize,
}

/// One mutating operation (a crash point), as traced by
/// [`MemDir::set_op_trace`]; file names are the names the files were
/// opened under.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum OpEvent {
    /// A file created (`open` with create, `create_exclusive`).
    Create(String),
    /// A hard link made, under this name.
    Link(String),
    /// A rename, to this name.
    Rename(String),
    /// A file removed.
    Remove(String),
    /// The directory synced.
    SyncDir,
    /// A write.
    Write {
        /// The file.
        file: String,
        /// Where.
        offset: u64,
        /// How many bytes.
        len: usize,
    },
    /// A file synced.
    Sync(String),
    /// A file's size set.
    SetLen(String),
}

#[derive(Clone)]
enum LogOp {
    Write(u64, Vec<u8>),
    SetLen(u64),
}

#[derive(Clone)]
enum DirOp {
    Link(String, u64),
    Unlink(String),
    Rename(String, String),
}

#[derive(Clone, Default)]
struct Inode {
    data: Vec<u8>,
    durable: Vec<u8>,
    log: Vec<LogOp>,
}

#[derive(Clone)]
struct MemFs {
    names: BTreeMap<String, u64>,
    durable_names: BTreeMap<String, u64>,
    dir_log: Vec<DirOp>,
    inodes: BTreeMap<u64, Inode>,
    next_ino: u64,
    wall: u64,
    mono: u64,
    real_clock: bool,
    counters: Counters,
    track: bool,
    op_index: u64,
    crash_at: Option<u64>,
    fail_at: Option<u64>,
    crashed: bool,
    trace: Option<Vec<WriteEvent>>,
    ops: Option<Vec<OpEvent>>,
    /// The length the next `len` of a file reports instead of its own.
    next_len: Option<u64>,
    rng: Rng,
}

fn crash_err() -> IoError {
    IoError::new(IoErrorKind::Other, "simulated crash: the process is dead".into())
}

impl MemFs {
    fn new(track: bool) -> MemFs {
        MemFs {
            names: BTreeMap::new(),
            durable_names: BTreeMap::new(),
            dir_log: Vec::new(),
            inodes: BTreeMap::new(),
            next_ino: 1,
            wall: 1_700_000_000_000,
            mono: 1_000_000,
            real_clock: false,
            counters: Counters::default(),
            track,
            op_index: 0,
            crash_at: None,
            fail_at: None,
            next_len: None,
            crashed: false,
            trace: None,
            ops: None,
            rng: Rng::new(0x5eed),
        }
    }

    /// Accounts for one mutating operation (a potential crash point),
    /// described by `what` if operations are being traced.
    fn tick(&mut self, what: impl FnOnce() -> OpEvent) -> IoResult<()> {
        if self.crashed {
            return Err(crash_err());
        }
        let i = self.op_index;
        self.op_index += 1;
        if let Some(ops) = self.ops.as_mut() {
            ops.push(what());
        }
        if self.crash_at == Some(i) {
            self.crashed = true;
            return Err(crash_err());
        }
        if self.fail_at == Some(i) {
            return Err(IoError::new(
                IoErrorKind::Other,
                format!("injected I/O error at operation {i}"),
            ));
        }
        Ok(())
    }

    fn alive(&self) -> IoResult<()> {
        if self.crashed { Err(crash_err()) } else { Ok(()) }
    }

    fn dir_op(&mut self, op: DirOp) {
        if self.track {
            self.dir_log.push(op);
        } else {
            apply_dir(&mut self.durable_names, &op);
        }
    }

    fn new_inode(&mut self) -> u64 {
        let ino = self.next_ino;
        self.next_ino += 1;
        self.inodes.insert(ino, Inode::default());
        ino
    }
}

fn apply_dir(names: &mut BTreeMap<String, u64>, op: &DirOp) {
    match op {
        DirOp::Link(n, ino) => {
            names.insert(n.clone(), *ino);
        }
        DirOp::Unlink(n) => {
            names.remove(n);
        }
        DirOp::Rename(a, b) => {
            if let Some(ino) = names.remove(a) {
                names.insert(b.clone(), ino);
            }
        }
    }
}

fn apply_write(data: &mut Vec<u8>, off: u64, buf: &[u8]) {
    let off = off as usize;
    if data.len() < off + buf.len() {
        data.resize(off + buf.len(), 0);
    }
    data[off..off + buf.len()].copy_from_slice(buf);
}

/// In-memory directory; see the module docs.
#[derive(Clone)]
pub struct MemDir {
    fs: Shared,
}

/// A file of a [`MemDir`] (refers to the inode, like an open descriptor).
pub struct MemFile {
    fs: Shared,
    ino: u64,
    name: String,
}

impl Default for MemDir {
    fn default() -> Self {
        MemDir::new()
    }
}

impl MemDir {
    /// Empty directory that tracks crash state (unsynced writes are logged).
    pub fn new() -> MemDir {
        MemDir {
            fs: shared(MemFs::new(true)),
        }
    }

    /// Empty directory that does not log unsynced writes: faster and
    /// leaner, for tests that never call [`MemDir::crash_image`].
    pub fn new_untracked() -> MemDir {
        MemDir {
            fs: shared(MemFs::new(false)),
        }
    }

    /// Uses the real clocks and real sleeps (for multi-threaded tests).
    #[cfg(feature = "std")]
    pub fn with_real_clock(self) -> MemDir {
        self.lock().real_clock = true;
        self
    }

    fn lock(&self) -> impl core::ops::DerefMut<Target = MemFs> + '_ {
        lock(&self.fs)
    }

    /// Counters since creation / the last reset.
    pub fn counters(&self) -> Counters {
        self.lock().counters.clone()
    }

    /// Resets the counters.
    pub fn reset_counters(&self) {
        self.lock().counters = Counters::default();
    }

    /// Number of mutating operations (writes, syncs, set-len, directory
    /// operations) performed so far: the crash-point index space.
    pub fn op_count(&self) -> u64 {
        self.lock().op_index
    }

    /// Crash when mutating operation number `n` (0-based) is attempted.
    pub fn set_crash_at(&self, n: Option<u64>) {
        self.lock().crash_at = n;
    }

    /// Makes the next `len` of any file report `len` instead of its own
    /// (once): a length measured before another instance grew the file.
    pub fn report_len_once(&self, len: u64) {
        self.lock().next_len = Some(len);
    }

    /// Fail mutating operation number `n` with an I/O error (once).
    pub fn set_fail_at(&self, n: Option<u64>) {
        self.lock().fail_at = n;
    }

    /// Whether the simulated crash happened.
    pub fn crashed(&self) -> bool {
        self.lock().crashed
    }

    /// Starts (or stops) tracing writes.
    pub fn set_trace(&self, on: bool) {
        self.lock().trace = on.then(Vec::new);
    }

    /// Starts (or stops) tracing every mutating operation, in order: the
    /// crash point `n` of [`MemDir::set_crash_at`] is the `n`-th.
    pub fn set_op_trace(&self, on: bool) {
        self.lock().ops = on.then(Vec::new);
    }

    /// Takes the traced operations.
    pub fn take_op_trace(&self) -> Vec<OpEvent> {
        self.lock().ops.as_mut().map(core::mem::take).unwrap_or_default()
    }

    /// Takes the traced writes.
    pub fn take_trace(&self) -> Vec<WriteEvent> {
        self.lock()
            .trace
            .as_mut()
            .map(core::mem::take)
            .unwrap_or_default()
    }

    /// Advances the virtual clocks.
    pub fn advance_clock(&self, ms: u64) {
        let mut fs = self.lock();
        fs.wall += ms;
        fs.mono += ms;
    }

    /// Current (volatile) contents of a file.
    pub fn file_bytes(&self, name: &str) -> Option<Vec<u8>> {
        let fs = self.lock();
        let ino = fs.names.get(name)?;
        fs.inodes.get(ino).map(|i| i.data.clone())
    }

    /// Creates or replaces a file with `bytes` (durably).
    pub fn put_file(&self, name: &str, bytes: &[u8]) {
        let mut fs = self.lock();
        let ino = fs.new_inode();
        if let Some(i) = fs.inodes.get_mut(&ino) {
            i.data = bytes.to_vec();
            i.durable = bytes.to_vec();
        }
        fs.names.insert(name.to_string(), ino);
        fs.durable_names.insert(name.to_string(), ino);
    }

    /// Names in the directory.
    pub fn list(&self) -> Vec<String> {
        self.lock().names.keys().cloned().collect()
    }

    /// A copy of the current state, as another process would see it right
    /// after this one died (process crash without power loss: all written
    /// data survives). The copy is independent, not crashed, counters reset.
    pub fn process_crash_image(&self) -> MemDir {
        let fs = self.lock();
        let mut n = fs.clone();
        n.crashed = false;
        n.crash_at = None;
        n.fail_at = None;
        n.counters = Counters::default();
        n.op_index = 0;
        n.trace = None;
        n.ops = None;
        MemDir { fs: shared(n) }
    }

    /// The file system as it could be after a power cut now (see module
    /// docs); `seed` picks which unsynced operations survive.
    pub fn crash_image(&self, seed: u64) -> MemDir {
        let fs = self.lock();
        let mut rng = Rng::new(seed);
        let mut names = fs.durable_names.clone();
        let keep_dir = rng.below(fs.dir_log.len() as u64 + 1) as usize;
        for op in &fs.dir_log[..keep_dir] {
            apply_dir(&mut names, op);
        }
        let mut inodes = BTreeMap::new();
        for &ino in names.values() {
            if inodes.contains_key(&ino) {
                continue;
            }
            let Some(src) = fs.inodes.get(&ino) else { continue };
            let mut data = src.durable.clone();
            let n = src.log.len();
            let mode = rng.below(4);
            let prefix = rng.below(n as u64 + 1) as usize;
            let kept: Vec<usize> = (0..n)
                .filter(|&i| match mode {
                    0 => false,
                    1 => true,
                    2 => rng.chance(1, 2),
                    _ => i < prefix,
                })
                .collect();
            let tear = rng.chance(1, 2);
            for (k, &i) in kept.iter().enumerate() {
                match &src.log[i] {
                    LogOp::SetLen(l) => data.resize(*l as usize, 0),
                    LogOp::Write(off, buf) => {
                        if tear && k + 1 == kept.len() {
                            // Torn write: a random subset of its sectors lands.
                            let sectors = buf.len().div_ceil(512);
                            let prefix_only = rng.chance(1, 2);
                            let cut = rng.below(sectors as u64 + 1) as usize;
                            for s in 0..sectors {
                                let lands = if prefix_only { s < cut } else { rng.chance(1, 2) };
                                if lands {
                                    let a = s * 512;
                                    let b = (a + 512).min(buf.len());
                                    apply_write(&mut data, off + a as u64, &buf[a..b]);
                                }
                            }
                        } else {
                            apply_write(&mut data, *off, buf);
                        }
                    }
                }
            }
            inodes.insert(
                ino,
                Inode {
                    durable: data.clone(),
                    data,
                    log: Vec::new(),
                },
            );
        }
        let mut n = MemFs::new(fs.track);
        n.durable_names = names.clone();
        n.names = names;
        n.inodes = inodes;
        n.next_ino = fs.next_ino;
        n.wall = fs.wall + 1_000;
        n.mono = fs.mono + 1_000;
        n.real_clock = fs.real_clock;
        n.rng = Rng::new(seed ^ 0xabcdef);
        MemDir { fs: shared(n) }
    }

    fn file(&self, ino: u64, name: &str) -> MemFile {
        MemFile {
            fs: self.fs.clone(),
            ino,
            name: name.to_string(),
        }
    }
}

#[cfg(feature = "std")]
fn real_wall() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

#[cfg(feature = "std")]
fn real_mono() -> u64 {
    use std::sync::OnceLock;
    static BASE: OnceLock<std::time::Instant> = OnceLock::new();
    BASE.get_or_init(std::time::Instant::now).elapsed().as_millis() as u64 + 1_000_000
}

impl Dir for MemDir {
    type File = MemFile;

    fn open(&self, name: &str, create: bool) -> IoResult<Option<MemFile>> {
        let mut fs = self.lock();
        fs.alive()?;
        fs.counters.opens += 1;
        if let Some(&ino) = fs.names.get(name) {
            return Ok(Some(self.file(ino, name)));
        }
        if !create {
            return Ok(None);
        }
        fs.tick(|| OpEvent::Create(name.to_string()))?;
        let ino = fs.new_inode();
        fs.names.insert(name.to_string(), ino);
        fs.dir_op(DirOp::Link(name.to_string(), ino));
        Ok(Some(self.file(ino, name)))
    }

    fn create_exclusive(&self, name: &str) -> IoResult<Option<MemFile>> {
        let mut fs = self.lock();
        fs.alive()?;
        fs.counters.opens += 1;
        if fs.names.contains_key(name) {
            return Ok(None);
        }
        fs.tick(|| OpEvent::Create(name.to_string()))?;
        let ino = fs.new_inode();
        fs.names.insert(name.to_string(), ino);
        fs.dir_op(DirOp::Link(name.to_string(), ino));
        Ok(Some(self.file(ino, name)))
    }

    fn link(&self, existing: &str, new_name: &str) -> IoResult<bool> {
        let mut fs = self.lock();
        fs.alive()?;
        let Some(&ino) = fs.names.get(existing) else {
            return Err(IoError::new(IoErrorKind::NotFound, "link source missing".into()));
        };
        if fs.names.contains_key(new_name) {
            return Ok(false);
        }
        fs.tick(|| OpEvent::Link(new_name.to_string()))?;
        fs.names.insert(new_name.to_string(), ino);
        fs.dir_op(DirOp::Link(new_name.to_string(), ino));
        Ok(true)
    }

    fn rename(&self, from: &str, to: &str) -> IoResult<()> {
        let mut fs = self.lock();
        fs.alive()?;
        if !fs.names.contains_key(from) {
            return Err(IoError::new(
                IoErrorKind::NotFound,
                "rename source missing".into(),
            ));
        }
        fs.tick(|| OpEvent::Rename(to.to_string()))?;
        if let Some(ino) = fs.names.remove(from) {
            fs.names.insert(to.to_string(), ino);
        }
        fs.dir_op(DirOp::Rename(from.to_string(), to.to_string()));
        Ok(())
    }

    fn remove(&self, name: &str) -> IoResult<bool> {
        let mut fs = self.lock();
        fs.alive()?;
        if !fs.names.contains_key(name) {
            return Ok(false);
        }
        fs.tick(|| OpEvent::Remove(name.to_string()))?;
        fs.names.remove(name);
        fs.dir_op(DirOp::Unlink(name.to_string()));
        Ok(true)
    }

    fn sync_dir(&self) -> IoResult<()> {
        let mut fs = self.lock();
        fs.tick(|| OpEvent::SyncDir)?;
        fs.counters.dir_syncs += 1;
        let log = core::mem::take(&mut fs.dir_log);
        for op in &log {
            apply_dir(&mut fs.durable_names, op);
        }
        Ok(())
    }

    fn now_millis(&self) -> u64 {
        let fs = self.lock();
        #[cfg(feature = "std")]
        if fs.real_clock {
            return real_wall();
        }
        fs.wall
    }

    fn monotonic_millis(&self) -> u64 {
        let fs = self.lock();
        #[cfg(feature = "std")]
        if fs.real_clock {
            return real_mono();
        }
        fs.mono
    }

    fn sleep_millis(&self, ms: u64) {
        let mut fs = self.lock();
        if !fs.real_clock {
            fs.wall += ms;
            fs.mono += ms;
            return;
        }
        drop(fs);
        #[cfg(feature = "std")]
        std::thread::sleep(std::time::Duration::from_millis(ms));
    }

    fn random_u64(&self) -> u64 {
        self.lock().rng.next_u64()
    }
}

impl File for MemFile {
    fn read_at(&self, buf: &mut [u8], offset: u64) -> IoResult<usize> {
        let mut fs = lock(&self.fs);
        fs.alive()?;
        let n = {
            let data = fs.inodes.get(&self.ino).map(|i| &i.data[..]).unwrap_or(&[]);
            let off = offset.min(data.len() as u64) as usize;
            let n = buf.len().min(data.len() - off);
            buf[..n].copy_from_slice(&data[off..off + n]);
            n
        };
        fs.counters.reads += 1;
        fs.counters.read_bytes += n as u64;
        Ok(n)
    }

    fn write_at(&self, buf: &[u8], offset: u64) -> IoResult<()> {
        let mut fs = lock(&self.fs);
        fs.tick(|| OpEvent::Write {
            file: self.name.clone(),
            offset,
            len: buf.len(),
        })?;
        fs.counters.writes += 1;
        fs.counters.write_bytes += buf.len() as u64;
        if let Some(t) = fs.trace.as_mut() {
            t.push(WriteEvent {
                file: self.name.clone(),
                offset,
                len: buf.len(),
            });
        }
        let track = fs.track;
        let inode = fs.inodes.entry(self.ino).or_default();
        apply_write(&mut inode.data, offset, buf);
        if track {
            inode.log.push(LogOp::Write(offset, buf.to_vec()));
        } else {
            apply_write(&mut inode.durable, offset, buf);
        }
        Ok(())
    }

    fn sync(&self) -> IoResult<()> {
        let mut fs = lock(&self.fs);
        fs.tick(|| OpEvent::Sync(self.name.clone()))?;
        fs.counters.syncs += 1;
        if let Some(inode) = fs.inodes.get_mut(&self.ino)
            && !inode.log.is_empty()
        {
            inode.durable = inode.data.clone();
            inode.log.clear();
        }
        Ok(())
    }

    fn len(&self) -> IoResult<u64> {
        let mut fs = lock(&self.fs);
        fs.alive()?;
        if let Some(len) = fs.next_len.take() {
            return Ok(len);
        }
        Ok(fs.inodes.get(&self.ino).map_or(0, |i| i.data.len() as u64))
    }

    fn set_len(&self, len: u64) -> IoResult<()> {
        let mut fs = lock(&self.fs);
        fs.tick(|| OpEvent::SetLen(self.name.clone()))?;
        fs.counters.set_lens += 1;
        let track = fs.track;
        let inode = fs.inodes.entry(self.ino).or_default();
        inode.data.resize(len as usize, 0);
        if track {
            inode.log.push(LogOp::SetLen(len));
        } else {
            inode.durable.resize(len as usize, 0);
        }
        Ok(())
    }
}

/// Turns checksum verification off (or back on) for the current thread
/// (without `std`: for the whole program), so tests can feed structurally
/// corrupted pages to the parsers. Never use outside tests.
#[doc(hidden)]
pub fn set_checksum_verification(on: bool) {
    crate::format::set_checksums_enabled(on);
}

/// Asks for the writer lock of the bucket file `file` the way a waiting
/// instance does (the request marker, valid for `valid_for_millis`), without
/// waiting for it: the holder hands the lock over at its next commit.
pub fn ask_for_lock<D: Dir>(dir: &D, file: &str, valid_for_millis: u64) -> Result<(), crate::Error> {
    let token = dir.random_u64() | 1;
    crate::lock::ask_for_lock(dir, &alloc::format!("{file}.lock"), token, valid_for_millis)
}
