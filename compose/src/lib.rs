//! Composition for kv-virt, on `wac-graph` and `wit-component`:
//!
//! - [`inspect`]: a component's imports and exports;
//! - [`configure`]: bake a configuration into an adapter, giving a
//!   self-contained component (`wac plug` alone can use it);
//! - [`plug`]: plug a configured adapter into an app, as `wac plug` does,
//!   with clear errors for the mistakes users make.
//!
//! Every error is one line that names the problem.

mod configure;
mod dummy;
mod inspect;
mod plug;

pub use configure::{config_provider, configure};
pub use dummy::dummy_component;
pub use inspect::{ComponentInfo, Item, inspect};
pub use plug::plug;

/// The `wasi:keyvalue` package name, with no version.
pub const KEYVALUE_PACKAGE: &str = "wasi:keyvalue";

/// The name of the interface the adapters read their configuration from.
pub const CONFIG_INTERFACE: &str = "kv-virt:config/config@0.1.0";
