use anyhow::{Result, bail};
use wit_parser::{Resolve, WorldItem, WorldKey};

/// One import or export of a component.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Item {
    /// `wasi:keyvalue/store@0.2.0-draft`, or a plain name for functions/types.
    pub name: String,
    /// "interface", "function" or "type".
    pub kind: &'static str,
}

/// What a component imports and exports (top level).
#[derive(Clone, Debug)]
pub struct ComponentInfo {
    pub imports: Vec<Item>,
    pub exports: Vec<Item>,
    /// The decoded WIT, for deeper questions (function types).
    pub(crate) resolve: Resolve,
    pub(crate) world: wit_parser::WorldId,
}

impl ComponentInfo {
    pub fn imports_interface(&self, name: &str) -> bool {
        self.imports.iter().any(|i| i.name == name)
    }

    /// The names of the interfaces imported from `package` (no version), e.g. "wasi:keyvalue".
    pub fn imported_interfaces_of(&self, package: &str) -> Vec<&str> {
        self.imports
            .iter()
            .filter(|i| in_package(&i.name, package))
            .map(|i| i.name.as_str())
            .collect()
    }

    pub fn exported_interfaces_of(&self, package: &str) -> Vec<&str> {
        self.exports
            .iter()
            .filter(|i| in_package(&i.name, package))
            .map(|i| i.name.as_str())
            .collect()
    }
}

/// `wasi:keyvalue/store@0.2.0-draft` is in package `wasi:keyvalue`.
pub(crate) fn in_package(interface: &str, package: &str) -> bool {
    interface
        .strip_prefix(package)
        .is_some_and(|rest| rest.starts_with('/'))
}

/// Rejects anything that is not a component, saying what it is instead.
pub(crate) fn ensure_component(bytes: &[u8], what: &str) -> Result<()> {
    if wasmparser::Parser::is_component(bytes) {
        Ok(())
    } else if wasmparser::Parser::is_core_wasm(bytes) {
        bail!(
            "{what} is a core WebAssembly module, not a component: build it for wasm32-wasip2 \
             (or wrap it with `wasm-tools component new`)"
        )
    } else {
        bail!("{what} is not a WebAssembly component (no component header)")
    }
}

/// Reads a component's imports and exports.
pub fn inspect(bytes: &[u8]) -> Result<ComponentInfo> {
    inspect_named(bytes, "the file")
}

pub(crate) fn inspect_named(bytes: &[u8], what: &str) -> Result<ComponentInfo> {
    ensure_component(bytes, what)?;
    let decoded = wit_component::decode(bytes)
        .map_err(|e| anyhow::anyhow!("{what} is not a valid component: {}", one_line(&e)))?;
    let (resolve, world) = match decoded {
        wit_component::DecodedWasm::Component(resolve, world) => (resolve, world),
        wit_component::DecodedWasm::WitPackage(..) => {
            bail!("{what} is a WIT package, not a runnable component")
        }
    };
    let w = &resolve.worlds[world];
    let imports = w
        .imports
        .iter()
        .map(|(key, item)| describe(&resolve, key, item))
        .collect();
    let exports = w
        .exports
        .iter()
        .map(|(key, item)| describe(&resolve, key, item))
        .collect();
    Ok(ComponentInfo {
        imports,
        exports,
        resolve,
        world,
    })
}

fn describe(resolve: &Resolve, key: &WorldKey, item: &WorldItem) -> Item {
    Item {
        name: match key {
            WorldKey::Interface(id) => resolve.id_of(*id).unwrap_or_else(|| resolve.name_world_key(key)),
            WorldKey::Name(name) => name.clone(),
        },
        kind: match item {
            WorldItem::Interface { .. } => "interface",
            WorldItem::Function(_) => "function",
            WorldItem::Type { .. } => "type",
        },
    }
}

/// The first line of an error chain, for one-line messages.
pub(crate) fn one_line(e: &anyhow::Error) -> String {
    format!("{e:#}").lines().next().unwrap_or_default().to_string()
}
