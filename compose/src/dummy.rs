use std::path::Path;

use anyhow::Result;
use wit_parser::{ManglingAndAbi, Resolve};

/// A component with exactly the imports and exports of `world` in the WIT
/// `package` text, and no behaviour: for checking what composes with what,
/// and for tests. `deps` is a WIT directory (such as the repository's
/// `wit/`) whose packages `package` may use.
pub fn dummy_component(deps: Option<&Path>, package: &str, world: &str) -> Result<Vec<u8>> {
    let mut resolve = Resolve::default();
    if let Some(dir) = deps {
        resolve.push_dir(dir)?;
    }
    let package = resolve.push_str("dummy.wit", package)?;
    let world = resolve.select_world(&[package], Some(world))?;
    let module = wit_component::dummy_module(&resolve, world, ManglingAndAbi::Standard32);
    crate::encode_component(module, &resolve, world)
}
