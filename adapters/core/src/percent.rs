//! `%XX` escaping, once, for every place a name or key has to fit a
//! narrower alphabet: kv-fs file names, kv-http bucket prefixes, URLs
//! (SigV4's and webdis's), S3 object keys and Azure's `RowKey`s. Each
//! caller passes the characters its protocol keeps; the rest is written
//! byte by byte of its UTF-8 as `%XX`, upper-case hex. `%` itself is always
//! escaped, so [`decode`] gives back exactly what [`encode`] was given.

use alloc::string::String;
use alloc::vec::Vec;

/// `bytes` with every character `keep` refuses (and `%`, and every byte
/// that is not UTF-8) written as `%XX`.
pub fn encode(bytes: &[u8], keep: impl Fn(char) -> bool) -> String {
    let mut out = String::with_capacity(bytes.len());
    for chunk in bytes.utf8_chunks() {
        for c in chunk.valid().chars() {
            if c != '%' && keep(c) {
                out.push(c);
            } else {
                escape(c.encode_utf8(&mut [0; 4]).as_bytes(), &mut out);
            }
        }
        escape(chunk.invalid(), &mut out);
    }
    out
}

fn escape(bytes: &[u8], out: &mut String) {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    for &byte in bytes {
        out.push('%');
        out.push(char::from(HEX[usize::from(byte >> 4)]));
        out.push(char::from(HEX[usize::from(byte & 15)]));
    }
}

/// RFC 3986's unreserved characters: `A-Z a-z 0-9 - . _ ~`.
pub fn is_unreserved(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '-' | '.' | '_' | '~')
}

/// Why [`decode`] failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DecodeError {
    /// A `%` not followed by two hex digits.
    BadEscape,
    /// The decoded bytes are not UTF-8.
    NotUtf8,
}

impl core::fmt::Display for DecodeError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(match self {
            DecodeError::BadEscape => "a bad %-escape",
            DecodeError::NotUtf8 => "not UTF-8 once %-escapes are decoded",
        })
    }
}

/// The text `encoded` stands for: every `%XX` as its byte, and `+` as a
/// space if `plus_is_space` (form encoding, as S3 lists keys).
pub fn decode(encoded: &str, plus_is_space: bool) -> Result<String, DecodeError> {
    let mut out = Vec::with_capacity(encoded.len());
    let mut rest = encoded.as_bytes();
    while let Some((&byte, after)) = rest.split_first() {
        rest = after;
        out.push(match byte {
            b'%' => {
                let (&[high, low], after) = rest.split_first_chunk().ok_or(DecodeError::BadEscape)?;
                rest = after;
                (hex_digit(high)? << 4) | hex_digit(low)?
            }
            b'+' if plus_is_space => b' ',
            byte => byte,
        });
    }
    String::from_utf8(out).map_err(|_| DecodeError::NotUtf8)
}

fn hex_digit(digit: u8) -> Result<u8, DecodeError> {
    // Not `from_str_radix`, which would take `%+1`.
    match digit {
        b'0'..=b'9' => Ok(digit - b'0'),
        b'a'..=b'f' => Ok(digit - b'a' + 10),
        b'A'..=b'F' => Ok(digit - b'A' + 10),
        _ => Err(DecodeError::BadEscape),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::string::ToString;
    use proptest::prelude::*;

    #[test]
    fn escapes_what_is_not_kept_byte_by_byte() {
        assert_eq!(encode(b"a b/c%~.", is_unreserved), "a%20b%2Fc%25~.");
        assert_eq!(encode("ü/x".as_bytes(), |c| c != '/'), "ü%2Fx");
        assert_eq!(encode("ü".as_bytes(), is_unreserved), "%C3%BC");
        assert_eq!(encode(b"\xff", |_| true), "%FF");
        // `%` is escaped even where the caller would keep it.
        assert_eq!(encode(b"100%", |_| true), "100%25");
    }

    #[test]
    fn decodes_escapes_and_refuses_bad_ones() {
        assert_eq!(decode("a+b%25%0a", false).unwrap(), "a+b%\n");
        assert_eq!(decode("a+b", true).unwrap(), "a b");
        for bad in ["%", "%4", "%zz", "%+1", "%-1", "%ü"] {
            assert_eq!(decode(bad, false), Err(DecodeError::BadEscape), "{bad}");
        }
        assert_eq!(decode("%FF", false), Err(DecodeError::NotUtf8));
        assert_eq!(DecodeError::BadEscape.to_string(), "a bad %-escape");
    }

    proptest! {
        #[test]
        fn decode_inverts_encode(text in any::<String>(), kept in any::<String>()) {
            let keep = |c: char| kept.contains(c);
            let encoded = encode(text.as_bytes(), keep);
            prop_assert_eq!(decode(&encoded, false).unwrap(), text.clone());
            // Only kept characters and escapes remain.
            for c in encoded.chars() {
                prop_assert!(c == '%' || c.is_ascii_hexdigit() || keep(c));
            }
        }

        #[test]
        fn decode_never_panics(text in any::<String>(), plus in any::<bool>()) {
            let _ = decode(&text, plus);
        }
    }
}
