//! Running composed components on Node through jco: `tests/node/run.mjs`
//! transpiles a component with the pinned `@bytecodealliance/jco` and runs it
//! on `@bytecodealliance/preview2-shim`, installed by `npm ci` on first use.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;

use anyhow::{Context, Result, anyhow, bail};
use kv_runner::{RunOptions, RunOutput};

fn node_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("node")
}

/// Checks that node and npm are there and installs `tests/node`'s packages
/// with `npm ci` unless they are already installed from the current lock
/// file. Runs once per test binary; tests that call it at once wait for it.
fn ensure_installed() -> Result<()> {
    static INSTALLED: OnceLock<Result<(), String>> = OnceLock::new();
    INSTALLED
        .get_or_init(|| install().map_err(|e| format!("{e:#}")))
        .clone()
        .map_err(|e| anyhow!("{e}"))
}

fn install() -> Result<()> {
    for tool in ["node", "npm"] {
        let found = Command::new(tool)
            .arg("--version")
            .stdout(Stdio::null())
            .status()
            .is_ok_and(|status| status.success());
        if !found {
            bail!("`{tool}` is not on PATH: the Node tests need Node.js 20 or later with npm");
        }
    }
    let dir = node_dir();
    // npm writes node_modules/.package-lock.json last; an older one (or
    // none) means packages from another lock file, or none.
    let modified = |path: PathBuf| std::fs::metadata(path).and_then(|m| m.modified()).ok();
    let installed = modified(dir.join("node_modules/.package-lock.json"));
    if installed.is_some() && installed >= modified(dir.join("package-lock.json")) {
        return Ok(());
    }
    let output = Command::new("npm")
        .args(["ci", "--no-audit", "--no-fund"])
        .current_dir(&dir)
        .output()
        .context("running npm ci")?;
    if !output.status.success() {
        bail!(
            "`npm ci` in {} failed ({}):\n{}",
            dir.display(),
            output.status,
            String::from_utf8_lossy(&output.stderr)
        );
    }
    Ok(())
}

/// Runs a command component on Node (`node tests/node/run.mjs`) with the
/// given arguments, environment and preopened directories, and collects its
/// output (Node's output is always captured).
pub fn run_on_node(component: &Path, options: &RunOptions) -> Result<RunOutput> {
    if options.stdin.is_some() {
        bail!("run_on_node gives the component no stdin");
    }
    ensure_installed()?;
    let mut node = Command::new("node");
    node.arg(node_dir().join("run.mjs"));
    for (host, guest) in &options.preopens {
        node.arg("--dir").arg(format!("{}::{guest}", host.display()));
    }
    for (name, value) in &options.env {
        node.arg("--env").arg(format!("{name}={value}"));
    }
    node.arg(component).arg("--").args(&options.args);
    let output = node
        .stdin(Stdio::null())
        .output()
        .with_context(|| format!("running {} on node", component.display()))?;
    let Some(exit_code) = output.status.code() else {
        bail!(
            "node running {} was killed: {}",
            component.display(),
            output.status
        );
    };
    Ok(RunOutput {
        exit_code,
        stdout: output.stdout,
        stderr: output.stderr,
        peak_memory_bytes: None,
    })
}
