//! AWS Signature Version 4 (`AWS4-HMAC-SHA256`), for every AWS protocol.
//!
//! Pure: the caller gives the time, the request's canonical pieces and the
//! payload hash; [`Signer::sign`] adds `x-amz-date`, the session token if
//! any, and `authorization` to a [`Request`]. `host` is signed but never
//! sent as a header: the runtime sends the endpoint's authority as `Host`
//! (wasi:http forbids setting it).

use alloc::format;
use alloc::rc::Rc;
use alloc::string::{String, ToString};
use alloc::vec::Vec;
use core::cell::RefCell;
use core::fmt::Write;

use hmac::{Hmac, Mac};
use kv_core::Result;
use sha2::{Digest, Sha256};

use crate::client::{Request, method_name};
use crate::credentials::Credentials;
use crate::dates::amz_date;

type HmacSha256 = Hmac<Sha256>;

/// The credential names the AWS protocols read.
pub const ACCESS_KEY_ID: &str = "access-key-id";
pub const SECRET_ACCESS_KEY: &str = "secret-access-key";
pub const SESSION_TOKEN: &str = "session-token";

/// An AWS identity and where it signs.
pub struct Signer {
    access_key_id: String,
    secret_access_key: String,
    session_token: Option<String>,
    region: String,
    /// The signing name of the service ("dynamodb", "s3").
    service: &'static str,
}

impl Signer {
    pub fn new(
        access_key_id: String,
        secret_access_key: String,
        session_token: Option<String>,
        region: String,
        service: &'static str,
    ) -> Self {
        Signer {
            access_key_id,
            secret_access_key,
            session_token,
            region,
            service,
        }
    }

    /// The signer of the configured credentials (read from the environment now).
    pub fn from_credentials(credentials: &Credentials, region: &str, service: &'static str) -> Result<Self> {
        Ok(Signer::new(
            credentials.require(ACCESS_KEY_ID)?,
            credentials.require(SECRET_ACCESS_KEY)?,
            credentials.get(SESSION_TOKEN)?,
            region.into(),
            service,
        ))
    }

    /// Signs `request`, sent to `host` at `full_path` (the endpoint's base
    /// path and the request's path, query included, already URI-encoded the
    /// AWS way), at `unix_seconds`. `payload_hash` is the hex SHA-256 of the
    /// body.
    pub fn sign(
        &self,
        request: &mut Request,
        host: &str,
        full_path: &str,
        unix_seconds: u64,
        payload_hash: &str,
    ) {
        let amz_date = amz_date(unix_seconds);
        request
            .headers
            .push(("x-amz-date".into(), amz_date.clone().into_bytes()));
        if let Some(token) = &self.session_token {
            request
                .headers
                .push(("x-amz-security-token".into(), token.clone().into_bytes()));
        }
        let (path, query) = full_path.split_once('?').unwrap_or((full_path, ""));
        let mut headers: Vec<(&str, &[u8])> = alloc::vec![("host", host.as_bytes())];
        headers.extend(request.headers.iter().map(|(n, v)| (n.as_str(), v.as_slice())));
        let method = method_name(&request.method);
        let authorization = self.authorization(&amz_date, method, path, query, &headers, payload_hash);
        request
            .headers
            .push(("authorization".into(), authorization.into_bytes()));
    }

    /// The `Authorization` header value for one request. `headers` are
    /// all signed (names in any case); `query` is `name=value` pairs
    /// joined by `&`, already encoded, in any order.
    pub fn authorization(
        &self,
        amz_date: &str,
        method: &str,
        path: &str,
        query: &str,
        headers: &[(&str, &[u8])],
        payload_hash: &str,
    ) -> String {
        let (canonical_headers, signed_headers) = canonical_headers(headers);
        let mut pairs: Vec<&str> = query.split('&').filter(|p| !p.is_empty()).collect();
        pairs.sort_by(|a, b| {
            let split = |p: &'_ str| -> (String, String) {
                let (n, v) = p.split_once('=').unwrap_or((p, ""));
                (n.into(), v.into())
            };
            split(a).cmp(&split(b))
        });
        let canonical_query: Vec<String> = pairs
            .iter()
            .map(|p| {
                if p.contains('=') {
                    p.to_string()
                } else {
                    format!("{p}=")
                }
            })
            .collect();
        let path = if path.is_empty() { "/" } else { path };
        let canonical_request = format!(
            "{method}\n{path}\n{}\n{canonical_headers}\n{signed_headers}\n{payload_hash}",
            canonical_query.join("&")
        );
        let date = &amz_date[..amz_date.len().min(8)];
        let scope = format!("{date}/{}/{}/aws4_request", self.region, self.service);
        let string_to_sign = format!(
            "AWS4-HMAC-SHA256\n{amz_date}\n{scope}\n{}",
            hex_sha256(canonical_request.as_bytes())
        );
        let mut key = hmac(
            format!("AWS4{}", self.secret_access_key).as_bytes(),
            date.as_bytes(),
        );
        for part in [self.region.as_str(), self.service, "aws4_request"] {
            key = hmac(&key, part.as_bytes());
        }
        let signature = hex(&hmac(&key, string_to_sign.as_bytes()));
        format!(
            "AWS4-HMAC-SHA256 Credential={}/{scope}, SignedHeaders={signed_headers}, Signature={signature}",
            self.access_key_id
        )
    }
}

/// A [`Signer`] made on first use, when the environment holds the
/// credentials (an instance without them fails on its first request, with
/// the credential's clear error).
pub struct LazySigner {
    credentials: Credentials,
    region: String,
    service: &'static str,
    signer: RefCell<Option<Rc<Signer>>>,
}

impl LazySigner {
    pub fn new(credentials: Credentials, region: &str, service: &'static str) -> Self {
        LazySigner {
            credentials,
            region: region.into(),
            service,
            signer: RefCell::new(None),
        }
    }

    pub fn get(&self) -> Result<Rc<Signer>> {
        if let Some(signer) = self.signer.borrow().as_ref() {
            return Ok(Rc::clone(signer));
        }
        let signer = Rc::new(Signer::from_credentials(
            &self.credentials,
            &self.region,
            self.service,
        )?);
        *self.signer.borrow_mut() = Some(Rc::clone(&signer));
        Ok(signer)
    }
}

/// The text of the first `<tag>…</tag>` of an AWS error document
/// (`<Code>`, `<Message>`), entities left as they are.
pub fn xml_element<'a>(text: &'a str, tag: &str) -> Option<&'a str> {
    let start = text.find(&format!("<{tag}>"))? + tag.len() + 2;
    let len = text[start..].find(&format!("</{tag}>"))?;
    Some(&text[start..start + len])
}

/// Lowercased names sorted, values trimmed with inner runs of spaces
/// collapsed, repeated names joined by `,`: (canonical block, signed names).
fn canonical_headers(headers: &[(&str, &[u8])]) -> (String, String) {
    let mut entries: Vec<(String, String)> = headers
        .iter()
        .map(|(name, value)| {
            let value = String::from_utf8_lossy(value);
            let value: Vec<&str> = value.split_whitespace().collect();
            (name.to_ascii_lowercase(), value.join(" "))
        })
        .collect();
    entries.sort_by(|a, b| a.0.cmp(&b.0));
    let mut block = String::new();
    let mut names: Vec<&str> = Vec::new();
    for (i, (name, value)) in entries.iter().enumerate() {
        if i > 0 && entries[i - 1].0 == *name {
            block.pop();
            let _ = writeln!(block, ",{value}");
        } else {
            let _ = writeln!(block, "{name}:{value}");
            names.push(name);
        }
    }
    (block, names.join(";"))
}

fn hmac(key: &[u8], data: &[u8]) -> Vec<u8> {
    // HMAC takes a key of any length: `new_from_slice` cannot fail.
    let mut mac = HmacSha256::new_from_slice(key).expect("HMAC accepts any key length");
    mac.update(data);
    mac.finalize().into_bytes().to_vec()
}

pub fn hex(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len() * 2);
    for byte in bytes {
        let _ = write!(out, "{byte:02x}");
    }
    out
}

/// The payload hash SigV4 signs.
pub fn hex_sha256(bytes: &[u8]) -> String {
    hex(&Sha256::digest(bytes))
}

/// AWS's URI encoding: every byte but `A-Z a-z 0-9 - _ . ~` as `%XX`, and
/// `/` too unless `keep_slash` (S3 object keys in a path).
pub fn uri_encode(bytes: &[u8], keep_slash: bool) -> String {
    kv_core::percent::encode(bytes, |c| {
        kv_core::percent::is_unreserved(c) || (keep_slash && c == '/')
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The published test suite's identity and time.
    fn suite() -> Signer {
        Signer::new(
            "AKIDEXAMPLE".into(),
            "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY".into(),
            None,
            "us-east-1".into(),
            "service",
        )
    }

    const DATE: &str = "20150830T123600Z";
    const HOST: (&str, &[u8]) = ("Host", b"example.amazonaws.com");
    const X_AMZ_DATE: (&str, &[u8]) = ("X-Amz-Date", DATE.as_bytes());

    fn signature(authorization: &str) -> &str {
        authorization.rsplit_once("Signature=").unwrap().1
    }

    #[test]
    fn get_vanilla() {
        let empty = hex_sha256(b"");
        let authorization = suite().authorization(DATE, "GET", "/", "", &[HOST, X_AMZ_DATE], &empty);
        assert_eq!(
            authorization,
            "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/service/aws4_request, \
             SignedHeaders=host;x-amz-date, \
             Signature=5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31"
        );
    }

    #[test]
    fn get_vanilla_query_order_key_case() {
        let empty = hex_sha256(b"");
        let authorization = suite().authorization(
            DATE,
            "GET",
            "/",
            "Param2=value2&Param1=value1",
            &[HOST, X_AMZ_DATE],
            &empty,
        );
        assert_eq!(
            signature(&authorization),
            "b97d918cfa904a5beff61c982a1b6f458b799221646efd99d3219ec94cdf2500"
        );
    }

    #[test]
    fn get_utf8() {
        let empty = hex_sha256(b"");
        let path = format!("/{}", uri_encode("ሴ".as_bytes(), true));
        assert_eq!(path, "/%E1%88%B4");
        let authorization = suite().authorization(DATE, "GET", &path, "", &[HOST, X_AMZ_DATE], &empty);
        assert_eq!(
            signature(&authorization),
            "8318018e0b0f223aa2bbf98705b62bb787dc9c0e678f255a891fd03141be5d85"
        );
    }

    #[test]
    fn post_x_www_form_urlencoded() {
        let body_hash = hex_sha256(b"Param1=value1");
        assert_eq!(
            body_hash,
            "9095672bbd1f56dfc5b65f3e153adc8731a4a654192329106275f4c7b24d0b6e"
        );
        let content_type: (&str, &[u8]) = ("Content-Type", b"application/x-www-form-urlencoded");
        let authorization = suite().authorization(
            DATE,
            "POST",
            "/",
            "",
            &[content_type, HOST, X_AMZ_DATE],
            &body_hash,
        );
        assert_eq!(
            authorization,
            "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/service/aws4_request, \
             SignedHeaders=content-type;host;x-amz-date, \
             Signature=ff11897932ad3f4e8b18135d722051e5ac45fc38421b1da7b9d196a0fe09473a"
        );
    }

    #[test]
    fn sign_adds_the_date_token_and_authorization() {
        let mut signer = suite();
        signer.session_token = Some("token".into());
        let mut request = Request::new(wasip2::http::types::Method::Get, "/");
        // 2015-08-30 12:36:00 UTC.
        signer.sign(
            &mut request,
            "example.amazonaws.com",
            "/",
            1_440_938_160,
            &hex_sha256(b""),
        );
        let names: Vec<&str> = request.headers.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(names, ["x-amz-date", "x-amz-security-token", "authorization"]);
        assert_eq!(request.headers[0].1, DATE.as_bytes());
        let authorization = core::str::from_utf8(&request.headers[2].1).unwrap();
        assert!(
            authorization.contains("SignedHeaders=host;x-amz-date;x-amz-security-token,"),
            "{authorization}"
        );
    }

    #[test]
    fn xml_errors_give_code_and_message() {
        let text = "<ErrorResponse><Errors><Error><Code>InvalidClientTokenId</Code>\
                    <Message>The security token included in the request is invalid.</Message>";
        assert_eq!(xml_element(text, "Code"), Some("InvalidClientTokenId"));
        assert_eq!(
            xml_element(text, "Message"),
            Some("The security token included in the request is invalid.")
        );
        assert_eq!(xml_element("<Code>x", "Code"), None);
    }

    #[test]
    fn uri_encoding() {
        assert_eq!(uri_encode(b"a b/c%~.", false), "a%20b%2Fc%25~.");
        assert_eq!(uri_encode(b"a b/c", true), "a%20b/c");
    }
}
