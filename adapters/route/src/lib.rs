//! kv-route: `wasi:keyvalue` with a backend per bucket, in one component.
//! Its configuration is a list of routes (`kv_core::config::Route`): bucket
//! names or patterns, each with the kv-mem, kv-fs or kv-http backend and
//! options that serve them. The routing is `kv_core::Router`; this crate only
//! builds the backends, from the other adapters' crates.
//!
//! The component imports what all three backends import. `kv-virt` plugs a
//! stand-in for `wasi:http` into it when no route uses kv-http, so that the
//! composed app needs no `wasi:http` from its runtime (see `kv_compose`).

#![no_std]

extern crate alloc;

use alloc::boxed::Box;

use kv_core::config::BackendConfig;
use kv_core::{DynBackend, Error, Result, Router, erase};

/// The backend a route names.
fn build(config: &BackendConfig) -> Result<Box<DynBackend>> {
    match config {
        BackendConfig::Mem(_) => Ok(erase(kv_mem::MemBackend::default())),
        BackendConfig::Fs(fs) => Ok(erase(kv_fs::FsBackend::new(fs)?)),
        BackendConfig::Http(http) => Ok(Box::new(kv_http::HttpBackend::new(http)?)),
        BackendConfig::Routed(_) => Err(Error::other("a route's backend cannot itself be routed")),
    }
}

/// [`Router`] as this adapter's backend.
pub struct RouteBackend(Router);

impl kv_core::Backend for RouteBackend {
    type Bucket = dyn kv_core::Bucket;

    fn name(&self, bucket: &str) -> &'static str {
        self.0.name(bucket)
    }

    fn limits(&self, bucket: &str) -> kv_core::Limits {
        self.0.limits(bucket)
    }

    fn open(&self, name: &str) -> Result<Box<dyn kv_core::Bucket>> {
        self.0.open(name)
    }
}

impl kv_glue::Adapter for RouteBackend {
    type Options = BackendConfig;
    fn from_config(config: &BackendConfig) -> Result<Self> {
        match config {
            BackendConfig::Routed(routes) => Ok(RouteBackend(Router::new(routes, build))),
            other => Err(other.wrong_adapter("kv-route")),
        }
    }
}

kv_glue::export_adapter!(RouteBackend);
