//! An embedded wasmtime 48 that runs composed components the way a generic
//! WASI 0.2 runtime would: `wasi:cli/run` commands with preopened
//! directories, arguments, environment and outgoing `wasi:http`. It knows
//! nothing about `wasi:keyvalue`: the point of kv-virt is that it needs not.
//!
//! A [`Runner`] compiles a component once and instantiates it any number of
//! times, each run in its own `Store` (so tests can run many instances at
//! once on separate threads).

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, anyhow};
use wasmtime::component::{Component, Linker, ResourceTable};
use wasmtime::{Config, Engine, Store};
use wasmtime_wasi::p2::bindings::sync::CommandPre;
use wasmtime_wasi::p2::pipe::MemoryOutputPipe;
use wasmtime_wasi::{FsPerms, I32Exit, WasiCtx, WasiCtxView, WasiView};
use wasmtime_wasi_http::{WasiHttpCtx, WasiHttpCtxView, WasiHttpView};

/// Everything one run of a command sees.
#[derive(Clone, Debug, Default)]
pub struct RunOptions {
    /// `argv[1..]` (the runner supplies `argv[0]`).
    pub args: Vec<String>,
    pub env: Vec<(String, String)>,
    /// Host directory → guest path.
    pub preopens: Vec<(PathBuf, String)>,
    /// Collect stdout/stderr into [`RunOutput`] instead of inheriting them.
    pub capture_output: bool,
}

/// How a run ended.
#[derive(Debug)]
pub struct RunOutput {
    /// 0 when `run` returned `ok` (or the guest exited with 0).
    pub exit_code: i32,
    pub stdout: Vec<u8>,
    pub stderr: Vec<u8>,
}

impl RunOutput {
    pub fn stdout_text(&self) -> String {
        String::from_utf8_lossy(&self.stdout).into_owned()
    }
    pub fn stderr_text(&self) -> String {
        String::from_utf8_lossy(&self.stderr).into_owned()
    }
}

struct Host {
    wasi: WasiCtx,
    http: WasiHttpCtx,
    table: ResourceTable,
}

impl WasiView for Host {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

impl WasiHttpView for Host {
    fn http(&mut self) -> WasiHttpCtxView<'_> {
        WasiHttpCtxView {
            ctx: &mut self.http,
            table: &mut self.table,
            hooks: wasmtime_wasi_http::default_hooks(),
        }
    }
}

/// The shared engine and linker (WASI 0.2 and outgoing wasi:http).
pub struct Runtime {
    engine: Engine,
    linker: Linker<Host>,
}

/// A compiled command, ready to be instantiated many times.
#[derive(Clone)]
pub struct Command {
    engine: Engine,
    pre: CommandPre<Host>,
}

fn wasm_err(e: wasmtime::Error) -> anyhow::Error {
    anyhow!("{e:?}")
}

impl Runtime {
    pub fn new() -> Result<Self> {
        let mut config = Config::new();
        config.wasm_component_model(true);
        let engine = Engine::new(&config).map_err(wasm_err)?;
        let mut linker = Linker::new(&engine);
        wasmtime_wasi::p2::add_to_linker_sync(&mut linker).map_err(wasm_err)?;
        wasmtime_wasi_http::p2::add_only_http_to_linker_sync(&mut linker).map_err(wasm_err)?;
        Ok(Self { engine, linker })
    }

    /// Compiles a component (bytes of a `.wasm` file), or loads one this
    /// runner precompiled ([`Runtime::precompile`]).
    pub fn command(&self, wasm: &[u8]) -> Result<Command> {
        let component = if Engine::detect_precompiled(wasm).is_some() {
            // SAFETY: only files written by `precompile` of this same build are
            // passed here (the tests' crash runs); wasmtime checks the engine
            // configuration and version before loading.
            unsafe { Component::deserialize(&self.engine, wasm) }.map_err(wasm_err)?
        } else {
            Component::new(&self.engine, wasm).map_err(wasm_err)?
        };
        let instance_pre = self
            .linker
            .instantiate_pre(&component)
            .map_err(wasm_err)
            .context("the component's imports cannot be satisfied by WASI 0.2 + wasi:http")?;
        let pre = CommandPre::new(instance_pre)
            .map_err(wasm_err)
            .context("the component does not export wasi:cli/run")?;
        Ok(Command {
            engine: self.engine.clone(),
            pre,
        })
    }

    /// Compiles a component ahead of time, so that many short-lived runner
    /// processes (the crash tests) start without compiling it each time.
    pub fn precompile(&self, wasm: &[u8]) -> Result<Vec<u8>> {
        self.engine.precompile_component(wasm).map_err(wasm_err)
    }

    pub fn command_from_file(&self, path: &Path) -> Result<Command> {
        let wasm = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
        self.command(&wasm)
            .with_context(|| format!("loading {}", path.display()))
    }
}

impl Command {
    /// Runs the command once, in a fresh instance.
    pub fn run(&self, options: &RunOptions) -> Result<RunOutput> {
        let mut builder = WasiCtx::builder();
        let mut argv = vec!["main".to_string()];
        argv.extend(options.args.iter().cloned());
        builder.args(&argv).envs(&options.env);
        builder.inherit_network().allow_ip_name_lookup(true);
        // Each run has its thread to itself (this is the synchronous API):
        // do file I/O on it rather than hopping to a blocking pool for every
        // wasi:filesystem call, which costs ~25 µs a call (see tests/bench).
        builder.allow_blocking_current_thread(true);
        for (host, guest) in &options.preopens {
            builder
                .preopened_dir(host, guest, FsPerms::ReadWrite)
                .map_err(wasm_err)
                .with_context(|| format!("preopening {}", host.display()))?;
        }
        let stdout = MemoryOutputPipe::new(usize::MAX);
        let stderr = MemoryOutputPipe::new(usize::MAX);
        if options.capture_output {
            builder.stdout(stdout.clone()).stderr(stderr.clone());
        } else {
            builder.inherit_stdio();
        }
        let host = Host {
            wasi: builder.build(),
            http: WasiHttpCtx::new(),
            table: ResourceTable::new(),
        };
        let mut store = Store::new(&self.engine, host);
        let command = self.pre.instantiate(&mut store).map_err(wasm_err)?;
        let exit_code = match command.wasi_cli_run().call_run(&mut store) {
            Ok(Ok(())) => 0,
            Ok(Err(())) => 1,
            Err(e) => match e.downcast_ref::<I32Exit>() {
                Some(exit) => exit.0,
                None => return Err(wasm_err(e).context("the component trapped")),
            },
        };
        drop(store);
        Ok(RunOutput {
            exit_code,
            stdout: stdout.contents().to_vec(),
            stderr: stderr.contents().to_vec(),
        })
    }
}
