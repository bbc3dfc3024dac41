//! Error and problem types.

use core::fmt;

use crate::io::IoError;
use crate::prelude::*;

/// Every failure of the engine. Variants that concern a file name it, so
/// that `Display` always tells *which* bucket file is affected and *what* is
/// wrong with it.
#[derive(Debug)]
#[non_exhaustive]
pub enum Error {
    /// An I/O operation on `file` failed.
    Io {
        /// File (or lock file) the operation was on.
        file: String,
        /// What was being done (`"read"`, `"write"`, `"sync"`, ...).
        op: &'static str,
        /// The underlying error.
        source: IoError,
    },
    /// The file is a kv-fs bucket file but its contents are damaged (checksum
    /// mismatch, truncated, malformed page, out-of-range pointer, ...).
    Corrupt {
        /// The bucket file.
        file: String,
        /// What is wrong, usually starting with the page number.
        detail: String,
    },
    /// The file is not a kv-fs bucket file at all (bad magic, empty file).
    NotAStore {
        /// The file.
        file: String,
        /// Why it is not recognised.
        detail: String,
    },
    /// The file was written by a newer, incompatible format version or
    /// uses incompatible features this build does not know.
    UnsupportedFormat {
        /// The file.
        file: String,
        /// Version / feature details.
        detail: String,
    },
    /// The file can be read but not written by this build (unknown
    /// read-only-compatible features).
    ReadOnly {
        /// The file.
        file: String,
        /// Why.
        detail: String,
    },
    /// The writer lock could not be taken within `Options::lock_wait_millis`.
    LockTimeout {
        /// The bucket file.
        file: String,
        /// How long we waited.
        waited_millis: u64,
    },
    /// This writer lost its lock (it was broken as stale, or another writer
    /// committed underneath it). Nothing of the transaction was committed.
    LockLost {
        /// The bucket file.
        file: String,
        /// Details.
        detail: String,
    },
    /// A reader could not obtain a consistent snapshot because writers kept
    /// recycling the pages it was reading (after `max_read_retries`).
    Busy {
        /// The bucket file.
        file: String,
        /// Number of attempts made.
        retries: u32,
    },
    /// A key longer than [`crate::MAX_KEY_LEN`].
    KeyTooLarge {
        /// Offending length.
        len: usize,
    },
    /// A value longer than [`crate::MAX_VALUE_LEN`].
    ValueTooLarge {
        /// Offending length.
        len: usize,
    },
    /// The file has grown to the maximum number of pages (2^32).
    Full {
        /// The bucket file.
        file: String,
    },
    /// Invalid [`crate::Options`].
    InvalidOptions(String),
    /// Error returned by the user's transaction closure, or any other
    /// caller-defined reason to abort a write transaction.
    Aborted(String),
}

impl Error {
    /// The file this error concerns, if any.
    pub fn file(&self) -> Option<&str> {
        match self {
            Error::Io { file, .. }
            | Error::Corrupt { file, .. }
            | Error::NotAStore { file, .. }
            | Error::UnsupportedFormat { file, .. }
            | Error::ReadOnly { file, .. }
            | Error::LockTimeout { file, .. }
            | Error::LockLost { file, .. }
            | Error::Busy { file, .. }
            | Error::Full { file } => Some(file),
            _ => None,
        }
    }

    /// True if the error means the file's contents are damaged or not a bucket file.
    pub fn is_corruption(&self) -> bool {
        matches!(self, Error::Corrupt { .. } | Error::NotAStore { .. })
    }

    pub(crate) fn io(file: &str, op: &'static str, source: IoError) -> Error {
        Error::Io {
            file: file.to_string(),
            op,
            source,
        }
    }

    pub(crate) fn corrupt(file: &str, detail: impl Into<String>) -> Error {
        Error::Corrupt {
            file: file.to_string(),
            detail: detail.into(),
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Io { file, op, source } => {
                write!(f, "kv-fs store `{file}`: I/O error during {op}: {source}")
            }
            Error::Corrupt { file, detail } => {
                write!(f, "kv-fs store `{file}` is corrupt: {detail}")
            }
            Error::NotAStore { file, detail } => {
                write!(f, "`{file}` is not a kv-fs store: {detail}")
            }
            Error::UnsupportedFormat { file, detail } => {
                write!(f, "kv-fs store `{file}` has an unsupported format: {detail}")
            }
            Error::ReadOnly { file, detail } => {
                write!(
                    f,
                    "kv-fs store `{file}` can only be read by this version: {detail}"
                )
            }
            Error::LockTimeout { file, waited_millis } => write!(
                f,
                "kv-fs store `{file}`: timed out after {waited_millis} ms waiting for the writer lock"
            ),
            Error::LockLost { file, detail } => {
                write!(
                    f,
                    "kv-fs store `{file}`: writer lock lost, transaction not committed: {detail}"
                )
            }
            Error::Busy { file, retries } => write!(
                f,
                "kv-fs store `{file}`: no consistent snapshot after {retries} attempts (concurrent writers kept recycling pages)"
            ),
            Error::KeyTooLarge { len } => write!(
                f,
                "key of {len} bytes exceeds the maximum of {} bytes",
                crate::MAX_KEY_LEN
            ),
            Error::ValueTooLarge { len } => write!(
                f,
                "value of {len} bytes exceeds the maximum of {} bytes",
                crate::MAX_VALUE_LEN
            ),
            Error::Full { file } => write!(f, "kv-fs store `{file}` reached the maximum page count"),
            Error::InvalidOptions(m) => write!(f, "invalid kv-fs options: {m}"),
            Error::Aborted(m) => write!(f, "transaction aborted: {m}"),
        }
    }
}

impl core::error::Error for Error {
    fn source(&self) -> Option<&(dyn core::error::Error + 'static)> {
        match self {
            Error::Io { source, .. } => Some(source),
            _ => None,
        }
    }
}

/// One inconsistency found by [`crate::BucketFile::check`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// The page concerned, when there is one.
    pub page: Option<u64>,
    /// Human-readable description.
    pub message: String,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.page {
            Some(p) => write!(f, "page {p}: {}", self.message),
            None => f.write_str(&self.message),
        }
    }
}

/// Internal error used while walking pages: either a validation mismatch
/// (which a reader retries from the newest commit, because a concurrent
/// writer may have recycled the page) or a fatal error.
#[derive(Debug)]
pub(crate) enum PageError {
    Mismatch { page: u64, what: String },
    Fatal(Error),
}

impl From<Error> for PageError {
    fn from(e: Error) -> PageError {
        PageError::Fatal(e)
    }
}

pub(crate) fn mismatch(page: u64, what: impl Into<String>) -> PageError {
    PageError::Mismatch {
        page,
        what: what.into(),
    }
}
