//! An embedded wasmtime 48 that runs composed components the way a generic
//! WASI runtime would: `wasi:cli/run` commands (WASI 0.2, or 0.3's async
//! `run`) with preopened directories, arguments, environment and outgoing
//! `wasi:http`, and `wasi:http/incoming-handler@0.2` or
//! `wasi:http/handler@0.3` services, served like `wasmtime serve` (see
//! [`serve`]). Both WASI 0.2 and 0.3 are linked, whichever a component
//! runs as: a composed 0.3 app carries adapters that import WASI 0.2
//! (kv-fs's `wasi:filesystem`, kv-http's `wasi:http/outgoing-handler`).
//! It knows nothing about `wasi:keyvalue`: the point of kv-virt is that it
//! needs not (except, with the `wasi-keyvalue` feature, wasmtime's
//! in-memory host store, the benchmarks' baseline).
//!
//! A [`Runtime`] compiles a component once and instantiates it any number of
//! times, each run (or request) in its own `Store` (so tests can run many
//! instances at once on separate threads).

pub mod cli;
mod pool;
pub mod serve;

pub use pool::PooledHttp;
pub use serve::{ServeOptions, Server, Service};

/// Which WASI a command or service was written for, picked from what the
/// component exports.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Wasi {
    /// `wasi:cli/run@0.2.x`, `wasi:http/incoming-handler@0.2.x`.
    P2,
    /// `wasi:cli/run@0.3.0`, `wasi:http/handler@0.3.0`: async exports, run
    /// in wasmtime's concurrent event loop (`run_concurrent`).
    P3,
}

use std::path::{Path, PathBuf};
#[cfg(feature = "wasi-keyvalue")]
use std::sync::Arc;

use anyhow::{Context, Result, anyhow, bail};
use wasmtime::component::{Component, InstancePre, Linker, ResourceTable};
use wasmtime::{Config, Engine, Store};
use wasmtime_wasi::p2::bindings::CommandPre;
use wasmtime_wasi::p2::bindings::sync::CommandPre as SyncCommandPre;
use wasmtime_wasi::p2::pipe::{MemoryInputPipe, MemoryOutputPipe};
use wasmtime_wasi::p3::bindings::CommandPre as P3CommandPre;
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

/// Which of wasmtime-wasi's bindings a [`Runtime`] links.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Bindings {
    /// The asynchronous WASI 0.2 bindings and WASI 0.3 (with its
    /// `wasi:http`): a command runs on a single-threaded tokio runtime of
    /// its own, so its outgoing connections are driven on its own thread.
    /// What `kv-run` uses; services and WASI 0.3 components need them.
    #[default]
    Async,
    /// The synchronous WASI 0.2 bindings
    /// (`wasmtime_wasi::p2::add_to_linker_sync`), as a plain embedding
    /// would link them: every `poll` is a `block_on` on wasmtime-wasi's
    /// shared multi-threaded runtime. WASI 0.2 commands only; the benchmark
    /// compares the two.
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

/// The shared engine and linker (WASI 0.2 and 0.3, and outgoing wasi:http).
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
    P3(P3CommandPre<Host>),
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
        // WASI 0.3's async functions, streams and futures; WASI 0.2
        // components run as before with it on.
        config.wasm_component_model_async(true);
        let engine = Engine::new(&config).map_err(wasm_err)?;
        let mut linker = Linker::new(&engine);
        match bindings {
            Bindings::Async => {
                wasmtime_wasi::p2::add_to_linker_async(&mut linker).map_err(wasm_err)?;
                wasmtime_wasi_http::p2::add_only_http_to_linker_async(&mut linker).map_err(wasm_err)?;
                wasmtime_wasi::p3::add_to_linker(&mut linker).map_err(wasm_err)?;
                wasmtime_wasi_http::p3::add_to_linker(&mut linker).map_err(wasm_err)?;
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
    /// runner precompiled ([`Runtime::precompile`]): a command exporting
    /// `wasi:cli/run@0.2.x` or `wasi:cli/run@0.3.0`.
    pub fn command(&self, wasm: &[u8]) -> Result<Command> {
        let component = self.component(wasm)?;
        let wasi = pick_wasi(&component, "wasi:cli/run")?;
        if wasi == Wasi::P3 && self.bindings != Bindings::Async {
            bail!("a WASI 0.3 command (wasi:cli/run@0.3) needs a runtime with the asynchronous bindings");
        }
        let instance_pre = self.instance_pre(&component)?;
        let pre = match (wasi, self.bindings) {
            (Wasi::P3, _) => P3CommandPre::new(instance_pre).map(CommandPreOf::P3),
            (Wasi::P2, Bindings::Async) => CommandPre::new(instance_pre).map(CommandPreOf::Async),
            (Wasi::P2, Bindings::Sync) => SyncCommandPre::new(instance_pre).map(CommandPreOf::Sync),
        }
        .map_err(wasm_err)
        .with_context(|| {
            format!(
                "wasi:cli/run is not the version kv-run supports{}",
                exports_list(&component)
            )
        })?;
        Ok(Command {
            engine: self.engine.clone(),
            pre,
        })
    }

    /// Links a component's imports, for either kind of component: commands
    /// and services share the linker.
    pub(crate) fn instance_pre(&self, component: &Component) -> Result<InstancePre<Host>> {
        let linked = match self.bindings {
            Bindings::Async => "WASI 0.2 and 0.3 (with wasi:http)",
            Bindings::Sync => "WASI 0.2 (with wasi:http)",
        };
        self.linker
            .instantiate_pre(component)
            .map_err(wasm_err)
            .with_context(|| format!("the component's imports cannot be satisfied by {linked}"))
    }

    pub(crate) fn component(&self, wasm: &[u8]) -> Result<Component> {
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

/// Which WASI a component was written for, from the versions of what it
/// exports: `interface_p3@0.3.x` (say `wasi:http/handler`) first, then
/// `interface_p2@0.2.x` (`wasi:http/incoming-handler`).
pub(crate) fn pick_wasi_of(component: &Component, interface_p2: &str, interface_p3: &str) -> Result<Wasi> {
    let exports = export_names(component);
    let exports_version = |interface: &str, version: &str| {
        exports.iter().any(|name| {
            name.strip_prefix(interface)
                .is_some_and(|v| v.starts_with(version))
        })
    };
    if exports_version(interface_p3, "@0.3.") {
        Ok(Wasi::P3)
    } else if exports_version(interface_p2, "@0.2.") {
        Ok(Wasi::P2)
    } else {
        bail!(
            "the component exports neither {interface_p2}@0.2 nor {interface_p3}@0.3{}",
            exports_list(component)
        )
    }
}

fn pick_wasi(component: &Component, interface: &str) -> Result<Wasi> {
    pick_wasi_of(component, interface, interface)
}

fn export_names(component: &Component) -> Vec<String> {
    let ty = component.component_type();
    let engine = component.engine();
    ty.exports(engine).map(|(name, _)| name.to_string()).collect()
}

/// "; it exports a, b" (or "; it exports nothing"), for error messages.
pub(crate) fn exports_list(component: &Component) -> String {
    let names = export_names(component);
    if names.is_empty() {
        "; it exports nothing".to_string()
    } else {
        format!("; it exports {}", names.join(", "))
    }
}

/// The tokio runtime of one run: outgoing connections (and the pool's) are
/// driven on the run's own thread.
fn run_runtime() -> Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the run's tokio runtime")
}

/// Reads a `.wasm` file and loads it, naming the file in any error.
fn from_file<T>(path: &Path, load: impl FnOnce(&[u8]) -> Result<T>) -> Result<T> {
    let wasm = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
    load(&wasm).with_context(|| format!("loading {}", path.display()))
}

impl Command {
    /// Whether it is a WASI 0.2 or a WASI 0.3 command.
    pub fn wasi(&self) -> Wasi {
        match self.pre {
            CommandPreOf::Async(_) | CommandPreOf::Sync(_) => Wasi::P2,
            CommandPreOf::P3(_) => Wasi::P3,
        }
    }

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
            CommandPreOf::Async(pre) => run_runtime()?.block_on(async {
                let command = pre.instantiate_async(&mut store).await?;
                command.wasi_cli_run().call_run(&mut store).await
            }),
            CommandPreOf::Sync(pre) => pre
                .instantiate(&mut store)
                .and_then(|command| command.wasi_cli_run().call_run(&mut store)),
            CommandPreOf::P3(pre) => run_runtime()?.block_on(async {
                let command = pre.instantiate_async(&mut store).await?;
                // As `wasmtime run`: the run ends when `run` returns,
                // whatever tasks the guest left behind.
                store
                    .run_concurrent(async |accessor| command.wasi_cli_run().call_run(accessor).await)
                    .await?
            }),
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

#[cfg(test)]
mod tests {
    use super::*;

    /// The smallest component: its preamble (magic, version 0x0d, layer 1).
    const EMPTY_COMPONENT: &[u8] = b"\0asm\x0d\x00\x01\x00";

    #[test]
    fn a_component_exporting_neither_run_says_what_it_exports() {
        let error = Runtime::shared()
            .command(EMPTY_COMPONENT)
            .err()
            .expect("not a command");
        assert_eq!(
            format!("{error:#}"),
            "the component exports neither wasi:cli/run@0.2 nor wasi:cli/run@0.3; it exports nothing"
        );
    }

    #[test]
    fn a_component_exporting_no_handler_says_what_it_exports() {
        let error = Runtime::shared()
            .service(EMPTY_COMPONENT)
            .err()
            .expect("not a service");
        assert_eq!(
            format!("{error:#}"),
            "the component exports neither wasi:http/incoming-handler@0.2 nor wasi:http/handler@0.3; \
             it exports nothing"
        );
    }
}
