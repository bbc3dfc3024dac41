//! Counters are ASCII decimal values ("42"), as Redis `INCRBY`, wasmtime and
//! Spin's DynamoDB store keep them, so `get` reads them as text.

use alloc::format;
use alloc::string::String;

use core::fmt;

use crate::error::Quoted;
use crate::{Error, Result};

/// The range of a counter: the 0.2.0-draft `increment` is `u64`, the
/// 0.2.0-draft2 one is `s64`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CounterRange {
    U64,
    S64,
}

impl CounterRange {
    fn bounds(self) -> (i128, i128) {
        match self {
            CounterRange::U64 => (0, u64::MAX as i128),
            CounterRange::S64 => (i64::MIN as i128, i64::MAX as i128),
        }
    }
}

impl fmt::Display for CounterRange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            CounterRange::U64 => "u64",
            CounterRange::S64 => "s64",
        })
    }
}

/// Parses a stored counter: an optional `-` and 1 to 40 ASCII digits,
/// nothing else (no spaces, no `+`).
pub fn parse(value: &[u8]) -> Option<i128> {
    let digits = value.strip_prefix(b"-").unwrap_or(value);
    if digits.is_empty() || digits.len() > 40 || !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    core::str::from_utf8(value).ok()?.parse().ok()
}

/// The value after adding `delta` to the counter currently stored as
/// `current` (`None`: absent, counts as 0), with a clear error when the
/// stored value is not a decimal integer in `range` or the sum leaves it.
pub fn next_value(key: &str, current: Option<&[u8]>, delta: i128, range: CounterRange) -> Result<i128> {
    let (min, max) = range.bounds();
    let current = match current {
        None => 0,
        Some(bytes) => match parse(bytes) {
            Some(n) if (min..=max).contains(&n) => n,
            Some(n) => {
                return Err(Error::other(format!(
                    "cannot increment key {}: its value {n} is outside the {range} counter range",
                    Quoted(key)
                )));
            }
            None => {
                return Err(Error::other(format!(
                    "cannot increment key {}: its value is not a decimal integer (starts with {})",
                    Quoted(key),
                    Quoted(&preview(bytes))
                )));
            }
        },
    };
    match current.checked_add(delta) {
        Some(next) if (min..=max).contains(&next) => Ok(next),
        _ => Err(Error::other(format!(
            "cannot increment key {}: {current} + {delta} overflows the {range} counter range",
            Quoted(key)
        ))),
    }
}

fn preview(bytes: &[u8]) -> String {
    String::from_utf8_lossy(&bytes[..bytes.len().min(16)]).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::prelude::rust_2024::*;

    #[test]
    fn parses_only_plain_decimals() {
        assert_eq!(parse(b"42"), Some(42));
        assert_eq!(parse(b"-7"), Some(-7));
        assert_eq!(parse(b"007"), Some(7));
        for bad in [
            &b""[..],
            b"-",
            b"+1",
            b" 1",
            b"1 ",
            b"1.0",
            b"0x10",
            b"abc",
            b"1\0",
        ] {
            assert_eq!(parse(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn increments_and_reports_errors() {
        let r = CounterRange::S64;
        assert_eq!(next_value("k", None, 5, r), Ok(5));
        assert_eq!(next_value("k", Some(b"-3"), 5, r), Ok(2));
        assert!(
            next_value("k", Some(b"x"), 1, r)
                .unwrap_err()
                .to_string()
                .contains("not a decimal")
        );
        let max = i64::MAX.to_string();
        assert!(
            next_value("k", Some(max.as_bytes()), 1, r)
                .unwrap_err()
                .to_string()
                .contains("overflows")
        );
        assert_eq!(
            next_value("k", Some(u64::MAX.to_string().as_bytes()), 0, CounterRange::U64),
            Ok(u64::MAX as i128)
        );
        assert!(
            next_value("k", Some(b"-1"), 1, CounterRange::U64)
                .unwrap_err()
                .to_string()
                .contains("outside")
        );
        assert!(next_value("k", Some(b"1"), -2, CounterRange::U64).is_err());
    }
}
