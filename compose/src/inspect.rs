use anyhow::{Result, bail};
use wit_parser::{Handle, InterfaceId, Resolve, Type, TypeDefKind, WorldItem, WorldKey};

use crate::{DRAFT2_BATCH, DRAFT2_BATCH_2024};

/// One import or export of a component.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Item {
    /// `wasi:keyvalue/store@0.2.0-draft`, or a plain name for functions/types.
    pub name: String,
    /// "interface", "function" or "type".
    pub kind: &'static str,
    /// For `wasi:keyvalue/batch@0.2.0-draft2`: which of its two texts the
    /// component was built against.
    pub get_many_shape: Option<GetManyShape>,
    /// Whether it has `async` functions (WASI 0.3): a component exporting
    /// them loads only on runtimes with component-model-async.
    pub is_async: bool,
}

/// The two shapes `get-many` has in `wasi:keyvalue/batch@0.2.0-draft2`,
/// under one version (see `wit/README.md`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum GetManyShape {
    /// `list<tuple<string, option<list<u8>>>>`: upstream PR #55, as Spin uses it.
    Pr55,
    /// `list<option<tuple<string, list<u8>>>>`: the 2024 text (upstream's
    /// main, the published package).
    Text2024,
    /// Neither: a signature no kv-virt adapter serves.
    Other,
}

impl GetManyShape {
    /// `get-many`'s signature in each shape, as [`signature`] renders it.
    const PR55: &str = "func(bucket: borrow<bucket>, keys: list<string>) -> result<list<tuple<string, option<list<u8>>>>, error>";
    const TEXT_2024: &str = "func(bucket: borrow<bucket>, keys: list<string>) -> result<list<option<tuple<string, list<u8>>>>, error>";

    fn of(signature: &str) -> GetManyShape {
        match signature {
            GetManyShape::PR55 => GetManyShape::Pr55,
            GetManyShape::TEXT_2024 => GetManyShape::Text2024,
            _ => GetManyShape::Other,
        }
    }

    pub fn describe(self) -> &'static str {
        match self {
            GetManyShape::Pr55 => {
                "get-many of upstream PR #55 (Spin's): list<tuple<string, option<list<u8>>>>"
            }
            GetManyShape::Text2024 => "get-many of the 2024 text: list<option<tuple<string, list<u8>>>>",
            GetManyShape::Other => "get-many of neither draft2 text",
        }
    }
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

    /// The key-value interfaces imported (see [`crate::is_key_value_interface`]).
    pub fn key_value_imports(&self) -> Vec<&str> {
        key_value_interfaces(&self.imports)
    }

    /// The key-value interfaces exported.
    pub fn key_value_exports(&self) -> Vec<&str> {
        key_value_interfaces(&self.exports)
    }

    /// The interface `name` among the imports (or exports).
    pub(crate) fn interface(&self, name: &str, imported: bool) -> Option<InterfaceId> {
        let world = &self.resolve.worlds[self.world];
        let items = if imported { &world.imports } else { &world.exports };
        items.keys().find_map(|key| match key {
            WorldKey::Interface(id) if self.resolve.id_of(*id).as_deref() == Some(name) => Some(*id),
            _ => None,
        })
    }

    /// Each function of an interface with its signature as WIT text.
    pub(crate) fn signatures(&self, interface: InterfaceId) -> Vec<(String, String)> {
        self.resolve.interfaces[interface]
            .functions
            .iter()
            .map(|(name, func)| (name.clone(), signature(&self.resolve, func)))
            .collect()
    }
}

fn key_value_interfaces(items: &[Item]) -> Vec<&str> {
    items
        .iter()
        .map(|i| i.name.as_str())
        .filter(|name| crate::is_key_value_interface(name))
        .collect()
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
    let name = match key {
        WorldKey::Interface(id) => resolve.id_of(*id).unwrap_or_else(|| resolve.name_world_key(key)),
        WorldKey::Name(name) => name.clone(),
    };
    let get_many_shape = match item {
        WorldItem::Interface { id, .. } if name == DRAFT2_BATCH || name == DRAFT2_BATCH_2024 => resolve
            .interfaces[*id]
            .functions
            .get("get-many")
            .map(|func| GetManyShape::of(&signature(resolve, func))),
        _ => None,
    };
    let is_async = match item {
        WorldItem::Interface { id, .. } => resolve.interfaces[*id]
            .functions
            .values()
            .any(|f| f.kind.is_async()),
        WorldItem::Function(func) => func.kind.is_async(),
        WorldItem::Type { .. } => false,
    };
    Item {
        name,
        is_async,
        kind: match item {
            WorldItem::Interface { .. } => "interface",
            WorldItem::Function(_) => "function",
            WorldItem::Type { .. } => "type",
        },
        get_many_shape,
    }
}

/// A function's signature as WIT text (named types by name).
pub(crate) fn signature(resolve: &Resolve, func: &wit_parser::Function) -> String {
    let params: Vec<String> = func
        .params
        .iter()
        .map(|p| format!("{}: {}", p.name, render(resolve, &p.ty)))
        .collect();
    let kind = if func.kind.is_async() {
        "async func"
    } else {
        "func"
    };
    match &func.result {
        Some(result) => format!("{kind}({}) -> {}", params.join(", "), render(resolve, result)),
        None => format!("{kind}({})", params.join(", ")),
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
        TypeDefKind::Stream(t) => format!("stream<{}>", render_opt(t)),
        TypeDefKind::Future(t) => format!("future<{}>", render_opt(t)),
        TypeDefKind::Handle(Handle::Own(t)) => render(resolve, &Type::Id(*t)),
        TypeDefKind::Handle(Handle::Borrow(t)) => format!("borrow<{}>", render(resolve, &Type::Id(*t))),
        TypeDefKind::Type(t) if def.name.is_none() => render(resolve, t),
        _ => def.name.clone().unwrap_or_else(|| "?".into()),
    }
}

/// The first line of an error chain, for one-line messages.
pub(crate) fn one_line(e: &anyhow::Error) -> String {
    format!("{e:#}").lines().next().unwrap_or_default().to_string()
}
