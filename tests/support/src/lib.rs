//! What kv-virt's tests (`tests/`) and benchmarks (`tests/bench`) share:
//!
//! - [`servers`]: etcd, redis-server + webdis, moto (DynamoDB, S3) and
//!   Azurite on 127.0.0.1, started on free ports and killed when dropped;
//! - [`proxy`]: a loopback proxy that counts connections, injects a
//!   service's failures and holds requests until several wait at once;
//! - [`http`]: a minimal HTTP/1.1 client;
//! - [`notes_load`]: the load the notes service is tested and measured under;
//! - [`wasmtime_cli`]: the wasmtime CLI (`wasmtime run`, `wasmtime serve`),
//!   the second runtime the apps are tested on;
//! - [`WorkDir`]: scratch directories removed when the test passes.

pub mod http;
pub mod notes_load;
pub mod proxy;
pub mod servers;
pub mod wasmtime_cli;
mod work_dir;

pub use work_dir::WorkDir;
