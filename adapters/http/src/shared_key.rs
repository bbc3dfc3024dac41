//! Azure Storage's `SharedKey` request signing (the Table service's
//! scheme), beside AWS's [`crate::sigv4`]: pure, the caller gives the time.

use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;

use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use hmac::{Hmac, Mac};
use sha2::Sha256;

use crate::azure::{API_VERSION, NO_METADATA};
use crate::client::{Request, method_name};
use crate::dates::http_date;

/// Azure Storage's `SharedKey` scheme for the Table service:
///
/// ```text
/// StringToSign = VERB + "\n" + Content-MD5 + "\n" + Content-Type + "\n"
///              + Date + "\n" + CanonicalizedResource
/// CanonicalizedResource = "/" + account + <the request's encoded path>
/// Authorization: SharedKey <account>:base64(HMAC-SHA256(key, StringToSign))
/// ```
///
/// Date is the `x-ms-date` sent; no Content-MD5 is sent. The resource
/// would add `?comp=…` for a `comp` query parameter, which no request here
/// has; other query parameters are not signed.
pub struct SharedKey {
    account: String,
    key: Vec<u8>,
}

impl SharedKey {
    /// `key` is the account key in base64, as Azure shows it.
    pub fn new(account: &str, key: &str) -> core::result::Result<Self, &'static str> {
        let key = BASE64.decode(key.trim()).map_err(|_| "is not base64")?;
        Ok(SharedKey {
            account: account.into(),
            key,
        })
    }

    pub fn string_to_sign(&self, method: &str, content_type: &str, date: &str, path: &str) -> String {
        let path = path.split_once('?').map_or(path, |(path, _)| path);
        format!("{method}\n\n{content_type}\n{date}\n/{}{path}", self.account)
    }

    /// The `Authorization` header for a request to `path` (path and query,
    /// encoded as sent).
    /// `request` with the headers every Table request carries, signed:
    /// `path` is its full path (the endpoint's included), `now` the Unix time.
    pub fn sign(&self, request: Request, path: &str, now: u64) -> Request {
        let date = http_date(now);
        let content_type = request
            .headers
            .iter()
            .find(|(name, _)| name == "content-type")
            .map(|(_, value)| String::from_utf8_lossy(value).into_owned())
            .unwrap_or_default();
        let authorization = self.authorization(method_name(&request.method), &content_type, &date, path);
        request
            .header("x-ms-date", date)
            .header("x-ms-version", API_VERSION)
            .header("accept", NO_METADATA)
            .header("dataserviceversion", "3.0;NetFx")
            .header("maxdataserviceversion", "3.0;NetFx")
            .header("authorization", authorization)
    }

    pub fn authorization(&self, method: &str, content_type: &str, date: &str, path: &str) -> String {
        let mut mac = Hmac::<Sha256>::new_from_slice(&self.key).expect("HMAC takes keys of any length");
        mac.update(self.string_to_sign(method, content_type, date, path).as_bytes());
        let signature = BASE64.encode(mac.finalize().into_bytes());
        format!("SharedKey {}:{signature}", self.account)
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// Azurite's well-known development account (public, in Microsoft's docs).
    pub(crate) const DEV_ACCOUNT: &str = "devstoreaccount1";
    pub(crate) const DEV_KEY: &str =
        "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==";

    #[test]
    fn shared_key_follows_the_documented_string_to_sign() {
        let signer = SharedKey::new(DEV_ACCOUNT, DEV_KEY).unwrap();
        let path = "/devstoreaccount1/kvvirt(PartitionKey='a',RowKey='b')";
        assert_eq!(
            signer.string_to_sign("PUT", "application/json", "Sat, 21 Nov 2026 16:43:06 GMT", path),
            "PUT\n\napplication/json\nSat, 21 Nov 2026 16:43:06 GMT\n\
             /devstoreaccount1/devstoreaccount1/kvvirt(PartitionKey='a',RowKey='b')"
        );
        // The query is not signed.
        assert_eq!(
            signer.string_to_sign("GET", "", "Sat, 21 Nov 2026 16:43:06 GMT", "/t()?$top=5"),
            "GET\n\n\nSat, 21 Nov 2026 16:43:06 GMT\n/devstoreaccount1/t()"
        );
        // The signature, computed independently (HMAC-SHA256 by Node's
        // crypto, as Azurite does) for the string above.
        assert_eq!(
            signer.authorization("PUT", "application/json", "Sat, 21 Nov 2026 16:43:06 GMT", path),
            "SharedKey devstoreaccount1:6BrmYyc7lWSHtodVvTmr1DYWvmrva2uq1CGi334YxOQ="
        );
        assert!(SharedKey::new(DEV_ACCOUNT, "not base64!").is_err());
    }
}
