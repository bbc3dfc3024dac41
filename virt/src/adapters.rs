//! The unconfigured adapters this binary carries (release, size-tuned),
//! each in both flavours (see [`Flavour`]).

use clap::ValueEnum;
pub use kv_compose::Flavour;

/// A backend: which adapter serves the app.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum BackendKind {
    /// In the adapter's memory, for the life of the instance (tests, demos).
    Mem,
    /// One crash-safe file per bucket, in a directory under a WASI preopen.
    Fs,
    /// A key-value service (etcd, Redis, DynamoDB, S3, Azure Table) through its HTTP API.
    Http,
    /// A backend per bucket: the `[[route]]` tables of a --config file.
    Route,
}

impl BackendKind {
    pub fn name(self) -> &'static str {
        match self {
            BackendKind::Mem => "mem",
            BackendKind::Fs => "fs",
            BackendKind::Http => "http",
            BackendKind::Route => "route",
        }
    }

    /// The unconfigured adapter component (imports `kv-virt:config/config`).
    pub fn adapter(self, flavour: Flavour) -> &'static [u8] {
        match (self, flavour) {
            (BackendKind::Mem, Flavour::Sync) => KV_MEM,
            (BackendKind::Fs, Flavour::Sync) => KV_FS,
            (BackendKind::Http, Flavour::Sync) => KV_HTTP,
            (BackendKind::Route, Flavour::Sync) => KV_ROUTE,
            (BackendKind::Mem, Flavour::Async) => KV_MEM_ASYNC,
            (BackendKind::Fs, Flavour::Async) => KV_FS_ASYNC,
            (BackendKind::Http, Flavour::Async) => KV_HTTP_ASYNC,
            (BackendKind::Route, Flavour::Async) => KV_ROUTE_ASYNC,
        }
    }
}

pub const KV_MEM: &[u8] = include_bytes!(env!("KV_MEM_WASM"));
pub const KV_FS: &[u8] = include_bytes!(env!("KV_FS_WASM"));
pub const KV_HTTP: &[u8] = include_bytes!(env!("KV_HTTP_WASM"));
pub const KV_ROUTE: &[u8] = include_bytes!(env!("KV_ROUTE_WASM"));

/// The async flavours: the WASI 0.3 key-value interfaces too.
pub const KV_MEM_ASYNC: &[u8] = include_bytes!(env!("KV_MEM_ASYNC_WASM"));
pub const KV_FS_ASYNC: &[u8] = include_bytes!(env!("KV_FS_ASYNC_WASM"));
pub const KV_HTTP_ASYNC: &[u8] = include_bytes!(env!("KV_HTTP_ASYNC_WASM"));
pub const KV_ROUTE_ASYNC: &[u8] = include_bytes!(env!("KV_ROUTE_ASYNC_WASM"));
