use alloc::string::String;

use core::fmt;

/// The errors of `wasi:keyvalue` (the same three cases in both drafts).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Error {
    /// The bucket does not exist (and the backend is not configured to create it).
    NoSuchStore,
    /// The bucket is not on the configured allow-list.
    AccessDenied,
    /// Anything else, with a message a person can act on.
    Other(String),
}

pub type Result<T, E = Error> = core::result::Result<T, E>;

impl Error {
    pub fn other(message: impl Into<String>) -> Self {
        Error::Other(message.into())
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::NoSuchStore => f.write_str("no such store"),
            Error::AccessDenied => f.write_str("access denied"),
            Error::Other(message) => f.write_str(message),
        }
    }
}

impl core::error::Error for Error {}
