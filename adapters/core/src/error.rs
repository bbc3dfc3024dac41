use alloc::string::String;
use alloc::vec::Vec;

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
    /// `other(message)`, on one line: a message quoting a service's
    /// multi-line answer has its lines joined with spaces, and any other
    /// control character is a space.
    pub fn other(message: impl Into<String>) -> Self {
        let message = message.into();
        if !message.contains(char::is_control) {
            return Error::Other(message);
        }
        let lines: Vec<&str> = message.lines().map(str::trim).filter(|l| !l.is_empty()).collect();
        let joined = lines.join(" ");
        Error::Other(
            joined
                .chars()
                .map(|c| if c.is_control() { ' ' } else { c })
                .collect(),
        )
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_are_one_line() {
        assert_eq!(Error::other("plain"), Error::Other("plain".into()));
        assert_eq!(
            Error::other("etcd: 500 first\r\n  second\n\nthird\tend\0"),
            Error::Other("etcd: 500 first second third end ".into())
        );
    }
}
