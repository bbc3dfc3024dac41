//! Bucket names end up in file names (kv-fs) and key prefixes (kv-http):
//! they are validated once, here, before any backend sees them.

use alloc::format;
use alloc::string::ToString;

use crate::error::Quoted;
use crate::{Error, Result};

pub const MAX_BUCKET_NAME_BYTES: usize = 128;

/// Accepts 1 to [`MAX_BUCKET_NAME_BYTES`] bytes with no `/`, `\`, `..`,
/// NUL or other control character, and not `.`.
pub fn validate_bucket_name(name: &str) -> Result<()> {
    let problem = if name.is_empty() {
        Some("it is empty".to_string())
    } else if name.len() > MAX_BUCKET_NAME_BYTES {
        Some(format!("it is longer than {MAX_BUCKET_NAME_BYTES} bytes"))
    } else if name == "." || name.as_bytes().windows(2).any(|pair| pair == b"..") {
        // (Bytes, not `str::contains`: its searcher would add core's
        // string-slicing panic messages to every adapter.)
        Some("it contains \"..\" or is \".\"".to_string())
    } else {
        name.chars()
            .find(|c| matches!(c, '/' | '\\') || c.is_control())
            .map(|c| format!("it contains the character U+{:04X}", u32::from(c)))
    };
    match problem {
        Some(problem) => Err(Error::invalid(format!(
            "invalid bucket name {}: {problem}",
            Quoted(name)
        ))),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::prelude::rust_2024::*;

    #[test]
    fn rejects_names_that_could_escape_or_confuse() {
        for bad in [
            "",
            ".",
            "..",
            "../x",
            "a/b",
            "a\\b",
            "a\0",
            "a\nb",
            "x..y",
            &"n".repeat(129),
        ] {
            assert!(validate_bucket_name(bad).is_err(), "{bad:?}");
        }
        for good in ["default", "my-bucket_1", "Ünïcödé", "a.b", &"n".repeat(128)] {
            assert!(validate_bucket_name(good).is_ok(), "{good:?}");
        }
    }
}
