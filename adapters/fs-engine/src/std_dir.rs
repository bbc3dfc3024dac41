//! [`Dir`] over a real directory with `std::fs` (native targets, `std`
//! feature only).

use alloc::string::ToString;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use crate::io::{Dir, File, IoError, IoErrorKind, IoResult};

/// A real directory.
#[derive(Clone, Debug)]
pub struct StdDir {
    path: PathBuf,
}

impl StdDir {
    /// Uses the existing directory `path`.
    pub fn new(path: impl Into<PathBuf>) -> StdDir {
        StdDir { path: path.into() }
    }

    /// The directory path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn p(&self, name: &str) -> PathBuf {
        self.path.join(name)
    }
}

/// A real file.
#[derive(Debug)]
pub struct StdFile {
    f: fs::File,
}

impl StdFile {
    /// Wraps an open file.
    pub fn new(f: fs::File) -> StdFile {
        StdFile { f }
    }
}

impl File for StdFile {
    fn read_at(&self, buf: &mut [u8], offset: u64) -> IoResult<usize> {
        #[cfg(unix)]
        {
            Ok(std::os::unix::fs::FileExt::read_at(&self.f, buf, offset)?)
        }
        #[cfg(windows)]
        {
            Ok(std::os::windows::fs::FileExt::seek_read(&self.f, buf, offset)?)
        }
    }

    fn write_at(&self, buf: &[u8], offset: u64) -> IoResult<()> {
        #[cfg(unix)]
        {
            Ok(std::os::unix::fs::FileExt::write_all_at(&self.f, buf, offset)?)
        }
        #[cfg(windows)]
        {
            let mut done = 0;
            while done < buf.len() {
                let n =
                    std::os::windows::fs::FileExt::seek_write(&self.f, &buf[done..], offset + done as u64)?;
                if n == 0 {
                    return Err(io::Error::from(io::ErrorKind::WriteZero).into());
                }
                done += n;
            }
            Ok(())
        }
    }

    fn sync(&self) -> IoResult<()> {
        // On Apple platforms only F_FULLFSYNC (std's sync_all) reaches the disk.
        #[cfg(target_vendor = "apple")]
        {
            Ok(self.f.sync_all()?)
        }
        #[cfg(not(target_vendor = "apple"))]
        {
            Ok(self.f.sync_data()?)
        }
    }

    fn len(&self) -> IoResult<u64> {
        Ok(self.f.metadata()?.len())
    }

    fn set_len(&self, len: u64) -> IoResult<()> {
        Ok(self.f.set_len(len)?)
    }
}

impl Dir for StdDir {
    type File = StdFile;

    fn open(&self, name: &str, create: bool) -> IoResult<Option<StdFile>> {
        match fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(create)
            .truncate(false)
            .open(self.p(name))
        {
            Ok(f) => Ok(Some(StdFile { f })),
            Err(e) if e.kind() == io::ErrorKind::NotFound && !create => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    fn create_exclusive(&self, name: &str) -> IoResult<Option<StdFile>> {
        match fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .open(self.p(name))
        {
            Ok(f) => Ok(Some(StdFile { f })),
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    fn link(&self, existing: &str, new_name: &str) -> IoResult<bool> {
        match fs::hard_link(self.p(existing), self.p(new_name)) {
            Ok(()) => Ok(true),
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => Ok(false),
            // Some file systems refuse hard links with EPERM: let the engine
            // fall back to its locked rename.
            Err(e) if e.kind() == io::ErrorKind::PermissionDenied => {
                Err(IoError::new(IoErrorKind::Unsupported, e.to_string()))
            }
            Err(e) => Err(e.into()),
        }
    }

    fn rename(&self, from: &str, to: &str) -> IoResult<()> {
        Ok(fs::rename(self.p(from), self.p(to))?)
    }

    fn remove(&self, name: &str) -> IoResult<bool> {
        match fs::remove_file(self.p(name)) {
            Ok(()) => Ok(true),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
            Err(e) => Err(e.into()),
        }
    }

    fn sync_dir(&self) -> IoResult<()> {
        #[cfg(unix)]
        {
            Ok(fs::File::open(&self.path)?.sync_all()?)
        }
        #[cfg(not(unix))]
        {
            Ok(())
        }
    }

    fn now_millis(&self) -> u64 {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_millis() as u64)
            .unwrap_or(0)
    }

    fn monotonic_millis(&self) -> u64 {
        static BASE: OnceLock<Instant> = OnceLock::new();
        BASE.get_or_init(Instant::now).elapsed().as_millis() as u64
    }

    fn sleep_millis(&self, ms: u64) {
        std::thread::sleep(Duration::from_millis(ms));
    }

    /// std's per-process random hash keys, a counter and the clocks.
    fn random_u64(&self) -> u64 {
        mix_random(self.now_millis(), self.monotonic_millis())
    }
}

/// Mixes a process-wide counter and `a`, `b` with std's randomly keyed
/// SipHash (its keys come from the OS generator once per thread, then
/// advance per `RandomState`).
fn mix_random(a: u64, b: u64) -> u64 {
    use std::collections::hash_map::RandomState;
    use std::hash::{BuildHasher, Hasher};
    use std::sync::atomic::{AtomicU64, Ordering};
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let mut h = RandomState::new().build_hasher();
    h.write_u64(COUNTER.fetch_add(1, Ordering::Relaxed));
    h.write_u64(a);
    h.write_u64(b);
    h.finish()
}
