//! The native clients of the signed cloud services (DynamoDB and S3 on
//! moto, Azure Table on Azurite): they build kv-http's own [`Request`]s,
//! sign them with kv-http's own signers ([`Signer`], [`SharedKey`]) and
//! send them with `ureq`, so both sides make the same requests.
//!
//! Each service says how it reads, writes, swaps and lists ([`Cloud`]);
//! the [`Native`] operations are built on those as kv-core builds them for
//! kv-http (increment as a compare-and-swap loop, get-many as gets unless
//! the service has a batch read).

use std::hash::{BuildHasher, RandomState};
use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::{Context, Result};
use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use kv_core::config::Endpoint;
use kv_http::azure;
use kv_http::client::{Request, Response, method_name, percent_encode};
use kv_http::shared_key::SharedKey;
use kv_http::sigv4::{self, Signer, uri_encode};
use serde_json::{Value, json};
use wasip2::http::types::Method;

use crate::Native;

/// The prefix kv-http stores bucket `bench`'s keys under.
const PREFIX: &str = "bench/";

/// The page size of kv-core's `list-keys`.
const PAGE: usize = 1000;

/// An AWS access key (moto's IAM user).
#[derive(Clone)]
pub struct AwsKey {
    pub access_key_id: String,
    pub secret_access_key: String,
}

impl AwsKey {
    fn signer(&self, region: &str, service: &'static str) -> Signer {
        Signer::new(
            self.access_key_id.clone(),
            self.secret_access_key.clone(),
            None,
            region.into(),
            service,
        )
    }
}

fn unix_seconds() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// Sends kv-http's [`Request`]s to an endpoint with `ureq`, answering any
/// status as a [`Response`], as kv-http's client does.
struct Transport {
    agent: ureq::Agent,
    endpoint: Endpoint,
}

impl Transport {
    fn new(url: &str, agent: ureq::Agent) -> Result<Self> {
        Ok(Transport {
            agent,
            endpoint: Endpoint::parse(url).map_err(|e| anyhow::anyhow!("{e:?}"))?,
        })
    }

    fn send(&self, request: &Request) -> Result<Response> {
        let mut builder = ureq::http::Request::builder()
            .method(method_name(&request.method))
            .uri(format!("{}{}", self.endpoint, request.path));
        for (name, value) in &request.headers {
            builder = builder.header(name.as_str(), value.as_slice());
        }
        let mut response = if request.body.is_empty() {
            self.agent.run(builder.body(())?)?
        } else {
            self.agent.run(builder.body(request.body.as_slice())?)?
        };
        let headers = response
            .headers()
            .iter()
            .map(|(name, value)| (name.to_string(), value.as_bytes().to_vec()))
            .collect();
        Ok(Response {
            status: response.status().as_u16(),
            headers,
            body: response.body_mut().read_to_vec()?,
        })
    }

    /// Signs `request` with SigV4 as kv-http does (path and payload hash).
    fn sign_aws(&self, signer: &Signer, request: &mut Request, payload_hash: &str) {
        let full_path = self.endpoint.full_path(&request.path);
        signer.sign(
            request,
            self.endpoint.authority(),
            &full_path,
            unix_seconds(),
            payload_hash,
        );
    }
}

fn failure(what: &str, response: &Response) -> anyhow::Error {
    anyhow::anyhow!("{what}: {} {}", response.status, response.body_text())
}

/// What a cloud service does its own way; [`Native`] follows from it.
pub trait Cloud {
    /// The value and its version.
    fn read(&self, key: &str) -> Result<Option<(Vec<u8>, String)>>;
    fn write(&self, key: &str, value: &[u8]) -> Result<()>;
    /// Writes if the version is still `expected` (`None`: absent); false on conflict.
    fn swap(&self, key: &str, expected: Option<&str>, value: &[u8]) -> Result<bool>;
    /// One page of keys after the cursor: how many, and the next cursor.
    fn list_page(&self, cursor: Option<String>) -> Result<(u64, Option<String>)>;

    /// How many of `keys` exist (kv-core's default: one read each).
    fn found_of(&self, keys: &[String]) -> Result<usize> {
        let mut found = 0;
        for key in keys {
            found += usize::from(self.read(key)?.is_some());
        }
        Ok(found)
    }
}

impl<T: Cloud> Native for T {
    fn get(&self, key: &str) -> Result<Option<Vec<u8>>> {
        Ok(self.read(key)?.map(|(value, _)| value))
    }

    fn set(&self, key: &str, value: &[u8]) -> Result<()> {
        self.write(key, value)
    }

    fn increment(&self, key: &str) -> Result<i64> {
        loop {
            let current = self.read(key)?;
            let next = match &current {
                None => 1,
                Some((value, _)) => std::str::from_utf8(value)?.parse::<i64>()? + 1,
            };
            let version = current.as_ref().map(|(_, version)| version.as_str());
            if self.swap(key, version, next.to_string().as_bytes())? {
                return Ok(next);
            }
        }
    }

    fn get_many(&self, keys: &[String]) -> Result<usize> {
        self.found_of(keys)
    }

    fn list_all(&self) -> Result<u64> {
        let (mut listed, mut cursor) = self.list_page(None)?;
        while let Some(after) = cursor {
            let (n, next) = self.list_page(Some(after))?;
            listed += n;
            cursor = next;
        }
        Ok(listed)
    }
}

/// DynamoDB's JSON API on one table (kv-http's `dynamodb` protocol).
pub struct NativeDynamoDb {
    http: Transport,
    signer: Signer,
    table: String,
}

impl NativeDynamoDb {
    pub fn new(url: &str, agent: ureq::Agent, key: &AwsKey, region: &str, table: &str) -> Result<Self> {
        Ok(NativeDynamoDb {
            http: Transport::new(url, agent)?,
            signer: key.signer(region, "dynamodb"),
            table: table.into(),
        })
    }

    /// One action: its status and JSON answer.
    fn attempt(&self, action: &str, body: &Value) -> Result<(Response, Value)> {
        let body = body.to_string().into_bytes();
        let mut request = Request::new(Method::Post, "/")
            .header("content-type", "application/x-amz-json-1.0")
            .header("x-amz-target", format!("DynamoDB_20120810.{action}"));
        self.http
            .sign_aws(&self.signer, &mut request, &sigv4::hex_sha256(&body));
        let response = self.http.send(&request.body(body))?;
        let answer = serde_json::from_slice(&response.body).unwrap_or(Value::Null);
        Ok((response, answer))
    }

    fn call(&self, action: &str, body: &Value) -> Result<Value> {
        match self.attempt(action, body)? {
            (response, answer) if response.is_success() => Ok(answer),
            (response, _) => Err(failure(action, &response)),
        }
    }

    fn item_key(key: &str) -> Value {
        json!({ "bucket": { "S": PREFIX }, "key": { "S": key } })
    }

    /// An item with a fresh random version, as kv-http writes it.
    fn item(key: &str, value: &[u8]) -> Value {
        let version = RandomState::new().hash_one(key) >> 1;
        json!({
            "bucket": { "S": PREFIX },
            "key": { "S": key },
            "value": { "B": BASE64.encode(value) },
            "version": { "N": version.to_string() },
        })
    }

    fn value_of(item: &Value) -> Result<Vec<u8>> {
        Ok(BASE64.decode(item["value"]["B"].as_str().context("no value")?)?)
    }
}

impl Cloud for NativeDynamoDb {
    fn read(&self, key: &str) -> Result<Option<(Vec<u8>, String)>> {
        let answer = self.call(
            "GetItem",
            &json!({ "TableName": self.table, "Key": Self::item_key(key), "ConsistentRead": true }),
        )?;
        let Some(item) = answer.get("Item") else {
            return Ok(None);
        };
        let version = item["version"]["N"].as_str().context("no version")?;
        Ok(Some((Self::value_of(item)?, version.into())))
    }

    fn write(&self, key: &str, value: &[u8]) -> Result<()> {
        self.call(
            "PutItem",
            &json!({ "TableName": self.table, "Item": Self::item(key, value) }),
        )
        .map(drop)
    }

    fn swap(&self, key: &str, expected: Option<&str>, value: &[u8]) -> Result<bool> {
        let mut put = json!({ "TableName": self.table, "Item": Self::item(key, value) });
        match expected {
            None => {
                put["ConditionExpression"] = json!("attribute_not_exists(#k)");
                put["ExpressionAttributeNames"] = json!({ "#k": "key" });
            }
            Some(version) => {
                put["ConditionExpression"] = json!("#v = :v");
                put["ExpressionAttributeNames"] = json!({ "#v": "version" });
                put["ExpressionAttributeValues"] = json!({ ":v": { "N": version } });
            }
        }
        match self.attempt("PutItem", &put)? {
            (response, _) if response.is_success() => Ok(true),
            (_, answer)
                if answer["__type"]
                    .as_str()
                    .is_some_and(|kind| kind.ends_with("#ConditionalCheckFailedException")) =>
            {
                Ok(false)
            }
            (response, _) => Err(failure("PutItem", &response)),
        }
    }

    fn list_page(&self, cursor: Option<String>) -> Result<(u64, Option<String>)> {
        let mut query = json!({
            "TableName": self.table,
            "KeyConditionExpression": "#b = :b",
            "ProjectionExpression": "#k",
            "ExpressionAttributeNames": { "#b": "bucket", "#k": "key" },
            "ExpressionAttributeValues": { ":b": { "S": PREFIX } },
            "ConsistentRead": true,
            "Limit": PAGE,
        });
        if let Some(after) = cursor {
            query["ExclusiveStartKey"] = Self::item_key(&after);
        }
        let answer = self.call("Query", &query)?;
        let items = answer["Items"].as_array().context("no Items")?;
        let last = items.last().and_then(|item| item["key"]["S"].as_str());
        let next = answer.get("LastEvaluatedKey").and(last).map(String::from);
        Ok((items.len() as u64, next))
    }

    /// `BatchGetItem` of the distinct keys (up to 100), sending unprocessed
    /// keys again.
    fn found_of(&self, keys: &[String]) -> Result<usize> {
        let mut distinct: Vec<&String> = keys.iter().collect();
        distinct.sort();
        distinct.dedup();
        let mut pending: Vec<Value> = distinct.iter().map(|k| Self::item_key(k)).collect();
        let mut found = std::collections::BTreeSet::new();
        while !pending.is_empty() {
            let answer = self.call(
                "BatchGetItem",
                &json!({ "RequestItems": { self.table.as_str(): { "Keys": pending, "ConsistentRead": true } } }),
            )?;
            for item in answer["Responses"][self.table.as_str()]
                .as_array()
                .into_iter()
                .flatten()
            {
                Self::value_of(item)?;
                found.insert(item["key"]["S"].as_str().context("no key")?.to_string());
            }
            pending = answer["UnprocessedKeys"][self.table.as_str()]["Keys"]
                .as_array()
                .cloned()
                .unwrap_or_default();
        }
        Ok(keys.iter().filter(|k| found.contains(*k)).count())
    }
}

/// S3's REST API, path-style, on one bucket (kv-http's `s3` protocol).
pub struct NativeS3 {
    http: Transport,
    signer: Signer,
    bucket_path: String,
}

impl NativeS3 {
    pub fn new(url: &str, agent: ureq::Agent, key: &AwsKey, region: &str, bucket: &str) -> Result<Self> {
        Ok(NativeS3 {
            http: Transport::new(url, agent)?,
            signer: key.signer(region, "s3"),
            bucket_path: format!("/{}", uri_encode(bucket.as_bytes(), false)),
        })
    }

    fn send(&self, mut request: Request) -> Result<Response> {
        let payload_hash = sigv4::hex_sha256(&request.body);
        request = request.header("x-amz-content-sha256", payload_hash.clone());
        self.http.sign_aws(&self.signer, &mut request, &payload_hash);
        self.http.send(&request)
    }

    /// The bench's keys need none of kv-http's `%XX` escapes.
    fn object_path(&self, key: &str) -> String {
        let object = format!("{PREFIX}{key}");
        format!("{}/{}", self.bucket_path, uri_encode(object.as_bytes(), true))
    }
}

impl Cloud for NativeS3 {
    fn read(&self, key: &str) -> Result<Option<(Vec<u8>, String)>> {
        let response = self.send(Request::new(Method::Get, self.object_path(key)))?;
        match response.status {
            404 => Ok(None),
            200 => {
                let etag = response.header("etag").context("no ETag")?.to_string();
                Ok(Some((response.body, etag)))
            }
            _ => Err(failure("GET", &response)),
        }
    }

    fn write(&self, key: &str, value: &[u8]) -> Result<()> {
        let response = self.send(Request::new(Method::Put, self.object_path(key)).body(value))?;
        if !response.is_success() {
            return Err(failure("PUT", &response));
        }
        Ok(())
    }

    fn swap(&self, key: &str, expected: Option<&str>, value: &[u8]) -> Result<bool> {
        let request = Request::new(Method::Put, self.object_path(key)).body(value);
        let request = match expected {
            None => request.header("if-none-match", "*"),
            Some(etag) => request.header("if-match", etag),
        };
        let response = self.send(request)?;
        match response.status {
            200..=299 => Ok(true),
            412 | 409 => Ok(false),
            _ => Err(failure("conditional PUT", &response)),
        }
    }

    /// As kv-http lists: `start-after` the last object key returned (the
    /// benchmark's keys need no URL-encoding, so a listed key is its object key).
    fn list_page(&self, cursor: Option<String>) -> Result<(u64, Option<String>)> {
        let mut path = format!(
            "{}?list-type=2&encoding-type=url&max-keys={PAGE}&prefix={}",
            self.bucket_path,
            uri_encode(PREFIX.as_bytes(), false)
        );
        if let Some(after) = cursor {
            path.push_str(&format!("&start-after={}", uri_encode(after.as_bytes(), false)));
        }
        let response = self.send(Request::new(Method::Get, path))?;
        if !response.is_success() {
            return Err(failure("ListObjectsV2", &response));
        }
        let page =
            kv_http::s3::parse_list(&response.body).map_err(|e| anyhow::anyhow!("ListObjectsV2: {e}"))?;
        let next = if page.truncated {
            page.keys.last().cloned()
        } else {
            None
        };
        Ok((page.keys.len() as u64, next))
    }
}

/// Azure Table's REST API on one table (kv-http's `azure-table` protocol).
pub struct NativeAzureTable {
    http: Transport,
    signer: SharedKey,
    table: String,
    /// The PartitionKey of bucket `bench`.
    partition: String,
}

impl NativeAzureTable {
    /// Creates the table if it does not exist, as kv-http does on its
    /// first request.
    pub fn new(url: &str, agent: ureq::Agent, account: &str, key: &str, table: &str) -> Result<Self> {
        let client = NativeAzureTable {
            http: Transport::new(url, agent)?,
            signer: SharedKey::new(account, key).map_err(|e| anyhow::anyhow!("the account key {e}"))?,
            table: table.into(),
            partition: azure::escape_key(PREFIX),
        };
        let create = Request::new(Method::Post, "/Tables")
            .header("content-type", azure::JSON)
            .header("prefer", "return-no-content")
            .body(json!({ "TableName": table }).to_string());
        let response = client.send(create)?;
        if !response.is_success() && response.status != 409 {
            return Err(failure("creating the table", &response));
        }
        Ok(client)
    }

    /// Adds the date, version and `SharedKey` headers kv-http sends.
    fn send(&self, request: Request) -> Result<Response> {
        let path = self.http.endpoint.full_path(&request.path);
        let request = self.signer.sign(request, &path, unix_seconds());
        self.http.send(&request)
    }

    fn entity_path(&self, key: &str) -> String {
        let quoted = |text: &str| percent_encode(azure::odata_quote(text).as_bytes());
        format!(
            "/{}(PartitionKey='{}',RowKey='{}')",
            self.table,
            quoted(&self.partition),
            quoted(&azure::escape_key(key))
        )
    }

    fn entity(&self, key: &str, value: &[u8]) -> String {
        azure::entity_body(&self.partition, &azure::escape_key(key), value).to_string()
    }
}

impl Cloud for NativeAzureTable {
    fn read(&self, key: &str) -> Result<Option<(Vec<u8>, String)>> {
        let response = self.send(Request::new(Method::Get, self.entity_path(key)))?;
        if response.status == 404 {
            return Ok(None);
        }
        if !response.is_success() {
            return Err(failure("GET", &response));
        }
        let etag = response.header("etag").context("no ETag")?.to_string();
        let entity: Value = serde_json::from_slice(&response.body)?;
        let value = azure::entity_value(&entity).context("no value chunks")?;
        Ok(Some((value, etag)))
    }

    fn write(&self, key: &str, value: &[u8]) -> Result<()> {
        let request = Request::new(Method::Put, self.entity_path(key))
            .header("content-type", azure::JSON)
            .body(self.entity(key, value));
        let response = self.send(request)?;
        if !response.is_success() {
            return Err(failure("PUT", &response));
        }
        Ok(())
    }

    fn swap(&self, key: &str, expected: Option<&str>, value: &[u8]) -> Result<bool> {
        let request = match expected {
            None => {
                Request::new(Method::Post, format!("/{}", self.table)).header("prefer", "return-no-content")
            }
            Some(etag) => Request::new(Method::Put, self.entity_path(key)).header("if-match", etag),
        };
        let request = request
            .header("content-type", azure::JSON)
            .body(self.entity(key, value));
        let response = self.send(request)?;
        match response.status {
            _ if response.is_success() => Ok(true),
            404 | 409 | 412 => Ok(false),
            _ => Err(failure("compare-and-swap", &response)),
        }
    }

    /// As kv-http lists: the next page is the rows after the last `RowKey`
    /// returned (`RowKey gt`), following Azure's continuation only within a
    /// page (the benchmark's keys need no escaping).
    fn list_page(&self, cursor: Option<String>) -> Result<(u64, Option<String>)> {
        let mut listed = 0;
        let mut last = None;
        let mut continuation = None;
        loop {
            let path = azure::list_query_path(
                &self.table,
                &self.partition,
                "",
                cursor.as_deref(),
                PAGE,
                continuation.as_ref(),
            );
            let response = self.send(Request::new(Method::Get, path))?;
            if !response.is_success() {
                return Err(failure("query", &response));
            }
            let answer: Value = serde_json::from_slice(&response.body)?;
            let rows = answer["value"].as_array().context("no value")?;
            listed += rows.len() as u64;
            if let Some(row) = rows.last() {
                last = Some(row["RowKey"].as_str().context("no RowKey")?.to_string());
            }
            continuation = azure::continuation_of(&response);
            if continuation.is_none() || listed > 0 {
                let more = continuation.is_some() || listed == PAGE as u64;
                return Ok((listed, if more { last } else { None }));
            }
        }
    }
}
