//! `list-keys` cursors. A listing continues after the last key it returned
//! (see `OpenBucket::page_after`), so a cursor carries that key, for every
//! backend. The two drafts carry it differently:
//!
//! - 0.2.0-draft2 cursors are strings: the key itself, wrapped as
//!   `kv3.<hex(checksum ‖ key)>` so that a garbage cursor is recognised
//!   and rejected instead of being handed to the backend. They stay valid
//!   across instances (an HTTP handler can return one to its client).
//!   Hex, not base64: a few hundred bytes of code instead of 7 KB in every
//!   adapter. (`kv1.` cursors held a backend's own token and `kv2.` ones
//!   were base64: both are refused, as garbage is.)
//! - 0.2.0-draft cursors are `u64`s, too small for a key: they are handles
//!   into a table of the keys this instance's cursors stand for (the newest
//!   [`MAX_DRAFT_CURSORS`]), valid for the life of the instance.

use alloc::format;
use alloc::string::{String, ToString};
use alloc::vec::Vec;

use alloc::collections::VecDeque;

use crate::error::Quoted;
use crate::{Error, Result};

const PREFIX: &str = "kv3.";

/// How many draft cursors an instance remembers.
pub const MAX_DRAFT_CURSORS: usize = 4096;

/// FNV-1a: a checksum against garbage, not a MAC (a forged cursor can only
/// name a position in the listing, which any key can).
fn checksum(bytes: &[u8]) -> [u8; 4] {
    let hash = bytes.iter().fold(0x811c_9dc5_u32, |h, &b| {
        (h ^ u32::from(b)).wrapping_mul(0x0100_0193)
    });
    hash.to_be_bytes()
}

const HEX_DIGITS: &[u8; 16] = b"0123456789abcdef";

pub fn encode_string_cursor(after: &str) -> String {
    let mut cursor = String::with_capacity(PREFIX.len() + 2 * (4 + after.len()));
    cursor.push_str(PREFIX);
    for byte in checksum(after.as_bytes()).iter().chain(after.as_bytes()) {
        cursor.push(char::from(HEX_DIGITS[usize::from(byte >> 4)]));
        cursor.push(char::from(HEX_DIGITS[usize::from(byte & 0xf)]));
    }
    cursor
}

/// Lowercase hex, as [`encode_string_cursor`] writes it.
fn decode_hex(hex: &str) -> Option<Vec<u8>> {
    let digit = |c: u8| HEX_DIGITS.iter().position(|&d| d == c).map(|d| d as u8);
    hex.as_bytes()
        .chunks(2)
        .map(|pair| match pair {
            [high, low] => Some(digit(*high)? << 4 | digit(*low)?),
            _ => None,
        })
        .collect()
}

pub fn decode_string_cursor(cursor: &str) -> Result<String> {
    let invalid = || {
        Error::invalid(format!(
            "invalid list-keys cursor {}: it was not returned by list-keys",
            Quoted(&shorten(cursor))
        ))
    };
    let encoded = cursor.strip_prefix(PREFIX).ok_or_else(invalid)?;
    let raw = decode_hex(encoded).ok_or_else(invalid)?;
    let (sum, after) = raw.split_at_checked(4).ok_or_else(invalid)?;
    if sum != checksum(after) {
        return Err(invalid());
    }
    String::from_utf8(after.to_vec()).map_err(|_| invalid())
}

fn shorten(s: &str) -> String {
    s.chars().take(40).collect()
}

/// The keys behind the `u64` cursors this instance issued: the newest
/// [`MAX_DRAFT_CURSORS`], numbered consecutively, so a cursor's place in
/// the queue is its distance from the oldest's number.
#[derive(Debug)]
pub struct DraftCursors {
    /// The number of `keys[0]`.
    first_id: u64,
    /// (bucket, the key to list after), oldest first.
    keys: VecDeque<(String, String)>,
}

impl Default for DraftCursors {
    fn default() -> Self {
        // Start far from the small numbers a confused caller would pass.
        DraftCursors {
            first_id: 0x6b76_0000_0000_0001,
            keys: VecDeque::new(),
        }
    }
}

impl DraftCursors {
    pub fn issue(&mut self, bucket: &str, after: String) -> u64 {
        self.keys.push_back((bucket.to_string(), after));
        if self.keys.len() > MAX_DRAFT_CURSORS {
            self.keys.pop_front();
            self.first_id += 1;
        }
        self.first_id + (self.keys.len() as u64 - 1)
    }

    pub fn resolve(&self, bucket: &str, id: u64) -> Result<String> {
        let place = id
            .checked_sub(self.first_id)
            .and_then(|i| usize::try_from(i).ok());
        match place.and_then(|i| self.keys.get(i)) {
            Some((issued_for, after)) if issued_for == bucket => Ok(after.clone()),
            Some((issued_for, _)) => Err(Error::invalid(format!(
                "invalid list-keys cursor {id}: it was issued for bucket {}, not {}",
                Quoted(issued_for),
                Quoted(bucket)
            ))),
            None => Err(Error::invalid(format!(
                "invalid list-keys cursor {id}: this instance did not issue it, or it is one of more than \
                 {MAX_DRAFT_CURSORS} older cursors (0.2.0-draft cursors are valid within one instance)"
            ))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::prelude::rust_2024::*;

    #[test]
    fn string_cursors_round_trip_and_reject_garbage() {
        for token in ["", "key/with spaces", "ünï%*?[", "\0"] {
            assert_eq!(decode_string_cursor(&encode_string_cursor(token)).unwrap(), token);
        }
        let good = encode_string_cursor("abc");
        let mut tampered = good.clone();
        tampered.push('a');
        tampered.push('0');
        let mut odd = good.clone();
        odd.push('0');
        let old_kind = good.replacen("kv3.", "kv2.", 1);
        let upper = good.to_uppercase().replacen("KV3.", "kv3.", 1);
        for bad in [
            "",
            "abc",
            "kv3.",
            "kv3.zz",
            "kv3.00000000",
            "kv4.AAAA",
            &old_kind,
            &tampered,
            &odd,
            &upper,
        ] {
            assert!(decode_string_cursor(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn draft_cursors_are_per_bucket_and_bounded() {
        let mut cursors = DraftCursors::default();
        let id = cursors.issue("a", "k".into());
        assert_eq!(cursors.resolve("a", id).unwrap(), "k");
        assert!(cursors.resolve("b", id).is_err());
        assert!(cursors.resolve("a", 0).is_err());
        for _ in 0..MAX_DRAFT_CURSORS {
            cursors.issue("a", "x".into());
        }
        assert!(cursors.resolve("a", id).is_err());
    }
}
