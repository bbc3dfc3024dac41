//! What the cloud protocols (DynamoDB, S3, Azure Table) share to keep
//! expiring entries, each storing the expiry beside the value (an
//! attribute, object metadata, an entity property) and hiding what has
//! expired from every read by [`kv_core::is_expired`]:
//!
//! - the expiry's stored text: decimal milliseconds since the Unix epoch;
//! - a listing that skips expired keys and still pages correctly
//!   ([`live_page`]);
//! - if-not-exists over an expired entry the service still holds
//!   ([`insert_if_absent_or_expired`]).

use alloc::string::String;
use alloc::vec::Vec;

use kv_core::{ExpiresAt, KeyPage, Quoted, Result, Version, Versioned, is_expired};

use crate::client::Client;

/// A stored expiry read back: decimal milliseconds; `None` if it is not one.
pub fn parse_ms(text: &str) -> Option<ExpiresAt> {
    if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    text.parse().ok()
}

/// An entry read back: its value, version (a number, an ETag) and expiry.
#[derive(Clone)]
pub struct Stored {
    pub value: Vec<u8>,
    pub version: String,
    pub expires_at: Option<ExpiresAt>,
}

impl Stored {
    pub fn versioned(self) -> Versioned {
        Versioned::found(self.value, Version(self.version.into_bytes())).expiring(self.expires_at)
    }

    /// Whether it has expired by now (the client's wall clock).
    pub fn has_expired(&self, client: &Client) -> bool {
        is_expired(self.expires_at, client.unix_ms())
    }
}

/// Pages in a row without a listed key that one `list-keys` reads before
/// giving up (a service that never ends a listing must not hang the app).
pub const MAX_EMPTY_PAGES: usize = 100;

/// One page of a service's listing, expired keys left out.
pub struct Listed<C> {
    /// The live keys, in listing order.
    pub keys: Vec<String>,
    /// How many entries the service listed, expired ones included.
    pub listed: usize,
    /// Where the service's listing goes on, if it does.
    pub next: Option<C>,
}

/// A `list-keys` page from a service's pages (`fetch(cursor)`, `None`:
/// from the request's start), reading on past pages whose keys all
/// expired: a page is empty only when no key follows (see
/// [`KeyPage::more`]), and a service's page limit applies before expired
/// keys are left out.
pub fn live_page<C>(
    client: &Client,
    mut fetch: impl FnMut(Option<&C>) -> Result<Listed<C>>,
) -> Result<KeyPage> {
    let mut cursor: Option<C> = None;
    let mut empty_pages = 0;
    loop {
        let page = fetch(cursor.as_ref())?;
        match page.next {
            Some(next) if page.keys.is_empty() => {
                if page.listed == 0 {
                    // Only pages the service ended without a key count:
                    // a run of expired keys is read through however long.
                    if empty_pages == MAX_EMPTY_PAGES {
                        return Err(client.error(format_args!(
                            "list-keys got {MAX_EMPTY_PAGES} pages in a row without a key"
                        )));
                    }
                    empty_pages += 1;
                }
                cursor = Some(next);
            }
            next => {
                return Ok(KeyPage {
                    keys: page.keys,
                    more: next.is_some(),
                });
            }
        }
    }
}

/// Rounds of [`insert_if_absent_or_expired`] lost to concurrent writes
/// before it gives up.
const MAX_INSERT_ROUNDS: usize = 10;

/// If-not-exists, atomic, on a service whose insert-if-absent (S3's
/// `If-None-Match: *`, Azure's insert) sees an expired entry it still
/// holds as present: `insert` (false: the key is held); if the entry
/// `held` (its version, an ETag, and expiry) has expired, replace exactly
/// that version (`replace_expired`, false: it changed meanwhile); again
/// when the entry changed between the steps. `Ok(false)`: a live entry
/// holds the key.
pub fn insert_if_absent_or_expired<V>(
    client: &Client,
    key: &str,
    insert: impl Fn() -> Result<bool>,
    held: impl Fn() -> Result<Option<(V, Option<ExpiresAt>)>>,
    replace_expired: impl Fn(&V) -> Result<bool>,
) -> Result<bool> {
    for _ in 0..MAX_INSERT_ROUNDS {
        if insert()? {
            return Ok(true);
        }
        // Deleted since the insert failed: insert again.
        let Some((version, expires_at)) = held()? else {
            continue;
        };
        if !is_expired(expires_at, client.unix_ms()) {
            return Ok(false);
        }
        if replace_expired(&version)? {
            return Ok(true);
        }
    }
    Err(client.error(format_args!(
        "if-not-exists of key {} gave up after {MAX_INSERT_ROUNDS} rounds lost to concurrent writes",
        Quoted(key)
    )))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expiries_are_decimal_milliseconds() {
        assert_eq!(parse_ms("1795279386000"), Some(1_795_279_386_000));
        assert_eq!(parse_ms("0"), Some(0));
        for bad in ["", "-1", "1.5", " 1", "1e3", "99999999999999999999999"] {
            assert_eq!(parse_ms(bad), None, "{bad:?}");
        }
    }
}
