//! Plugging a configured adapter into an app, as `wac plug` does, after
//! checking what users get wrong: not a component, nothing to plug, a
//! key-value interface, version or shape the adapter does not serve.
//!
//! Unlike `wac plug`, which connects exports to imports of the same name,
//! the app's imports are wired one by one, so that an app built against the
//! 2024 text of `wasi:keyvalue/batch@0.2.0-draft2` is connected to the
//! adapter's export of that shape ([`crate::DRAFT2_BATCH_2024`]).

use std::collections::BTreeSet;

use anyhow::{Result, anyhow, bail};
use wac_graph::types::Package;
use wac_graph::{CompositionGraph, EncodeOptions};

use crate::inspect::{ComponentInfo, in_package, inspect_named, one_line};
use crate::{
    CONFIG_INTERFACE, DRAFT2_BATCH, DRAFT2_BATCH_2024, KEYVALUE_PACKAGE, WASMCLOUD_KEYVALUE_PACKAGE,
};

/// Whether an interface is a key-value interface kv-virt knows of, served
/// or not: `wasi:keyvalue/*`, Spin's `fermyon:spin/key-value` and
/// `spin:key-value/*`, wasmCloud's `wasmcloud:keyvalue/*`, any version. An
/// app importing one that no adapter serves gets an error naming it, not a
/// composed component that still imports it. kv-virt's own
/// `kv-virt:adapters/migration` (what its export and import commands
/// import) is one too.
pub fn is_key_value_interface(name: &str) -> bool {
    let unversioned = name.split('@').next().unwrap_or(name);
    unversioned.starts_with("wasi:keyvalue/")
        || unversioned.starts_with("spin:key-value/")
        || unversioned.starts_with("wasmcloud:keyvalue/")
        || unversioned == "fermyon:spin/key-value"
        || unversioned == MIGRATION_INTERFACE
}

/// The interface kv-virt's export and import commands read and write
/// through (with expiries), unversioned.
const MIGRATION_INTERFACE: &str = "kv-virt:adapters/migration";

/// Which build of an adapter serves an app.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Flavour {
    /// The WASI 0.2 interfaces, lifted sync: loads on every component
    /// runtime (Node through jco, wasmtime without component-model-async).
    Sync,
    /// Those and the WASI 0.3 ones (`spin:key-value@3.0.0`,
    /// `wasmcloud:keyvalue@0.2.0`), whose functions are lifted async: needs
    /// a runtime with component-model-async, as the apps that import them do.
    Async,
}

impl Flavour {
    /// The flavour an app needs: async only if it imports an async
    /// key-value interface, so that WASI 0.2 apps stay loadable everywhere.
    pub fn for_app(app: &ComponentInfo) -> Flavour {
        let async_imports = app
            .imports
            .iter()
            .any(|i| i.is_async && is_key_value_interface(&i.name));
        if async_imports {
            Flavour::Async
        } else {
            Flavour::Sync
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Flavour::Sync => "sync",
            Flavour::Async => "async",
        }
    }
}

/// Composes `app` with a configured `adapter`: the result imports what the
/// app imports, less its key-value interfaces, plus what the adapter imports.
pub fn plug(app: &[u8], adapter: &[u8]) -> Result<Vec<u8>> {
    let app_info = inspect_named(app, "the app")?;
    let adapter_info = inspect_named(adapter, "the adapter")?;
    if adapter_info.imports_interface(CONFIG_INTERFACE) {
        bail!(
            "the adapter is not configured (it imports {CONFIG_INTERFACE}): configure it with `kv-virt adapter` first"
        );
    }
    let wanted = app_info.key_value_imports();
    if wanted.is_empty() {
        let imports: Vec<&str> = app_info.imports.iter().map(|i| i.name.as_str()).collect();
        bail!(
            "the app imports no {KEYVALUE_PACKAGE}, Spin or wasmCloud key-value interface, so there is nothing to plug (it imports: {})",
            if imports.is_empty() {
                "nothing".to_string()
            } else {
                imports.join(", ")
            }
        );
    }
    let offered = adapter_info.key_value_exports();
    let missing: Vec<&str> = wanted
        .iter()
        .copied()
        .filter(|name| !offered.contains(name))
        .collect();
    if !missing.is_empty() {
        let hint = if Flavour::for_app(&app_info) == Flavour::Async
            && !adapter_info.exports.iter().any(|e| e.is_async)
        {
            " (the app is a WASI 0.3 app: use an adapter written with `kv-virt adapter --flavour async`, \
             or let `kv-virt plug` pick the flavour)"
        } else {
            ""
        };
        bail!(
            "the app imports {}, which the adapter does not serve (it serves {}){hint}",
            missing.join(", "),
            served(&offered)
        );
    }
    let connections = wanted
        .iter()
        .map(|name| Ok((matching_export(&app_info, &adapter_info, name)?, name.to_string())))
        .collect::<Result<Vec<_>>>()?;
    let app_exports: Vec<(String, String)> = app_info
        .exports
        .iter()
        .map(|e| (e.name.clone(), e.name.clone()))
        .collect();
    let composed = connect(adapter, app, &connections, &app_exports)
        .map_err(|e| anyhow!("plugging the adapter into the app: {}", one_line(&e)))?;
    let left = inspect_named(&composed, "the composed component")?;
    let unplugged = left.key_value_imports();
    if !unplugged.is_empty() {
        bail!(
            "the adapter could not satisfy the app's imports of {}",
            unplugged.join(", ")
        );
    }
    Ok(composed)
}

/// "wasi:keyvalue@0.2.0-draft, wasi:keyvalue@0.2.0-draft2, fermyon:spin/key-value@2.0.0"
fn served(interfaces: &[&str]) -> String {
    let packages: BTreeSet<String> = interfaces
        .iter()
        .filter(|name| **name != DRAFT2_BATCH_2024 && !name.starts_with(MIGRATION_INTERFACE))
        .map(|name| {
            let package = [KEYVALUE_PACKAGE, WASMCLOUD_KEYVALUE_PACKAGE]
                .into_iter()
                .find(|package| in_package(name, package));
            match (package, name.split_once('@')) {
                (Some(package), Some((_, version))) => format!("{package}@{version}"),
                _ => name.to_string(),
            }
        })
        .collect();
    packages.into_iter().collect::<Vec<_>>().join(", ")
}

/// The adapter export that serves the app's import `name`: the export of
/// the same name when every function the app imports has the signature the
/// adapter exports; for draft2's `batch`, else the export of its 2024 shape.
fn matching_export(app: &ComponentInfo, adapter: &ComponentInfo, name: &str) -> Result<String> {
    let candidates: &[&str] = if name == DRAFT2_BATCH {
        &[DRAFT2_BATCH, DRAFT2_BATCH_2024]
    } else {
        &[name]
    };
    for candidate in candidates {
        if mismatch(app, adapter, name, candidate).is_none() {
            return Ok(candidate.to_string());
        }
    }
    Err(mismatch(app, adapter, name, name).expect("no candidate matched"))
}

/// Why the adapter's export `export` cannot serve the app's import
/// `import`, if it cannot.
fn mismatch(
    app: &ComponentInfo,
    adapter: &ComponentInfo,
    import: &str,
    export: &str,
) -> Option<anyhow::Error> {
    let wanted = app.interface(import, true)?;
    let Some(offered) = adapter.interface(export, false) else {
        return Some(anyhow!("the adapter does not export {export}"));
    };
    let offered = adapter.signatures(offered);
    for (func, app_sig) in app.signatures(wanted) {
        match offered.iter().find(|(name, _)| *name == func) {
            Some((_, adapter_sig)) if *adapter_sig == app_sig => continue,
            Some((_, adapter_sig)) => {
                return Some(anyhow!(
                    "the app imports {import} `{func}` as `{app_sig}` but the adapter exports `{adapter_sig}`{}",
                    if import == DRAFT2_BATCH && func == "get-many" {
                        " (kv-virt serves draft2's get-many in two shapes: upstream PR #55's, which Spin uses, \
                         and the 2024 text's `list<option<tuple<string, list<u8>>>>`; the app's is neither)"
                    } else {
                        ""
                    }
                ));
            }
            None => {
                return Some(anyhow!(
                    "the app imports {import} `{func}`, which the adapter does not export"
                ));
            }
        }
    }
    None
}

/// `socket` instantiated with `plug`'s exports as arguments: each
/// `(plug export, socket import)` of `connections`; the socket's other
/// imports, and the plug's, become the result's imports. The result exports
/// each `(socket export, as name)` of `exports`.
pub(crate) fn connect(
    plug: &[u8],
    socket: &[u8],
    connections: &[(String, String)],
    exports: &[(String, String)],
) -> Result<Vec<u8>> {
    let mut graph = CompositionGraph::new();
    let socket = Package::from_bytes("kv-virt:socket", None, socket.to_vec(), graph.types_mut())?;
    let socket = graph.register_package(socket)?;
    let plug = Package::from_bytes("kv-virt:plug", None, plug.to_vec(), graph.types_mut())?;
    let plug = graph.register_package(plug)?;
    let socket_instance = graph.instantiate(socket);
    let plug_instance = graph.instantiate(plug);
    for (export, import) in connections {
        let export = graph.alias_instance_export(plug_instance, export)?;
        graph.set_instantiation_argument(socket_instance, import, export)?;
    }
    for (export, name) in exports {
        let export = graph.alias_instance_export(socket_instance, export)?;
        graph.export(export, name)?;
    }
    Ok(graph.encode(EncodeOptions::default())?)
}
