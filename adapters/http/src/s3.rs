//! Amazon S3 (and compatible services) through its REST API, path-style
//! (`/<s3-bucket>/<object key>`), signed with SigV4 and the payload's
//! SHA-256 in `x-amz-content-sha256`.
//!
//! - One configured S3 bucket holds every bucket: a bucket is an object-key
//!   prefix (see [`crate::buckets`]), a key is the rest of the object key,
//!   with `%` and control characters written `%XX` (object keys with
//!   control characters trouble S3 tools, and XML 1.0 cannot carry most).
//! - A value's version is its `ETag`: compare-and-swap is a `PUT` with
//!   `If-Match: <etag>` (or `If-None-Match: *` for a key that must be
//!   absent); `412 Precondition Failed` (or `409` for a concurrent
//!   conditional write) is a lost race. Increment is the shared
//!   compare-and-swap loop. An ETag is a hash of the content, so a value
//!   rewritten with the same bytes keeps its version.
//! - Expiry: the metadata `x-amz-meta-expires-at-ms` (ms since the Unix
//!   epoch), which `GET` and `HEAD` return and every read filters by. S3
//!   cannot delete by metadata: an expired object stays (invisible) until
//!   it is overwritten or deleted, or a lifecycle rule the operator sets
//!   removes objects by age. If-not-exists over an expired object replaces
//!   exactly that object (`If-Match: <its etag>`), atomic.
//! - `list-keys` is `ListObjectsV2` under the bucket's prefix and the
//!   request's (escaped the same way), with `encoding-type=url`, in
//!   object-key order, continuing with `start-after` the object key of the
//!   last key returned. Listings carry no metadata, so in a bucket that may
//!   hold objects with an expiry every listed key is `HEAD`ed (16 at once)
//!   to leave expired ones out. Which buckets may: those with a marker
//!   object, `<prefix>%expiring` (no key's object key: `%` starts an escape
//!   and `%ex` is none), written before the bucket's first object with an
//!   expiry and never removed. A listing looks for it after its
//!   `ListObjectsV2`, so any expiring object listed was written after the
//!   marker: a page of a bucket without expiring writes costs one `HEAD`,
//!   not one a key.
//! - `delete-many` is `DeleteObjects` (1,000 keys a request, `Content-MD5`).
//! - Credentials: `access-key-id`, `secret-access-key`, optional
//!   `session-token`; the region is configured.

use alloc::boxed::Box;
use alloc::format;
use alloc::rc::Rc;
use alloc::string::{String, ToString};
use alloc::vec::Vec;
use core::cell::Cell;

use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use kv_core::{
    Bucket, Error, ExpiresAt, KeyPage, Limits, ListRequest, Quoted, Result, Version, Versioned, percent,
};
use md5::{Digest, Md5};
use wasip2::http::types::Method;

use crate::Service;
use crate::client::{Client, Request, Response};
use crate::credentials::Credentials;
use crate::expiry::{self, Listed, Stored};
use crate::sigv4::{self, LazySigner, uri_encode};

/// Object keys are at most 1,024 bytes, the bucket's prefix included (a
/// longer prefix is refused at open). Values up to 64 MiB: one `PUT` (S3
/// takes 5 GiB) whose body the adapter holds in memory.
pub const LIMITS: Limits = Limits {
    max_key_bytes: 1024 - MAX_PREFIX_BYTES,
    max_value_bytes: 64 << 20,
};

const MAX_PREFIX_BYTES: usize = 256;

/// `DeleteObjects` takes at most 1,000 keys.
const MAX_DELETE_KEYS: usize = 1000;

/// The metadata header of an object's expiry (ms since the Unix epoch).
pub const EXPIRES_HEADER: &str = "x-amz-meta-expires-at-ms";

/// The marker object, after a bucket's prefix, of a bucket that may hold
/// objects with an expiry (see the module's doc).
const EXPIRING_MARKER: &str = "%expiring";

pub struct S3 {
    conn: Rc<Connection>,
}

impl S3 {
    pub fn new(client: Rc<Client>, credentials: Credentials, bucket: &str, region: &str) -> Self {
        S3 {
            conn: Rc::new(Connection {
                client,
                bucket_path: format!("/{}", uri_encode(bucket.as_bytes(), false)),
                signer: LazySigner::new(credentials, region, "s3"),
            }),
        }
    }
}

impl Service for S3 {
    fn limits(&self) -> Limits {
        LIMITS
    }

    fn open(&self, prefix: String) -> Result<Box<dyn Bucket>> {
        if prefix.len() > MAX_PREFIX_BYTES {
            return Err(self.conn.client.error(format_args!(
                "a bucket's prefix may be at most {MAX_PREFIX_BYTES} bytes of the 1,024 of an object key, \
                 not {} (check the key prefix and bucket prefixes)",
                prefix.len()
            )));
        }
        Ok(Box::new(S3Bucket {
            conn: Rc::clone(&self.conn),
            prefix,
            holds_expiring: Cell::new(false),
        }))
    }
}

struct Connection {
    client: Rc<Client>,
    /// `/<s3 bucket>`, encoded.
    bucket_path: String,
    signer: LazySigner,
}

impl Connection {
    /// Signs and sends a request for `path` (under the S3 bucket, encoded,
    /// query included).
    fn send(&self, request: Request) -> Result<Response> {
        self.client.send(&self.sign(request)?)
    }

    /// Signs and sends independent requests at once ([`Client::send_all`]).
    fn send_all(&self, requests: Vec<Request>) -> Result<Vec<Result<Response>>> {
        let signed = requests
            .into_iter()
            .map(|request| self.sign(request))
            .collect::<Result<Vec<_>>>()?;
        Ok(self.client.send_all(&signed))
    }

    fn sign(&self, mut request: Request) -> Result<Request> {
        let payload_hash = sigv4::hex_sha256(&request.body);
        request
            .headers
            .push(("x-amz-content-sha256".into(), payload_hash.clone().into_bytes()));
        let endpoint = self.client.endpoint();
        let full_path = endpoint.full_path(&request.path);
        self.signer.get()?.sign(
            &mut request,
            endpoint.authority(),
            &full_path,
            self.client.unix_seconds(),
            &payload_hash,
        );
        Ok(request)
    }

    /// S3's errors are XML: `<Code>`, `<Message>`.
    fn service_error(&self, response: &Response) -> Error {
        let text = String::from_utf8_lossy(&response.body);
        let message = match (
            sigv4::xml_element(&text, "Code"),
            sigv4::xml_element(&text, "Message"),
        ) {
            (Some(code), Some(message)) => format!("{code}: {message}"),
            (Some(code), None) => code.into(),
            _ => String::new(),
        };
        self.client.status_error(response, &message)
    }

    fn malformed(&self, what: &str, response: &Response) -> Error {
        self.client.malformed(what, response)
    }
}

pub struct S3Bucket {
    conn: Rc<Connection>,
    prefix: String,
    /// Whether the bucket's [`EXPIRING_MARKER`] is known to exist.
    holds_expiring: Cell<bool>,
}

impl S3Bucket {
    /// The object key of `key`, at most 1,024 bytes. Escaping keeps
    /// prefixes: a key's prefix is its object key's prefix.
    fn object_key(&self, key: &str) -> Result<String> {
        let mut object = self.prefix.clone();
        object.push_str(&percent::encode(key.as_bytes(), |c| !c.is_ascii_control()));
        if object.len() > 1024 {
            return Err(self.conn.client.error(format_args!(
                "key {} is {} bytes as an object key (with the bucket's prefix and `%XX` escapes), \
                 over S3's 1,024",
                Quoted(key),
                object.len()
            )));
        }
        Ok(object)
    }

    fn object_path(&self, key: &str) -> Result<String> {
        Ok(self.path_of(&self.object_key(key)?))
    }

    /// The request path of an object key.
    fn path_of(&self, object_key: &str) -> String {
        format!(
            "{}/{}",
            self.conn.bucket_path,
            uri_encode(object_key.as_bytes(), true)
        )
    }

    fn marker_key(&self) -> String {
        format!("{}{EXPIRING_MARKER}", self.prefix)
    }

    /// Writes the [`EXPIRING_MARKER`] unless it is known to exist: before
    /// any object with an expiry.
    fn mark_expiring(&self) -> Result<()> {
        if self.holds_expiring.get() {
            return Ok(());
        }
        let response = self
            .conn
            .send(Request::new(Method::Put, self.path_of(&self.marker_key())))?;
        if !response.is_success() {
            return Err(self.conn.service_error(&response));
        }
        self.holds_expiring.set(true);
        Ok(())
    }

    /// Whether the bucket may hold objects with an expiry: its
    /// [`EXPIRING_MARKER`] exists.
    fn may_hold_expiring(&self) -> Result<bool> {
        if !self.holds_expiring.get() {
            let response = self
                .conn
                .send(Request::new(Method::Head, self.path_of(&self.marker_key())))?;
            match response.status {
                200 => self.holds_expiring.set(true),
                404 => {}
                _ => return Err(self.conn.service_error(&response)),
            }
        }
        Ok(self.holds_expiring.get())
    }

    /// The object of `key` (value, ETag, expiry), `None` if there is
    /// none; expired ones included (`live` filters them out).
    fn get_object(&self, key: &str) -> Result<Option<Stored>> {
        self.object_from(
            self.conn
                .send(Request::new(Method::Get, self.object_path(key)?))?,
        )
    }

    /// The same without the value (`HEAD`).
    fn head_object(&self, key: &str) -> Result<Option<Stored>> {
        self.object_from(
            self.conn
                .send(Request::new(Method::Head, self.object_path(key)?))?,
        )
    }

    /// The object a `GET` or `HEAD` answered.
    fn object_from(&self, response: Response) -> Result<Option<Stored>> {
        match response.status {
            404 => Ok(None),
            200 => {
                let etag = response
                    .header("etag")
                    .ok_or_else(|| self.conn.malformed("no ETag", &response))?
                    .to_string();
                let expires_at = match response.header(EXPIRES_HEADER) {
                    None => None,
                    Some(text) => Some(expiry::parse_ms(text).ok_or_else(|| {
                        self.conn
                            .malformed(&format!("{EXPIRES_HEADER} is not a number of ms"), &response)
                    })?),
                };
                Ok(Some(Stored {
                    value: response.body,
                    version: etag,
                    expires_at,
                }))
            }
            _ => Err(self.conn.service_error(&response)),
        }
    }

    /// `object` unless it has expired.
    fn live(&self, object: Option<Stored>) -> Option<Stored> {
        object.filter(|object| !object.has_expired(&self.conn.client))
    }

    /// A `PUT` of `value` expiring at `expires_at` (the bucket marked as
    /// holding expiring objects first).
    fn put(&self, key: &str, value: &[u8], expires_at: Option<ExpiresAt>) -> Result<Request> {
        let request = Request::new(Method::Put, self.object_path(key)?).body(value);
        Ok(match expires_at {
            Some(at) => {
                self.mark_expiring()?;
                request.header(EXPIRES_HEADER, at.to_string())
            }
            None => request,
        })
    }

    /// A conditional `PUT`; `false` if its precondition failed.
    fn put_if(&self, request: Request) -> Result<bool> {
        let response = self.conn.send(request.once())?;
        match response.status {
            200..=299 => Ok(true),
            // 409: a concurrent conditional write won.
            412 | 409 => Ok(false),
            _ => Err(self.conn.service_error(&response)),
        }
    }

    /// The live objects among `keys`' (`GET`s or `HEAD`s sent at once).
    fn objects(&self, method: Method, keys: &[String]) -> Result<Vec<Option<Stored>>> {
        let requests = keys
            .iter()
            .map(|key| Ok(Request::new(method.clone(), self.object_path(key)?)))
            .collect::<Result<Vec<_>>>()?;
        self.conn
            .send_all(requests)?
            .into_iter()
            .map(|response| Ok(self.live(self.object_from(response?)?)))
            .collect()
    }

    fn delete_one(&self, key: &str) -> Result<()> {
        let response = self
            .conn
            .send(Request::new(Method::Delete, self.object_path(key)?))?;
        match response.status {
            200 | 204 | 404 => Ok(()),
            _ => Err(self.conn.service_error(&response)),
        }
    }

    /// One `DeleteObjects` request; any key it reports as failed is an error.
    fn delete_objects(&self, keys: &[String]) -> Result<()> {
        let mut body = String::from("<Delete><Quiet>true</Quiet>");
        for key in keys {
            body.push_str("<Object><Key>");
            xml_escape(&self.object_key(key)?, &mut body);
            body.push_str("</Key></Object>");
        }
        body.push_str("</Delete>");
        let md5 = BASE64.encode(Md5::digest(body.as_bytes()));
        let request = Request::new(Method::Post, format!("{}?delete=", self.conn.bucket_path))
            .header("content-type", "application/xml")
            .header("content-md5", md5)
            .body(body);
        let response = self.conn.send(request)?;
        if !response.is_success() {
            return Err(self.conn.service_error(&response));
        }
        let text =
            core::str::from_utf8(&response.body).map_err(|_| self.conn.malformed("not UTF-8", &response))?;
        if let Some(error) = sigv4::xml_element(text, "Error") {
            let code = sigv4::xml_element(error, "Code").unwrap_or_default();
            let message = sigv4::xml_element(error, "Message").unwrap_or_default();
            return Err(self
                .conn
                .client
                .error(format_args!("a batch delete failed: {code}: {message}")));
        }
        Ok(())
    }
}

impl Bucket for S3Bucket {
    fn get(&self, key: &str) -> Result<Option<Vec<u8>>> {
        Ok(self.live(self.get_object(key)?).map(|object| object.value))
    }

    fn get_versioned(&self, key: &str) -> Result<Versioned> {
        Ok(self
            .live(self.get_object(key)?)
            .map(Stored::versioned)
            .unwrap_or_default())
    }

    fn set(&self, key: &str, value: &[u8], expires_at: Option<ExpiresAt>) -> Result<()> {
        let response = self.conn.send(self.put(key, value, expires_at)?)?;
        if !response.is_success() {
            return Err(self.conn.service_error(&response));
        }
        Ok(())
    }

    fn delete(&self, key: &str) -> Result<()> {
        self.delete_one(key)
    }

    /// S3 has no batch read: one `GET` per key, sent at once.
    fn get_many(&self, keys: &[String]) -> Result<Vec<Option<Vec<u8>>>> {
        Ok(self
            .objects(Method::Get, keys)?
            .into_iter()
            .map(|object| object.map(|object| object.value))
            .collect())
    }

    fn get_many_versioned(&self, keys: &[String]) -> Result<Vec<Versioned>> {
        Ok(self
            .objects(Method::Get, keys)?
            .into_iter()
            .map(|object| object.map(Stored::versioned).unwrap_or_default())
            .collect())
    }

    fn exists(&self, key: &str) -> Result<bool> {
        Ok(self.live(self.head_object(key)?).is_some())
    }

    /// Object-key order; `start-after` the object key of the last key
    /// returned, which S3 resumes after exactly wherever the core cut the
    /// page (its own continuation token could only resume after a whole page).
    fn list_keys(&self, request: ListRequest<'_>) -> Result<KeyPage> {
        // The request's prefix, escaped as keys are, narrows the listing
        // natively (a prefix too long to be one matches no key anyway).
        let prefix = self
            .object_key(request.prefix)
            .unwrap_or_else(|_| self.prefix.clone());
        let after = request.after.map(|after| self.object_key(after)).transpose()?;
        expiry::live_page(&self.conn.client, |cursor: Option<&String>| {
            let mut path = format!(
                "{}?list-type=2&encoding-type=url&max-keys={}&prefix={}",
                self.conn.bucket_path,
                request.max_keys.clamp(1, 1000),
                uri_encode(prefix.as_bytes(), false)
            );
            if let Some(after) = cursor.or(after.as_ref()) {
                path.push_str(&format!("&start-after={}", uri_encode(after.as_bytes(), false)));
            }
            let response = self.conn.send(Request::new(Method::Get, path))?;
            if !response.is_success() {
                return Err(self.conn.service_error(&response));
            }
            let page = parse_list(&response.body)
                .map_err(|what| self.conn.malformed(&format!("ListObjectsV2: {what}"), &response))?;
            let marker = self.marker_key();
            let mut keys = Vec::with_capacity(page.keys.len());
            for key in page.keys.iter().filter(|&key| *key != marker) {
                let key = key
                    .strip_prefix(self.prefix.as_str())
                    .ok_or("a listed key is outside the bucket's prefix")
                    .and_then(|escaped| decode_key(escaped, false))
                    .map_err(|what| self.conn.malformed(what, &response))?;
                keys.push(key);
            }
            // Listings carry no metadata: where objects may expire, a HEAD
            // of each tells the expired.
            let live_keys = if keys.is_empty() || !self.may_hold_expiring()? {
                keys
            } else {
                let live = self.objects(Method::Head, &keys)?;
                keys.into_iter()
                    .zip(live)
                    .filter_map(|(key, object)| object.map(|_| key))
                    .collect()
            };
            Ok(Listed {
                keys: live_keys,
                listed: page.keys.len(),
                next: page.truncated.then(|| page.keys.last().cloned()).flatten(),
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
        let put = || self.put(key, value, expires_at);
        match expected {
            Some(Version(etag)) => self.put_if(put()?.header("if-match", etag.clone())),
            // If-not-exists: an expired object still exists to
            // `If-None-Match`; replacing exactly it keeps the write atomic.
            None => expiry::insert_if_absent_or_expired(
                &self.conn.client,
                key,
                || self.put_if(put()?.header("if-none-match", "*")),
                || {
                    Ok(self
                        .head_object(key)?
                        .map(|object| (object.version, object.expires_at)))
                },
                |etag: &String| self.put_if(put()?.header("if-match", etag.clone())),
            ),
        }
    }

    fn delete_many(&self, keys: &[String]) -> Result<()> {
        for chunk in keys.chunks(MAX_DELETE_KEYS) {
            self.delete_objects(chunk)?;
        }
        Ok(())
    }
}

/// Escapes text for an XML element; `\r` as a reference so that it survives
/// line-end normalisation.
fn xml_escape(text: &str, out: &mut String) {
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            '\r' => out.push_str("&#13;"),
            c => out.push(c),
        }
    }
}

/// What a `ListObjectsV2` page says: the object keys (decoded) and
/// whether more follow.
#[derive(Debug, PartialEq)]
pub struct ListPage {
    pub keys: Vec<String>,
    pub truncated: bool,
}

/// Reads the few elements of a `ListBucketResult` it needs: every `<Key>`
/// (URL-encoded, as asked) and `<IsTruncated>`. Anything malformed is an
/// error message, never a panic.
pub fn parse_list(body: &[u8]) -> core::result::Result<ListPage, String> {
    let text = core::str::from_utf8(body).map_err(|_| "not UTF-8".to_string())?;
    if !text.contains("<ListBucketResult") || !text.trim_end().ends_with("</ListBucketResult>") {
        return Err("not a complete ListBucketResult".into());
    }
    let mut keys = Vec::new();
    for raw in elements(text, "Key")? {
        // Decoded once for S3's encoding-type=url; the adapter's own
        // `%XX` escapes are decoded by the caller.
        let key = decode_key(&xml_unescape(raw)?, true)?;
        keys.push(key);
    }
    let truncated = match elements(text, "IsTruncated")?.first() {
        Some(&"true") => true,
        Some(&"false") | None => false,
        Some(other) => return Err(format!("IsTruncated is {}", Quoted(other))),
    };
    Ok(ListPage { keys, truncated })
}

/// The text of every `<tag>…</tag>` (elements without children).
fn elements<'a>(text: &'a str, tag: &str) -> core::result::Result<Vec<&'a str>, String> {
    let open = format!("<{tag}>");
    let close = format!("</{tag}>");
    let mut found = Vec::new();
    let mut rest = text;
    while let Some(start) = rest.find(&open) {
        rest = &rest[start + open.len()..];
        let end = rest
            .find(&close)
            .ok_or_else(|| format!("<{tag}> is not closed"))?;
        let inner = &rest[..end];
        if inner.contains('<') {
            return Err(format!("<{tag}> holds markup"));
        }
        found.push(inner);
        rest = &rest[end + close.len()..];
    }
    Ok(found)
}

/// Replaces XML's predefined entities and character references.
fn xml_unescape(text: &str) -> core::result::Result<String, String> {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(amp) = rest.find('&') {
        out.push_str(&rest[..amp]);
        let end = rest[amp..].find(';').ok_or("an unterminated XML entity")?;
        let entity = &rest[amp + 1..amp + end];
        let c = match entity {
            "amp" => '&',
            "lt" => '<',
            "gt" => '>',
            "quot" => '"',
            "apos" => '\'',
            _ => {
                let code = if let Some(hex) = entity.strip_prefix("#x") {
                    u32::from_str_radix(hex, 16).ok()
                } else if let Some(dec) = entity.strip_prefix('#') {
                    dec.parse().ok()
                } else {
                    None
                };
                code.and_then(char::from_u32)
                    .ok_or_else(|| format!("an unknown XML entity &{entity};"))?
            }
        };
        out.push(c);
        rest = &rest[amp + end + 1..];
    }
    out.push_str(rest);
    Ok(out)
}

/// Decodes `%XX`, and `+` as a space if `plus_is_space` (S3's URL
/// encoding of listed keys writes spaces so).
fn decode_key(text: &str, plus_is_space: bool) -> core::result::Result<String, &'static str> {
    percent::decode(text, plus_is_space).map_err(|e| match e {
        percent::DecodeError::BadEscape => "a bad %-escape in a key",
        percent::DecodeError::NotUtf8 => "a listed key is not UTF-8",
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{self, Answers, Op, answer};

    const ETAG: &str = "\"2063c1608d6e0baf80249c42e2be5804\"";

    fn object(body: &str) -> Response {
        answer(
            200,
            &[("etag", ETAG), ("content-type", "binary/octet-stream")],
            body,
        )
    }

    fn xml(body: &str) -> Response {
        let body = format!(r#"<?xml version="1.0" encoding="UTF-8"?>{body}"#);
        answer(200, &[("content-type", "application/xml")], body)
    }

    const LIST: &str = r#"<ListBucketResult xmlns="http://s3.amazonaws.com/doc/2006-03-01/"><Name>kv</Name><Prefix>b%2F</Prefix><KeyCount>2</KeyCount><MaxKeys>10</MaxKeys><EncodingType>url</EncodingType><IsTruncated>true</IsTruncated><Contents><Key>b%2Fa</Key><LastModified>2026-11-30T08:00:00.000Z</LastModified><ETag>&quot;2063c1608d6e0baf80249c42e2be5804&quot;</ETag><Size>5</Size><StorageClass>STANDARD</StorageClass></Contents><Contents><Key>b%2Fb%2525</Key><LastModified>2026-11-30T08:00:00.000Z</LastModified><ETag>&quot;x&quot;</ETag><Size>1</Size><StorageClass>STANDARD</StorageClass></Contents><NextContinuationToken>1ueGcxLPRx1Tr/XYExHnhbYLgveDs2J/wm36Hy4vbOwM=</NextContinuationToken></ListBucketResult>"#;

    const NO_SUCH_KEY: &str = "<Error><Code>NoSuchKey</Code><Message>The specified key does not exist.</Message><Key>b/b</Key><RequestID>7a62c49f</RequestID></Error>";

    fn script(op: Op) -> Vec<Response> {
        let stored = || answer(200, &[("etag", ETAG)], "");
        let head = || answer(200, &[("etag", ETAG), ("content-length", "5")], "");
        match op {
            Op::Get | Op::GetVersioned => vec![object("value")],
            Op::Set | Op::CasInsert | Op::CasReplace => vec![stored()],
            Op::Delete => vec![answer(204, &[], "")],
            Op::Exists => vec![head()],
            // The list, the HEAD of the expiring-objects marker (there),
            // then a HEAD of each key listed.
            Op::ListFirst | Op::ListAfter => vec![xml(LIST), head(), head(), head()],
            Op::Increment => vec![object("41"), stored()],
            Op::GetMany => vec![
                object("value"),
                answer(404, &[("content-type", "application/xml")], NO_SUCH_KEY),
            ],
            Op::SetMany => vec![stored(), stored()],
            Op::DeleteMany => vec![xml(
                r#"<DeleteResult xmlns="http://s3.amazonaws.com/doc/2006-03-01/"></DeleteResult>"#,
            )],
        }
    }

    fn open(answers: Answers) -> Box<dyn Bucket> {
        let (client, credentials) = testing::canned("s3", answers, testing::AWS_CREDENTIALS);
        S3::new(client, credentials, "kv", "us-east-1")
            .open("b/".into())
            .unwrap()
    }

    /// Any answer, and S3's own cut short or changed: `ok` or a one-line
    /// `other(..)`, never a panic.
    #[test]
    fn answers_are_handled_without_panics() {
        testing::check_protocol(
            open,
            script,
            ETAG.as_bytes(),
            &["etag", "content-type", EXPIRES_HEADER],
        );
    }

    #[test]
    fn list_pages_parse_keys_and_the_token() {
        let body = br#"<?xml version="1.0" encoding="UTF-8"?>
<ListBucketResult xmlns="http://s3.amazonaws.com/doc/2006-03-01/"><Name>b</Name>
<Contents><Key>a/x%20y%2Bz+w</Key><ETag>&quot;e&quot;</ETag></Contents>
<Contents><Key>a/%C3%BC&amp;</Key></Contents>
<IsTruncated>true</IsTruncated><NextContinuationToken>t&amp;1</NextContinuationToken></ListBucketResult>"#;
        assert_eq!(
            parse_list(body).unwrap(),
            ListPage {
                keys: vec!["a/x y+z w".into(), "a/ü&".into()],
                truncated: true,
            }
        );
    }

    #[test]
    fn malformed_lists_are_errors() {
        for body in [
            &b"hello"[..],
            b"<ListBucketResult><Key>a",
            b"<ListBucketResult><Key>a</Key></ListBucket",
            b"<ListBucketResult><Key>%zz</Key></ListBucketResult>",
            b"<ListBucketResult><Key>&bogus;</Key></ListBucketResult>",
            b"<ListBucketResult><IsTruncated>yes</IsTruncated></ListBucketResult>",
            b"<ListBucketResult><Key><b>x</b></Key></ListBucketResult>",
            b"<ListBucketResult>\xff</ListBucketResult>",
        ] {
            assert!(parse_list(body).is_err(), "{:?}", String::from_utf8_lossy(body));
        }
    }

    #[test]
    fn delete_keys_are_escaped() {
        let mut out = String::new();
        xml_escape("a<&>\"'\r", &mut out);
        assert_eq!(out, "a&lt;&amp;&gt;&quot;&apos;&#13;");
    }

    #[test]
    fn adapter_escapes_decode_without_plus() {
        assert_eq!(decode_key("a+b%25%0A", false).unwrap(), "a+b%\n");
        assert!(decode_key("%4", false).is_err());
        assert!(decode_key("%FF", false).is_err());
    }

    fn expiring(at: u64, body: &str) -> Response {
        let at = at.to_string();
        answer(200, &[("etag", ETAG), (EXPIRES_HEADER, at.as_str())], body)
    }

    /// From the instant it expires an object is absent to reads and to
    /// listings (which `HEAD` the keys they list).
    #[test]
    fn objects_are_absent_from_their_expiry_on() {
        let now = testing::CANNED_NOW_MS;
        let bucket = open(Answers::new(vec![
            expiring(now, "value"),
            expiring(now, ""),
            expiring(now + 1, "value"),
            xml(LIST),
            answer(200, &[("etag", ETAG)], ""), // the marker
            expiring(now + 1, ""),
            expiring(now, ""),
        ]));
        assert_eq!(bucket.get("a").unwrap(), None);
        assert!(!bucket.exists("a").unwrap());
        assert_eq!(bucket.get_versioned("a").unwrap().expires_at, Some(now + 1));
        let page = bucket
            .list_keys(ListRequest {
                after: None,
                max_keys: 2,
                prefix: "",
            })
            .unwrap();
        assert_eq!(page.keys, ["a"]);
        assert!(page.more);
    }

    /// A bucket is marked before its first expiring object is written; a
    /// listing `HEAD`s its keys only where the marker is, and skips it.
    #[test]
    fn only_buckets_with_expiring_objects_cost_a_head_per_listed_key() {
        let stored = || answer(200, &[("etag", ETAG)], "");
        let not_found = || answer(404, &[], "");
        let list = |bucket: &dyn Bucket| {
            bucket
                .list_keys(ListRequest {
                    after: None,
                    max_keys: 10,
                    prefix: "",
                })
                .unwrap()
                .keys
        };
        // No marker: the listing's keys as they are, one HEAD in all.
        let answers = Answers::new(vec![xml(LIST), not_found()]);
        assert_eq!(list(&*open(answers.clone())), ["a", "b%"]);
        assert_eq!(answers.asked()[1].0, "/kv/b/%25expiring");
        // An expiring write marks the bucket first, once a handle.
        let answers = Answers::new(vec![stored(), stored(), stored()]);
        let bucket = open(answers.clone());
        bucket.set("a", b"v", Some(testing::EXPIRES_AT)).unwrap();
        bucket.set("b", b"v", Some(testing::EXPIRES_AT)).unwrap();
        let paths: Vec<_> = answers.asked().into_iter().map(|(path, _)| path).collect();
        assert_eq!(paths, ["/kv/b/%25expiring", "/kv/b/a", "/kv/b/b"]);
        // The marker is not a key.
        let with_marker = LIST.replace("<Key>b%2Fa</Key>", "<Key>b%2F%25expiring</Key><Key>b%2Fa</Key>");
        let answers = Answers::new(vec![xml(&with_marker), stored(), stored(), stored()]);
        assert_eq!(list(&*open(answers.clone())), ["a", "b%"]);
        assert_eq!(answers.left(), 0);
    }

    /// If-not-exists over an expired object replaces exactly it; over a
    /// live one it loses.
    #[test]
    fn if_not_exists_replaces_an_expired_object() {
        let now = testing::CANNED_NOW_MS;
        let precondition_failed = || answer(412, &[], "<Error><Code>PreconditionFailed</Code></Error>");
        let stored = || answer(200, &[("etag", ETAG)], "");
        // The marker, the insert that fails, the HEAD that finds it
        // expired, the replacement.
        testing::assert_if_not_exists_writes(
            open,
            vec![stored(), precondition_failed(), expiring(now, ""), stored()],
        );
        let bucket = open(Answers::new(vec![precondition_failed(), expiring(now + 1, "")]));
        assert!(!bucket.compare_and_swap("a", None, b"new", None).unwrap());
    }
}
