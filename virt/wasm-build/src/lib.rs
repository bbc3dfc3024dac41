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

fn workspace_root(manifest_dir: &Path) -> PathBuf {
    manifest_dir
        .ancestors()
        .find(|dir| {
            std::fs::read_to_string(dir.join("Cargo.toml")).is_ok_and(|toml| toml.contains("[workspace]"))
        })
        .expect("the crate is inside the kv-virt workspace")
        .to_path_buf()
}
