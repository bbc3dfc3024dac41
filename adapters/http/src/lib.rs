//! kv-http: `wasi:keyvalue` on real key-value services through
//! `wasi:http/outgoing-handler`.
//!
//! - [`client`]: the one request layer (deadline, retries, error messages);
//! - one file per protocol ([`etcd`], [`webdis`], [`dynamodb`], [`s3`], [`azure`]), each a [`Service`]
//!   whose buckets implement [`kv_core::Bucket`];
//! - [`buckets`]: how a bucket maps to a key prefix;
//! - [`expiry`]: what the cloud protocols share to keep expiring entries;
//! - [`credentials`]: secrets read at run time from the environment;
//! - [`sigv4`] and [`shared_key`]: AWS's and Azure's request signing, with
//!   the dates they sign in [`dates`];
//! - `testing` (unit tests only): every protocol's handling of answers,
//!   natively, on canned answers (any bytes; real answers cut short or with
//!   fields of the wrong type): `ok` or a one-line `other(..)`, never a panic.
//!
//! Every `wasi:keyvalue` rule (validation, limits, cursors, counters) is
//! kv-core's; a protocol only stores.

// no_std in the component (std would import the C library's WASI); std
// natively, where only the unit tests build it.
#![cfg_attr(target_arch = "wasm32", no_std)]

extern crate alloc;

pub mod azure;
pub mod buckets;
pub mod client;
pub mod credentials;
pub mod dates;
pub mod dynamodb;
pub mod etcd;
pub mod expiry;
pub mod s3;
pub mod shared_key;
pub mod sigv4;
#[cfg(test)]
mod testing;
pub mod webdis;

use alloc::boxed::Box;
use alloc::rc::Rc;

use kv_core::config::{Endpoint, HttpConfig, HttpProtocol, Own};
use kv_core::{Bucket, Limits, Result};

use crate::client::Client;
use crate::credentials::Credentials;

/// A protocol: opens buckets (key prefixes) on its service.
pub trait Service {
    fn limits(&self) -> Limits;

    /// The bucket whose keys are stored under `prefix`.
    fn open(&self, prefix: alloc::string::String) -> Result<Box<dyn Bucket>>;
}

pub struct HttpBackend {
    config: HttpConfig,
    service: Box<dyn Service>,
}

impl kv_core::Backend for HttpBackend {
    type Bucket = dyn Bucket;

    fn name(&self, _bucket: &str) -> &'static str {
        "kv-http"
    }

    fn limits(&self, _bucket: &str) -> Limits {
        self.service.limits()
    }

    /// Buckets are key prefixes: every allowed name exists.
    fn open(&self, name: &str) -> Result<Box<dyn Bucket>> {
        self.service.open(buckets::prefix(&self.config, name))
    }
}

impl kv_glue::Adapter for HttpBackend {
    type Options = Own<HttpConfig>;
    fn from_config(Own(http): &Own<HttpConfig>) -> Result<Self> {
        HttpBackend::new(http)
    }
}

impl HttpBackend {
    /// kv-http on the service the configuration names.
    pub fn new(http: &HttpConfig) -> Result<Self> {
        let name = http.protocol.name();
        let client = Rc::new(Client::new(
            name,
            Endpoint::parse(&http.endpoint)?,
            http.timeout_ms,
            http.retry,
        ));
        let credentials = Credentials::new(name, &http.credentials);
        let service: Box<dyn Service> = match &http.protocol {
            HttpProtocol::Etcd => Box::new(etcd::Etcd::new(client, credentials)?),
            HttpProtocol::Redis => Box::new(webdis::Webdis::new(client, credentials)?),
            HttpProtocol::DynamoDb {
                table,
                region,
                consistent_reads,
            } => Box::new(dynamodb::DynamoDb::new(
                client,
                credentials,
                table,
                region,
                *consistent_reads,
            )),
            HttpProtocol::S3 { bucket, region } => Box::new(s3::S3::new(client, credentials, bucket, region)),
            HttpProtocol::AzureTable { account, table } => {
                Box::new(azure::AzureTable::new(client, credentials, account, table)?)
            }
        };
        Ok(HttpBackend {
            config: http.clone(),
            service,
        })
    }
}

// The exports are the component's; natively (unit tests) there is none.
// kv-route links this crate without them.
#[cfg(all(target_arch = "wasm32", feature = "component"))]
kv_glue::export_adapter!(HttpBackend);
