//! `list-keys` cursors. A backend continues a listing from its own token
//! (the last key returned, a service's continuation token, ...). The two
//! drafts carry that token differently:
//!
//! - 0.2.0-draft2 cursors are strings: the token itself, wrapped as
//!   `kv1.<base64url(checksum ‖ token)>` so that a garbage cursor is
//!   recognised and rejected instead of being handed to the backend. They
//!   stay valid across instances (an HTTP handler can return one to its
//!   client).
//! - 0.2.0-draft cursors are `u64`s, too small for a token: they are handles
//!   into a table of the tokens this instance issued (the newest
//!   [`MAX_DRAFT_CURSORS`]), valid for the life of the instance.

use alloc::format;
use alloc::string::{String, ToString};

use alloc::collections::BTreeMap;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

use crate::{Error, Result};

const PREFIX: &str = "kv1.";

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

pub fn encode_string_cursor(token: &str) -> String {
    let mut raw = checksum(token.as_bytes()).to_vec();
    raw.extend_from_slice(token.as_bytes());
    format!("{PREFIX}{}", URL_SAFE_NO_PAD.encode(raw))
}

pub fn decode_string_cursor(cursor: &str) -> Result<String> {
    let invalid = || {
        Error::other(format!(
            "invalid list-keys cursor {:?}: it was not returned by list-keys",
            shorten(cursor)
        ))
    };
    let encoded = cursor.strip_prefix(PREFIX).ok_or_else(invalid)?;
    let raw = URL_SAFE_NO_PAD.decode(encoded).map_err(|_| invalid())?;
    let (sum, token) = raw.split_at_checked(4).ok_or_else(invalid)?;
    if sum != checksum(token) {
        return Err(invalid());
    }
    String::from_utf8(token.to_vec()).map_err(|_| invalid())
}

fn shorten(s: &str) -> String {
    s.chars().take(40).collect()
}

/// The tokens behind the `u64` cursors this instance issued.
#[derive(Debug)]
pub struct DraftCursors {
    next_id: u64,
    tokens: BTreeMap<u64, (String, String)>,
}

impl Default for DraftCursors {
    fn default() -> Self {
        // Start far from the small numbers a confused caller would pass.
        DraftCursors {
            next_id: 0x6b76_0000_0000_0001,
            tokens: BTreeMap::new(),
        }
    }
}

impl DraftCursors {
    pub fn issue(&mut self, bucket: &str, token: String) -> u64 {
        let id = self.next_id;
        self.next_id += 1;
        self.tokens.insert(id, (bucket.to_string(), token));
        while self.tokens.len() > MAX_DRAFT_CURSORS {
            self.tokens.pop_first();
        }
        id
    }

    pub fn resolve(&self, bucket: &str, id: u64) -> Result<String> {
        match self.tokens.get(&id) {
            Some((issued_for, token)) if issued_for == bucket => Ok(token.clone()),
            Some((issued_for, _)) => Err(Error::other(format!(
                "invalid list-keys cursor {id}: it was issued for bucket {issued_for:?}, not {bucket:?}"
            ))),
            None => Err(Error::other(format!(
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
        tampered.push('A');
        for bad in ["", "abc", "kv1.", "kv1.!!!", "kv2.AAAA", &tampered] {
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
