//! The storage traits the engine runs on.
//!
//! They are deliberately tiny so that a `wasi:filesystem` 0.2 implementation
//! is a thin shim: every method maps to one or two WASI calls
//! (`read`, `write`, `sync-data`, `stat`, `set-size`, `open-at` with
//! `create`/`exclusive`, `link-at`, `rename-at`, `unlink-file-at`,
//! `wall-clock`, `monotonic-clock`, a timer poll, `random`).
//!
//! Failures are reported as the crate's own small [`IoError`] (a kind plus
//! a message), so that the traits need no `std`: with the `std` feature,
//! `std::io::Error` converts into it with `?`.

use alloc::string::String;
use core::fmt;

/// The category of an [`IoError`]. The engine behaves differently only for
/// these kinds; everything else is [`IoErrorKind::Other`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum IoErrorKind {
    /// The file (or the source of a link or rename) does not exist.
    NotFound,
    /// The name is already taken.
    AlreadyExists,
    /// The operation is not supported here (e.g. hard links); the engine
    /// falls back where it can.
    Unsupported,
    /// The operation was interrupted and may simply be retried.
    Interrupted,
    /// Any other failure.
    Other,
}

impl IoErrorKind {
    fn describe(self) -> &'static str {
        match self {
            IoErrorKind::NotFound => "not found",
            IoErrorKind::AlreadyExists => "already exists",
            IoErrorKind::Unsupported => "unsupported",
            IoErrorKind::Interrupted => "interrupted",
            IoErrorKind::Other => "I/O error",
        }
    }
}

/// An I/O failure reported by a [`Dir`] or [`File`]: a kind the engine can
/// act on, and a message for humans.
#[derive(Clone, Debug)]
pub struct IoError {
    kind: IoErrorKind,
    message: String,
}

/// Result of a [`Dir`] or [`File`] operation.
pub type IoResult<T> = core::result::Result<T, IoError>;

impl IoError {
    /// An error of `kind` described by `message`.
    pub fn new(kind: IoErrorKind, message: String) -> Self {
        IoError { kind, message }
    }

    /// The error's kind.
    pub fn kind(&self) -> IoErrorKind {
        self.kind
    }

    /// The error's message.
    pub fn message(&self) -> &str {
        &self.message
    }
}

impl fmt::Display for IoError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.message.is_empty() {
            f.write_str(self.kind.describe())
        } else {
            f.write_str(&self.message)
        }
    }
}

impl core::error::Error for IoError {}

#[cfg(feature = "std")]
impl From<std::io::Error> for IoError {
    fn from(e: std::io::Error) -> Self {
        use std::io::ErrorKind as K;
        let kind = match e.kind() {
            K::NotFound => IoErrorKind::NotFound,
            K::AlreadyExists => IoErrorKind::AlreadyExists,
            K::Unsupported => IoErrorKind::Unsupported,
            K::Interrupted => IoErrorKind::Interrupted,
            _ => IoErrorKind::Other,
        };
        IoError::new(kind, alloc::string::ToString::to_string(&e))
    }
}

/// One open file (a bucket file or a lock file).
///
/// Positional I/O only: no shared cursor, no mmap, no locks.
#[allow(clippy::len_without_is_empty)]
pub trait File {
    /// Reads up to `buf.len()` bytes at `offset`; returns the number read
    /// (0 at end of file). Short reads are allowed; the engine loops.
    fn read_at(&self, buf: &mut [u8], offset: u64) -> IoResult<usize>;
    /// Writes all of `buf` at `offset`, extending the file if needed.
    fn write_at(&self, buf: &[u8], offset: u64) -> IoResult<()>;
    /// Makes all previous writes to this file durable (fdatasync / `sync-data`).
    fn sync(&self) -> IoResult<()>;
    /// Current file size in bytes (`stat`).
    fn len(&self) -> IoResult<u64>;
    /// Truncates or extends the file (`set-size`).
    fn set_len(&self, len: u64) -> IoResult<()>;
}

/// One directory holding bucket files and their lock files, plus the clocks.
///
/// Names are single path components (no separators).
pub trait Dir {
    /// The file type.
    type File: File;

    /// Opens `name` read-write. Returns `Ok(None)` if it does not exist and
    /// `create` is false; creates it (empty) if `create` is true.
    fn open(&self, name: &str, create: bool) -> IoResult<Option<Self::File>>;

    /// Creates `name` exclusively (`O_CREAT|O_EXCL`, WASI `create`+`exclusive`).
    /// Returns `Ok(None)` if it already exists. This is the engine's only
    /// mutual-exclusion primitive.
    fn create_exclusive(&self, name: &str) -> IoResult<Option<Self::File>>;

    /// Hard-links `existing` as `new_name` (`link-at`). Returns `Ok(false)`
    /// if `new_name` already exists (never replaces it). Used to publish a
    /// fully written new bucket file atomically, and to restore a lock file that a
    /// stale-lock breaker took by mistake. May fail with
    /// [`IoErrorKind::Unsupported`] (report a permission refusal of hard
    /// links that way too); the engine then falls back to a locked rename.
    fn link(&self, existing: &str, new_name: &str) -> IoResult<bool>;

    /// Renames `from` to `to`, atomically replacing `to` (`rename-at`).
    fn rename(&self, from: &str, to: &str) -> IoResult<()>;

    /// Removes `name` (`unlink-file-at`). Returns `Ok(false)` if it did not exist.
    fn remove(&self, name: &str) -> IoResult<bool>;

    /// Makes the directory entries durable (fsync of the directory). May be
    /// a no-op where the platform offers nothing better.
    fn sync_dir(&self) -> IoResult<()>;

    /// Wall-clock time in milliseconds since the Unix epoch.
    fn now_millis(&self) -> u64;

    /// Monotonic time in milliseconds (arbitrary origin, never goes back).
    fn monotonic_millis(&self) -> u64;

    /// Sleeps (blocks) for `ms` milliseconds.
    fn sleep_millis(&self, ms: u64);

    /// A random 64-bit value (owner tokens, temp names, back-off jitter).
    /// Use `wasi:random` or the OS generator where available; values only
    /// need to differ between instances and calls, not be secret.
    fn random_u64(&self) -> u64;
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::prelude::*;

    #[test]
    fn display_and_engine_error() {
        let e = IoError::new(IoErrorKind::NotFound, "no such file".into());
        assert_eq!(e.kind(), IoErrorKind::NotFound);
        assert_eq!(e.message(), "no such file");
        assert_eq!(e.to_string(), "no such file");
        assert_eq!(
            IoError::new(IoErrorKind::Interrupted, String::new()).to_string(),
            "interrupted"
        );
        let err = crate::Error::io("b.kvfs", "read", e);
        assert_eq!(
            err.to_string(),
            "kv-fs store `b.kvfs`: I/O error during read: no such file"
        );
        let source = core::error::Error::source(&err).map(ToString::to_string);
        assert_eq!(source.as_deref(), Some("no such file"));
    }

    #[cfg(feature = "std")]
    #[test]
    fn from_std_io_error() {
        use std::io::{Error as E, ErrorKind as K};
        for (k, want) in [
            (K::NotFound, IoErrorKind::NotFound),
            (K::AlreadyExists, IoErrorKind::AlreadyExists),
            (K::Unsupported, IoErrorKind::Unsupported),
            (K::Interrupted, IoErrorKind::Interrupted),
            (K::PermissionDenied, IoErrorKind::Other),
            (K::UnexpectedEof, IoErrorKind::Other),
        ] {
            let std_err = E::new(k, "boom");
            let e = IoError::from(std_err);
            assert_eq!(e.kind(), want);
            assert_eq!(e.message(), "boom");
        }
        let os = E::from_raw_os_error(2);
        let shown = os.to_string();
        let e: IoError = os.into();
        assert_eq!(e.kind(), IoErrorKind::NotFound);
        assert_eq!(e.to_string(), shown);
    }
}
