//! An embedded wasmtime 48 that runs composed components the way a generic
//! WASI 0.2 runtime would: `wasi:cli/run` commands with preopened
//! directories, arguments, environment and outgoing `wasi:http`, and
//! `wasi:http/incoming-handler` services, served like `wasmtime serve`
//! (see [`serve`]). It knows nothing about `wasi:keyvalue`: the point of
//! kv-virt is that it needs not (except, with the `wasi-keyvalue` feature,
//! wasmtime's in-memory host store, the benchmarks' baseline).
//!
//! A [`Runtime`] compiles a component once and instantiates it any number of
//! times, each run (or request) in its own `Store` (so tests can run many
//! instances at once on separate threads).

pub mod cli;
mod pool;
pub mod serve;

pub use pool::PooledHttp;
pub use serve::{ServeOptions, Server, Service};

use std::path::{Path, PathBuf};
#[cfg(feature = "wasi-keyvalue")]
use std::sync::Arc;

use anyhow::{Context, Result, anyhow};
use wasmtime::component::{Component, InstancePre, Linker, ResourceTable};
use wasmtime::{Config, Engine, Store};
use wasmtime_wasi::p2::bindings::CommandPre;
use wasmtime_wasi::p2::bindings::sync::CommandPre as SyncCommandPre;
use wasmtime_wasi::p2::pipe::{MemoryInputPipe, MemoryOutputPipe};
use wasmtime_wasi::{FsPerms, I32Exit, WasiCtx, WasiCtxBuilder, WasiCtxView, WasiView};
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
    /// What the command reads on stdin (else: stdin inherited, or empty
    /// when the output is captured).
    pub stdin: Option<Vec<u8>>,
    /// Send outgoing `wasi:http` requests over pooled keep-alive
    /// connections ([`PooledHttp`]) instead of a new connection each, as
    /// `wasmtime run` does.
    pub reuse_connections: bool,
    /// What wasmtime's in-memory `wasi:keyvalue` holds when the run starts.
    #[cfg(feature = "wasi-keyvalue")]
    pub keyvalue: HostKeyValue,
}

/// The data of wasmtime's in-memory host `wasi:keyvalue`
/// (`wasmtime-wasi-keyvalue`, the 0.2.0-draft). That host serves one bucket,
/// named `""`, and hands each `open` a copy of this data: writes never
/// outlive the instance.
#[cfg(feature = "wasi-keyvalue")]
#[derive(Clone)]
pub struct HostKeyValue(Arc<wasmtime_wasi_keyvalue::WasiKeyValueCtx>);

#[cfg(feature = "wasi-keyvalue")]
impl HostKeyValue {
    pub fn new(entries: impl IntoIterator<Item = (String, Vec<u8>)>) -> HostKeyValue {
        HostKeyValue(Arc::new(
            wasmtime_wasi_keyvalue::WasiKeyValueCtxBuilder::new()
                .in_memory_data(entries)
                .build(),
        ))
    }
}

#[cfg(feature = "wasi-keyvalue")]
impl Default for HostKeyValue {
    fn default() -> HostKeyValue {
        HostKeyValue::new([])
    }
}

#[cfg(feature = "wasi-keyvalue")]
impl std::fmt::Debug for HostKeyValue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("HostKeyValue")
    }
}

/// How a run ended.
#[derive(Debug)]
pub struct RunOutput {
    /// 0 when `run` returned `ok` (or the guest exited with 0).
    pub exit_code: i32,
    pub stdout: Vec<u8>,
    pub stderr: Vec<u8>,
    /// The most linear memory the instance's modules held at once, in total
    /// (`None` where a runner does not measure it). Linear memory only
    /// grows, so this is also what they held at the end.
    pub peak_memory_bytes: Option<usize>,
}

impl RunOutput {
    pub fn stdout_text(&self) -> String {
        String::from_utf8_lossy(&self.stdout).into_owned()
    }
    pub fn stderr_text(&self) -> String {
        String::from_utf8_lossy(&self.stderr).into_owned()
    }
}

/// The state of one instance.
struct Host {
    wasi: WasiCtx,
    http: WasiHttpCtx,
    /// How outgoing requests are sent: pooled, or wasmtime's default.
    http_pool: Option<PooledHttp>,
    table: ResourceTable,
    memory: MemoryMeter,
    #[cfg(feature = "wasi-keyvalue")]
    keyvalue: HostKeyValue,
}

/// Counts the linear memory an instance's modules hold (a
/// [`wasmtime::ResourceLimiter`] that allows everything): wasmtime reports
/// each memory's creation and growth to it.
#[derive(Default)]
struct MemoryMeter {
    bytes: usize,
}

impl wasmtime::ResourceLimiter for MemoryMeter {
    fn memory_growing(
        &mut self,
        current: usize,
        desired: usize,
        maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        if maximum.is_none_or(|maximum| desired <= maximum) {
            self.bytes += desired.saturating_sub(current);
        }
        Ok(true)
    }

    fn table_growing(
        &mut self,
        _current: usize,
        _desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        Ok(true)
    }
}

impl Host {
    fn new(
        wasi: WasiCtx,
        http_pool: Option<PooledHttp>,
        #[cfg(feature = "wasi-keyvalue")] keyvalue: &HostKeyValue,
    ) -> Host {
        Host {
            wasi,
            http: WasiHttpCtx::new(),
            http_pool,
            table: ResourceTable::new(),
            memory: MemoryMeter::default(),
            #[cfg(feature = "wasi-keyvalue")]
            keyvalue: keyvalue.clone(),
        }
    }
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
            hooks: match &mut self.http_pool {
                Some(pool) => pool,
                None => wasmtime_wasi_http::default_hooks(),
            },
        }
    }
}

/// Which of wasmtime-wasi's WASI 0.2 bindings a [`Runtime`] links.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Bindings {
    /// The asynchronous bindings: a command runs on a single-threaded tokio
    /// runtime of its own, so its outgoing connections are driven on its own
    /// thread. What `kv-run` uses; services need them.
    #[default]
    Async,
    /// The synchronous bindings (`wasmtime_wasi::p2::add_to_linker_sync`),
    /// as a plain embedding would link them: every `poll` is a `block_on`
    /// on wasmtime-wasi's shared multi-threaded runtime. Commands only; the
    /// benchmark compares the two.
    Sync,
}

/// How a [`Runtime`] is linked.
#[derive(Clone, Copy, Debug, Default)]
pub struct RuntimeOptions {
    pub bindings: Bindings,
    /// Also link wasmtime's in-memory host `wasi:keyvalue`
    /// (`wasmtime-wasi-keyvalue`, the 0.2.0-draft): the home host of apps
    /// written for `wasmtime run -S keyvalue`, which tests compare kv-virt
    /// with, and the benchmarks' ceiling. `kv-run` never links it.
    #[cfg(feature = "wasi-keyvalue")]
    pub host_keyvalue: bool,
}

/// The shared engine and linker (WASI 0.2 and outgoing wasi:http).
pub struct Runtime {
    engine: Engine,
    linker: Linker<Host>,
    bindings: Bindings,
}

/// A compiled command, ready to be instantiated many times.
#[derive(Clone)]
pub struct Command {
    engine: Engine,
    pre: CommandPreOf,
}

#[derive(Clone)]
enum CommandPreOf {
    Async(CommandPre<Host>),
    Sync(SyncCommandPre<Host>),
}

fn wasm_err(e: wasmtime::Error) -> anyhow::Error {
    anyhow!("{e:?}")
}

/// Adds wasmtime's in-memory `wasi:keyvalue`.
#[cfg(feature = "wasi-keyvalue")]
fn add_host_keyvalue(linker: &mut Linker<Host>) -> Result<()> {
    wasmtime_wasi_keyvalue::add_to_linker(linker, |h: &mut Host| {
        wasmtime_wasi_keyvalue::WasiKeyValue::new(&h.keyvalue.0, &mut h.table)
    })
    .map_err(wasm_err)
}

/// What every instance's WASI context has, command or service: the
/// environment, the network (outgoing wasi:http and sockets), and host
/// directories preopened read-write.
fn wasi_builder(env: &[(String, String)], preopens: &[(PathBuf, String)]) -> Result<WasiCtxBuilder> {
    let mut builder = WasiCtx::builder();
    builder.envs(env);
    builder.inherit_network().allow_ip_name_lookup(true);
    // File calls on the instance's own thread, not hopped to tokio's
    // blocking pool (~25 µs a call, see tests/bench and serve.rs). Before
    // the preopens, which copy it.
    builder.allow_blocking_current_thread(true);
    for (host, guest) in preopens {
        builder
            .preopened_dir(host, guest, FsPerms::ReadWrite)
            .map_err(wasm_err)
            .with_context(|| format!("preopening {}", host.display()))?;
    }
    Ok(builder)
}

impl Runtime {
    /// A runtime with the asynchronous bindings, as `kv-run` runs.
    pub fn new() -> Result<Self> {
        Runtime::with_options(RuntimeOptions::default())
    }

    /// One runtime (asynchronous bindings) for the whole process, made on
    /// first use: compiling is per engine, so tests and benchmarks share it.
    pub fn shared() -> &'static Runtime {
        static SHARED: std::sync::OnceLock<Runtime> = std::sync::OnceLock::new();
        SHARED.get_or_init(|| Runtime::new().expect("creating the wasmtime engine"))
    }

    pub fn with_options(options: RuntimeOptions) -> Result<Self> {
        let bindings = options.bindings;
        let mut config = Config::new();
        config.wasm_component_model(true);
        let engine = Engine::new(&config).map_err(wasm_err)?;
        let mut linker = Linker::new(&engine);
        match bindings {
            Bindings::Async => {
                wasmtime_wasi::p2::add_to_linker_async(&mut linker).map_err(wasm_err)?;
                wasmtime_wasi_http::p2::add_only_http_to_linker_async(&mut linker).map_err(wasm_err)?;
            }
            Bindings::Sync => {
                wasmtime_wasi::p2::add_to_linker_sync(&mut linker).map_err(wasm_err)?;
                wasmtime_wasi_http::p2::add_only_http_to_linker_sync(&mut linker).map_err(wasm_err)?;
            }
        }
        #[cfg(feature = "wasi-keyvalue")]
        if options.host_keyvalue {
            add_host_keyvalue(&mut linker)?;
        }
        Ok(Self {
            engine,
            linker,
            bindings,
        })
    }

    pub fn bindings(&self) -> Bindings {
        self.bindings
    }

    /// Compiles a component (bytes of a `.wasm` file), or loads one this
    /// runner precompiled ([`Runtime::precompile`]).
    pub fn command(&self, wasm: &[u8]) -> Result<Command> {
        let instance_pre = self.instance_pre(wasm)?;
        let pre = match self.bindings {
            Bindings::Async => CommandPre::new(instance_pre).map(CommandPreOf::Async),
            Bindings::Sync => SyncCommandPre::new(instance_pre).map(CommandPreOf::Sync),
        }
        .map_err(wasm_err)
        .context("the component does not export wasi:cli/run")?;
        Ok(Command {
            engine: self.engine.clone(),
            pre,
        })
    }

    /// Compiles or loads a component and links its imports, for either
    /// kind of component: commands and services share the linker.
    pub(crate) fn instance_pre(&self, wasm: &[u8]) -> Result<InstancePre<Host>> {
        let component = self.component(wasm)?;
        self.linker
            .instantiate_pre(&component)
            .map_err(wasm_err)
            .context("the component's imports cannot be satisfied by WASI 0.2 + wasi:http")
    }

    fn component(&self, wasm: &[u8]) -> Result<Component> {
        if Engine::detect_precompiled(wasm).is_some() {
            // SAFETY: only files written by `precompile` of this same build are
            // passed here (the tests' crash runs); wasmtime checks the engine
            // configuration and version before loading.
            unsafe { Component::deserialize(&self.engine, wasm) }.map_err(wasm_err)
        } else {
            Component::new(&self.engine, wasm).map_err(wasm_err)
        }
    }

    /// Compiles a component ahead of time, so that many short-lived runner
    /// processes (the crash tests) start without compiling it each time.
    pub fn precompile(&self, wasm: &[u8]) -> Result<Vec<u8>> {
        self.engine.precompile_component(wasm).map_err(wasm_err)
    }

    pub fn command_from_file(&self, path: &Path) -> Result<Command> {
        from_file(path, |wasm| self.command(wasm))
    }
}

/// Reads a `.wasm` file and loads it, naming the file in any error.
fn from_file<T>(path: &Path, load: impl FnOnce(&[u8]) -> Result<T>) -> Result<T> {
    let wasm = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
    load(&wasm).with_context(|| format!("loading {}", path.display()))
}

impl Command {
    /// Runs the command once, in a fresh instance.
    pub fn run(&self, options: &RunOptions) -> Result<RunOutput> {
        let mut builder = wasi_builder(&options.env, &options.preopens)?;
        let mut argv = vec!["main".to_string()];
        argv.extend(options.args.iter().cloned());
        builder.args(&argv);
        let stdout = MemoryOutputPipe::new(usize::MAX);
        let stderr = MemoryOutputPipe::new(usize::MAX);
        if options.capture_output {
            builder.stdout(stdout.clone()).stderr(stderr.clone());
        } else {
            builder.inherit_stdio();
        }
        if let Some(input) = &options.stdin {
            builder.stdin(MemoryInputPipe::new(input.clone()));
        }
        let host = Host::new(
            builder.build(),
            options.reuse_connections.then(PooledHttp::new),
            #[cfg(feature = "wasi-keyvalue")]
            &options.keyvalue,
        );
        let mut store = Store::new(&self.engine, host);
        store.limiter(|host| &mut host.memory);
        let result = match &self.pre {
            CommandPreOf::Async(pre) => {
                // The pool's connections live on this runtime, made for this run.
                let runtime = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .context("starting the run's tokio runtime")?;
                runtime.block_on(async {
                    let command = pre.instantiate_async(&mut store).await?;
                    command.wasi_cli_run().call_run(&mut store).await
                })
            }
            CommandPreOf::Sync(pre) => pre
                .instantiate(&mut store)
                .and_then(|command| command.wasi_cli_run().call_run(&mut store)),
        };
        let exit_code = match result {
            Ok(Ok(())) => 0,
            Ok(Err(())) => 1,
            Err(e) => match e.downcast_ref::<I32Exit>() {
                Some(exit) => exit.0,
                None => return Err(wasm_err(e).context("the component trapped")),
            },
        };
        let peak_memory_bytes = Some(store.data().memory.bytes);
        drop(store);
        Ok(RunOutput {
            exit_code,
            stdout: stdout.contents().to_vec(),
            stderr: stderr.contents().to_vec(),
            peak_memory_bytes,
        })
    }
}
