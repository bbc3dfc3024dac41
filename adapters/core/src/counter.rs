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
/// nothing else (no spaces, no `+`). A magnitude past `u64::MAX` is outside
/// every counter range: it reads as `u64::MAX + 1` (with its sign), so that
/// no adapter carries 128-bit decimal parsing.
pub fn parse(value: &[u8]) -> Option<i128> {
    let (negative, digits) = match value.strip_prefix(b"-") {
        Some(digits) => (true, digits),
        None => (false, value),
    };
    if digits.is_empty() || digits.len() > 40 || !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    let magnitude = digits
        .iter()
        .try_fold(0u64, |n, &digit| {
            n.checked_mul(10)?.checked_add(u64::from(digit - b'0'))
        })
        .map_or(i128::from(u64::MAX) + 1, i128::from);
    Some(if negative { -magnitude } else { magnitude })
}

/// A counter value or delta in decimal. Both always lie in
/// `i64::MIN..=u64::MAX`, so it is written as an `i64` or a `u64`: an
/// `i128`'s `Display` would add 128-bit division to every adapter.
pub struct Decimal(pub i128);

impl fmt::Display for Decimal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (u64::try_from(self.0), i64::try_from(self.0)) {
            (Ok(n), _) => fmt::Display::fmt(&n, f),
            (_, Ok(n)) => fmt::Display::fmt(&n, f),
            _ => f.write_str("(a number out of the 64-bit ranges)"),
        }
    }
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
            Some(_) => {
                return Err(Error::other(format!(
                    "cannot increment key {}: its value {} is outside the {range} counter range",
                    Quoted(key),
                    String::from_utf8_lossy(bytes)
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
            "cannot increment key {}: {} + {} overflows the {range} counter range",
            Quoted(key),
            Decimal(current),
            Decimal(delta)
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
        assert_eq!(parse(b"-0"), Some(0));
        assert_eq!(parse(u64::MAX.to_string().as_bytes()), Some(u64::MAX as i128));
        assert_eq!(parse(i64::MIN.to_string().as_bytes()), Some(i64::MIN as i128));
        // Past u64::MAX: one more than it, whatever the digits.
        assert_eq!(parse(b"18446744073709551616"), Some(u64::MAX as i128 + 1));
        assert_eq!(parse(&[b'9'; 40]), Some(u64::MAX as i128 + 1));
        assert_eq!(parse(b"-99999999999999999999"), Some(-(u64::MAX as i128) - 1));
        assert_eq!(parse(&[b'0'; 40]), Some(0));
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
        let message = next_value("k", Some(b"99999999999999999999"), 1, r)
            .unwrap_err()
            .to_string();
        assert!(
            message.contains("its value 99999999999999999999 is outside the s64"),
            "{message}"
        );
        let message = next_value("k", Some(b"-5"), i128::from(i64::MIN), r)
            .unwrap_err()
            .to_string();
        assert!(
            message.contains("-5 + -9223372036854775808 overflows"),
            "{message}"
        );
    }

    #[test]
    fn decimals_cover_both_64_bit_ranges() {
        for n in [0, -1, i128::from(i64::MIN), i128::from(u64::MAX)] {
            assert_eq!(Decimal(n).to_string(), n.to_string());
        }
    }
}
