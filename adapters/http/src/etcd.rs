//! etcd through its v3 JSON gateway (`POST /v3/kv/range|put|deleterange|txn`).
//!
//! - A bucket is a key prefix; keys and values travel base64-encoded, as
//!   the gateway's proto3 JSON wants `bytes`.
//! - A key's version is its `mod_revision` (and its expiry, if any);
//!   compare-and-swap and increment are a `txn` comparing it (or
//!   `create_revision == 0` for an absent key). A failed `txn` returns the
//!   current value in the same round trip, and the loop goes on from there.
//! - Expiry is a lease whose ID is the expiry time (ms since the Unix
//!   epoch; see [`EtcdBucket::lease_for`]): every range answer then says each
//!   key's exact expiry in its `lease` field at no extra cost, and reads
//!   treat a key whose lease time has passed as absent, to the millisecond.
//!   etcd revokes the lease (and so deletes its keys) itself a second or
//!   two later: nothing is left behind. Insert-if-absent over an expired
//!   key that is still there swaps its `mod_revision` instead.
//! - `list-keys` is a ranged, keys-only, limited read of the keys with the
//!   asked prefix, from just after the last key returned (in byte order),
//!   so concurrent writes never make it repeat or skip a key that existed
//!   throughout.
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
    Bucket, CounterRange, Error, ExpiresAt, KeyPage, Limits, ListRequest, Quoted, Result, Version, Versioned,
    is_expired,
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

/// Conflicting writers an increment (or an insert over an expired key)
/// outlasts before giving up.
const MAX_INCREMENT_ATTEMPTS: usize = 10_000;

/// etcd's longest lease (`MaxLeaseTTL`), in seconds.
const MAX_LEASE_TTL_S: u64 = 9_000_000_000;

/// Lease IDs under this are expiry times (ms since the Unix epoch, up to
/// the year 10889). etcd's own lease IDs carry the member ID in their top
/// 16 bits, so they are (but for a 1 in 32768 member ID) far above it, and
/// a time read from any other lease is thousands of years away: a key
/// another client leased is never taken for expired.
const LEASE_TIMES_BELOW: i64 = 1 << 48;

/// The expiry a key's lease says (`None`: no lease, or not one of ours).
fn expiry_of_lease(lease: i64) -> Option<ExpiresAt> {
    u64::try_from(lease)
        .ok()
        .filter(|_| 0 < lease && lease < LEASE_TIMES_BELOW)
}

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
        let response = self.post(call, body, once)?;
        if !response.is_success() {
            return Err(self.service_error(&response));
        }
        serde_json::from_slice(&response.body)
            .map_err(|e| self.client.malformed(format_args!("{e}"), &response))
    }

    /// POSTs a JSON body to `/v3/<call>`; the answer whatever its status.
    fn post(&self, call: &str, body: &Value, once: bool) -> Result<Response> {
        let mut request = Request::new(Method::Post, format!("/v3/{call}"))
            .header("content-type", "application/json")
            .body(body.to_string());
        if let Some(token) = self.token()? {
            request = request.header("authorization", token);
        }
        if once {
            request = request.once();
        }
        self.client.send(&request)
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

/// One key-value of a range answer, expired or not.
struct Found {
    value: Vec<u8>,
    mod_revision: i64,
    /// Its lease ID (0: none).
    lease: i64,
}

impl Found {
    fn expires_at(&self) -> Option<ExpiresAt> {
        expiry_of_lease(self.lease)
    }

    fn is_expired(&self, now: ExpiresAt) -> bool {
        is_expired(self.expires_at(), now)
    }

    /// `mod_revision`, then `@` and the expiry if it has one: a
    /// compare-and-swap against a version that has expired then fails
    /// without asking etcd (whose `mod_revision` still matches until it
    /// revokes the lease).
    fn version(&self) -> Version {
        Version(
            match self.expires_at() {
                None => self.mod_revision.to_string(),
                Some(at) => format!("{}@{at}", self.mod_revision),
            }
            .into_bytes(),
        )
    }

    fn versioned(self) -> Versioned {
        let (version, expires_at) = (self.version(), self.expires_at());
        Versioned::found(self.value, version).expiring(expires_at)
    }
}

/// A version's revision and expiry ([`Found::version`]).
fn parse_version(Version(bytes): &Version) -> Option<(i64, Option<ExpiresAt>)> {
    let text = core::str::from_utf8(bytes).ok()?;
    match text.split_once('@') {
        None => Some((text.parse().ok()?, None)),
        Some((revision, at)) => Some((revision.parse().ok()?, Some(at.parse().ok()?))),
    }
}

/// What a conditional put did.
enum Outcome {
    Written,
    /// The key was not at the revision: as it is now (`None`: absent).
    Conflict(Option<Found>),
}

impl EtcdBucket {
    fn wire_key(&self, key: &str) -> String {
        b64(format!("{}{key}", self.prefix).as_bytes())
    }

    fn now(&self) -> ExpiresAt {
        self.conn.client.unix_ms()
    }

    /// The first key-value of a range answer (`kvs` missing: not found),
    /// expired or not.
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
        let lease = int(&kv["lease"]).ok_or_else(|| self.conn.malformed("bad lease"))?;
        Ok(Some(Found {
            value,
            mod_revision,
            lease,
        }))
    }

    /// `found` if its lease has not expired (the one expiry rule of reads).
    fn live(&self, found: Option<Found>) -> Option<Found> {
        let now = self.now();
        found.filter(|found| !found.is_expired(now))
    }

    /// The key, expired or not (`keys_only`: without its value).
    fn range(&self, key: &str, keys_only: bool) -> Result<Option<Found>> {
        let body = json!({ "key": self.wire_key(key), "keys_only": keys_only });
        self.found(&self.conn.call("kv/range", &body, false)?)
    }

    /// The lease a write expiring at `expires_at` puts its keys under (0:
    /// none): the lease whose ID is that time, granted for the seconds left
    /// (etcd rounds a short one up to its minimum), or already granted by
    /// a write expiring at the same instant. Its keys go when etcd revokes
    /// it, after that instant; reads hide them from the instant itself.
    fn lease_for(&self, expires_at: Option<ExpiresAt>) -> Result<i64> {
        let Some(at) = expires_at else {
            return Ok(0);
        };
        let id = i64::try_from(at)
            .ok()
            .filter(|&id| 0 < id && id < LEASE_TIMES_BELOW)
            .ok_or_else(|| {
                self.conn
                    .client
                    .error(format_args!("expiry {at} ms is out of range"))
            })?;
        let ttl_s = at
            .saturating_sub(self.now())
            .div_ceil(1000)
            .clamp(1, MAX_LEASE_TTL_S);
        let body = json!({ "ID": id.to_string(), "TTL": ttl_s.to_string() });
        let response = self.conn.post("lease/grant", &body, false)?;
        if response.is_success() || response.body_text().contains("lease already exists") {
            Ok(id)
        } else {
            Err(self.conn.service_error(&response))
        }
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

    /// A put of `value` under `lease` (0: none, which also detaches the
    /// key from the lease it had).
    fn put(&self, key: &str, value: &[u8], lease: i64) -> Value {
        let mut put = json!({ "key": self.wire_key(key), "value": b64(value) });
        if lease != 0 {
            put["lease"] = json!(lease.to_string());
        }
        put
    }

    /// Writes `value` under `lease` if `key` is still at `revision` (0:
    /// absent), in one `txn` that reads the key if it is not.
    fn put_if(&self, key: &str, revision: i64, value: &[u8], lease: i64) -> Result<Outcome> {
        let body = json!({
            "compare": [self.unchanged(key, revision)],
            "success": [{ "request_put": self.put(key, value, lease) }],
            "failure": [{ "request_range": { "key": self.wire_key(key) } }],
        });
        let answer = self.conn.call("kv/txn", &body, true)?;
        if answer["succeeded"].as_bool().unwrap_or(false) {
            return Ok(Outcome::Written);
        }
        Ok(Outcome::Conflict(
            self.found(&answer["responses"][0]["response_range"])?,
        ))
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

    /// The bucket's keys of one range answer that have not expired, and
    /// the last key listed, expired or not (to read on from).
    fn listed(&self, answer: &Value) -> Result<(Vec<String>, Option<Vec<u8>>)> {
        let now = self.now();
        let mut keys = Vec::new();
        let mut last = None;
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
            let lease = int(&kv["lease"]).ok_or_else(|| self.conn.malformed("bad lease"))?;
            if !is_expired(expiry_of_lease(lease), now) {
                keys.push(key);
            }
            last = Some(wire);
        }
        Ok((keys, last))
    }
}

/// The smallest key after `key`.
fn key_after(key: &[u8]) -> Vec<u8> {
    let mut after = key.to_vec();
    after.push(0);
    after
}

impl Bucket for EtcdBucket {
    fn get(&self, key: &str) -> Result<Option<Vec<u8>>> {
        Ok(self.live(self.range(key, false)?).map(|found| found.value))
    }

    fn get_versioned(&self, key: &str) -> Result<Versioned> {
        Ok(self
            .live(self.range(key, false)?)
            .map_or_else(Versioned::default, Found::versioned))
    }

    fn set(&self, key: &str, value: &[u8], expires_at: Option<ExpiresAt>) -> Result<()> {
        let lease = self.lease_for(expires_at)?;
        self.conn
            .call("kv/put", &self.put(key, value, lease), false)
            .map(drop)
    }

    fn delete(&self, key: &str) -> Result<()> {
        self.conn
            .call("kv/deleterange", &json!({ "key": self.wire_key(key) }), false)
            .map(drop)
    }

    fn exists(&self, key: &str) -> Result<bool> {
        Ok(self.live(self.range(key, true)?).is_some())
    }

    fn list_keys(&self, request: ListRequest<'_>) -> Result<KeyPage> {
        // The keys with the asked prefix: [prefix, prefix_end).
        let prefix = format!("{}{}", self.prefix, request.prefix).into_bytes();
        let end = prefix_end(&prefix);
        let mut start = match request.after {
            Some(after) => key_after(format!("{}{after}", self.prefix).as_bytes()).max(prefix),
            None => prefix,
        };
        loop {
            if end != [0] && start >= end {
                return Ok(KeyPage::default());
            }
            let body = json!({
                "key": b64(&start),
                "range_end": b64(&end),
                "keys_only": true,
                "limit": request.max_keys.to_string(),
            });
            let answer = self.conn.call("kv/range", &body, false)?;
            let more = answer["more"].as_bool().unwrap_or(false);
            let (keys, last) = self.listed(&answer)?;
            match last {
                // A page of expired keys only: read on (a page is empty
                // only when no key follows).
                Some(last) if keys.is_empty() && more => start = key_after(&last),
                _ => return Ok(KeyPage { keys, more }),
            }
        }
    }

    fn compare_and_swap(
        &self,
        key: &str,
        expected: Option<&Version>,
        value: &[u8],
        expires_at: Option<ExpiresAt>,
    ) -> Result<bool> {
        let mut revision = match expected {
            None => 0,
            Some(version) => {
                let (revision, expiry) = parse_version(version)
                    .ok_or_else(|| Error::other("etcd: a compare-and-swap version is not a revision"))?;
                if is_expired(expiry, self.now()) {
                    return Ok(false);
                }
                revision
            }
        };
        let lease = self.lease_for(expires_at)?;
        for _ in 0..MAX_INCREMENT_ATTEMPTS {
            match self.put_if(key, revision, value, lease)? {
                Outcome::Written => return Ok(true),
                // Insert-if-absent over a key that is there but expired:
                // as atomic, on the revision it expired at.
                Outcome::Conflict(Some(current))
                    if expected.is_none()
                        && current.mod_revision != revision
                        && current.is_expired(self.now()) =>
                {
                    revision = current.mod_revision;
                }
                Outcome::Conflict(_) => return Ok(false),
            }
        }
        Err(gave_up(key))
    }

    fn increment(
        &self,
        key: &str,
        delta: i128,
        range: CounterRange,
        expires_at_if_created: Option<ExpiresAt>,
    ) -> Result<i128> {
        let mut current = self.range(key, false)?;
        // The lease of a counter this creates, granted once if needed.
        let mut created_lease = None;
        for _ in 0..MAX_INCREMENT_ATTEMPTS {
            let revision = current.as_ref().map_or(0, |found| found.mod_revision);
            let now = self.now();
            let (value, lease) = match current.as_ref().filter(|found| !found.is_expired(now)) {
                // A live counter keeps its lease, so its expiry.
                Some(found) => (Some(found.value.as_slice()), found.lease),
                None => {
                    let lease = match created_lease {
                        Some(lease) => lease,
                        None => *created_lease.insert(self.lease_for(expires_at_if_created)?),
                    };
                    (None, lease)
                }
            };
            let next = kv_core::next_counter_value(key, value, delta, range)?;
            match self.put_if(
                key,
                revision,
                kv_core::Decimal(next).to_string().as_bytes(),
                lease,
            )? {
                Outcome::Written => return Ok(next),
                Outcome::Conflict(now_current) => current = now_current,
            }
        }
        Err(gave_up(key))
    }

    fn get_many(&self, keys: &[String]) -> Result<Vec<Option<Vec<u8>>>> {
        Ok(self
            .get_many_versioned(keys)?
            .into_iter()
            .map(|versioned| versioned.value)
            .collect())
    }

    fn get_many_versioned(&self, keys: &[String]) -> Result<Vec<Versioned>> {
        let answers = self.batched(
            keys,
            |k| k.len(),
            |k| json!({ "request_range": { "key": self.wire_key(k) } }),
        )?;
        let mut values = Vec::with_capacity(keys.len());
        for answer in &answers {
            for response in answer["responses"].as_array().into_iter().flatten() {
                let found = self.live(self.found(&response["response_range"])?);
                values.push(found.map_or_else(Versioned::default, Found::versioned));
            }
        }
        if values.len() != keys.len() {
            return Err(self
                .conn
                .malformed("a batch read answered a different number of keys"));
        }
        Ok(values)
    }

    fn set_many(&self, entries: &[(String, Vec<u8>)], expires_at: Option<ExpiresAt>) -> Result<()> {
        let lease = self.lease_for(expires_at)?;
        self.batched(
            entries,
            |(k, v)| k.len() + v.len(),
            |(k, v)| json!({ "request_put": self.put(k, v, lease) }),
        )
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

fn gave_up(key: &str) -> Error {
    Error::other(format!(
        "etcd: write of key {} gave up after {MAX_INCREMENT_ATTEMPTS} conflicting concurrent writes",
        Quoted(key)
    ))
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
            Op::Exists => vec![answer(&found)],
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

    const GRANTED: &str = r#","ID":"1795279446000","TTL":"60""#;

    /// The same, for writes that expire (`testing::EXPIRES_AT`): a lease
    /// first, and an increment that creates its counter.
    fn script_expiring(op: Op) -> Vec<crate::client::Response> {
        let mut answers = script(op);
        match op {
            Op::Set | Op::CasInsert | Op::CasReplace | Op::SetMany => answers.insert(1, answer(GRANTED)),
            Op::Increment => {
                answers[1] = answer("");
                answers.insert(2, answer(GRANTED));
            }
            _ => {}
        }
        answers
    }

    /// A bucket on `answers` (after the auth token), and the answers to
    /// see what it asked.
    fn open_on(answers: Vec<crate::client::Response>) -> (Box<dyn Bucket>, Answers) {
        let mut all = vec![answer(r#","token":"vXyZ.42""#)];
        all.extend(answers);
        let answers = Answers::new(all);
        (open(answers.clone()), answers)
    }

    fn leased(lease: &str) -> String {
        format!(
            r#","kvs":[{{"key":"Yi9h","create_revision":"5","mod_revision":"7","version":"3","value":"dmFsdWU=","lease":"{lease}"}}],"count":"1""#
        )
    }

    #[test]
    fn expiring_writes_handle_answers_without_panics() {
        testing::check_protocol_expiring(open, script_expiring, b"7", &["content-type"]);
    }

    /// The canned clock reads 1795279386000: a lease named by an earlier
    /// time has expired, a later one has not, and another client's lease
    /// (etcd's own huge IDs) is no expiry.
    #[test]
    fn a_key_is_absent_from_the_time_its_lease_names() {
        let (bucket, _) = open_on(vec![answer(&leased("1795279386000")); 3]);
        assert_eq!(bucket.get("a").unwrap(), None);
        assert!(!bucket.exists("a").unwrap());
        assert_eq!(bucket.get_versioned("a").unwrap(), Versioned::default());
        let (bucket, _) = open_on(vec![answer(&leased("1795279386001"))]);
        let versioned = bucket.get_versioned("a").unwrap();
        assert_eq!(versioned.expires_at, Some(1_795_279_386_001));
        assert_eq!(versioned.version, Some(Version(b"7@1795279386001".to_vec())));
        let (bucket, _) = open_on(vec![answer(&leased("7587868461437417000"))]);
        let versioned = bucket.get_versioned("a").unwrap();
        assert_eq!((versioned.value.is_some(), versioned.expires_at), (true, None));
    }

    #[test]
    fn an_expiring_write_puts_its_key_under_the_lease_named_by_its_time() {
        // Granted now, or already granted by a write expiring then.
        let exists = testing::answer(
            412,
            &[],
            r#"{"error":"etcdserver: lease already exists","message":"etcdserver: lease already exists","code":9}"#,
        );
        for grant in [answer(GRANTED), exists] {
            let (bucket, answers) = open_on(vec![grant, answer("")]);
            bucket.set("a", b"v", Some(testing::EXPIRES_AT)).unwrap();
            let asked = answers.asked();
            assert_eq!(asked[1].0, "/v3/lease/grant");
            assert_eq!(
                serde_json::from_str::<Value>(&asked[1].1).unwrap(),
                json!({ "ID": "1795279446000", "TTL": "60" })
            );
            assert_eq!(asked[2].0, "/v3/kv/put");
            assert_eq!(
                serde_json::from_str::<Value>(&asked[2].1).unwrap()["lease"],
                "1795279446000"
            );
        }
        let (bucket, _) = open_on(vec![testing::answer(400, &[], r#"{"message":"no"}"#)]);
        assert!(bucket.set("a", b"v", Some(testing::EXPIRES_AT)).is_err());
    }

    #[test]
    fn insert_if_absent_over_an_expired_key_swaps_the_revision_it_expired_at() {
        let expired = format!(
            r#","responses":[{{"response_range":{{{HEADER}{}}}}}]"#,
            leased("1795279385000")
        );
        let (bucket, answers) = open_on(vec![answer(&expired), answer(r#","succeeded":true"#)]);
        assert!(bucket.compare_and_swap("a", None, b"new", None).unwrap());
        let asked = answers.asked();
        let compare = |i: usize| serde_json::from_str::<Value>(&asked[i].1).unwrap()["compare"][0].clone();
        assert_eq!(compare(1)["create_revision"], "0");
        assert_eq!(compare(2)["mod_revision"], "7");
        // A live key: no second try.
        let live = format!(
            r#","responses":[{{"response_range":{{{HEADER}{}}}}}]"#,
            leased("0")
        );
        let (bucket, answers) = open_on(vec![answer(&live)]);
        assert!(!bucket.compare_and_swap("a", None, b"new", None).unwrap());
        assert_eq!(answers.left(), 0);
    }

    #[test]
    fn a_version_that_has_expired_is_stale_without_asking() {
        let (bucket, answers) = open_on(Vec::new());
        let version = Version(b"7@1795279386000".to_vec());
        assert!(
            !bucket
                .compare_and_swap("a", Some(&version), b"new", None)
                .unwrap()
        );
        assert_eq!(answers.asked(), []);
    }

    #[test]
    fn list_keys_reads_the_prefix_range_and_skips_expired_keys() {
        let key = |k: &str, lease: &str| {
            format!(
                r#"{{"key":"{}","mod_revision":"7","lease":"{lease}"}}"#,
                b64(k.as_bytes())
            )
        };
        let expired_page = format!(r#","kvs":[{}],"more":true"#, key("b/x/1", "1795279385000"));
        let live_page = format!(
            r#","kvs":[{},{}],"more":false"#,
            key("b/x/2", "1795279385000"),
            key("b/x/3", "0")
        );
        let (bucket, answers) = open_on(vec![answer(&expired_page), answer(&live_page)]);
        let request = ListRequest {
            after: None,
            max_keys: 1,
            prefix: "x/",
        };
        let page = bucket.list_keys(request).unwrap();
        assert_eq!(
            page,
            KeyPage {
                keys: vec!["x/3".into()],
                more: false
            }
        );
        let asked = answers.asked();
        let body = |i: usize| serde_json::from_str::<Value>(&asked[i].1).unwrap();
        assert_eq!(body(1)["key"], b64(b"b/x/"));
        assert_eq!(body(1)["range_end"], b64(b"b/x0"));
        assert_eq!(body(2)["key"], b64(b"b/x/1\0"));
        // After a key past the prefix's range: nothing to ask.
        let (bucket, answers) = open_on(Vec::new());
        let page = bucket
            .list_keys(ListRequest {
                after: Some("y"),
                ..request
            })
            .unwrap();
        assert_eq!((page, answers.asked()), (KeyPage::default(), Vec::new()));
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
