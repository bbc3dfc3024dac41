//! The harness's own wasmtime 48 host, configured as `kv-runner`'s engine
//! (the default configuration, component model on), with WASI 0.2 and
//! wasmtime's in-memory host `wasi:keyvalue` (`wasmtime-wasi-keyvalue`,
//! the 0.2.0-draft) in one linker. It serves two purposes:
//!
//! * the ceiling baseline: the same guest, not composed, every call
//!   crossing the component boundary into a host `HashMap`. That host
//!   serves one bucket, named `""`, and hands each `open` a copy of the data
//!   it was built with (writes never outlive the instance);
//! * a diagnostic: the composed kv-fs guest on wasmtime-wasi's synchronous
//!   bindings (`kv-runner` uses the asynchronous ones, each run on a
//!   single-threaded tokio runtime), with
//!   `WasiCtxBuilder::allow_blocking_current_thread(true)` as in kv-runner:
//!   file I/O on the calling thread instead of tokio's `spawn_blocking`.

use std::path::Path;
use std::sync::Arc;

use anyhow::{Context, Result, anyhow};
use kv_runner::RunOutput;
use wasmtime::component::{Component, Linker, ResourceTable};
use wasmtime::{Config, Engine, Store};
use wasmtime_wasi::p2::bindings::sync::CommandPre;
use wasmtime_wasi::p2::pipe::MemoryOutputPipe;
use wasmtime_wasi::{FsPerms, I32Exit, WasiCtx, WasiCtxView, WasiView};
use wasmtime_wasi_keyvalue::{WasiKeyValue, WasiKeyValueCtx, WasiKeyValueCtxBuilder};

struct Host {
    wasi: WasiCtx,
    table: ResourceTable,
    keyvalue: Arc<WasiKeyValueCtx>,
}

impl WasiView for Host {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

fn wasm_err(e: wasmtime::Error) -> anyhow::Error {
    anyhow!("{e:?}")
}

/// The data the in-memory `wasi:keyvalue` of a fresh instance starts with.
pub fn keyvalue_data(entries: impl IntoIterator<Item = (String, Vec<u8>)>) -> Arc<WasiKeyValueCtx> {
    Arc::new(WasiKeyValueCtxBuilder::new().in_memory_data(entries).build())
}

/// The engine and the linker.
pub struct WasmHost {
    engine: Engine,
    linker: Linker<Host>,
}

/// A compiled command, instantiated afresh by each [`Program::run`].
pub struct Program {
    engine: Engine,
    pre: CommandPre<Host>,
}

/// One run of a [`Program`].
pub struct Run<'a> {
    pub args: Vec<String>,
    /// Preopened as `/data`.
    pub preopen: Option<&'a Path>,
    pub keyvalue: &'a Arc<WasiKeyValueCtx>,
    /// `allow_blocking_current_thread`.
    pub blocking: bool,
}

impl WasmHost {
    pub fn new() -> Result<WasmHost> {
        let mut config = Config::new();
        config.wasm_component_model(true);
        let engine = Engine::new(&config).map_err(wasm_err)?;
        let mut linker = Linker::new(&engine);
        wasmtime_wasi::p2::add_to_linker_sync(&mut linker).map_err(wasm_err)?;
        wasmtime_wasi_keyvalue::add_to_linker(&mut linker, |h: &mut Host| {
            WasiKeyValue::new(&h.keyvalue, &mut h.table)
        })
        .map_err(wasm_err)?;
        Ok(WasmHost { engine, linker })
    }

    pub fn program(&self, wasm: &[u8]) -> Result<Program> {
        let component = Component::new(&self.engine, wasm).map_err(wasm_err)?;
        let pre = self.linker.instantiate_pre(&component).map_err(wasm_err)?;
        Ok(Program {
            engine: self.engine.clone(),
            pre: CommandPre::new(pre).map_err(wasm_err)?,
        })
    }
}

impl Program {
    /// Runs the command once, in a fresh instance, capturing its output.
    pub fn run(&self, run: &Run<'_>) -> Result<RunOutput> {
        let mut builder = WasiCtx::builder();
        // Before the preopen: preopened directories copy the flag.
        builder.allow_blocking_current_thread(run.blocking);
        let mut argv = vec!["main".to_string()];
        argv.extend(run.args.iter().cloned());
        builder.args(&argv);
        if let Some(dir) = run.preopen {
            builder
                .preopened_dir(dir, "/data", FsPerms::ReadWrite)
                .map_err(wasm_err)
                .with_context(|| format!("preopening {}", dir.display()))?;
        }
        let stdout = MemoryOutputPipe::new(usize::MAX);
        let stderr = MemoryOutputPipe::new(usize::MAX);
        builder.stdout(stdout.clone()).stderr(stderr.clone());
        let host = Host {
            wasi: builder.build(),
            table: ResourceTable::new(),
            keyvalue: Arc::clone(run.keyvalue),
        };
        let mut store = Store::new(&self.engine, host);
        let command = self.pre.instantiate(&mut store).map_err(wasm_err)?;
        let exit_code = match command.wasi_cli_run().call_run(&mut store) {
            Ok(Ok(())) => 0,
            Ok(Err(())) => 1,
            Err(e) => match e.downcast_ref::<I32Exit>() {
                Some(exit) => exit.0,
                None => return Err(wasm_err(e).context("the guest trapped")),
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
