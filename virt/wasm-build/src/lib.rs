//! Builds the workspace's wasm32-wasip2 crates (adapters, conformance
//! guests, examples) from a build script, so that an ordinary `cargo build`
//! or `cargo test` of the native crates has them, with no manual step (the
//! approach of wasmtime's test-programs crate).
//!
//! The nested cargo uses its own target directory (`<target>/wasm-build`),
//! so it never waits on the outer build's lock, and the `wasm` profile of
//! the workspace (size-tuned release).

use std::env;
use std::path::{Path, PathBuf};
use std::process::Command;

/// The wasm32-wasip2 artifacts directory of a [`build`].
pub struct Artifacts {
    dir: PathBuf,
}

impl Artifacts {
    /// The `.wasm` of a crate: `kv_mem` for the lib of `kv-mem`, the bin
    /// name (`conformance-draft`) for binaries.
    pub fn wasm(&self, artifact: &str) -> PathBuf {
        let path = self.dir.join(format!("{artifact}.wasm"));
        assert!(path.exists(), "{} was not built", path.display());
        path
    }
}

/// Builds `packages` for wasm32-wasip2 with the `wasm` profile, in
/// `<target>/wasm-build`. Call it from a build script; `watch` lists the
/// directories (relative to the workspace root) whose changes must rebuild
/// them.
pub fn build(packages: &[&str], watch: &[&str]) -> Artifacts {
    build_in("wasm-build", packages, &[], watch)
}

/// [`build`], in `<target>/<dir>`, with cargo `features` (`pkg/feature`):
/// for packages that need features of a shared dependency other than those
/// the packages built in `wasm-build` use (cargo builds and writes out a
/// cdylib dependency too, so one build would overwrite the other's `.wasm`).
pub fn build_in(dir: &str, packages: &[&str], features: &[&str], watch: &[&str]) -> Artifacts {
    cargo_build(dir, packages, features, watch, &[])
}

/// [`build_in`] for adapters: `packages` linked as core modules (the
/// linker's `--skip-wit-component`), for [`shrunk_component`] to make
/// components of.
pub fn build_core_modules_in(dir: &str, packages: &[&str], features: &[&str], watch: &[&str]) -> Artifacts {
    cargo_build(
        dir,
        packages,
        features,
        watch,
        &["-Clink-arg=--skip-wit-component"],
    )
}

/// The component for a core module from [`build_core_modules_in`]:
/// Binaryen's `-Oz` over the module (it takes 17-22% off the code that
/// LLVM's `opt-level = "z"` and LTO leave), then wit-component's encoding,
/// as wasm-component-ld would have made it. `scratch` is a file path for
/// the shrunk module (Binaryen reads and writes files).
pub fn shrunk_component(core_module: &Path, scratch: &Path) -> Vec<u8> {
    use wasm_opt::{Feature, OptimizationOptions};
    let mut options = OptimizationOptions::new_optimize_for_size_aggressively();
    // What rustc's wasm32-wasip2 target emits, no more: Binaryen must not
    // bring in instructions that a runtime could lack.
    options.mvp_features_only();
    for feature in [
        Feature::MutableGlobals,
        Feature::TruncSat,
        Feature::SignExt,
        Feature::BulkMemory,
        Feature::ReferenceTypes,
        Feature::Multivalue,
    ] {
        options.enable_feature(feature);
    }
    options.debug_info(false);
    if let Err(error) = options.run(core_module, scratch) {
        panic!("Binaryen could not optimize {}: {error}", core_module.display());
    }
    let module = std::fs::read(scratch).expect("reading Binaryen's output");
    wit_component::ComponentEncoder::default()
        .validate(true)
        .module(&module)
        .and_then(|encoder| encoder.encode())
        .unwrap_or_else(|error| panic!("making a component of {}: {error:#}", core_module.display()))
}

fn cargo_build(
    dir: &str,
    packages: &[&str],
    features: &[&str],
    watch: &[&str],
    rustflags: &[&str],
) -> Artifacts {
    let manifest_dir = PathBuf::from(env::var("CARGO_MANIFEST_DIR").expect("run from a build script"));
    let root = workspace_root(&manifest_dir);
    for dir in watch.iter().chain(&[
        "wit",
        "adapters/core",
        "adapters/glue",
        "Cargo.toml",
        "Cargo.lock",
    ]) {
        println!("cargo:rerun-if-changed={}", root.join(dir).display());
    }
    let target_dir = env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| root.join("target"))
        .join(dir);

    let cargo = env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut command = Command::new(cargo);
    command
        .current_dir(&root)
        .args(["build", "--target", "wasm32-wasip2", "--profile", "wasm"])
        .arg("--target-dir")
        .arg(&target_dir);
    for package in packages {
        command.args(["-p", package]);
    }
    if !features.is_empty() {
        command.arg("--features").arg(features.join(","));
    }
    // The outer build's flags and wrappers (clippy, coverage) are for the host.
    for var in [
        "CARGO_ENCODED_RUSTFLAGS",
        "RUSTFLAGS",
        "CARGO_BUILD_RUSTFLAGS",
        "RUSTC_WORKSPACE_WRAPPER",
        "CARGO_TARGET_DIR",
    ] {
        command.env_remove(var);
    }
    // Panic locations name source files: without the machine's paths
    // (the cargo registry's, the checkout's) the `.wasm` files are a few
    // hundred bytes smaller and the same on every machine.
    let mut flags: Vec<String> = rustflags.iter().map(|flag| flag.to_string()).collect();
    flags.push(format!("--remap-path-prefix={}=", root.display()));
    let cargo_home = env::var_os("CARGO_HOME")
        .map(PathBuf::from)
        .or_else(|| env::var_os("HOME").map(|home| PathBuf::from(home).join(".cargo")));
    if let Some(home) = cargo_home {
        flags.push(format!(
            "--remap-path-prefix={}=",
            home.join("registry").join("src").display()
        ));
    }
    // With `--target`, these reach only the wasm crates, not build scripts.
    command.env("CARGO_ENCODED_RUSTFLAGS", flags.join("\x1f"));
    let output = command.output().expect("running cargo to build the wasm crates");
    if !output.status.success() {
        panic!(
            "building {} for wasm32-wasip2 failed (is the target installed? `rustup target add wasm32-wasip2`):\n{}",
            packages.join(", "),
            String::from_utf8_lossy(&output.stderr)
        );
    }
    Artifacts {
        dir: target_dir.join("wasm32-wasip2").join("wasm"),
    }
}

/// `wasm` without its top-level custom sections named `names` (e.g.
/// `component-name`, the names wasm-component-ld gives a component's
/// instances and functions: kilobytes that nothing reads at run time).
/// Nested modules and components are kept byte for byte.
pub fn without_custom_sections(wasm: &[u8], names: &[&str]) -> Vec<u8> {
    fn leb(bytes: &[u8], at: &mut usize) -> usize {
        let (mut value, mut shift) = (0usize, 0);
        loop {
            let byte = bytes[*at];
            *at += 1;
            value |= usize::from(byte & 0x7f) << shift;
            shift += 7;
            if byte < 0x80 {
                return value;
            }
        }
    }
    assert!(wasm.len() >= 8 && wasm.starts_with(b"\0asm"), "not a wasm binary");
    let mut out = wasm[..8].to_vec();
    let mut at = 8;
    while at < wasm.len() {
        let start = at;
        let id = wasm[at];
        at += 1;
        let size = leb(wasm, &mut at);
        let body = at;
        at += size;
        let dropped = id == 0 && {
            let mut name_at = body;
            let name_len = leb(wasm, &mut name_at);
            names
                .iter()
                .any(|name| name.as_bytes() == &wasm[name_at..name_at + name_len])
        };
        if !dropped {
            out.extend_from_slice(&wasm[start..at]);
        }
    }
    assert_eq!(at, wasm.len(), "a section runs past the end of the binary");
    out
}

fn workspace_root(manifest_dir: &Path) -> PathBuf {
    manifest_dir
        .ancestors()
        .find(|dir| {
            std::fs::read_to_string(dir.join("Cargo.toml")).is_ok_and(|toml| toml.contains("[workspace]"))
        })
        .expect("the crate is inside the kv-virt workspace")
        .to_path_buf()
}

#[cfg(test)]
mod tests {
    use super::without_custom_sections;

    #[test]
    fn drops_only_the_named_top_level_custom_sections() {
        let header = b"\0asm\x0d\0\x01\0";
        let named = |name: &str, body: &[u8]| {
            let mut section = vec![0, (1 + name.len() + body.len()) as u8, name.len() as u8];
            section.extend_from_slice(name.as_bytes());
            section.extend_from_slice(body);
            section
        };
        // A core module section (id 1) whose own bytes hold a custom section
        // of the dropped name: kept as it is.
        let nested = [&b"\0asm\x01\0\0\0"[..], &named("component-name", b"x")].concat();
        let module = [&[1u8, nested.len() as u8][..], &nested].concat();
        let wasm = [
            &header[..],
            &named("component-name", b"names"),
            &module,
            &named("producers", b"p"),
        ]
        .concat();
        let expected = [&header[..], &module, &named("producers", b"p")].concat();
        assert_eq!(without_custom_sections(&wasm, &["component-name"]), expected);
        assert_eq!(without_custom_sections(&wasm, &[]), wasm);
    }
}
