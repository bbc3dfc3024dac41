//! The format kv-virt moves buckets in: JSON lines, one object per key,
//!
//! ```text
//! {"key":"<the key>","value":"<the value, standard base64>"}
//! ```
//!
//! and, in a stream holding several buckets, the bucket first:
//! `{"bucket":"<name>","key":…,"value":…}`. A key that expires has its
//! expiry last, as an absolute time (wall-clock milliseconds since the Unix
//! epoch), so a dump moved later still expires when it would have:
//! `{"key":…,"value":…,"expires_at_ms":1767225600000}`. `kv-virt fs dump` writes it (in
//! key order) and `kv-virt fs load` reads it natively; the export and import
//! commands (`kv-virt export`, `kv-virt import`) write and read it on any
//! backend, inside a WebAssembly component. Blank lines are skipped; any
//! other field is an error (a misspelt field is not silently dropped).
//!
//! Also here: the settings kv-virt bakes into those two commands ([`Job`]),
//! which both kv-virt (writing them) and the command (reading them) use.

use std::fmt;
use std::io::{self, BufRead, Write};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use serde::{Deserialize, Serialize};

/// One key of a dump.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Entry {
    /// The bucket, when the line names one.
    pub bucket: Option<String>,
    pub key: String,
    pub value: Vec<u8>,
    /// When the key expires (milliseconds since the Unix epoch), if it does.
    pub expires_at_ms: Option<u64>,
}

#[derive(Serialize)]
struct LineOut<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    bucket: Option<&'a str>,
    key: &'a str,
    value: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    expires_at_ms: Option<u64>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct LineIn {
    bucket: Option<String>,
    key: String,
    value: String,
    expires_at_ms: Option<u64>,
}

/// Writes one line: `bucket` only when the stream holds several buckets,
/// `expires_at_ms` only for a key that expires.
pub fn write_line(
    out: &mut impl Write,
    bucket: Option<&str>,
    key: &str,
    value: &[u8],
    expires_at_ms: Option<u64>,
) -> io::Result<()> {
    let line = LineOut {
        bucket,
        key,
        value: BASE64.encode(value),
        expires_at_ms,
    };
    serde_json::to_writer(&mut *out, &line)?;
    out.write_all(b"\n")
}

/// Why a line could not be read: its number (from 1) and what is wrong.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LineError {
    pub line: u64,
    pub message: String,
}

impl fmt::Display for LineError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "line {}: {}", self.line, self.message)
    }
}

impl std::error::Error for LineError {}

/// Parses one line (without its line break).
fn parse(text: &str) -> Result<Entry, String> {
    const EXPECTED: &str = r#"(expected {"key": "…", "value": "<base64>"})"#;
    // serde would also take the fields as an array.
    if !text.trim_start().starts_with('{') {
        return Err(format!("not a JSON object {EXPECTED}"));
    }
    let line: LineIn = serde_json::from_str(text).map_err(|e| {
        // serde_json ends its message with a position in the text it was
        // given, always "line 1" here: keep only the column.
        let message = e.to_string();
        let position = format!(" at line {} column {}", e.line(), e.column());
        let bare = message.strip_suffix(&position).unwrap_or(&message);
        format!("column {}: {bare} {EXPECTED}", e.column())
    })?;
    let value = BASE64.decode(&line.value).map_err(|e| {
        format!(
            "the value of key {:?} is not standard base64: {e}",
            short(&line.key)
        )
    })?;
    Ok(Entry {
        bucket: line.bucket,
        key: line.key,
        value,
        expires_at_ms: line.expires_at_ms,
    })
}

/// A key as messages show it: its first 64 characters.
pub fn short(key: &str) -> String {
    match key.char_indices().nth(64) {
        Some((end, _)) => format!("{}…", &key[..end]),
        None => key.to_string(),
    }
}

/// The entries of a dump, read line by line (one line in memory at a time),
/// each with its line number.
pub struct Lines<R> {
    reader: R,
    line: u64,
    bytes: u64,
    buffer: Vec<u8>,
    failed: bool,
}

impl<R: BufRead> Lines<R> {
    pub fn new(reader: R) -> Self {
        Lines {
            reader,
            line: 0,
            bytes: 0,
            buffer: Vec::new(),
            failed: false,
        }
    }

    /// The bytes read so far.
    pub fn bytes_read(&self) -> u64 {
        self.bytes
    }

    fn error(&mut self, message: String) -> Option<Result<(u64, Entry), LineError>> {
        self.failed = true;
        Some(Err(LineError {
            line: self.line,
            message,
        }))
    }
}

impl<R: BufRead> Iterator for Lines<R> {
    /// The line number and the entry, or why the line is not one. Nothing
    /// follows an error.
    type Item = Result<(u64, Entry), LineError>;

    fn next(&mut self) -> Option<Self::Item> {
        while !self.failed {
            self.buffer.clear();
            self.line += 1;
            match self.reader.read_until(b'\n', &mut self.buffer) {
                Ok(0) => return None,
                Ok(n) => self.bytes += n as u64,
                Err(e) => return self.error(format!("cannot read: {e}")),
            }
            let Ok(text) = std::str::from_utf8(&self.buffer) else {
                return self.error("not UTF-8".into());
            };
            let text = text.trim_end_matches(['\n', '\r']);
            if text.trim().is_empty() {
                continue;
            }
            return match parse(text) {
                Ok(entry) => Some(Ok((self.line, entry))),
                Err(message) => self.error(message),
            };
        }
        None
    }
}

/// At most this many keys per `get-many` (export) or `set-many` (import), by default.
pub const DEFAULT_BATCH_KEYS: u32 = 1000;
/// About this many bytes of values per `get-many` or `set-many`, by default
/// (a batch always holds one value, however large).
pub const DEFAULT_BATCH_BYTES: u64 = 4 << 20;

/// What kv-virt bakes into its export and import commands: which task,
/// and how large the batches they read and write are.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct Job {
    pub task: Task,
    pub batch_keys: u32,
    pub batch_bytes: u64,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub enum Task {
    /// Write these buckets, one after the other, on standard output (lines
    /// name their bucket when there are several).
    Export { buckets: Vec<String> },
    /// Read standard input into the buckets its lines name, and lines that
    /// name none into `bucket`.
    Import { bucket: String },
}

impl Task {
    /// "export" or "import", for messages.
    pub fn name(&self) -> &'static str {
        match self {
            Task::Export { .. } => "export",
            Task::Import { .. } => "import",
        }
    }
}

impl Job {
    pub fn to_bytes(&self) -> Vec<u8> {
        serde_json::to_vec(self).expect("a job serializes")
    }

    pub fn from_bytes(bytes: &[u8]) -> Result<Job, String> {
        serde_json::from_slice(bytes).map_err(|e| format!("the baked-in settings are unreadable: {e}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(text: &str) -> Vec<Result<(u64, Entry), LineError>> {
        Lines::new(text.as_bytes()).collect()
    }

    #[test]
    fn lines_round_trip_any_key_and_bytes() {
        let entries = [
            ("a/b c%2F", vec![0u8, 1, 0, 255]),
            ("ключ \u{1F600} \"quoted\" \\ \n", vec![]),
            ("x", vec![b'\n'; 3]),
        ];
        let mut out = Vec::new();
        for (i, (key, value)) in entries.iter().enumerate() {
            let expires_at_ms = (i == 2).then_some(1_767_225_600_000);
            write_line(&mut out, (i == 1).then_some("other"), key, value, expires_at_ms).unwrap();
        }
        let text = String::from_utf8(out).unwrap();
        assert_eq!(text.lines().count(), 3);
        assert!(
            text.starts_with(r#"{"key":"a/b c%2F","value":"AAEA/w=="}"#),
            "{text}"
        );
        assert!(
            text.ends_with("{\"key\":\"x\",\"value\":\"CgoK\",\"expires_at_ms\":1767225600000}\n"),
            "{text}"
        );
        let read: Vec<_> = read(&text).into_iter().map(Result::unwrap).collect();
        for (i, ((line, entry), (key, value))) in read.iter().zip(&entries).enumerate() {
            assert_eq!(*line, i as u64 + 1);
            assert_eq!(entry.key, *key);
            assert_eq!(entry.value, *value);
            assert_eq!(entry.bucket.as_deref(), (i == 1).then_some("other"));
            assert_eq!(entry.expires_at_ms, (i == 2).then_some(1_767_225_600_000));
        }
    }

    #[test]
    fn blank_lines_are_skipped_and_counted() {
        let read = read("\n{\"key\":\"a\",\"value\":\"\"}\r\n  \n{\"key\":\"b\",\"value\":\"YQ==\"}");
        let lines: Vec<u64> = read.iter().map(|r| r.as_ref().unwrap().0).collect();
        assert_eq!(lines, [2, 4]);
    }

    #[test]
    fn a_bad_line_is_an_error_with_its_number_and_ends_the_reading() {
        let good = "{\"key\":\"a\",\"value\":\"YQ==\"}\n";
        for (bad, message) in [
            ("{\"key\":\"a\"", "column 10: EOF while parsing an object"),
            ("{\"key\":\"a\"}", "column 11: missing field `value`"),
            (
                "{\"key\":\"a\",\"value\":\"YQ==\",\"vlaue\":1}",
                "column 33: unknown field `vlaue`",
            ),
            (
                "{\"key\":\"a\",\"value\":\"Y Q\"}",
                "the value of key \"a\" is not standard base64",
            ),
            ("[\"k\", \"YQ==\"]", "not a JSON object"),
            ("hello", "not a JSON object"),
        ] {
            let read = read(&format!("{good}{bad}\n{good}"));
            assert_eq!(read.len(), 2, "{bad}");
            let error = read[1].clone().unwrap_err();
            assert_eq!(error.line, 2);
            assert!(
                error.to_string().starts_with(&format!("line 2: {message}")),
                "{error}"
            );
            assert!(!error.to_string().contains('\n'));
        }
        let mut bytes = good.as_bytes().to_vec();
        bytes.extend_from_slice(b"{\"key\":\"\xff\",\"value\":\"\"}\n");
        let read: Vec<_> = Lines::new(&bytes[..]).collect();
        assert_eq!(read[1].clone().unwrap_err().to_string(), "line 2: not UTF-8");
    }

    #[test]
    fn a_job_round_trips() {
        let job = Job {
            task: Task::Export {
                buckets: vec!["a".into(), "b".into()],
            },
            batch_keys: 10,
            batch_bytes: 1 << 20,
        };
        assert_eq!(Job::from_bytes(&job.to_bytes()).unwrap(), job);
        assert!(
            Job::from_bytes(b"{}")
                .unwrap_err()
                .starts_with("the baked-in settings")
        );
    }
}
