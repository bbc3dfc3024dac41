//! Composition for kv-virt, on `wac-graph` and `wit-component`:
//!
//! - [`inspect`]: a component's imports and exports;
//! - [`configure`]: bake a configuration into an adapter, giving a
//!   self-contained component (`wac plug` alone can use it);
//! - [`plug`]: plug a configured adapter into an app, as `wac plug` does,
//!   with clear errors for the mistakes users make;
//! - [`baked_configs`]: the configurations baked into a component, for
//!   `kv-virt inspect`;
//! - [`stand_in_for_package`]: satisfy imports a component will not use.
//!
//! Every error is one line that names the problem.

mod baked;
mod configure;
mod dummy;
mod inspect;
mod plug;
mod stand_in;

pub use baked::{baked_configs, describe as describe_config};
pub use configure::{bake_config, config_provider, configure};
pub use dummy::dummy_component;
pub use inspect::{ComponentInfo, GetManyShape, Item, inspect};
pub use plug::{Flavour, is_key_value_interface, plug};
pub use stand_in::stand_in_for_package;

/// A core module (`module`) made into a component of `world`: the one
/// place compose encodes a component (with validation, so a bad module is
/// an error here, not in a runtime).
fn encode_component(
    mut module: Vec<u8>,
    resolve: &wit_parser::Resolve,
    world: wit_parser::WorldId,
) -> anyhow::Result<Vec<u8>> {
    use wit_component::{ComponentEncoder, StringEncoding};
    wit_component::embed_component_metadata(&mut module, resolve, world, StringEncoding::UTF8)?;
    ComponentEncoder::default()
        .module(&module)?
        .validate(true)
        .encode()
}

/// The `wasi:keyvalue` package name, with no version.
pub const KEYVALUE_PACKAGE: &str = "wasi:keyvalue";

/// wasmCloud's async key-value package, with no version.
pub const WASMCLOUD_KEYVALUE_PACKAGE: &str = "wasmcloud:keyvalue";

/// Spin's key-value interface, as `spin_sdk::key_value` imports it.
pub const SPIN_KEY_VALUE: &str = "fermyon:spin/key-value@2.0.0";

/// draft2's `batch`, whose `get-many` has two shapes under one version.
pub const DRAFT2_BATCH: &str = "wasi:keyvalue/batch@0.2.0-draft2";

/// The name under which the adapters export draft2's `batch` in the shape
/// of its 2024 text (`wit/kv-virt.wit`).
pub const DRAFT2_BATCH_2024: &str = "kv-virt:adapters/draft2-batch-2024@0.1.0";

/// The name of the interface the adapters read their configuration from.
pub const CONFIG_INTERFACE: &str = "kv-virt:config/config@0.1.0";
