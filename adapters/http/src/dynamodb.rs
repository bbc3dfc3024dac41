//! Amazon DynamoDB through its JSON 1.0 API (`POST /` with
//! `X-Amz-Target: DynamoDB_20120810.<Action>`), signed with SigV4.
//!
//! - One configured table holds every bucket. Its partition key `bucket`
//!   (S) is the bucket's prefix (see [`crate::buckets`]), its sort key `key`
//!   (S) the key. Each item also has `value` (B: any bytes) and `version`
//!   (N: a random 63-bit number, new at every write). `kv-virt http
//!   create-table` or any tool can create the table with that key schema.
//! - Expiry: an expiring item also has `expires_ms` (N: ms since the Unix
//!   epoch), which every read filters by exactly, and `expires` (N: the
//!   same in seconds, rounded up) for DynamoDB's own TTL, which deletes
//!   expired items (lazily, within days) once the operator enables it on
//!   `expires`. A write without an expiry replaces the item without them.
//! - `get` reads with `ConsistentRead` unless configured off; counters are
//!   stored as decimal text, so `get` reads them as such.
//! - `list-keys` is a `Query` on the bucket's partition, keys only, in
//!   sort-key order, `begins_with` the prefix, expired items filtered out
//!   (`FilterExpression`), continuing from `ExclusiveStartKey` = the last
//!   key returned: never a `Scan`.
//! - compare-and-swap is a conditional `PutItem` on `version` and the item
//!   not having expired (or on the key being absent or expired: that is
//!   if-not-exists, atomic); increment is the shared compare-and-swap loop,
//!   which goes round again on `ConditionalCheckFailedException`.
//! - Batches are `BatchGetItem` (100 keys) and `BatchWriteItem` (25
//!   writes), sending unprocessed items again with a backoff.
//! - Credentials: `access-key-id`, `secret-access-key`, optional
//!   `session-token`; the region is configured.

use alloc::boxed::Box;
use alloc::collections::BTreeMap;
use alloc::format;
use alloc::rc::Rc;
use alloc::string::{String, ToString};
use alloc::vec::Vec;

use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use kv_core::{
    Bucket, Error, ExpiresAt, KeyPage, Limits, ListRequest, Result, Version, Versioned, is_expired,
};
use serde_json::{Value, json};
use wasip2::http::types::Method;

use crate::Service;
use crate::client::{Client, Request, Response};
use crate::credentials::Credentials;
use crate::expiry::{self, Listed, Stored};
use crate::sigv4::{self, LazySigner};

/// DynamoDB's item limit is 400 KiB, attribute names and values included;
/// keys up to 1,024 bytes (the sort key limit), bucket prefixes up to
/// [`MAX_PREFIX_BYTES`], names and version take under 4 KiB. DynamoDB
/// counts a binary value's bytes, but emulators such as moto count its
/// base64 text (4/3 as long): 296 KiB fits both ways.
pub const LIMITS: Limits = Limits {
    max_key_bytes: 1024,
    max_value_bytes: 296 << 10,
};

/// The partition key limit is 2,048 bytes.
const MAX_PREFIX_BYTES: usize = 2048;

/// `BatchGetItem` takes at most 100 keys, `BatchWriteItem` 25 writes.
const MAX_BATCH_GET: usize = 100;
const MAX_BATCH_WRITE: usize = 25;

/// Rounds of sending unprocessed batch items again before giving up.
const MAX_BATCH_ROUNDS: u32 = 20;

/// The expiry in ms, which reads filter by exactly.
const EXPIRES_MS: &str = "expires_ms";

/// The expiry in seconds, for DynamoDB's TTL (enabled on this attribute by
/// the operator: `aws dynamodb update-time-to-live`).
pub const TTL_ATTRIBUTE: &str = "expires";

/// The condition of an item that has not expired (`#e`: [`EXPIRES_MS`]).
const NOT_EXPIRED: &str = "attribute_not_exists(#e) OR #e > :now";

pub struct DynamoDb {
    conn: Rc<Connection>,
}

impl DynamoDb {
    pub fn new(
        client: Rc<Client>,
        credentials: Credentials,
        table: &str,
        region: &str,
        consistent_reads: bool,
    ) -> Self {
        DynamoDb {
            conn: Rc::new(Connection {
                client,
                table: table.into(),
                consistent_reads,
                signer: LazySigner::new(credentials, region, "dynamodb"),
            }),
        }
    }
}

impl Service for DynamoDb {
    fn limits(&self) -> Limits {
        LIMITS
    }

    fn open(&self, prefix: String) -> Result<Box<dyn Bucket>> {
        if prefix.is_empty() || prefix.len() > MAX_PREFIX_BYTES {
            return Err(self.conn.client.error(format_args!(
                "a bucket's prefix is its partition key, which must be 1 to {MAX_PREFIX_BYTES} bytes, \
                 not {} (check the key prefix and bucket prefixes)",
                prefix.len()
            )));
        }
        Ok(Box::new(DynamoDbBucket {
            conn: Rc::clone(&self.conn),
            prefix,
        }))
    }
}

/// The client, table and signer, shared by every bucket of the instance.
struct Connection {
    client: Rc<Client>,
    table: String,
    consistent_reads: bool,
    signer: LazySigner,
}

/// An error answer: DynamoDB's exception name (after the `#`) and the error.
struct Rejection {
    kind: String,
    error: Error,
}

impl Connection {
    /// One action; any error answer is an error.
    fn call(&self, action: &str, body: &Value) -> Result<Value> {
        self.attempt(action, body, false)?.map_err(|r| r.error)
    }

    /// One action that must not apply twice; `Ok(None)` when its condition failed.
    fn call_conditional(&self, action: &str, body: &Value) -> Result<Option<Value>> {
        match self.attempt(action, body, true)? {
            Ok(answer) => Ok(Some(answer)),
            Err(rejection) if rejection.kind == "ConditionalCheckFailedException" => Ok(None),
            Err(rejection) => Err(rejection.error),
        }
    }

    fn attempt(
        &self,
        action: &str,
        body: &Value,
        once: bool,
    ) -> Result<core::result::Result<Value, Rejection>> {
        let body = body.to_string().into_bytes();
        let mut request = Request::new(Method::Post, "/")
            .header("content-type", "application/x-amz-json-1.0")
            .header("x-amz-target", format!("DynamoDB_20120810.{action}"))
            .throttled_when(is_throttled);
        if once {
            request = request.once();
        }
        let payload_hash = sigv4::hex_sha256(&body);
        let endpoint = self.client.endpoint();
        self.signer.get()?.sign(
            &mut request,
            endpoint.authority(),
            &endpoint.full_path("/"),
            self.client.unix_seconds(),
            &payload_hash,
        );
        let response = self.client.send(&request.body(body))?;
        if !response.is_success() {
            return Ok(Err(self.rejection(&response)));
        }
        serde_json::from_slice(&response.body)
            .map(Ok)
            .map_err(|e| self.client.malformed(format_args!("{e}"), &response))
    }

    /// DynamoDB answers errors as JSON (`__type`, `message`); a signature
    /// or key refused may come as XML (`<Code>`, `<Message>`).
    fn rejection(&self, response: &Response) -> Rejection {
        let (kind, message) = match serde_json::from_slice::<Value>(&response.body) {
            Ok(answer) => (
                error_type(&answer).to_string(),
                answer["message"]
                    .as_str()
                    .or(answer["Message"].as_str())
                    .unwrap_or_default()
                    .to_string(),
            ),
            Err(_) => {
                let text = String::from_utf8_lossy(&response.body);
                (
                    sigv4::xml_element(&text, "Code").unwrap_or_default().into(),
                    sigv4::xml_element(&text, "Message").unwrap_or_default().into(),
                )
            }
        };
        let message = match (kind.is_empty(), message.is_empty()) {
            (true, true) => response.body_text(),
            (true, false) => message,
            (false, true) => kind.clone(),
            (false, false) => format!("{kind}: {message}"),
        };
        Rejection {
            error: self.client.status_error(response, &message),
            kind,
        }
    }

    fn malformed(&self, what: &str) -> Error {
        self.client
            .error(format_args!("unexpected answer from DynamoDB: {what}"))
    }
}

/// The error types with which DynamoDB refuses a request for its rate
/// (status 400), as the AWS SDKs' retry rules list them: the request was
/// not applied and may be sent again after a backoff.
const THROTTLING_ERRORS: [&str; 4] = [
    "ProvisionedThroughputExceededException",
    "ThrottlingException",
    "RequestLimitExceeded",
    "LimitExceededException",
];

fn is_throttled(response: &Response) -> bool {
    response.status == 400
        && serde_json::from_slice::<Value>(&response.body)
            .is_ok_and(|answer| THROTTLING_ERRORS.contains(&error_type(&answer)))
}

/// An error answer's type without its namespace
/// (`com.amazonaws.dynamodb.v20120810#ConditionalCheckFailedException`).
fn error_type(answer: &Value) -> &str {
    let full = answer["__type"].as_str().unwrap_or_default();
    full.rsplit('#').next().unwrap_or_default()
}

pub struct DynamoDbBucket {
    conn: Rc<Connection>,
    prefix: String,
}

/// The last occurrence of each key, in first-seen order: a batch must not
/// name a key twice.
fn last_per_key<T>(items: &[T], key: impl Fn(&T) -> &str) -> Vec<&T> {
    let mut index: BTreeMap<&str, usize> = BTreeMap::new();
    let mut unique: Vec<&T> = Vec::new();
    for item in items {
        match index.get(key(item)) {
            Some(&i) => unique[i] = item,
            None => {
                index.insert(key(item), unique.len());
                unique.push(item);
            }
        }
    }
    unique
}

impl DynamoDbBucket {
    /// A fresh version: random, so that a compare-and-swap never mistakes a
    /// rewritten value for the one it read.
    fn new_version(&self) -> String {
        (self.conn.client.random_u64() >> 1).to_string()
    }

    /// Sleeps before sending unprocessed batch items again: 10 ms doubling to 1 s.
    fn batch_backoff(&self, round: u32) {
        self.conn.client.sleep_ms((10u64 << round.min(7)).min(1000));
    }

    /// The item's primary key.
    fn item_key(&self, key: &str) -> Value {
        json!({ "bucket": { "S": self.prefix }, "key": { "S": key } })
    }

    /// A whole item: a `PutItem` replaces the stored one, so a write
    /// without an expiry also removes an old one.
    fn item(&self, key: &str, value: &[u8], expires_at: Option<ExpiresAt>) -> Value {
        let mut item = json!({
            "bucket": { "S": self.prefix },
            "key": { "S": key },
            "value": { "B": BASE64.encode(value) },
            "version": { "N": self.new_version() },
        });
        if let Some(at) = expires_at {
            item[EXPIRES_MS] = json!({ "N": at.to_string() });
            // Rounded up: DynamoDB's TTL must not delete it early.
            item[TTL_ATTRIBUTE] = json!({ "N": at.div_ceil(1000).to_string() });
        }
        item
    }

    fn now(&self) -> Value {
        json!({ "N": self.conn.client.unix_ms().to_string() })
    }

    /// The expiry of an item as DynamoDB returns it.
    fn expires_of(&self, item: &Value) -> Result<Option<ExpiresAt>> {
        match &item[EXPIRES_MS] {
            Value::Null => Ok(None),
            attribute => attribute["N"]
                .as_str()
                .and_then(expiry::parse_ms)
                .map(Some)
                .ok_or_else(|| {
                    self.conn
                        .malformed("an item's `expires_ms` is not a number of ms")
                }),
        }
    }

    /// An item as DynamoDB returns it; `None` if it has expired.
    fn parse_item(&self, item: &Value) -> Result<Option<Stored>> {
        let expires_at = self.expires_of(item)?;
        if is_expired(expires_at, self.conn.client.unix_ms()) {
            return Ok(None);
        }
        let value = match item["value"]["B"].as_str() {
            Some(text) => BASE64
                .decode(text)
                .map_err(|_| self.conn.malformed("a value is not base64"))?,
            None => return Err(self.conn.malformed("an item has no binary `value` attribute")),
        };
        let version = item["version"]["N"]
            .as_str()
            .ok_or_else(|| self.conn.malformed("an item has no number `version` attribute"))?;
        Ok(Some(Stored {
            value,
            version: version.into(),
            expires_at,
        }))
    }

    /// `GetItem` of `key`: the whole item, or its key and expiry alone
    /// when `key_only` (all `exists` needs, without reading the value).
    fn call_get_item(&self, key: &str, key_only: bool) -> Result<Value> {
        let mut body = json!({
            "TableName": self.conn.table,
            "Key": self.item_key(key),
            "ConsistentRead": self.conn.consistent_reads,
        });
        if key_only {
            body["ProjectionExpression"] = "#k, #e".into();
            body["ExpressionAttributeNames"] = json!({ "#k": "key", "#e": EXPIRES_MS });
        }
        self.conn.call("GetItem", &body)
    }

    /// The item of `key`, unless absent or expired.
    fn get_item(&self, key: &str) -> Result<Option<Stored>> {
        let answer = self.call_get_item(key, false)?;
        match answer.get("Item") {
            None => Ok(None),
            Some(item) => self.parse_item(item),
        }
    }

    /// The live items of `keys` (`BatchGetItem`, 100 keys a request).
    fn batch_get(&self, keys: &[String]) -> Result<BTreeMap<String, Stored>> {
        let unique = last_per_key(keys, String::as_str);
        let mut found: BTreeMap<String, Stored> = BTreeMap::new();
        for chunk in unique.chunks(MAX_BATCH_GET) {
            let mut pending: Vec<Value> = chunk.iter().map(|k| self.item_key(k)).collect();
            let mut round = 0;
            while !pending.is_empty() {
                if round == MAX_BATCH_ROUNDS {
                    return Err(self.conn.client.error(format_args!(
                        "{} batch reads were still unprocessed after {MAX_BATCH_ROUNDS} rounds (throttled?)",
                        pending.len()
                    )));
                }
                if round > 0 {
                    self.batch_backoff(round);
                }
                round += 1;
                let answer = self.conn.call(
                    "BatchGetItem",
                    &json!({ "RequestItems": { self.conn.table.as_str(): {
                        "Keys": pending,
                        "ConsistentRead": self.conn.consistent_reads,
                    } } }),
                )?;
                let items = answer["Responses"][self.conn.table.as_str()].as_array();
                for item in items.into_iter().flatten() {
                    let key = item["key"]["S"]
                        .as_str()
                        .ok_or_else(|| self.conn.malformed("a batch item has no string `key`"))?;
                    if let Some(stored) = self.parse_item(item)? {
                        found.insert(key.into(), stored);
                    }
                }
                pending = match answer["UnprocessedKeys"][self.conn.table.as_str()]["Keys"].as_array() {
                    Some(left) => left.clone(),
                    None => Vec::new(),
                };
            }
        }
        Ok(found)
    }

    /// Sends `BatchWriteItem` requests (already at most 25), again and again
    /// until nothing is left unprocessed.
    fn batch_write(&self, requests: Vec<Value>) -> Result<()> {
        let mut pending = requests;
        for round in 0..MAX_BATCH_ROUNDS {
            if round > 0 {
                self.batch_backoff(round);
            }
            let answer = self.conn.call(
                "BatchWriteItem",
                &json!({ "RequestItems": { self.conn.table.as_str(): pending } }),
            )?;
            pending = match answer["UnprocessedItems"].get(self.conn.table.as_str()) {
                Some(Value::Array(left)) if !left.is_empty() => left.clone(),
                _ => return Ok(()),
            };
        }
        Err(self.conn.client.error(format_args!(
            "{} batch writes were still unprocessed after {MAX_BATCH_ROUNDS} rounds (throttled?)",
            pending.len()
        )))
    }
}

impl Bucket for DynamoDbBucket {
    fn get(&self, key: &str) -> Result<Option<Vec<u8>>> {
        Ok(self.get_item(key)?.map(|stored| stored.value))
    }

    fn get_versioned(&self, key: &str) -> Result<Versioned> {
        Ok(self.get_item(key)?.map(Stored::versioned).unwrap_or_default())
    }

    fn set(&self, key: &str, value: &[u8], expires_at: Option<ExpiresAt>) -> Result<()> {
        self.conn
            .call(
                "PutItem",
                &json!({ "TableName": self.conn.table, "Item": self.item(key, value, expires_at) }),
            )
            .map(drop)
    }

    fn delete(&self, key: &str) -> Result<()> {
        self.conn
            .call(
                "DeleteItem",
                &json!({ "TableName": self.conn.table, "Key": self.item_key(key) }),
            )
            .map(drop)
    }

    fn exists(&self, key: &str) -> Result<bool> {
        match self.call_get_item(key, true)?.get("Item") {
            None => Ok(false),
            Some(item) => Ok(!is_expired(self.expires_of(item)?, self.conn.client.unix_ms())),
        }
    }

    fn list_keys(&self, request: ListRequest<'_>) -> Result<KeyPage> {
        let prefix = request.prefix;
        // DynamoDB refuses a start key outside the key condition: a key
        // without the prefix is before all of its keys or after them.
        let after = match request.after {
            Some(after) if !after.starts_with(prefix) && after > prefix => return Ok(KeyPage::default()),
            Some(after) if !after.starts_with(prefix) => None,
            after => after,
        };
        let mut condition = String::from("#b = :b");
        let mut values = json!({ ":b": { "S": self.prefix }, ":now": self.now() });
        if !prefix.is_empty() {
            condition.push_str(" AND begins_with(#k, :p)");
            values[":p"] = json!({ "S": prefix });
        }
        let mut query = json!({
            "TableName": self.conn.table,
            "KeyConditionExpression": condition,
            "FilterExpression": NOT_EXPIRED,
            "ProjectionExpression": "#k",
            "ExpressionAttributeNames": { "#b": "bucket", "#k": "key", "#e": EXPIRES_MS },
            "ExpressionAttributeValues": values,
            "ConsistentRead": self.conn.consistent_reads,
            "Limit": request.max_keys,
        });
        // `Limit` counts the items read before the filter: a page may hold
        // no live key and still go on (as may DynamoDB's last page).
        expiry::live_page(&self.conn.client, |cursor: Option<&Value>| {
            match (cursor, after) {
                (Some(cursor), _) => query["ExclusiveStartKey"] = cursor.clone(),
                (None, Some(after)) => query["ExclusiveStartKey"] = self.item_key(after),
                (None, None) => {}
            }
            let answer = self.conn.call("Query", &query)?;
            let mut keys = Vec::new();
            for item in answer["Items"].as_array().into_iter().flatten() {
                let key = item["key"]["S"]
                    .as_str()
                    .ok_or_else(|| self.conn.malformed("a listed item has no string `key`"))?;
                keys.push(key.to_string());
            }
            let listed = answer["ScannedCount"]
                .as_u64()
                .map_or(keys.len(), |n| usize::try_from(n).unwrap_or(usize::MAX));
            Ok(Listed {
                keys,
                listed,
                next: answer.get("LastEvaluatedKey").cloned(),
            })
        })
    }

    fn compare_and_swap(
        &self,
        key: &str,
        expected: Option<&Version>,
        value: &[u8],
        expires_at: Option<ExpiresAt>,
    ) -> Result<bool> {
        let mut put = json!({
            "TableName": self.conn.table,
            "Item": self.item(key, value, expires_at),
            "ExpressionAttributeNames": { "#e": EXPIRES_MS },
            "ExpressionAttributeValues": { ":now": self.now() },
        });
        match expected {
            // If-not-exists: atomic, an expired item counting as absent.
            None => {
                put["ConditionExpression"] = json!("attribute_not_exists(#k) OR #e <= :now");
                put["ExpressionAttributeNames"]["#k"] = json!("key");
            }
            Some(Version(bytes)) => {
                let version = core::str::from_utf8(bytes)
                    .ok()
                    .filter(|v| !v.is_empty() && v.bytes().all(|b| b.is_ascii_digit()))
                    .ok_or_else(|| {
                        Error::other("dynamodb: a compare-and-swap version is not a version number")
                    })?;
                // The version read, unless it has expired since.
                put["ConditionExpression"] = json!(format!("#v = :v AND ({NOT_EXPIRED})"));
                put["ExpressionAttributeNames"]["#v"] = json!("version");
                put["ExpressionAttributeValues"][":v"] = json!({ "N": version });
            }
        }
        Ok(self.conn.call_conditional("PutItem", &put)?.is_some())
    }

    fn get_many(&self, keys: &[String]) -> Result<Vec<Option<Vec<u8>>>> {
        let found = self.batch_get(keys)?;
        Ok(keys
            .iter()
            .map(|k| found.get(k).map(|stored| stored.value.clone()))
            .collect())
    }

    /// A batch read gives the expiries too.
    fn get_many_versioned(&self, keys: &[String]) -> Result<Vec<Versioned>> {
        let found = self.batch_get(keys)?;
        Ok(keys
            .iter()
            .map(|k| found.get(k).cloned().map(Stored::versioned).unwrap_or_default())
            .collect())
    }

    fn set_many(&self, entries: &[(String, Vec<u8>)], expires_at: Option<ExpiresAt>) -> Result<()> {
        let unique = last_per_key(entries, |(k, _)| k.as_str());
        for chunk in unique.chunks(MAX_BATCH_WRITE) {
            let requests = chunk
                .iter()
                .map(|(k, v)| json!({ "PutRequest": { "Item": self.item(k, v, expires_at) } }))
                .collect();
            self.batch_write(requests)?;
        }
        Ok(())
    }

    fn delete_many(&self, keys: &[String]) -> Result<()> {
        let unique = last_per_key(keys, String::as_str);
        for chunk in unique.chunks(MAX_BATCH_WRITE) {
            let requests = chunk
                .iter()
                .map(|k| json!({ "DeleteRequest": { "Key": self.item_key(k) } }))
                .collect();
            self.batch_write(requests)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{self, Answers, Op, answer};

    /// DynamoDB's JSON 1.0 answers (table `t`, bucket prefix `b/`).
    fn dynamo(body: &str) -> Response {
        answer(200, &[("content-type", "application/x-amz-json-1.0")], body)
    }

    fn item(value: &str) -> String {
        format!(
            r#"{{"bucket":{{"S":"b/"}},"key":{{"S":"a"}},"value":{{"B":"{value}"}},"version":{{"N":"4611686018427387904"}}}}"#
        )
    }

    fn script(op: Op) -> Vec<Response> {
        let found = format!(r#"{{"Item":{}}}"#, item("dmFsdWU="));
        match op {
            Op::Get | Op::GetVersioned => vec![dynamo(&found)],
            Op::Set | Op::Delete | Op::CasInsert | Op::CasReplace => vec![dynamo("{}")],
            Op::Exists => vec![dynamo(r#"{"Item":{"key":{"S":"a"}}}"#)],
            Op::ListFirst | Op::ListAfter => vec![dynamo(
                r#"{"Count":2,"Items":[{"key":{"S":"a"}},{"key":{"S":"b"}}],"LastEvaluatedKey":{"bucket":{"S":"b/"},"key":{"S":"b"}},"ScannedCount":2}"#,
            )],
            Op::Increment => vec![dynamo(&format!(r#"{{"Item":{}}}"#, item("NDE="))), dynamo("{}")],
            Op::GetMany => vec![dynamo(&format!(
                r#"{{"Responses":{{"t":[{}]}},"UnprocessedKeys":{{}}}}"#,
                item("dmFsdWU=")
            ))],
            Op::SetMany | Op::DeleteMany => vec![dynamo(r#"{"UnprocessedItems":{}}"#)],
        }
    }

    fn open(answers: Answers) -> Box<dyn Bucket> {
        let (client, credentials) = testing::canned("dynamodb", answers, testing::AWS_CREDENTIALS);
        DynamoDb::new(client, credentials, "t", "us-east-1", true)
            .open("b/".into())
            .unwrap()
    }

    /// Any answer, and DynamoDB's own cut short or mistyped: `ok` or a
    /// one-line `other(..)`, never a panic.
    #[test]
    fn answers_are_handled_without_panics() {
        testing::check_protocol(
            open,
            script,
            b"4611686018427387904",
            &["content-type", "x-amzn-requestid"],
        );
    }

    #[test]
    fn batches_name_each_key_once_keeping_the_last() {
        let entries = [("a", 1), ("b", 2), ("a", 3)];
        let unique = last_per_key(&entries, |(k, _)| k);
        assert_eq!(unique, [&("a", 3), &("b", 2)]);
    }

    /// An item read at the instant it expires is absent; one a ms earlier
    /// is there, with its expiry.
    #[test]
    fn items_are_absent_from_their_expiry_on() {
        let expiring = |at: u64| {
            dynamo(&format!(
                r#"{{"Item":{{"key":{{"S":"a"}},"value":{{"B":"dmFsdWU="}},"version":{{"N":"7"}},"expires_ms":{{"N":"{at}"}},"expires":{{"N":"1"}}}}}}"#
            ))
        };
        let now = testing::CANNED_NOW_MS;
        let bucket = open(Answers::new(vec![
            expiring(now),
            expiring(now),
            expiring(now + 1),
        ]));
        assert_eq!(bucket.get("a").unwrap(), None);
        assert!(!bucket.exists("a").unwrap());
        let live = bucket.get_versioned("a").unwrap();
        assert_eq!(live.value.as_deref(), Some(&b"value"[..]));
        assert_eq!(live.expires_at, Some(now + 1));
    }

    #[test]
    fn an_expiry_is_written_in_ms_and_in_seconds_rounded_up() {
        let (client, credentials) = testing::canned("dynamodb", Answers::default(), testing::AWS_CREDENTIALS);
        let service = DynamoDb::new(client, credentials, "t", "us-east-1", true);
        let bucket = DynamoDbBucket {
            conn: Rc::clone(&service.conn),
            prefix: "b/".into(),
        };
        let item = bucket.item("a", b"v", Some(1_001));
        assert_eq!(item[EXPIRES_MS]["N"], "1001");
        assert_eq!(item[TTL_ATTRIBUTE]["N"], "2");
        let item = bucket.item("a", b"v", None);
        assert!(item.get(EXPIRES_MS).is_none() && item.get(TTL_ATTRIBUTE).is_none());
    }
}
