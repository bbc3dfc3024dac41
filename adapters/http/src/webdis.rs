//! Redis over HTTP through webdis (`/COMMAND/arg/arg…`): protocol `redis`
//! to users (`HttpProtocol::Redis`); the file is named after the API it
//! speaks, webdis's, not Redis's own.
//!
//! - A bucket is a key prefix. Every argument is percent-encoded into its
//!   own path segment, `.` included (webdis reads a `.` as a format suffix);
//!   a single value goes in a `PUT` body (webdis appends it as the last
//!   argument), so values of any size and any bytes travel unencoded.
//! - Replies are read in webdis's `.raw` form, the Redis protocol itself,
//!   which keeps NUL bytes (the JSON form cuts strings at NUL). webdis 0.1.9
//!   drops nil elements from arrays in that form, so no script here returns
//!   an array with a nil in it: batch reads tag each value `1…` (present)
//!   or `0` (absent).
//! - A key's version is the SHA-1 of its value, computed by Redis
//!   (`redis.sha1hex`); compare-and-swap is a Lua script that writes only
//!   if the value still hashes the same. Writing the same bytes in between
//!   is not seen as a change, which leaves the value the caller expected.
//! - Expiry is Redis's own: every write with one sets it in the same
//!   command (`SET … PXAT <ms since the Unix epoch>`, Redis ≥ 6.2), inside
//!   the script for compare-and-swap. Redis hides an expired key from every
//!   command from that millisecond on and deletes it itself. A versioned
//!   read also returns the key's `PEXPIRETIME` (Redis ≥ 7.0).
//! - Insert-if-absent is the compare-and-swap script expecting no value:
//!   an expired key has none.
//! - Increment is `INCRBY` in a script that refuses a negative counter for
//!   the unsigned draft, sets the expiry of a counter it creates
//!   (`PEXPIREAT`; `INCRBY` keeps an existing one's) and returns the stored
//!   text (webdis 0.1.9's raw form garbles integers beyond 32 bits).
//!   Whatever Redis refuses (leading zeros, beyond signed 64 bits) falls
//!   back to the shared compare-and-swap loop, so the result and the errors
//!   are kv-core's exactly.
//! - `list-keys` is a script: `KEYS` with the bucket prefix and the asked
//!   prefix as a pattern (their glob characters escaped), sorted, the keys
//!   after the last key returned.
//!   It reads every key of the bucket on the server for each page; `SCAN`
//!   would not, but the Debian webdis 0.1.9 breaks it.
//! - Batches: one `MGET` (in a script, for the tags), `SET`s (in a script,
//!   for the expiry) or `DEL` per request, split so that each URL stays under webdis's 80 KiB request
//!   head; an entry too big for a URL is its own `SET`.

use alloc::boxed::Box;
use alloc::format;
use alloc::rc::Rc;
use alloc::string::{String, ToString};
use alloc::vec;
use alloc::vec::Vec;
use core::fmt;

use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use kv_core::{
    Bucket, CounterRange, Error, ExpiresAt, KeyPage, Limits, ListRequest, Quoted, Result, Version, Versioned,
};
use wasip2::http::types::Method;

use crate::Service;
use crate::client::{Client, Request, percent_encode};
use crate::credentials::Credentials;

/// Keys travel in the URL (three bytes per byte at worst), under webdis's
/// 80 KiB request head. Values travel in the body.
pub const LIMITS: Limits = Limits {
    max_key_bytes: 8 << 10,
    max_value_bytes: 64 << 20,
};

/// The longest URL a request is built to (webdis refuses a head over 80 KiB).
const MAX_URL_BYTES: usize = 64 << 10;

/// Keys per batch script (Lua's `unpack` has a stack limit).
const MAX_SCRIPT_KEYS: usize = 1000;

/// The value, its hash and its expiry (`PEXPIRETIME`: negative if none),
/// as text (webdis garbles integers beyond 32 bits; ms times fit a Lua
/// double exactly).
pub const GET_VERSIONED: &str = "local v = redis.call('GET', KEYS[1]) \
    if v then return {v, redis.sha1hex(v), \
    string.format('%.0f', redis.call('PEXPIRETIME', KEYS[1]))} end return {}";

/// The writing scripts' first argument, ARGV[1], is the expiry (ms since
/// the Unix epoch, or `0` for none: no empty argument, which the URL
/// could lose): `set(k, v)` sets `k` with it.
macro_rules! with_set {
    ($script:literal) => {
        concat!(
            "local function set(k, v) if ARGV[1] == '0' then redis.call('SET', k, v) \
             else redis.call('SET', k, v, 'PXAT', ARGV[1]) end end ",
            $script
        )
    };
}

/// ARGV[2..]: the values of KEYS, in order.
pub const SET_MANY: &str =
    with_set!("for i = 1, #KEYS do set(KEYS[i], ARGV[i + 1]) end return redis.status_reply('OK')");

/// ARGV[2]: the expected hash, or `none` for an absent (or expired) key;
/// ARGV[3]: the value.
pub const COMPARE_AND_SWAP: &str = with_set!(
    "local v = redis.call('GET', KEYS[1]) \
    if (v and redis.sha1hex(v) == ARGV[2]) or (not v and ARGV[2] == 'none') then \
    set(KEYS[1], ARGV[3]) return 1 end return 0"
);

/// ARGV[1]: the expiry of a counter this creates (or `0`); ARGV[2]: the
/// delta; ARGV[3]: the counter range (`u64` or `s64`). Returns the new
/// value as the stored text: webdis 0.1.9's raw form garbles integer
/// replies beyond 32 bits, and Lua numbers are doubles.
pub const INCREMENT: &str = "local v = redis.call('GET', KEYS[1]) \
    if v and ARGV[3] == 'u64' and string.sub(v, 1, 1) == '-' then \
    return redis.error_reply('negative counter') end \
    redis.call('INCRBY', KEYS[1], ARGV[2]) local n = redis.call('GET', KEYS[1]) \
    if not v and ARGV[1] ~= '0' then redis.call('PEXPIREAT', KEYS[1], ARGV[1]) end return n";

pub const GET_MANY: &str = "local vs = redis.call('MGET', unpack(KEYS)) local out = {} \
    for i = 1, #KEYS do if vs[i] then out[i] = '1' .. vs[i] else out[i] = '0' end end return out";

/// ARGV[1]: the pattern; ARGV[2]: `1` if ARGV[3] is the key to continue
/// after; ARGV[4]: how many keys to return at most (the adapter asks for
/// one more than a page, `ListRequest::fetch_keys`, to tell whether there
/// are more).
pub const LIST_KEYS: &str = "local ks = redis.call('KEYS', ARGV[1]) table.sort(ks) \
    local out = {} local limit = tonumber(ARGV[4]) \
    for _, k in ipairs(ks) do if ARGV[2] == '0' or k > ARGV[3] then \
    out[#out + 1] = k if #out >= limit then break end end end return out";

pub struct Webdis {
    conn: Rc<Connection>,
}

impl Webdis {
    pub fn new(client: Rc<Client>, credentials: Credentials) -> Result<Self> {
        let authorization = match credentials.get("username")? {
            None => None,
            Some(user) => {
                let password = credentials.require("password")?;
                Some(format!("Basic {}", BASE64.encode(format!("{user}:{password}"))))
            }
        };
        Ok(Webdis {
            conn: Rc::new(Connection {
                client,
                authorization,
            }),
        })
    }
}

impl Service for Webdis {
    fn limits(&self) -> Limits {
        LIMITS
    }

    fn open(&self, prefix: String) -> Result<Box<dyn Bucket>> {
        Ok(Box::new(WebdisBucket {
            conn: Rc::clone(&self.conn),
            prefix,
        }))
    }
}

struct Connection {
    client: Rc<Client>,
    /// HTTP basic auth for webdis's ACL, if configured.
    authorization: Option<String>,
}

/// One Redis reply.
#[derive(Debug, PartialEq)]
pub enum Reply {
    Status(String),
    Error(String),
    Integer(i64),
    Bulk(Option<Vec<u8>>),
    Array(Vec<Reply>),
}

/// What a message says of a reply (its `Debug` would add its code, and
/// that of escaping, to the adapter).
impl fmt::Display for Reply {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Reply::Status(status) => write!(f, "status {}", Quoted(status)),
            Reply::Error(error) => write!(f, "error {}", Quoted(error)),
            Reply::Integer(n) => write!(f, "integer {n}"),
            Reply::Bulk(None) => f.write_str("nil"),
            Reply::Bulk(Some(bytes)) => write!(f, "a string of {} bytes", bytes.len()),
            Reply::Array(items) => write!(f, "an array of {} replies", items.len()),
        }
    }
}

impl Connection {
    /// Runs one Redis command: `args` in the URL, then `value` (if any) as
    /// the last argument. Redis's own errors (`-ERR …`) are returned as
    /// [`Reply::Error`] for the caller to judge.
    fn command(&self, args: &[&[u8]], value: Option<&[u8]>, once: bool) -> Result<Reply> {
        let mut path = String::new();
        for arg in args {
            path.push('/');
            path.push_str(&percent_encode(arg));
        }
        let request = match value {
            // webdis drops an empty body, but keeps an empty last segment.
            Some([]) => Request::new(Method::Get, format!("{path}/.raw")),
            Some(value) => Request::new(Method::Put, format!("{path}.raw")).body(value.to_vec()),
            None => Request::new(Method::Get, format!("{path}.raw")),
        };
        let mut request = match &self.authorization {
            Some(value) => request.header("authorization", value.as_bytes()),
            None => request,
        };
        if once {
            request = request.once();
        }
        let response = self.client.send(&request)?;
        if !response.is_success() {
            return Err(self.client.status_error(&response, &response.body_text()));
        }
        match parse_reply(&response.body) {
            Some((reply, [])) => Ok(reply),
            _ => Err(self.client.malformed("not a Redis reply", &response)),
        }
    }

    /// Runs a command whose Redis error is the operation's error.
    fn ok(&self, args: &[&[u8]], value: Option<&[u8]>, once: bool) -> Result<Reply> {
        match self.command(args, value, once)? {
            Reply::Error(message) => Err(self.client.error(message)),
            reply => Ok(reply),
        }
    }

    /// `EVAL script keys… args… [value]`.
    fn eval(
        &self,
        script: &str,
        keys: &[&[u8]],
        args: &[&[u8]],
        value: Option<&[u8]>,
        once: bool,
    ) -> Result<Reply> {
        let count = keys.len().to_string();
        let mut all: Vec<&[u8]> = vec![b"EVAL", script.as_bytes(), count.as_bytes()];
        all.extend_from_slice(keys);
        all.extend_from_slice(args);
        self.ok(&all, value, once)
    }

    fn unexpected(&self, command: &str, reply: &Reply) -> Error {
        self.client
            .error(format_args!("unexpected reply to {command}: {reply}"))
    }
}

pub struct WebdisBucket {
    conn: Rc<Connection>,
    prefix: String,
}

impl WebdisBucket {
    fn wire_key(&self, key: &str) -> Vec<u8> {
        format!("{}{key}", self.prefix).into_bytes()
    }

    /// The `KEYS` pattern matching exactly this bucket's keys that start
    /// with `prefix`.
    fn pattern(&self, prefix: &str) -> Vec<u8> {
        let mut pattern = Vec::new();
        for &byte in self.prefix.as_bytes().iter().chain(prefix.as_bytes()) {
            if matches!(byte, b'*' | b'?' | b'[' | b']' | b'\\') {
                pattern.push(b'\\');
            }
            pattern.push(byte);
        }
        pattern.push(b'*');
        pattern
    }

    /// Splits `items` into runs whose encoded size (`size`) keeps each URL
    /// under the limit, at most `max_items` each.
    fn runs<T>(items: &[T], max_items: usize, size: impl Fn(&T) -> usize) -> Vec<&[T]> {
        let mut runs = Vec::new();
        let mut start = 0;
        while start < items.len() {
            let mut end = start + 1;
            let mut bytes = size(&items[start]);
            while end < items.len()
                && end - start < max_items
                && bytes + size(&items[end]) < MAX_URL_BYTES / 2
            {
                bytes += size(&items[end]);
                end += 1;
            }
            runs.push(&items[start..end]);
            start = end;
        }
        runs
    }
}

impl Bucket for WebdisBucket {
    fn get(&self, key: &str) -> Result<Option<Vec<u8>>> {
        match self.conn.ok(&[b"GET", &self.wire_key(key)], None, false)? {
            Reply::Bulk(value) => Ok(value),
            reply => Err(self.conn.unexpected("GET", &reply)),
        }
    }

    fn get_versioned(&self, key: &str) -> Result<Versioned> {
        let reply = self
            .conn
            .eval(GET_VERSIONED, &[&self.wire_key(key)], &[], None, false)?;
        let unexpected = || self.conn.client.error("unexpected reply to a versioned GET");
        let items = match reply {
            Reply::Array(items) if items.is_empty() => return Ok(Versioned::default()),
            Reply::Array(items) => items,
            reply => return Err(self.conn.unexpected("a versioned GET", &reply)),
        };
        let [
            Reply::Bulk(Some(value)),
            Reply::Bulk(Some(hash)),
            Reply::Bulk(Some(expiry)),
        ] = <[Reply; 3]>::try_from(items).map_err(|_| unexpected())?
        else {
            return Err(unexpected());
        };
        // Negative: no expiry (-1).
        let expires_at = match core::str::from_utf8(&expiry)
            .ok()
            .and_then(|t| t.parse::<i64>().ok())
        {
            Some(at) => u64::try_from(at).ok(),
            None => return Err(unexpected()),
        };
        Ok(Versioned::found(value, Version(hash)).expiring(expires_at))
    }

    fn set(&self, key: &str, value: &[u8], expires_at: Option<ExpiresAt>) -> Result<()> {
        let expiry = expiry_arg(expires_at);
        match self.conn.eval(
            SET_MANY,
            &[&self.wire_key(key)],
            &[expiry.as_bytes()],
            Some(value),
            false,
        )? {
            Reply::Status(_) => Ok(()),
            reply => Err(self.conn.unexpected("SET", &reply)),
        }
    }

    fn delete(&self, key: &str) -> Result<()> {
        match self.conn.ok(&[b"DEL", &self.wire_key(key)], None, false)? {
            Reply::Integer(_) => Ok(()),
            reply => Err(self.conn.unexpected("DEL", &reply)),
        }
    }

    fn exists(&self, key: &str) -> Result<bool> {
        match self.conn.ok(&[b"EXISTS", &self.wire_key(key)], None, false)? {
            Reply::Integer(n) => Ok(n > 0),
            reply => Err(self.conn.unexpected("EXISTS", &reply)),
        }
    }

    fn list_keys(&self, request: ListRequest<'_>) -> Result<KeyPage> {
        let after = request.after.map(|key| self.wire_key(key));
        let flag: &[u8] = if after.is_some() { b"1" } else { b"0" };
        let limit = request.fetch_keys().to_string();
        let args: [&[u8]; 4] = [
            &self.pattern(request.prefix),
            flag,
            after.as_deref().unwrap_or(b"-"),
            limit.as_bytes(),
        ];
        let Reply::Array(items) = self.conn.eval(LIST_KEYS, &[], &args, None, false)? else {
            return Err(self.conn.client.error("unexpected reply to the list-keys script"));
        };
        let mut listed = Vec::with_capacity(items.len());
        for item in items {
            let key = match item {
                Reply::Bulk(Some(wire)) => wire
                    .strip_prefix(self.prefix.as_bytes())
                    .and_then(|k| String::from_utf8(k.to_vec()).ok()),
                _ => None,
            };
            listed.push(key.ok_or_else(|| {
                self.conn
                    .client
                    .error("a listed key is outside the bucket or not UTF-8")
            })?);
        }
        let (keys, more) = request.page_of(listed);
        Ok(KeyPage { keys, more })
    }

    fn compare_and_swap(
        &self,
        key: &str,
        expected: Option<&Version>,
        value: &[u8],
        expires_at: Option<ExpiresAt>,
    ) -> Result<bool> {
        let expected: &[u8] = expected.map_or(b"none", |Version(hash)| hash);
        let expiry = expiry_arg(expires_at);
        match self.conn.eval(
            COMPARE_AND_SWAP,
            &[&self.wire_key(key)],
            &[expiry.as_bytes(), expected],
            Some(value),
            true,
        )? {
            Reply::Integer(n) => Ok(n == 1),
            reply => Err(self.conn.unexpected("the compare-and-swap script", &reply)),
        }
    }

    fn increment(
        &self,
        key: &str,
        delta: i128,
        range: CounterRange,
        expires_at_if_created: Option<ExpiresAt>,
    ) -> Result<i128> {
        let expiry = expiry_arg(expires_at_if_created);
        let delta_text = kv_core::Decimal(delta).to_string();
        let range_text = range.to_string();
        let args = [
            b"EVAL" as &[u8],
            INCREMENT.as_bytes(),
            b"1",
            &self.wire_key(key),
            expiry.as_bytes(),
            delta_text.as_bytes(),
            range_text.as_bytes(),
        ];
        match self.conn.command(&args, None, true)? {
            Reply::Bulk(Some(text)) => kv_core::parse_counter(&text).ok_or_else(|| {
                self.conn
                    .client
                    .error("INCRBY left a value that is not a counter")
            }),
            // Not a counter Redis can add to: kv-core's own loop decides.
            Reply::Error(_) => kv_core::increment_by_cas(self, key, delta, range, expires_at_if_created),
            reply => Err(self.conn.unexpected("INCRBY", &reply)),
        }
    }

    fn get_many(&self, keys: &[String]) -> Result<Vec<Option<Vec<u8>>>> {
        let mut values = Vec::with_capacity(keys.len());
        for run in Self::runs(keys, MAX_SCRIPT_KEYS, |k| self.prefix.len() + k.len() * 3 + 1) {
            let wire: Vec<Vec<u8>> = run.iter().map(|k| self.wire_key(k)).collect();
            let wire: Vec<&[u8]> = wire.iter().map(Vec::as_slice).collect();
            let Reply::Array(items) = self.conn.eval(GET_MANY, &wire, &[], None, false)? else {
                return Err(self.conn.client.error("unexpected reply to MGET"));
            };
            if items.len() != run.len() {
                return Err(self.conn.client.error("MGET answered a different number of keys"));
            }
            for item in items {
                values.push(match item {
                    Reply::Bulk(Some(tagged)) if tagged.first() == Some(&b'1') => Some(tagged[1..].to_vec()),
                    Reply::Bulk(Some(tagged)) if tagged == b"0" => None,
                    reply => return Err(self.conn.unexpected("MGET", &reply)),
                });
            }
        }
        Ok(values)
    }

    fn set_many(&self, entries: &[(String, Vec<u8>)], expires_at: Option<ExpiresAt>) -> Result<()> {
        let expiry = expiry_arg(expires_at);
        let size = |(k, v): &(String, Vec<u8>)| (self.prefix.len() + k.len() + v.len()) * 3 + 2;
        for run in Self::runs(entries, MAX_SCRIPT_KEYS, size) {
            if let [(key, value)] = run {
                self.set(key, value, expires_at)?;
                continue;
            }
            let wire: Vec<Vec<u8>> = run.iter().map(|(k, _)| self.wire_key(k)).collect();
            let wire: Vec<&[u8]> = wire.iter().map(Vec::as_slice).collect();
            let mut args: Vec<&[u8]> = vec![expiry.as_bytes()];
            args.extend(run.iter().map(|(_, value)| value.as_slice()));
            match self.conn.eval(SET_MANY, &wire, &args, None, false)? {
                Reply::Status(_) => {}
                reply => return Err(self.conn.unexpected("the SET script", &reply)),
            }
        }
        Ok(())
    }

    fn delete_many(&self, keys: &[String]) -> Result<()> {
        for run in Self::runs(keys, usize::MAX, |k| (self.prefix.len() + k.len()) * 3 + 1) {
            let wire: Vec<Vec<u8>> = run.iter().map(|k| self.wire_key(k)).collect();
            let mut args: Vec<&[u8]> = vec![b"DEL"];
            args.extend(wire.iter().map(Vec::as_slice));
            match self.conn.ok(&args, None, false)? {
                Reply::Integer(_) => {}
                reply => return Err(self.conn.unexpected("DEL", &reply)),
            }
        }
        Ok(())
    }
}

/// An expiry as the scripts take it: ms since the Unix epoch, or `0`.
fn expiry_arg(expires_at: Option<ExpiresAt>) -> String {
    expires_at.unwrap_or(0).to_string()
}

/// Parses one reply of the Redis protocol (RESP2); `None` if malformed.
pub fn parse_reply(bytes: &[u8]) -> Option<(Reply, &[u8])> {
    let (&kind, rest) = bytes.split_first()?;
    let end = rest.windows(2).position(|w| w == b"\r\n")?;
    let (line, rest) = (core::str::from_utf8(&rest[..end]).ok()?, &rest[end + 2..]);
    match kind {
        b'+' => Some((Reply::Status(line.into()), rest)),
        b'-' => Some((Reply::Error(line.into()), rest)),
        b':' => Some((Reply::Integer(line.parse().ok()?), rest)),
        b'$' => {
            let len: i64 = line.parse().ok()?;
            if len < 0 {
                return Some((Reply::Bulk(None), rest));
            }
            let len = usize::try_from(len).ok()?;
            let data = rest.get(..len)?;
            let rest = rest.get(len..)?.strip_prefix(b"\r\n")?;
            Some((Reply::Bulk(Some(data.to_vec())), rest))
        }
        b'*' => {
            let count: i64 = line.parse().ok()?;
            let mut rest = rest;
            let mut items = Vec::new();
            for _ in 0..count.max(0) {
                let (item, after) = parse_reply(rest)?;
                items.push(item);
                rest = after;
            }
            Some((Reply::Array(items), rest))
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{self, Answers, Op, answer};

    /// webdis's `.raw` answers: the Redis protocol itself.
    fn raw(reply: &str) -> crate::client::Response {
        answer(200, &[("content-type", "binary/octet-stream")], reply)
    }

    const SHA1: &str = "f32b67c7e26342af42efabc674d441dca0a281c5";

    fn script(op: Op) -> Vec<crate::client::Response> {
        match op {
            Op::Get => vec![raw("$5\r\nvalue\r\n")],
            Op::GetVersioned => vec![raw(&format!(
                "*3\r\n$5\r\nvalue\r\n$40\r\n{SHA1}\r\n$13\r\n1795279446000\r\n"
            ))],
            Op::Set | Op::SetMany => vec![raw("+OK\r\n")],
            Op::Delete | Op::Exists | Op::CasInsert | Op::CasReplace => vec![raw(":1\r\n")],
            Op::ListFirst | Op::ListAfter => vec![raw("*2\r\n$3\r\nb/a\r\n$3\r\nb/b\r\n")],
            Op::Increment => vec![raw("$2\r\n42\r\n")],
            Op::GetMany => vec![raw("*2\r\n$6\r\n1value\r\n$1\r\n0\r\n")],
            Op::DeleteMany => vec![raw(":2\r\n")],
        }
    }

    fn open(answers: Answers) -> Box<dyn Bucket> {
        let (client, credentials) =
            testing::canned("redis", answers, &[("username", "u"), ("password", "pw")]);
        Webdis::new(client, credentials)
            .unwrap()
            .open("b/".into())
            .unwrap()
    }

    /// Any answer, and webdis's own cut short or changed: `ok` or a
    /// one-line `other(..)`, never a panic.
    #[test]
    fn answers_are_handled_without_panics() {
        testing::check_protocol(open, script, SHA1.as_bytes(), &["content-type"]);
        testing::check_protocol_expiring(open, script, SHA1.as_bytes(), &["content-type"]);
    }

    /// The arguments of the command a request sent (its path's segments).
    fn arguments(path: &str) -> Vec<String> {
        path.trim_end_matches(".raw")
            .split('/')
            .skip(1)
            .map(|arg| kv_core::percent::decode(arg, false).unwrap())
            .collect()
    }

    #[test]
    fn writes_pass_their_expiry_to_the_scripts() {
        let answers = Answers::new(vec![
            raw("+OK\r\n"),
            raw(":1\r\n"),
            raw("$1\r\n1\r\n"),
            raw("+OK\r\n"),
        ]);
        let bucket = open(answers.clone());
        let at = Some(testing::EXPIRES_AT);
        bucket.set("a", b"v", at).unwrap();
        assert!(bucket.compare_and_swap("a", None, b"v", at).unwrap());
        assert_eq!(bucket.increment("a", 1, CounterRange::S64, at).unwrap(), 1);
        let entries = [("a".to_string(), b"1".to_vec()), ("b".to_string(), b"2".to_vec())];
        bucket.set_many(&entries, None).unwrap();
        let asked = answers.asked();
        let args: Vec<Vec<String>> = asked.iter().map(|(path, _)| arguments(path)).collect();
        assert_eq!(args[0], ["EVAL", SET_MANY, "1", "b/a", "1795279446000"]);
        assert_eq!(asked[0].1, "v");
        assert_eq!(args[1][2..], ["1", "b/a", "1795279446000", "none"]);
        assert_eq!(args[2][2..], ["1", "b/a", "1795279446000", "1", "s64"]);
        assert_eq!(args[3][2..], ["2", "b/a", "b/b", "0", "1", "2"]);
    }

    #[test]
    fn a_versioned_read_gives_the_expiry() {
        let reply = |expiry: &str| {
            raw(&format!(
                "*3\r\n$1\r\nv\r\n$40\r\n{SHA1}\r\n${}\r\n{expiry}\r\n",
                expiry.len()
            ))
        };
        let bucket = open(Answers::new(vec![
            reply("1795279446000"),
            reply("-1"),
            reply("x"),
        ]));
        assert_eq!(
            bucket.get_versioned("a").unwrap().expires_at,
            Some(1_795_279_446_000)
        );
        let versioned = bucket.get_versioned("a").unwrap();
        assert_eq!(
            (versioned.value, versioned.expires_at),
            (Some(b"v".to_vec()), None)
        );
        assert!(bucket.get_versioned("a").is_err());
    }

    #[test]
    fn the_list_pattern_escapes_the_bucket_and_the_prefix() {
        let bucket = WebdisBucket {
            conn: Rc::new(Connection {
                client: testing::canned("redis", Answers::default(), &[]).0,
                authorization: None,
            }),
            prefix: "b[1]/".into(),
        };
        assert_eq!(bucket.pattern("x*?\\"), b"b\\[1\\]/x\\*\\?\\\\*");
    }

    #[test]
    fn parses_redis_replies() {
        assert_eq!(
            parse_reply(b"+OK\r\n"),
            Some((Reply::Status("OK".into()), &b""[..]))
        );
        assert_eq!(parse_reply(b":-5\r\n").unwrap().0, Reply::Integer(-5));
        assert_eq!(
            parse_reply(b"$3\r\na\0b\r\n").unwrap().0,
            Reply::Bulk(Some(b"a\0b".to_vec()))
        );
        assert_eq!(parse_reply(b"$-1\r\n").unwrap().0, Reply::Bulk(None));
        assert_eq!(
            parse_reply(b"*2\r\n$1\r\nx\r\n:1\r\n").unwrap().0,
            Reply::Array(vec![Reply::Bulk(Some(b"x".to_vec())), Reply::Integer(1)])
        );
        assert_eq!(
            parse_reply(b"-ERR no\r\n").unwrap().0,
            Reply::Error("ERR no".into())
        );
        for garbage in [&b""[..], b"$5\r\nab\r\n", b"*2\r\n+OK\r\n", b"?x\r\n", b"<html>"] {
            assert_eq!(parse_reply(garbage), None, "{garbage:?}");
        }
    }
}
