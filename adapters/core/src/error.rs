use alloc::string::String;
use alloc::vec::Vec;

use core::fmt;

/// The errors of kv-virt's interfaces: the three cases of both
/// `wasi:keyvalue` drafts and Spin's, and two that wasmCloud's
/// `wasmcloud:keyvalue@0.2.0` names. Interfaces without the last two carry
/// them as `other(message)`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Error {
    /// The bucket does not exist (and the backend is not configured to create it).
    NoSuchStore,
    /// The bucket is not on the configured allow-list.
    AccessDenied,
    /// The request itself is wrong (an empty key, a key or value over the
    /// backend's limits, a bad bucket name or cursor, a swap with no
    /// precondition), with a message saying how.
    InvalidArgument(String),
    /// A conditional write found its condition false (`if-not-exists` on
    /// a key that exists).
    PreconditionFailed(String),
    /// Anything else, with a message a person can act on.
    Other(String),
}

pub type Result<T, E = Error> = core::result::Result<T, E>;

impl Error {
    /// `other(message)`, on one line: a message quoting a service's
    /// multi-line answer has its lines joined with spaces, and any other
    /// control character is a space.
    pub fn other(message: impl Into<String>) -> Self {
        Error::Other(one_line(message.into()))
    }

    /// `invalid-argument`, with its message on one line as [`Error::other`]'s.
    pub fn invalid(message: impl Into<String>) -> Self {
        Error::InvalidArgument(one_line(message.into()))
    }

    /// The message an interface without this error's case shows in
    /// `other(..)`.
    pub fn into_message(self) -> String {
        match self {
            Error::Other(message) | Error::InvalidArgument(message) | Error::PreconditionFailed(message) => {
                message
            }
            Error::NoSuchStore => "no such store".into(),
            Error::AccessDenied => "access denied".into(),
        }
    }
}

fn one_line(message: String) -> String {
    if !message.contains(char::is_control) {
        return message;
    }
    let lines: Vec<&str> = message.lines().map(str::trim).filter(|l| !l.is_empty()).collect();
    lines
        .join(" ")
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect()
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::NoSuchStore => f.write_str("no such store"),
            Error::AccessDenied => f.write_str("access denied"),
            Error::Other(message) | Error::InvalidArgument(message) | Error::PreconditionFailed(message) => {
                f.write_str(message)
            }
        }
    }
}

impl core::error::Error for Error {}

/// A name or key in a message, in double quotes (`"` and `\` escaped): what
/// `{:?}` shows, without the code for `Debug`'s escapes, which would add
/// kilobytes to every adapter (control characters are spaces in messages
/// anyway, see [`Error::other`]).
pub struct Quoted<'a>(pub &'a str);

impl fmt::Display for Quoted<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        use fmt::Write;
        f.write_char('"')?;
        // Char by char: slicing the `str` would add core's slicing panic
        // messages (and `Debug` for `char`) to every adapter.
        for c in self.0.chars() {
            if matches!(c, '"' | '\\') {
                f.write_char('\\')?;
            }
            f.write_char(c)?;
        }
        f.write_char('"')
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn quoted_escapes_quotes_and_backslashes() {
        use alloc::format;
        assert_eq!(format!("{}", super::Quoted("a\"b\\c")), "\"a\\\"b\\\\c\"");
        assert_eq!(format!("{}", super::Quoted("ünï cödé")), "\"ünï cödé\"");
    }

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
