//! Plugging a configured adapter into an app, as `wac plug` does, after
//! checking what users get wrong: not a component, nothing to plug, a
//! `wasi:keyvalue` version or shape the adapter does not serve.

use std::collections::BTreeSet;

use anyhow::{Result, anyhow, bail};
use wac_graph::types::Package;
use wac_graph::{CompositionGraph, EncodeOptions};
use wit_parser::{Handle, InterfaceId, Resolve, Type, TypeDefKind, WorldKey};

use crate::inspect::{ComponentInfo, in_package, inspect_named, one_line};
use crate::{CONFIG_INTERFACE, KEYVALUE_PACKAGE};

/// Composes `app` with a configured `adapter`: the result imports what the
/// app imports, less `wasi:keyvalue`, plus what the adapter imports.
pub fn plug(app: &[u8], adapter: &[u8]) -> Result<Vec<u8>> {
    let app_info = inspect_named(app, "the app")?;
    let adapter_info = inspect_named(adapter, "the adapter")?;
    if adapter_info.imports_interface(CONFIG_INTERFACE) {
        bail!(
            "the adapter is not configured (it imports {CONFIG_INTERFACE}): configure it with `kv-virt adapter` first"
        );
    }
    let wanted = app_info.imported_interfaces_of(KEYVALUE_PACKAGE);
    if wanted.is_empty() {
        let imports: Vec<&str> = app_info.imports.iter().map(|i| i.name.as_str()).collect();
        bail!(
            "the app imports no {KEYVALUE_PACKAGE} interface, so there is nothing to plug (it imports: {})",
            if imports.is_empty() {
                "nothing".to_string()
            } else {
                imports.join(", ")
            }
        );
    }
    let offered = adapter_info.exported_interfaces_of(KEYVALUE_PACKAGE);
    let missing: Vec<&str> = wanted
        .iter()
        .copied()
        .filter(|name| !offered.contains(name))
        .collect();
    if !missing.is_empty() {
        bail!(
            "the app imports {} but the adapter exports only {} ({} supported)",
            missing.join(", "),
            offered.join(", "),
            versions(&offered)
        );
    }
    for name in &wanted {
        check_same_shape(&app_info, &adapter_info, name)?;
    }
    let composed =
        wac_plug(adapter, app).map_err(|e| anyhow!("plugging the adapter into the app: {}", one_line(&e)))?;
    let left = inspect_named(&composed, "the composed component")?;
    let unplugged = left.imported_interfaces_of(KEYVALUE_PACKAGE);
    if !unplugged.is_empty() {
        bail!(
            "the adapter could not satisfy the app's imports of {}",
            unplugged.join(", ")
        );
    }
    Ok(composed)
}

/// "wasi:keyvalue@0.2.0-draft, wasi:keyvalue@0.2.0-draft2"
fn versions(interfaces: &[&str]) -> String {
    let versions: BTreeSet<String> = interfaces
        .iter()
        .map(|name| match name.split_once('@') {
            Some((_, version)) => format!("{KEYVALUE_PACKAGE}@{version}"),
            None => KEYVALUE_PACKAGE.to_string(),
        })
        .collect();
    versions.into_iter().collect::<Vec<_>>().join(", ")
}

fn interface(info: &ComponentInfo, name: &str, imported: bool) -> Option<InterfaceId> {
    let world = &info.resolve.worlds[info.world];
    let items = if imported { &world.imports } else { &world.exports };
    items.keys().find_map(|key| match key {
        WorldKey::Interface(id) if info.resolve.id_of(*id).as_deref() == Some(name) => Some(*id),
        _ => None,
    })
}

/// Every function the app imports from `name` has the signature the
/// adapter exports (catches draft2's two `get-many` shapes).
fn check_same_shape(app: &ComponentInfo, adapter: &ComponentInfo, name: &str) -> Result<()> {
    let (Some(wanted), Some(offered)) = (interface(app, name, true), interface(adapter, name, false)) else {
        return Ok(());
    };
    for (func_name, func) in &app.resolve.interfaces[wanted].functions {
        let app_sig = signature(&app.resolve, func);
        let adapter_sig = adapter.resolve.interfaces[offered]
            .functions
            .get(func_name)
            .map(|f| signature(&adapter.resolve, f));
        if adapter_sig.as_ref() == Some(&app_sig) {
            continue;
        }
        let hint = if in_package(name, KEYVALUE_PACKAGE)
            && name.ends_with("/batch@0.2.0-draft2")
            && func_name == "get-many"
        {
            " (the app was built against the 2024 text of draft2; kv-virt serves the shape of upstream \
             wasi-keyvalue PR #55, which Spin uses: rebuild the app against the current draft2 WIT)"
        } else {
            ""
        };
        return Err(match adapter_sig {
            Some(adapter_sig) => anyhow!(
                "the app imports {name} `{func_name}` as `{app_sig}` but the adapter exports `{adapter_sig}`{hint}"
            ),
            None => anyhow!("the app imports {name} `{func_name}`, which the adapter does not export"),
        });
    }
    Ok(())
}

fn signature(resolve: &Resolve, func: &wit_parser::Function) -> String {
    let params: Vec<String> = func
        .params
        .iter()
        .map(|p| format!("{}: {}", p.name, render(resolve, &p.ty)))
        .collect();
    match &func.result {
        Some(result) => format!("func({}) -> {}", params.join(", "), render(resolve, result)),
        None => format!("func({})", params.join(", ")),
    }
}

/// A type as WIT text (named types by name).
fn render(resolve: &Resolve, ty: &Type) -> String {
    let id = match ty {
        Type::Id(id) => *id,
        Type::String => return "string".into(),
        Type::Bool => return "bool".into(),
        Type::Char => return "char".into(),
        Type::ErrorContext => return "error-context".into(),
        other => return format!("{other:?}").to_lowercase(),
    };
    let def = &resolve.types[id];
    let render_opt = |t: &Option<Type>| t.as_ref().map_or("_".to_string(), |t| render(resolve, t));
    match &def.kind {
        TypeDefKind::List(t) => format!("list<{}>", render(resolve, t)),
        TypeDefKind::Option(t) => format!("option<{}>", render(resolve, t)),
        TypeDefKind::Tuple(t) => {
            format!(
                "tuple<{}>",
                t.types
                    .iter()
                    .map(|t| render(resolve, t))
                    .collect::<Vec<_>>()
                    .join(", ")
            )
        }
        TypeDefKind::Result(r) => format!("result<{}, {}>", render_opt(&r.ok), render_opt(&r.err)),
        TypeDefKind::Handle(Handle::Own(t)) => render(resolve, &Type::Id(*t)),
        TypeDefKind::Handle(Handle::Borrow(t)) => format!("borrow<{}>", render(resolve, &Type::Id(*t))),
        TypeDefKind::Type(t) if def.name.is_none() => render(resolve, t),
        _ => def.name.clone().unwrap_or_else(|| "?".into()),
    }
}

/// `wac plug`: the plug's exports satisfy the socket's imports.
pub(crate) fn wac_plug(plug: &[u8], socket: &[u8]) -> Result<Vec<u8>> {
    let mut graph = CompositionGraph::new();
    let socket = Package::from_bytes("kv-virt:socket", None, socket.to_vec(), graph.types_mut())?;
    let socket = graph.register_package(socket)?;
    let plug = Package::from_bytes("kv-virt:plug", None, plug.to_vec(), graph.types_mut())?;
    let plug = graph.register_package(plug)?;
    wac_graph::plug(&mut graph, vec![plug], socket)?;
    Ok(graph.encode(EncodeOptions::default())?)
}
