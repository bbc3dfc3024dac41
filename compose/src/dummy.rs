use anyhow::{Context, Result};
use wit_component::{ComponentEncoder, StringEncoding};
use wit_parser::{ManglingAndAbi, Resolve};

/// A component with exactly the imports and exports of `world` in the WIT
/// `packages` (dependencies first, the world's package last) and no
/// behaviour: for checking what composes with what, and for tests.
pub fn dummy_component(packages: &[&str], world: &str) -> Result<Vec<u8>> {
    let mut resolve = Resolve::default();
    let mut last = None;
    for (i, text) in packages.iter().enumerate() {
        last = Some(resolve.push_str(format!("package{i}.wit"), text)?);
    }
    let package = last.context("no WIT package given")?;
    let world = resolve.select_world(&[package], Some(world))?;
    let mut module = wit_component::dummy_module(&resolve, world, ManglingAndAbi::Standard32);
    wit_component::embed_component_metadata(&mut module, &resolve, world, StringEncoding::UTF8)?;
    ComponentEncoder::default()
        .module(&module)?
        .validate(true)
        .encode()
}
