//! `kv-virt`: configure a `wasi:keyvalue` adapter and plug it into an app.
//!
//! The adapters are built for wasm32-wasip2 by this crate's build script and
//! carried inside the binary ([`adapters`]); [`options`] turns flags and TOML
//! into the configuration baked into them; [`cli`] is the command line;
//! [`migrate`] makes the commands that move a bucket to another backend.

pub mod adapters;
pub mod cli;
pub mod fs_tools;
pub mod migrate;
pub mod options;
