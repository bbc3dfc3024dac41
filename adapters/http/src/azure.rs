//! Azure Table storage (REST, JSON `odata=nometadata`, `x-ms-version`
//! 2019-02-02), on one configured table of one storage account.
//!
//! - A bucket is a partition: its key prefix (see [`crate::buckets`]) is the
//!   `PartitionKey`, the key is the `RowKey`. Both are escaped: the
//!   characters a key may not hold (`/ \ # ?`, U+0000–U+001F, U+007F–U+009F)
//!   and the escape character `%` itself become `%XX` for each UTF-8 byte
//!   (`a/b%` is stored as `a%2Fb%25`); every other character is kept.
//!   Listing decodes them back.
//! - A value is split into binary properties `v0`, `v1`, … of at most
//!   64 KiB each (Azure's limit per property); an empty value is an entity
//!   without them. Writes replace the whole entity, so a shorter value
//!   leaves no stale chunk behind.
//! - Limits: Azure allows 1 KiB (UTF-16 units) per key and escaping can
//!   triple a key, so keys are limited to 341 bytes. A value must fit one
//!   entity; Azure counts an entity's binary size (at most 1 MiB), but
//!   Azurite refuses an update whose JSON body (base64) is over 1 MiB, so
//!   values are limited to 760 KiB, which fits both. Every entity body is
//!   measured before it is sent.
//! - Expiry: the Int64 property `ExpiresAtMs` (ms since the Unix epoch),
//!   which every read filters by. Azure Table has no expiry of its own: a
//!   read that finds an expired entity deletes it (`If-Match: <its etag>`,
//!   so never a concurrent rewrite); one never read again stays, invisible,
//!   until overwritten or deleted.
//! - A key's version is its `ETag`. Compare-and-swap of an absent key is an
//!   insert (`POST`, 409 if it exists meanwhile), and over an expired
//!   entity a replace of exactly it (`If-Match: <its etag>`): if-not-exists,
//!   atomic; otherwise a replace with `If-Match: <etag>` (412, or 404 if
//!   deleted meanwhile). A replace sets or clears `ExpiresAtMs` with the
//!   rest of the entity. Increment is kv-core's compare-and-swap loop.
//! - `list-keys` is a query on the partition (`$filter=PartitionKey eq '…'
//!   and RowKey gt '<last key returned>'`, and for a prefix `RowKey ge
//!   '<prefix>' and RowKey lt '<prefix, last character + 1>'`, all escaped;
//!   `$select=RowKey,ExpiresAtMs`, `$top`), in RowKey order, expired keys
//!   left out (Azurite's filters cannot test a missing property); Azure's
//!   continuation (`x-ms-continuation-NextPartitionKey` and `-NextRowKey`)
//!   is followed past pages it ends early or whose keys all expired.
//! - Batch writes are entity-group transactions (`$batch`, one partition,
//!   at most 100 operations and 4 MiB each). A batch delete fails whole if
//!   one key is absent; that batch is then deleted key by key.
//! - Requests are signed with the account key (credential `account-key`,
//!   base64 as Azure shows it) by the `SharedKey` scheme ([`crate::shared_key`]).
//! - The table is created on an instance's first request if it does not
//!   exist (a `TableAlreadyExists` answer is fine).

use alloc::boxed::Box;
use alloc::format;
use alloc::rc::Rc;
use alloc::string::{String, ToString};
use alloc::vec::Vec;
use core::cell::{Cell, OnceCell};

use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use kv_core::{
    Bucket, Error, ExpiresAt, KeyPage, Limits, ListRequest, Quoted, Result, Version, Versioned, is_expired,
};
use serde_json::{Map, Value, json};
use wasip2::http::types::Method;

use crate::Service;
use crate::client::{Client, Request, Response, method_name, percent_encode};
use crate::credentials::Credentials;
use crate::expiry::{self, Listed, Stored};
use crate::shared_key::SharedKey;

/// Azure's largest key (1 KiB) over the worst growth of escaping (3×).
const MAX_KEY_BYTES: usize = 1024 / 3;

pub const LIMITS: Limits = Limits {
    max_key_bytes: MAX_KEY_BYTES,
    max_value_bytes: 760 << 10,
};

/// The largest binary property.
const CHUNK_BYTES: usize = 64 << 10;

/// The largest entity body Azurite accepts in an update (Azure's entity
/// limit, applied to the JSON text).
const MAX_ENTITY_BODY: usize = 1 << 20;

/// An entity-group transaction: at most 100 operations and 4 MiB of body
/// (this leaves room for the multipart envelope).
const MAX_BATCH_OPS: usize = 100;
const MAX_BATCH_BODY: usize = (4 << 20) - (64 << 10);

/// Azure's most entities per query page.
const MAX_PAGE: usize = 1000;

/// The property of an entity's expiry (Int64, ms since the Unix epoch).
pub const EXPIRES_PROPERTY: &str = "ExpiresAtMs";

pub const API_VERSION: &str = "2019-02-02";
pub const JSON: &str = "application/json";
pub const NO_METADATA: &str = "application/json;odata=nometadata";

pub struct AzureTable {
    conn: Rc<Connection>,
}

impl AzureTable {
    pub fn new(client: Rc<Client>, credentials: Credentials, account: &str, table: &str) -> Result<Self> {
        Ok(AzureTable {
            conn: Rc::new(Connection {
                client,
                credentials,
                account: account.into(),
                table: table.into(),
                signer: OnceCell::new(),
                table_ready: Cell::new(false),
            }),
        })
    }
}

impl Service for AzureTable {
    fn limits(&self) -> Limits {
        LIMITS
    }

    fn open(&self, prefix: String) -> Result<Box<dyn Bucket>> {
        let partition = escape_key(&prefix);
        if utf16_len(&partition) > 1024 {
            return Err(self.conn.client.error(format_args!(
                "the bucket's key prefix {} is over Azure's 1 KiB PartitionKey limit once escaped",
                Quoted(&prefix)
            )));
        }
        Ok(Box::new(AzureBucket {
            conn: Rc::clone(&self.conn),
            partition,
        }))
    }
}

/// The client, the signer and the table, shared by every bucket of the instance.
struct Connection {
    client: Rc<Client>,
    credentials: Credentials,
    account: String,
    table: String,
    /// Made on the first request: the key is read from the environment then.
    signer: OnceCell<SharedKey>,
    table_ready: Cell<bool>,
}

impl Connection {
    fn signer(&self) -> Result<&SharedKey> {
        if let Some(signer) = self.signer.get() {
            return Ok(signer);
        }
        let key = self.credentials.require("account-key")?;
        let signer = SharedKey::new(&self.account, &key).map_err(|why| {
            self.client
                .error(format_args!("the account-key credential {why}"))
        })?;
        Ok(self.signer.get_or_init(|| signer))
    }

    /// Signs and sends `request` (its path relative to the endpoint),
    /// creating the table first if this instance has not yet.
    fn send(&self, request: Request) -> Result<Response> {
        self.ensure_table()?;
        self.send_signed(request)
    }

    /// Sends independent requests at once ([`Client::send_all`]).
    fn send_all(&self, requests: Vec<Request>) -> Result<Vec<Result<Response>>> {
        self.ensure_table()?;
        let signed = requests
            .into_iter()
            .map(|request| self.sign(request))
            .collect::<Result<Vec<_>>>()?;
        Ok(self.client.send_all(&signed))
    }

    fn send_signed(&self, request: Request) -> Result<Response> {
        self.client.send(&self.sign(request)?)
    }

    fn sign(&self, request: Request) -> Result<Request> {
        let path = self.client.endpoint().full_path(&request.path);
        let now = self.client.unix_seconds();
        Ok(self.signer()?.sign(request, &path, now))
    }

    /// Creates the table on this instance's first request.
    fn ensure_table(&self) -> Result<()> {
        if !self.table_ready.get() {
            self.create_table()?;
            self.table_ready.set(true);
        }
        Ok(())
    }

    fn create_table(&self) -> Result<()> {
        let request = Request::new(Method::Post, "/Tables")
            .header("content-type", JSON)
            .header("prefer", "return-no-content")
            .body(json!({ "TableName": self.table }).to_string());
        let response = self.send_signed(request)?;
        if response.is_success() || response.status == 409 {
            return Ok(());
        }
        Err(self.service_error(&response))
    }

    /// The path of one entity of the table.
    fn entity_path(&self, partition: &str, row: &str) -> String {
        format!(
            "/{}(PartitionKey='{}',RowKey='{}')",
            self.table,
            percent_encode(odata_quote(partition).as_bytes()),
            percent_encode(odata_quote(row).as_bytes())
        )
    }

    /// `other("azure-table: <status> <code>: <message>")` from Azure's
    /// error answer (JSON for the table API, XML for auth failures).
    fn service_error(&self, response: &Response) -> Error {
        self.client.status_error(response, &error_message(response))
    }

    fn malformed(&self, what: &str, response: &Response) -> Error {
        self.client.malformed(what, response)
    }
}

pub struct AzureBucket {
    conn: Rc<Connection>,
    /// The escaped PartitionKey.
    partition: String,
}

impl AzureBucket {
    fn path(&self, key: &str) -> String {
        self.conn.entity_path(&self.partition, &escape_key(key))
    }

    /// The JSON body of the entity holding `value` under `key`, checked
    /// against the entity limit before anything is sent.
    fn body(&self, key: &str, value: &[u8], expires_at: Option<ExpiresAt>) -> Result<String> {
        let mut entity = entity_body(&self.partition, &escape_key(key), value);
        if let Some(at) = expires_at {
            entity[EXPIRES_PROPERTY] = at.to_string().into();
            entity[format!("{EXPIRES_PROPERTY}@odata.type").as_str()] = "Edm.Int64".into();
        }
        let body = entity.to_string();
        if body.len() > MAX_ENTITY_BODY {
            return Err(self.conn.client.error(format_args!(
                "key {} with a value of {} bytes is over Azure's 1 MiB entity limit",
                Quoted(key),
                value.len()
            )));
        }
        Ok(body)
    }

    /// The entity of `key`, expired or not; without its value if `select`
    /// (all `exists` needs).
    fn read(&self, key: &str, select: bool) -> Result<Option<Stored>> {
        let mut path = self.path(key);
        if select {
            path.push_str(&format!("?$select=RowKey,{EXPIRES_PROPERTY}"));
        }
        self.entity_from(self.conn.send(Request::new(Method::Get, path))?)
    }

    /// The entity of `key` unless absent or expired. An expired one is
    /// deleted: Azure keeps it otherwise.
    fn read_live(&self, key: &str, select: bool) -> Result<Option<Stored>> {
        let entity = self.read(key, select)?;
        match entity {
            Some(entity) if entity.has_expired(&self.conn.client) => {
                // Only that entity (not a rewrite since); whatever the
                // outcome, the read is done: the key is absent.
                let delete = Request::new(Method::Delete, self.path(key)).header("if-match", entity.version);
                let _ = self.conn.send(delete);
                Ok(None)
            }
            entity => Ok(entity),
        }
    }

    /// The entity a `GET` of it answered.
    fn entity_from(&self, response: Response) -> Result<Option<Stored>> {
        if response.status == 404 {
            return Ok(None);
        }
        if !response.is_success() {
            return Err(self.conn.service_error(&response));
        }
        let etag = response
            .header("etag")
            .ok_or_else(|| self.conn.malformed("no ETag", &response))?
            .to_string();
        let entity: Value = serde_json::from_slice(&response.body)
            .map_err(|e| self.conn.malformed(&format!("{e}"), &response))?;
        let value = entity_value(&entity).ok_or_else(|| {
            self.conn
                .malformed("the value chunks are missing or not base64", &response)
        })?;
        let expires_at = entity_expiry(&entity).map_err(|what| self.conn.malformed(what, &response))?;
        Ok(Some(Stored {
            value,
            version: etag,
            expires_at,
        }))
    }

    /// The live entities of `keys` (`GET`s sent at once).
    fn read_many(&self, keys: &[String]) -> Result<Vec<Option<Stored>>> {
        let requests = keys
            .iter()
            .map(|key| Request::new(Method::Get, self.path(key)))
            .collect();
        self.conn
            .send_all(requests)?
            .into_iter()
            .map(|response| {
                Ok(self
                    .entity_from(response?)?
                    .filter(|entity| !entity.has_expired(&self.conn.client)))
            })
            .collect()
    }

    /// A conditional write of the entity `body`; `false` if the entity was
    /// written (409, 412) or deleted (404) meanwhile.
    fn write_if(&self, request: Request, body: &str) -> Result<bool> {
        let request = request.header("content-type", JSON).body(body).once();
        let response = self.conn.send(request)?;
        match response.status {
            _ if response.is_success() => Ok(true),
            404 | 409 | 412 => Ok(false),
            _ => Err(self.conn.service_error(&response)),
        }
    }

    /// Runs `operations` (method, key, body) as entity-group transactions
    /// that each stay within Azure's limits. Returns the first failure's
    /// status and message, if any.
    fn batches(&self, operations: &[(Method, String, Option<String>)]) -> Result<Vec<BatchFailure>> {
        let mut failures = Vec::new();
        let mut start = 0;
        while start < operations.len() {
            let mut end = start;
            let mut bytes = 0;
            while end < operations.len() && end - start < MAX_BATCH_OPS {
                let size = operations[end].2.as_ref().map_or(0, String::len) + 1024;
                if end > start && bytes + size > MAX_BATCH_BODY {
                    break;
                }
                bytes += size;
                end += 1;
            }
            if let Some(failure) = self.batch(&operations[start..end])? {
                failures.push(BatchFailure {
                    range: start..end,
                    ..failure
                });
            }
            start = end;
        }
        Ok(failures)
    }

    /// One `$batch` with one changeset.
    fn batch(&self, operations: &[(Method, String, Option<String>)]) -> Result<Option<BatchFailure>> {
        let id = self.conn.client.random_u64();
        let batch = format!("batch_{id:016x}");
        let changeset = format!("changeset_{id:016x}");
        let base = self.conn.client.endpoint().to_string();
        let mut body = format!("--{batch}\r\nContent-Type: multipart/mixed; boundary={changeset}\r\n\r\n");
        for (method, key, entity) in operations {
            body.push_str(&format!(
                "--{changeset}\r\nContent-Type: application/http\r\nContent-Transfer-Encoding: binary\r\n\r\n\
                 {} {base}{} HTTP/1.1\r\nAccept: {NO_METADATA}\r\nDataServiceVersion: 3.0;\r\n",
                method_name(method),
                self.path(key)
            ));
            match entity {
                Some(entity) => body.push_str(&format!(
                    "Content-Type: {JSON}\r\nPrefer: return-no-content\r\n\r\n{entity}\r\n"
                )),
                None => body.push_str("If-Match: *\r\n\r\n"),
            }
        }
        body.push_str(&format!("--{changeset}--\r\n--{batch}--\r\n"));
        let request = Request::new(Method::Post, "/$batch")
            .header("content-type", format!("multipart/mixed; boundary={batch}"))
            .body(body);
        let response = self.conn.send(request)?;
        if !response.is_success() {
            return Err(self.conn.service_error(&response));
        }
        let text = String::from_utf8_lossy(&response.body);
        let statuses = batch_statuses(&text);
        if statuses.is_empty() {
            return Err(self.conn.malformed("a batch answer without statuses", &response));
        }
        Ok(statuses
            .into_iter()
            .find(|(status, _)| !(200..300).contains(status))
            .map(|(status, message)| BatchFailure {
                status,
                message,
                range: 0..0,
            }))
    }
}

/// A failed entity-group transaction: nothing of it was applied.
struct BatchFailure {
    status: u16,
    message: String,
    /// Which operations it held.
    range: core::ops::Range<usize>,
}

impl Bucket for AzureBucket {
    fn get(&self, key: &str) -> Result<Option<Vec<u8>>> {
        Ok(self.read_live(key, false)?.map(|entity| entity.value))
    }

    fn get_versioned(&self, key: &str) -> Result<Versioned> {
        Ok(self
            .read_live(key, false)?
            .map(Stored::versioned)
            .unwrap_or_default())
    }

    /// Entity-group transactions read one entity each: one `GET` per key,
    /// sent at once.
    fn get_many(&self, keys: &[String]) -> Result<Vec<Option<Vec<u8>>>> {
        Ok(self
            .read_many(keys)?
            .into_iter()
            .map(|entity| entity.map(|entity| entity.value))
            .collect())
    }

    fn get_many_versioned(&self, keys: &[String]) -> Result<Vec<Versioned>> {
        Ok(self
            .read_many(keys)?
            .into_iter()
            .map(|entity| entity.map(Stored::versioned).unwrap_or_default())
            .collect())
    }

    fn set(&self, key: &str, value: &[u8], expires_at: Option<ExpiresAt>) -> Result<()> {
        // Insert or replace: a PUT without If-Match.
        let request = Request::new(Method::Put, self.path(key))
            .header("content-type", JSON)
            .body(self.body(key, value, expires_at)?);
        let response = self.conn.send(request)?;
        if !response.is_success() {
            return Err(self.conn.service_error(&response));
        }
        Ok(())
    }

    fn delete(&self, key: &str) -> Result<()> {
        let request = Request::new(Method::Delete, self.path(key)).header("if-match", "*");
        let response = self.conn.send(request)?;
        if !response.is_success() && response.status != 404 {
            return Err(self.conn.service_error(&response));
        }
        Ok(())
    }

    fn exists(&self, key: &str) -> Result<bool> {
        Ok(self.read_live(key, true)?.is_some())
    }

    /// RowKey order, from just after the (escaped) last key returned: a
    /// `RowKey gt` filter, which resumes exactly wherever the core cut the
    /// page. Azure's own continuation is followed within one call only.
    fn list_keys(&self, request: ListRequest<'_>) -> Result<KeyPage> {
        let after = request.after.map(escape_key);
        let prefix = escape_key(request.prefix);
        let top = request.max_keys.clamp(1, MAX_PAGE);
        let now = self.conn.client.unix_ms();
        expiry::live_page(&self.conn.client, |continuation: Option<&Continuation>| {
            let path = list_query_path(
                &self.conn.table,
                &self.partition,
                &prefix,
                after.as_deref(),
                top,
                continuation,
            );
            let response = self.conn.send(Request::new(Method::Get, path))?;
            if !response.is_success() {
                return Err(self.conn.service_error(&response));
            }
            let answer: Value = serde_json::from_slice(&response.body)
                .map_err(|e| self.conn.malformed(&format!("{e}"), &response))?;
            let entities = answer["value"].as_array().map_or(&[][..], Vec::as_slice);
            let mut keys = Vec::new();
            for entity in entities {
                let key = entity["RowKey"].as_str().and_then(unescape_key).ok_or_else(|| {
                    self.conn
                        .malformed("a RowKey this adapter did not write", &response)
                })?;
                let expires_at =
                    entity_expiry(entity).map_err(|what| self.conn.malformed(what, &response))?;
                if !is_expired(expires_at, now) {
                    keys.push(key);
                }
            }
            Ok(Listed {
                keys,
                listed: entities.len(),
                next: continuation_of(&response),
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
        let body = self.body(key, value, expires_at)?;
        // A replace of the entity at `etag`: `false` if it changed or went.
        let replace = |etag: &String| {
            self.write_if(
                Request::new(Method::Put, self.path(key)).header("if-match", etag.clone()),
                &body,
            )
        };
        match expected {
            Some(Version(etag)) => {
                let etag = String::from_utf8(etag.clone()).map_err(|_| {
                    self.conn
                        .client
                        .error("a compare-and-swap version is not an ETag")
                })?;
                replace(&etag)
            }
            // If-not-exists: an insert (409 if the key is held), or over
            // an expired entity a replace of exactly it.
            None => expiry::insert_if_absent_or_expired(
                &self.conn.client,
                key,
                || {
                    self.write_if(
                        Request::new(Method::Post, format!("/{}", self.conn.table))
                            .header("prefer", "return-no-content"),
                        &body,
                    )
                },
                || {
                    Ok(self
                        .read(key, true)?
                        .map(|entity| (entity.version, entity.expires_at)))
                },
                replace,
            ),
        }
    }

    fn set_many(&self, entries: &[(String, Vec<u8>)], expires_at: Option<ExpiresAt>) -> Result<()> {
        let mut operations = Vec::with_capacity(entries.len());
        for (key, value) in last_of_each(entries, |(key, _)| key) {
            operations.push((Method::Put, key.clone(), Some(self.body(key, value, expires_at)?)));
        }
        match self.batches(&operations)?.into_iter().next() {
            None => Ok(()),
            Some(failure) => Err(self
                .conn
                .client
                .error(format_args!("{} {}", failure.status, failure.message))),
        }
    }

    fn delete_many(&self, keys: &[String]) -> Result<()> {
        let operations: Vec<_> = last_of_each(keys, |key| key)
            .into_iter()
            .map(|key| (Method::Delete, key.clone(), None))
            .collect();
        for failure in self.batches(&operations)? {
            if failure.status != 404 {
                return Err(self
                    .conn
                    .client
                    .error(format_args!("{} {}", failure.status, failure.message)));
            }
            // A key of that batch was absent: delete them one by one.
            for (_, key, _) in &operations[failure.range] {
                self.delete(key)?;
            }
        }
        Ok(())
    }
}

/// Each key once, the last entry for it winning (a transaction may not
/// touch one entity twice), in their original order otherwise.
fn last_of_each<T>(items: &[T], key: impl Fn(&T) -> &String) -> Vec<&T> {
    let mut seen = alloc::collections::BTreeSet::new();
    let mut kept: Vec<&T> = items.iter().rev().filter(|item| seen.insert(key(item))).collect();
    kept.reverse();
    kept
}

/// Escapes what a PartitionKey or RowKey may not hold, and `%`.
pub fn escape_key(key: &str) -> String {
    kv_core::percent::encode(
        key.as_bytes(),
        |c| !matches!(c, '/' | '\\' | '#' | '?' | '\u{0}'..='\u{1f}' | '\u{7f}'..='\u{9f}'),
    )
}

/// The key [`escape_key`] made `escaped` from; `None` if it is not one.
pub fn unescape_key(escaped: &str) -> Option<String> {
    kv_core::percent::decode(escaped, false).ok()
}

/// Azure's continuation of a query: `NextPartitionKey` and `NextRowKey`.
pub type Continuation = (String, String);

/// The path of one list-keys query: the `RowKey`s (and expiries) of
/// `partition`'s rows that start with the (escaped) `prefix` (a RowKey
/// range), after the (escaped) `RowKey` `after`, at most `top`, resumed at
/// Azure's `continuation` of the same query.
pub fn list_query_path(
    table: &str,
    partition: &str,
    prefix: &str,
    after: Option<&str>,
    top: usize,
    continuation: Option<&Continuation>,
) -> String {
    let mut filter = format!("PartitionKey eq '{}'", odata_quote(partition));
    if !prefix.is_empty() {
        filter.push_str(&format!(" and RowKey ge '{}'", odata_quote(prefix)));
        if let Some(end) = prefix_end(prefix) {
            filter.push_str(&format!(" and RowKey lt '{}'", odata_quote(&end)));
        }
    }
    if let Some(after) = after {
        filter.push_str(&format!(" and RowKey gt '{}'", odata_quote(after)));
    }
    let mut path = format!(
        "/{table}()?$filter={}&$select=RowKey,{EXPIRES_PROPERTY}&$top={top}",
        percent_encode(filter.as_bytes())
    );
    if let Some((partition, row)) = continuation {
        path.push_str(&format!(
            "&NextPartitionKey={}&NextRowKey={}",
            percent_encode(partition.as_bytes()),
            percent_encode(row.as_bytes())
        ));
    }
    path
}

/// The least string after every string that starts with `prefix`: its last
/// character one higher. `None` where that could sort differently in
/// UTF-16 (Azure's order) than in UTF-8: the range is then left open.
fn prefix_end(prefix: &str) -> Option<String> {
    let last = prefix.chars().next_back()?;
    let next = char::from_u32(u32::from(last) + 1).filter(|c| u32::from(*c) < 0xD800)?;
    let mut end = prefix[..prefix.len() - last.len_utf8()].to_string();
    end.push(next);
    Some(end)
}

/// An entity's expiry: its `ExpiresAtMs` (Int64, which JSON carries as a
/// string), `None` if it has none.
fn entity_expiry(entity: &Value) -> core::result::Result<Option<ExpiresAt>, &'static str> {
    let at = match &entity[EXPIRES_PROPERTY] {
        Value::Null => return Ok(None),
        Value::String(text) => expiry::parse_ms(text),
        Value::Number(number) => number.as_u64(),
        _ => None,
    };
    at.map(Some).ok_or("ExpiresAtMs is not a number of ms")
}

/// The continuation a query's answer carries, if the query goes on.
pub fn continuation_of(response: &Response) -> Option<Continuation> {
    match (
        response.header("x-ms-continuation-NextPartitionKey"),
        response.header("x-ms-continuation-NextRowKey"),
    ) {
        (Some(partition), Some(row)) => Some((partition.to_string(), row.to_string())),
        _ => None,
    }
}

/// A string inside an OData literal: `'` doubled.
pub fn odata_quote(text: &str) -> String {
    text.replace('\'', "''")
}

fn utf16_len(text: &str) -> usize {
    text.encode_utf16().count()
}

/// The entity for `value`: binary properties `v0`, `v1`, … of 64 KiB.
pub fn entity_body(partition: &str, row: &str, value: &[u8]) -> Value {
    let mut entity = Map::new();
    entity.insert("PartitionKey".into(), partition.into());
    entity.insert("RowKey".into(), row.into());
    for (i, chunk) in value.chunks(CHUNK_BYTES).enumerate() {
        entity.insert(format!("v{i}"), BASE64.encode(chunk).into());
        entity.insert(format!("v{i}@odata.type"), "Edm.Binary".into());
    }
    Value::Object(entity)
}

/// The value of an entity read back: its `v0`, `v1`, … in order.
pub fn entity_value(entity: &Value) -> Option<Vec<u8>> {
    let mut value = Vec::new();
    for i in 0.. {
        match &entity[format!("v{i}").as_str()] {
            Value::Null => break,
            Value::String(chunk) => value.extend(BASE64.decode(chunk).ok()?),
            _ => return None,
        }
    }
    Some(value)
}

/// The status and message of each operation of a `$batch` answer.
fn batch_statuses(answer: &str) -> Vec<(u16, String)> {
    let mut statuses = Vec::new();
    let mut rest = answer;
    while let Some(at) = rest.find("HTTP/1.1 ") {
        rest = &rest[at + 9..];
        let Some(status) = rest.get(..3).and_then(|s| s.parse().ok()) else {
            continue;
        };
        // The operation's part ends at the next boundary line.
        let part = &rest[..rest.find("\r\n--").unwrap_or(rest.len())];
        let body = part.split_once("\r\n\r\n").map_or("", |(_, body)| body.trim());
        let message = odata_error(body).unwrap_or_else(|| part.lines().next().unwrap_or("").trim().into());
        statuses.push((status, message));
    }
    statuses
}

/// `<code>: <message's first line>` from a JSON `odata.error`.
fn odata_error(body: &str) -> Option<String> {
    let error: Value = serde_json::from_str(body).ok()?;
    let error = &error["odata.error"];
    let code = error["code"].as_str()?;
    let message = error["message"]["value"].as_str().unwrap_or("");
    Some(join_code(code, message))
}

/// `<Code>: <Message's first line>` from an XML `<Error>`.
fn xml_error(body: &str) -> Option<String> {
    let element = |name: &str| {
        let start = body.find(&format!("<{name}>"))? + name.len() + 2;
        let end = start + body[start..].find(&format!("</{name}>"))?;
        Some(&body[start..end])
    };
    Some(join_code(element("Code")?, element("Message").unwrap_or("")))
}

/// Azure appends `RequestId:…` and `Time:…` lines to messages: drop them.
fn join_code(code: &str, message: &str) -> String {
    let message = message
        .split_once(':')
        .filter(|(index, _)| index.chars().all(|c| c.is_ascii_digit()) && !index.is_empty())
        .map_or(message, |(_, rest)| rest);
    match message.lines().next().map(str::trim) {
        Some(first) if !first.is_empty() => format!("{code}: {first}"),
        _ => code.into(),
    }
}

fn error_message(response: &Response) -> String {
    let body = String::from_utf8_lossy(&response.body);
    odata_error(&body)
        .or_else(|| xml_error(&body))
        .or_else(|| response.header("x-ms-error-code").map(String::from))
        .unwrap_or_else(|| response.body_text())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::shared_key::tests::{DEV_ACCOUNT, DEV_KEY};
    use crate::testing::{self, Answers, Op, answer};

    const ETAG: &str = "W/\"datetime'2026-11-30T08%3A00%3A00.1234567Z'\"";

    fn entity(value: &str) -> Response {
        let body = format!(
            r#"{{"PartitionKey":"b%2F","RowKey":"a","Timestamp":"2026-11-30T08:00:00.1234567Z","v0@odata.type":"Edm.Binary","v0":"{value}"}}"#
        );
        answer(200, &[("etag", ETAG), ("content-type", NO_METADATA)], body)
    }

    fn no_content() -> Response {
        answer(204, &[("etag", ETAG), ("x-ms-version", API_VERSION)], "")
    }

    const NOT_FOUND: &str = r#"{"odata.error":{"code":"ResourceNotFound","message":{"lang":"en-US","value":"The specified resource does not exist.
RequestId:2b6e5f7a-1234
Time:2026-11-30T08:00:00.1234567Z"}}}"#;

    /// A `$batch` answer: one changeset, a `204` per operation.
    fn batch(operations: usize) -> Response {
        let mut body = String::from(
            "--batchresponse_1\r\nContent-Type: multipart/mixed; boundary=changesetresponse_2\r\n\r\n",
        );
        for _ in 0..operations {
            body.push_str(
                "--changesetresponse_2\r\nContent-Type: application/http\r\nContent-Transfer-Encoding: binary\r\n\r\n\
                 HTTP/1.1 204 No Content\r\nX-Content-Type-Options: nosniff\r\nCache-Control: no-cache\r\n\
                 DataServiceVersion: 1.0;\r\n\r\n\r\n",
            );
        }
        body.push_str("--changesetresponse_2--\r\n--batchresponse_1--\r\n");
        let content_type = "multipart/mixed; boundary=batchresponse_1";
        answer(202, &[("content-type", content_type)], body)
    }

    fn script(op: Op) -> Vec<Response> {
        let table_created = answer(204, &[("preference-applied", "return-no-content")], "");
        let mut answers = vec![table_created];
        answers.extend(match op {
            Op::Get | Op::GetVersioned => vec![entity("dmFsdWU=")],
            Op::Set | Op::Delete | Op::CasInsert | Op::CasReplace => vec![no_content()],
            Op::Exists => vec![answer(200, &[("etag", ETAG)], r#"{"RowKey":"a"}"#)],
            Op::ListFirst | Op::ListAfter => vec![answer(
                200,
                &[
                    ("content-type", NO_METADATA),
                    ("x-ms-continuation-NextPartitionKey", "1!8!YiUyRg--"),
                    ("x-ms-continuation-NextRowKey", "1!4!Yw--"),
                ],
                r#"{"value":[{"RowKey":"a"},{"RowKey":"b%25"}]}"#,
            )],
            Op::Increment => vec![entity("NDE="), no_content()],
            Op::GetMany => vec![
                entity("dmFsdWU="),
                answer(404, &[("content-type", JSON)], NOT_FOUND),
            ],
            Op::SetMany | Op::DeleteMany => vec![batch(2)],
        });
        answers
    }

    /// The response headers the protocol reads.
    const AZURE_HEADERS: &[&str] = &[
        "etag",
        "content-type",
        "x-ms-error-code",
        "x-ms-continuation-NextPartitionKey",
        "x-ms-continuation-NextRowKey",
    ];

    fn open(answers: Answers) -> Box<dyn Bucket> {
        let (client, credentials) = testing::canned("azure-table", answers, &[("account-key", DEV_KEY)]);
        AzureTable::new(client, credentials, DEV_ACCOUNT, "kvvirt")
            .unwrap()
            .open("b/".into())
            .unwrap()
    }

    /// A service that ends page after page early without an entity does
    /// not keep list-keys going forever.
    #[test]
    fn endless_empty_pages_are_an_error() {
        let empty = answer(
            200,
            &[
                ("x-ms-continuation-NextPartitionKey", "1!8!YiUyRg--"),
                ("x-ms-continuation-NextRowKey", "1!4!Yw--"),
            ],
            r#"{"value":[]}"#,
        );
        let mut answers = vec![no_content()];
        answers.extend(core::iter::repeat_n(empty, expiry::MAX_EMPTY_PAGES + 1));
        let bucket = open(Answers::new(answers));
        let error = bucket
            .list_keys(ListRequest {
                after: None,
                max_keys: 10,
                prefix: "",
            })
            .unwrap_err();
        assert_eq!(
            error.to_string(),
            "azure-table: list-keys got 100 pages in a row without a key"
        );
    }

    /// Any answer, and Azure's own cut short or mistyped: `ok` or a
    /// one-line `other(..)`, never a panic.
    #[test]
    fn answers_are_handled_without_panics() {
        testing::check_protocol(open, script, ETAG.as_bytes(), AZURE_HEADERS);
    }

    #[test]
    fn keys_escape_reversibly() {
        for key in [
            "plain",
            "a/b\\c#d?e%f",
            "100%",
            "%2F",
            "ü %*",
            "\u{0}\u{1f}\u{7f}\u{80}\u{9f}\u{a0}",
            "'quote'",
            "",
        ] {
            let escaped = escape_key(key);
            assert!(
                !escaped.contains(['/', '\\', '#', '?']) && !escaped.chars().any(|c| c.is_control()),
                "{escaped:?}"
            );
            assert_eq!(unescape_key(&escaped).as_deref(), Some(key));
        }
        assert_eq!(escape_key("a/b%"), "a%2Fb%25");
        assert_eq!(unescape_key("%zz"), None);
        assert_eq!(unescape_key("%2"), None);
        // The longest key, all escaped, still fits Azure's 1 KiB RowKey.
        assert!(utf16_len(&escape_key(&"\u{80}".repeat(MAX_KEY_BYTES / 2))) <= 1024);
        assert!(utf16_len(&escape_key(&"/".repeat(MAX_KEY_BYTES))) <= 1024);
    }

    #[test]
    fn the_largest_value_fits_one_entity() {
        let partition = escape_key(&"p".repeat(kv_core::MAX_BUCKET_NAME_BYTES + 1));
        let row = escape_key(&"\"".repeat(MAX_KEY_BYTES));
        let value = alloc::vec![0xff; LIMITS.max_value_bytes];
        let body = entity_body(&partition, &row, &value);
        assert!(body.to_string().len() <= MAX_ENTITY_BODY);
        assert_eq!(entity_value(&body).unwrap(), value);
        assert_eq!(entity_value(&entity_body("p", "r", b"")).unwrap(), b"");
    }

    #[test]
    fn batch_answers_and_errors() {
        let ok = "--batchresponse_1\r\nContent-Type: multipart/mixed; boundary=changesetresponse_2\r\n\r\n\
                  --changesetresponse_2\r\nContent-Type: application/http\r\n\r\nHTTP/1.1 204 No Content\r\n\
                  ETag: W/\"x\"\r\n\r\n\r\n--changesetresponse_2\r\nContent-Type: application/http\r\n\r\n\
                  HTTP/1.1 204 No Content\r\n\r\n\r\n--changesetresponse_2--\r\n--batchresponse_1--\r\n";
        assert_eq!(
            batch_statuses(ok).iter().map(|s| s.0).collect::<Vec<_>>(),
            [204, 204]
        );
        let failed = "--changesetresponse_2\r\nContent-Type: application/http\r\n\r\nHTTP/1.1 404 Not Found\r\n\
                      Content-Type: application/json\r\n\r\n{\"odata.error\":{\"code\":\"ResourceNotFound\",\
                      \"message\":{\"lang\":\"en-US\",\"value\":\"1:The specified resource does not exist.\\nRequestId:x\"}}}\r\n\
                      --changesetresponse_2--\r\n";
        assert_eq!(
            batch_statuses(failed),
            [(
                404,
                "ResourceNotFound: The specified resource does not exist.".into()
            )]
        );
        let xml = "<?xml version=\"1.0\"?><Error><Code>AuthorizationFailure</Code><Message>Server failed.\nRequestId:1</Message></Error>";
        assert_eq!(xml_error(xml).unwrap(), "AuthorizationFailure: Server failed.");
    }

    #[test]
    fn each_key_once_last_wins() {
        let entries = [("a".to_string(), 1), ("b".to_string(), 2), ("a".to_string(), 3)];
        let kept: Vec<_> = last_of_each(&entries, |(k, _)| k).into_iter().cloned().collect();
        assert_eq!(kept, [("b".to_string(), 2), ("a".to_string(), 3)]);
    }

    fn expiring(at: u64) -> Response {
        let body = format!(
            r#"{{"PartitionKey":"b%2F","RowKey":"a","v0@odata.type":"Edm.Binary","v0":"dmFsdWU=","ExpiresAtMs":"{at}"}}"#
        );
        answer(200, &[("etag", ETAG), ("content-type", NO_METADATA)], body)
    }

    /// From the instant it expires an entity is absent (and a read deletes
    /// it); listings leave it out.
    #[test]
    fn entities_are_absent_from_their_expiry_on() {
        let now = testing::CANNED_NOW_MS;
        let listed = format!(
            r#"{{"value":[{{"RowKey":"a","ExpiresAtMs":"{}"}},{{"RowKey":"b"}},{{"RowKey":"c","ExpiresAtMs":"{now}"}}]}}"#,
            now + 1
        );
        let answers = Answers::new(vec![
            no_content(),
            expiring(now),
            no_content(),
            expiring(now + 1),
            answer(200, &[("content-type", NO_METADATA)], listed),
        ]);
        let bucket = open(answers.clone());
        assert_eq!(bucket.get("a").unwrap(), None);
        assert_eq!(bucket.get_versioned("a").unwrap().expires_at, Some(now + 1));
        let page = bucket
            .list_keys(ListRequest {
                after: None,
                max_keys: 10,
                prefix: "",
            })
            .unwrap();
        assert_eq!(page.keys, ["a", "b"]);
        assert!(!page.more);
        assert_eq!(answers.left(), 0);
    }

    /// If-not-exists over an expired entity replaces exactly it.
    #[test]
    fn if_not_exists_replaces_an_expired_entity() {
        let now = testing::CANNED_NOW_MS;
        let conflict = answer(
            409,
            &[("content-type", JSON)],
            r#"{"odata.error":{"code":"EntityAlreadyExists"}}"#,
        );
        testing::assert_if_not_exists_writes(open, vec![no_content(), conflict, expiring(now), no_content()]);
    }

    #[test]
    fn prefixes_are_row_key_ranges() {
        assert_eq!(prefix_end("ab").as_deref(), Some("ac"));
        assert_eq!(prefix_end("a%2F").as_deref(), Some("a%2G"));
        assert_eq!(prefix_end(""), None);
        assert_eq!(prefix_end("a\u{ffff}"), None);
        let path = list_query_path("t", "b", "p", Some("p1"), 10, None);
        let filter = kv_core::percent::decode(&path, false).unwrap();
        assert!(
            filter.contains("RowKey ge 'p' and RowKey lt 'q' and RowKey gt 'p1'"),
            "{filter}"
        );
    }
}
