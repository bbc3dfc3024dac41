//! Stand-ins for imports a component will not use: a generated component
//! that exports the interfaces, every function of which traps if called.
//! kv-route links all three backends, so it imports `wasi:http`; when no
//! route uses kv-http, a stand-in satisfies that import inside the
//! composition and the composed app needs no `wasi:http` from its runtime
//! (`wasmtime run` links it only with `-S http`).

use anyhow::{Context, Result, bail};
use wit_parser::ManglingAndAbi;

use crate::inspect::{in_package, inspect_named, one_line};
use crate::plug::connect;

/// `component` with its imports from `package` (`"wasi:http"`) satisfied by
/// a stand-in; the result exports what `component` exports.
pub fn stand_in_for_package(component: &[u8], package: &str) -> Result<Vec<u8>> {
    let info = inspect_named(component, "the component")?;
    let interfaces: Vec<String> = info
        .imports
        .iter()
        .filter(|i| in_package(&i.name, package))
        .map(|i| i.name.clone())
        .collect();
    if interfaces.is_empty() {
        bail!("the component imports nothing from {package}");
    }
    // The interfaces as the component itself declares them (same versions,
    // same types), from the WIT decoded out of it.
    let mut resolve = info.resolve.clone();
    let exports: String = interfaces
        .iter()
        .map(|name| format!("export {name};\n"))
        .collect();
    let stand_in = resolve
        .push_str(
            "stand-in.wit",
            &format!("package kv-virt:stand-in;\nworld stand-in {{\n{exports}}}\n"),
        )
        .context("declaring the stand-in")?;
    let world = resolve.select_world(&[stand_in], Some("stand-in"))?;
    let module = wit_component::dummy_module(&resolve, world, ManglingAndAbi::Standard32);
    let stand_in = crate::encode_component(module, &resolve, world).context("encoding the stand-in")?;
    let connections: Vec<(String, String)> = interfaces.iter().map(|n| (n.clone(), n.clone())).collect();
    let exports: Vec<(String, String)> = info
        .exports
        .iter()
        .map(|e| (e.name.clone(), e.name.clone()))
        .collect();
    connect(&stand_in, component, &connections, &exports)
        .map_err(|e| anyhow::anyhow!("plugging stand-ins for {package}: {}", one_line(&e)))
}
