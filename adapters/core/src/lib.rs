//! The `wasi:keyvalue` semantics of kv-virt, written once.
//!
//! Backends (kv-mem, kv-fs, kv-http) implement the small [`Backend`] /
//! [`Bucket`] traits: plain storage operations. [`Store`] and [`OpenBucket`]
//! add every rule of the project's contract on top, for every backend and
//! both `wasi:keyvalue` drafts: bucket-name validation and the allow-list,
//! key and value limits, bounded `list-keys` pages with working cursors,
//! decimal counters, compare-and-swap with a fresh snapshot on conflict.
//! The WIT glue (`kv-glue`) only converts types.
//!
//! This crate is plain `no_std` Rust (with `alloc`): it is tested natively
//! and compiled into every adapter, which stay free of the C library and
//! so import only the WASI interfaces their backend needs.

#![no_std]

extern crate alloc;
#[cfg(test)]
extern crate std;

mod backend;
pub mod config;
mod counter;
mod cursor;
mod error;
mod names;
pub mod percent;
mod router;
mod store;

pub use backend::{
    Backend, Bucket, DynBackend, ExpiresAt, KeyPage, Limits, ListRequest, Version, Versioned, erase,
    increment_by_cas, is_expired, refuse_expiry,
};
pub use counter::{CounterRange, Decimal, next_value as next_counter_value, parse as parse_counter};
pub use error::{Error, Quoted, Result};
pub use names::{MAX_BUCKET_NAME_BYTES, validate_bucket_name};
pub use router::{BuildBackend, Router};
pub use store::{
    CasError, CasSnapshot, Clock, Entry, OpenBucket, SetOptions, Store, SwapOutcome, SwapPreconditions,
    version_string,
};
