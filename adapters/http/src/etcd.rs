//! etcd through its v3 JSON gateway (`POST /v3/kv/range|put|deleterange|txn`).
//!
//! - A bucket is a key prefix; keys and values travel base64-encoded, as
//!   the gateway's proto3 JSON wants `bytes`.
//! - A key's version is its `mod_revision`; compare-and-swap and increment
//!   are a `txn` comparing it (or `create_revision == 0` for an absent key).
//!   A failed increment `txn` returns the current value in the same round
//!   trip, and the loop goes on from there.
//! - `list-keys` is a ranged, keys-only, limited read from just after the
//!   last key returned (in byte order), so concurrent writes never make it
//!   repeat or skip a key that existed throughout.
//! - Batches are one `txn` each, split at etcd's default limits (128
//!   operations, 1.5 MiB per request).
//! - proto3 JSON leaves out fields that hold their default: an empty value
//!   has no `value`, a failed `txn` has no `succeeded`. Missing means default.
//! - With a `username` credential, the adapter authenticates once per
//!   instance (`/v3/auth/authenticate`) and sends the token.

use alloc::boxed::Box;
use alloc::format;
use alloc::rc::Rc;
use alloc::string::{String, ToString};
use alloc::vec::Vec;
use core::cell::RefCell;

use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use kv_core::{
    Bucket, CounterRange, Error, KeyPage, Limits, ListRequest, Quoted, Result, Version, Versioned,
};
use serde_json::{Value, json};
use wasip2::http::types::Method;

use crate::Service;
use crate::client::{Client, Request, Response};
use crate::credentials::Credentials;

/// Keys up to 16 KiB and values up to 1 MiB keep every request under
/// etcd's default `--max-request-bytes` of 1.5 MiB once base64-encoded.
pub const LIMITS: Limits = Limits {
    max_key_bytes: 16 << 10,
    max_value_bytes: 1 << 20,
};

/// etcd's default `--max-txn-ops`.
const MAX_TXN_OPS: usize = 128;

/// Raw key and value bytes per batch `txn` (under 1.5 MiB once encoded).
const MAX_TXN_BYTES: usize = 1 << 20;

/// Conflicting writers an increment outlasts before giving up.
const MAX_INCREMENT_ATTEMPTS: usize = 10_000;

pub struct Etcd {
    conn: Rc<Connection>,
}

impl Etcd {
    pub fn new(client: Rc<Client>, credentials: Credentials) -> Result<Self> {
        Ok(Etcd {
            conn: Rc::new(Connection {
                client,
                credentials,
                token: RefCell::new(None),
            }),
        })
    }
}

impl Service for Etcd {
    fn limits(&self) -> Limits {
        LIMITS
    }

    fn open(&self, prefix: String) -> Result<Box<dyn Bucket>> {
        Ok(Box::new(EtcdBucket {
            conn: Rc::clone(&self.conn),
            prefix,
        }))
    }
}

/// The client and the auth token, shared by every bucket of the instance.
struct Connection {
    client: Rc<Client>,
    credentials: Credentials,
    token: RefCell<Option<String>>,
}

impl Connection {
    /// POSTs a JSON body to `/v3/<call>` and returns the JSON answer.
    fn call(&self, call: &str, body: &Value, once: bool) -> Result<Value> {
        let mut request = Request::new(Method::Post, format!("/v3/{call}"))
            .header("content-type", "application/json")
            .body(body.to_string());
        if let Some(token) = self.token()? {
            request = request.header("authorization", token);
        }
        if once {
            request = request.once();
        }
        let response = self.client.send(&request)?;
        if !response.is_success() {
            return Err(self.service_error(&response));
        }
        serde_json::from_slice(&response.body)
            .map_err(|e| self.client.malformed(format_args!("{e}"), &response))
    }

    fn token(&self) -> Result<Option<String>> {
        if let Some(token) = self.token.borrow().as_ref() {
            return Ok(Some(token.clone()));
        }
        let Some(name) = self.credentials.get("username")? else {
            return Ok(None);
        };
        let password = self.credentials.require("password")?;
        let request = Request::new(Method::Post, "/v3/auth/authenticate")
            .header("content-type", "application/json")
            .body(json!({ "name": name, "password": password }).to_string());
        let response = self.client.send(&request)?;
        if !response.is_success() {
            return Err(self.service_error(&response));
        }
        let answer: Value = serde_json::from_slice(&response.body)
            .map_err(|e| self.client.malformed(format_args!("{e}"), &response))?;
        let token = answer["token"]
            .as_str()
            .ok_or_else(|| self.client.malformed("no token", &response))?
            .to_string();
        *self.token.borrow_mut() = Some(token.clone());
        Ok(Some(token))
    }

    /// etcd's errors are `{"error": "...", "message": "...", "code": n}`.
    fn service_error(&self, response: &Response) -> Error {
        let message = serde_json::from_slice::<Value>(&response.body)
            .ok()
            .and_then(|v| v["message"].as_str().or(v["error"].as_str()).map(String::from))
            .unwrap_or_else(|| response.body_text());
        self.client.status_error(response, &message)
    }

    fn malformed(&self, what: &str) -> Error {
        self.client
            .error(format_args!("unexpected answer from etcd: {what}"))
    }
}

pub struct EtcdBucket {
    conn: Rc<Connection>,
    prefix: String,
}

/// A key as the gateway wants it.
fn b64(bytes: &[u8]) -> String {
    BASE64.encode(bytes)
}

/// proto3 JSON writes 64-bit integers as strings; accept numbers too.
fn int(value: &Value) -> Option<i64> {
    match value {
        Value::Null => Some(0),
        Value::String(s) => s.parse().ok(),
        Value::Number(n) => n.as_i64(),
        _ => None,
    }
}

/// The smallest key greater than every key starting with `prefix`.
fn prefix_end(prefix: &[u8]) -> Vec<u8> {
    let mut end = prefix.to_vec();
    while let Some(last) = end.pop() {
        if last < 0xff {
            end.push(last + 1);
            return end;
        }
    }
    // All 0xff (or empty): to the end of the key space.
    alloc::vec![0]
}

/// One key-value of a range answer: its value and version.
struct Found {
    value: Vec<u8>,
    mod_revision: i64,
}

impl EtcdBucket {
    fn wire_key(&self, key: &str) -> String {
        b64(format!("{}{key}", self.prefix).as_bytes())
    }

    /// The first key-value of a range answer (`kvs` missing: not found).
    fn found(&self, answer: &Value) -> Result<Option<Found>> {
        let Some(kv) = answer["kvs"].as_array().and_then(|kvs| kvs.first()) else {
            return Ok(None);
        };
        let value = match kv["value"].as_str() {
            None => Vec::new(),
            Some(text) => BASE64
                .decode(text)
                .map_err(|_| self.conn.malformed("a value is not base64"))?,
        };
        let mod_revision = int(&kv["mod_revision"]).ok_or_else(|| self.conn.malformed("bad mod_revision"))?;
        Ok(Some(Found { value, mod_revision }))
    }

    fn range(&self, key: &str) -> Result<Option<Found>> {
        let answer = self
            .conn
            .call("kv/range", &json!({ "key": self.wire_key(key) }), false)?;
        self.found(&answer)
    }

    /// The compare of a `txn` that succeeds only if `key` is still at
    /// `revision` (0: still absent).
    fn unchanged(&self, key: &str, revision: i64) -> Value {
        if revision == 0 {
            json!({ "key": self.wire_key(key), "target": "CREATE", "result": "EQUAL", "create_revision": "0" })
        } else {
            json!({ "key": self.wire_key(key), "target": "MOD", "result": "EQUAL",
                    "mod_revision": revision.to_string() })
        }
    }

    fn put(&self, key: &str, value: &[u8]) -> Value {
        json!({ "request_put": { "key": self.wire_key(key), "value": b64(value) } })
    }

    /// Runs the operations as `txn`s that each stay under etcd's limits;
    /// `size` is an operation's raw byte count. Returns each `txn`'s answer.
    fn batched<T>(
        &self,
        items: &[T],
        size: impl Fn(&T) -> usize,
        op: impl Fn(&T) -> Value,
    ) -> Result<Vec<Value>> {
        let mut answers = Vec::new();
        let mut start = 0;
        while start < items.len() {
            let mut end = start;
            let mut bytes = 0;
            while end < items.len()
                && end - start < MAX_TXN_OPS
                && (end == start || bytes + size(&items[end]) <= MAX_TXN_BYTES)
            {
                bytes += size(&items[end]);
                end += 1;
            }
            let ops: Vec<Value> = items[start..end].iter().map(&op).collect();
            answers.push(self.conn.call("kv/txn", &json!({ "success": ops }), false)?);
            start = end;
        }
        Ok(answers)
    }
}

impl Bucket for EtcdBucket {
    fn get(&self, key: &str) -> Result<Option<Vec<u8>>> {
        Ok(self.range(key)?.map(|found| found.value))
    }

    fn get_versioned(&self, key: &str) -> Result<Versioned> {
        Ok(self
            .range(key)?
            .map(|found| Versioned::found(found.value, Version(found.mod_revision.to_string().into_bytes())))
            .unwrap_or_default())
    }

    fn set(&self, key: &str, value: &[u8]) -> Result<()> {
        let body = json!({ "key": self.wire_key(key), "value": b64(value) });
        self.conn.call("kv/put", &body, false).map(drop)
    }

    fn delete(&self, key: &str) -> Result<()> {
        self.conn
            .call("kv/deleterange", &json!({ "key": self.wire_key(key) }), false)
            .map(drop)
    }

    fn exists(&self, key: &str) -> Result<bool> {
        let body = json!({ "key": self.wire_key(key), "count_only": true });
        let answer = self.conn.call("kv/range", &body, false)?;
        Ok(int(&answer["count"]).ok_or_else(|| self.conn.malformed("bad count"))? > 0)
    }

    fn list_keys(&self, request: ListRequest<'_>) -> Result<KeyPage> {
        let mut start = self.prefix.as_bytes().to_vec();
        if let Some(after) = request.after {
            // The smallest key after `after`.
            start.extend_from_slice(after.as_bytes());
            start.push(0);
        }
        let body = json!({
            "key": b64(&start),
            "range_end": b64(&prefix_end(self.prefix.as_bytes())),
            "keys_only": true,
            "limit": request.max_keys.to_string(),
        });
        let answer = self.conn.call("kv/range", &body, false)?;
        let mut keys = Vec::new();
        for kv in answer["kvs"].as_array().into_iter().flatten() {
            let wire = kv["key"]
                .as_str()
                .and_then(|k| BASE64.decode(k).ok())
                .ok_or_else(|| self.conn.malformed("a key is not base64"))?;
            let key = wire
                .strip_prefix(self.prefix.as_bytes())
                .and_then(|k| String::from_utf8(k.to_vec()).ok())
                .ok_or_else(|| {
                    self.conn
                        .malformed("a listed key is outside the bucket or not UTF-8")
                })?;
            keys.push(key);
        }
        Ok(KeyPage {
            keys,
            more: answer["more"].as_bool().unwrap_or(false),
        })
    }

    fn compare_and_swap(&self, key: &str, expected: Option<&Version>, value: &[u8]) -> Result<bool> {
        let revision = match expected {
            None => 0,
            Some(Version(bytes)) => core::str::from_utf8(bytes)
                .ok()
                .and_then(|s| s.parse().ok())
                .ok_or_else(|| Error::other("etcd: a compare-and-swap version is not a revision"))?,
        };
        let body = json!({ "compare": [self.unchanged(key, revision)], "success": [self.put(key, value)] });
        let answer = self.conn.call("kv/txn", &body, true)?;
        Ok(answer["succeeded"].as_bool().unwrap_or(false))
    }

    fn increment(&self, key: &str, delta: i128, range: CounterRange) -> Result<i128> {
        let mut current = self.range(key)?;
        for _ in 0..MAX_INCREMENT_ATTEMPTS {
            let (value, revision) = match &current {
                None => (None, 0),
                Some(found) => (Some(found.value.as_slice()), found.mod_revision),
            };
            let next = kv_core::next_counter_value(key, value, delta, range)?;
            let body = json!({
                "compare": [self.unchanged(key, revision)],
                "success": [self.put(key, next.to_string().as_bytes())],
                "failure": [{ "request_range": { "key": self.wire_key(key) } }],
            });
            let answer = self.conn.call("kv/txn", &body, true)?;
            if answer["succeeded"].as_bool().unwrap_or(false) {
                return Ok(next);
            }
            current = self.found(&answer["responses"][0]["response_range"])?;
        }
        Err(Error::other(format!(
            "etcd: increment of key {} gave up after {MAX_INCREMENT_ATTEMPTS} conflicting concurrent writes",
            Quoted(key)
        )))
    }

    fn get_many(&self, keys: &[String]) -> Result<Vec<Option<Vec<u8>>>> {
        let answers = self.batched(
            keys,
            |k| k.len(),
            |k| json!({ "request_range": { "key": self.wire_key(k) } }),
        )?;
        let mut values = Vec::with_capacity(keys.len());
        for answer in &answers {
            for response in answer["responses"].as_array().into_iter().flatten() {
                values.push(self.found(&response["response_range"])?.map(|found| found.value));
            }
        }
        if values.len() != keys.len() {
            return Err(self
                .conn
                .malformed("a batch read answered a different number of keys"));
        }
        Ok(values)
    }

    fn set_many(&self, entries: &[(String, Vec<u8>)]) -> Result<()> {
        self.batched(entries, |(k, v)| k.len() + v.len(), |(k, v)| self.put(k, v))
            .map(drop)
    }

    fn delete_many(&self, keys: &[String]) -> Result<()> {
        self.batched(
            keys,
            |k| k.len(),
            |k| json!({ "request_delete_range": { "key": self.wire_key(k) } }),
        )
        .map(drop)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{self, Answers, Op, json};

    /// etcd's answers, as its v3 gateway writes them (bucket prefix `b/`:
    /// `Yi9h` is `b/a`; values `dmFsdWU=` "value", `NDE=` "41").
    const HEADER: &str = r#""header":{"cluster_id":"14841639068965178418","member_id":"10276657743932975437","revision":"7","raft_term":"2"}"#;

    fn answer(fields: &str) -> crate::client::Response {
        json(&format!("{{{HEADER}{fields}}}"))
    }

    fn kv(key: &str, value: &str) -> String {
        format!(
            r#"{{"key":"{key}","create_revision":"5","mod_revision":"7","version":"3","value":"{value}"}}"#
        )
    }

    fn script(op: Op) -> Vec<crate::client::Response> {
        let found = format!(r#","kvs":[{}],"count":"1""#, kv("Yi9h", "dmFsdWU="));
        let put = r#"{"response_put":{"header":{"revision":"8"}}}"#;
        let mut answers = vec![answer(r#","token":"vXyZ.42""#)];
        answers.extend(match op {
            Op::Get | Op::GetVersioned => vec![answer(&found)],
            Op::Set => vec![answer("")],
            Op::Delete => vec![answer(r#","deleted":"1""#)],
            Op::Exists => vec![answer(r#","count":"1""#)],
            Op::ListFirst | Op::ListAfter => vec![answer(
                r#","kvs":[{"key":"Yi9h","create_revision":"5","mod_revision":"7","version":"3"},{"key":"Yi9i","create_revision":"6","mod_revision":"6","version":"1"}],"more":true,"count":"5""#,
            )],
            Op::CasInsert | Op::CasReplace => vec![answer(&format!(r#","succeeded":true,"responses":[{put}]"#))],
            Op::Increment => vec![
                answer(&format!(r#","kvs":[{}],"count":"1""#, kv("Yi9h", "NDE="))),
                answer(&format!(r#","succeeded":true,"responses":[{put}]"#)),
            ],
            Op::GetMany => vec![answer(&format!(
                r#","succeeded":true,"responses":[{{"response_range":{{{HEADER}{found}}}}},{{"response_range":{{{HEADER}}}}}]"#
            ))],
            Op::SetMany => vec![answer(&format!(r#","succeeded":true,"responses":[{put},{put}]"#))],
            Op::DeleteMany => vec![answer(
                r#","succeeded":true,"responses":[{"response_delete_range":{"header":{},"deleted":"1"}},{"response_delete_range":{"header":{}}}]"#,
            )],
        });
        answers
    }

    fn open(answers: Answers) -> Box<dyn Bucket> {
        let (client, credentials) =
            testing::canned("etcd", answers, &[("username", "root"), ("password", "pw")]);
        Etcd::new(client, credentials).unwrap().open("b/".into()).unwrap()
    }

    /// Any answer, and etcd's own cut short or mistyped: `ok` or a
    /// one-line `other(..)`, never a panic.
    #[test]
    fn answers_are_handled_without_panics() {
        testing::check_protocol(open, script, b"7", &["content-type"]);
    }

    #[test]
    fn prefix_end_is_the_next_key_after_the_prefix() {
        assert_eq!(prefix_end(b"a/"), b"a0");
        assert_eq!(prefix_end(b"a\xff"), b"b");
        assert_eq!(prefix_end(b"\xff\xff"), b"\0");
    }

    #[test]
    fn proto3_integers_are_strings_or_missing() {
        assert_eq!(int(&json!("42")), Some(42));
        assert_eq!(int(&json!(7)), Some(7));
        assert_eq!(int(&Value::Null), Some(0));
        assert_eq!(int(&json!("x")), None);
    }
}
