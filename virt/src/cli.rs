//! The `kv-virt` command line.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use clap::{Parser, Subcommand};

use kv_compose::GetManyShape;
use kv_core::config::{AdapterConfig, BackendConfig};

use crate::adapters::{BackendKind, Flavour};
use crate::options::AdapterOptions;

/// Give any WASI 0.2 runtime a real wasi:keyvalue: kv-virt bakes a
/// configuration into a pure-WASM adapter and plugs it into your app.
#[derive(Parser, Debug)]
#[command(name = "kv-virt", version)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Write a configured adapter: a component exporting wasi:keyvalue
    /// (0.2.0-draft and 0.2.0-draft2) and Spin's fermyon:spin/key-value@2.0.0
    /// (with --flavour async, also spin:key-value@3.0.0 and
    /// wasmcloud:keyvalue@0.2.0) that `wac plug` can plug into an app.
    #[command(
        after_help = "Example:\n  kv-virt adapter mem --bucket app -o kv-mem.wasm\n  wac plug app.wasm --plug kv-mem.wasm -o composed.wasm"
    )]
    Adapter {
        /// The backend (or `backend = "..."` in --config).
        backend: Option<BackendKind>,
        #[command(flatten)]
        options: AdapterOptions,
        /// The shape of the adapter's wasi:keyvalue/batch@0.2.0-draft2
        /// `get-many`, for `wac plug`: `pr55` (upstream PR #55, as Spin) or
        /// `2024` (the 2024 text). `kv-virt plug` picks the app's shape itself.
        #[arg(long, value_name = "SHAPE", default_value = "pr55")]
        draft2_get_many: GetManyArg,
        /// `sync`: the WASI 0.2 interfaces, loadable on every runtime;
        /// `async`: also the WASI 0.3 ones (spin:key-value@3.0.0,
        /// wasmcloud:keyvalue@0.2.0), for runtimes with component-model-async.
        /// `kv-virt plug` picks the app's flavour itself.
        #[arg(long, value_name = "FLAVOUR", default_value = "sync")]
        flavour: FlavourArg,
        /// Where to write the adapter.
        #[arg(short, long, value_name = "FILE")]
        output: PathBuf,
    },
    /// Plug a configured adapter into an app that imports wasi:keyvalue,
    /// Spin's key-value interface or wasmCloud's. The result imports none
    /// of them and runs on any WASI runtime that runs the app.
    #[command(
        after_help = "Example:\n  kv-virt plug app.wasm mem -o composed.wasm\n  wasmtime run composed.wasm"
    )]
    Plug {
        /// The app component.
        app: PathBuf,
        /// The backend (or `backend = "..."` in --config).
        backend: Option<BackendKind>,
        #[command(flatten)]
        options: AdapterOptions,
        /// Where to write the composed component.
        #[arg(short, long, value_name = "FILE")]
        output: PathBuf,
    },
    /// Write a command component that writes buckets as JSON lines (the
    /// format of `fs dump`) on stdout: the `--bucket` names, or the default
    /// bucket. Pipe it into an import command to move them to another backend.
    #[command(
        after_help = "Example:\n  kv-virt export fs --dir /data --bucket app -o export.wasm\n  \
                      kv-virt import http --protocol etcd --endpoint http://127.0.0.1:2379 --bucket app -o import.wasm\n  \
                      wasmtime run --dir ./data::/data export.wasm | wasmtime run -S http import.wasm"
    )]
    Export(crate::migrate::CommandArgs),
    /// Write a command component that reads JSON lines (as `export` and
    /// `fs dump` write them) from stdin into the backend: lines naming a
    /// bucket into it, others into the one `--bucket` given, else the
    /// default bucket.
    #[command(
        after_help = "Example:\n  kv-virt import http --protocol etcd --endpoint http://127.0.0.1:2379 --bucket app -o import.wasm\n  \
                      wasmtime run -S http import.wasm < app.jsonl"
    )]
    Import(crate::migrate::CommandArgs),
    /// Work on kv-fs bucket files natively: check, inspect, dump, load.
    #[command(subcommand)]
    Fs(crate::fs_tools::FsCommand),
    /// List a component's imports and exports, and the kv-virt
    /// configuration baked into it (its routes, if any; secrets only by
    /// where they come from).
    #[command(after_help = "Example:\n  kv-virt inspect composed.wasm")]
    Inspect {
        /// The component.
        component: PathBuf,
    },
}

/// `--flavour`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum FlavourArg {
    /// The WASI 0.2 interfaces, lifted sync (every runtime).
    Sync,
    /// Also the WASI 0.3 interfaces, lifted async.
    Async,
}

impl From<FlavourArg> for Flavour {
    fn from(arg: FlavourArg) -> Flavour {
        match arg {
            FlavourArg::Sync => Flavour::Sync,
            FlavourArg::Async => Flavour::Async,
        }
    }
}

/// `--draft2-get-many`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum GetManyArg {
    /// `list<tuple<string, option<list<u8>>>>` (upstream PR #55, Spin).
    Pr55,
    /// `list<option<tuple<string, list<u8>>>>` (the 2024 text).
    #[value(name = "2024")]
    Text2024,
}

fn read(path: &Path) -> Result<Vec<u8>> {
    std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))
}

fn write(path: &Path, bytes: &[u8]) -> Result<()> {
    std::fs::write(path, bytes).with_context(|| format!("cannot write {}", path.display()))
}

/// Writes a component kv-virt made and says so.
fn write_component(path: &Path, component: &[u8], out: &mut dyn std::io::Write) -> Result<()> {
    write(path, component)?;
    writeln!(out, "wrote {} ({} bytes)", path.display(), component.len())?;
    Ok(())
}

/// A configured adapter for these options, of `flavour`, exporting
/// draft2's `get-many` in the given shape under the wasi name.
pub fn configured_adapter_with(
    backend: Option<BackendKind>,
    options: &AdapterOptions,
    draft2_get_many: GetManyShape,
    flavour: Flavour,
) -> Result<Vec<u8>> {
    let (kind, config) = options.resolve(backend)?;
    configure(kind, &config, draft2_get_many, flavour)
}

/// The adapter of `kind` with `config` baked in.
fn configure(
    kind: BackendKind,
    config: &AdapterConfig,
    draft2_get_many: GetManyShape,
    flavour: Flavour,
) -> Result<Vec<u8>> {
    let adapter = kv_compose::configure(kind.adapter(flavour), &config.to_bytes(), draft2_get_many)?;
    match &config.backend {
        // kv-route imports wasi:http for its kv-http routes; with none, a
        // stand-in keeps the composed app from needing it.
        BackendConfig::Routed(routes)
            if !routes
                .iter()
                .any(|route| matches!(route.backend, BackendConfig::Http(_))) =>
        {
            kv_compose::stand_in_for_package(&adapter, "wasi:http")
        }
        _ => Ok(adapter),
    }
}

/// A configured sync adapter for these options (PR #55's draft2
/// `get-many` under the wasi name; `kv-virt plug` connects either shape).
pub fn configured_adapter(backend: Option<BackendKind>, options: &AdapterOptions) -> Result<Vec<u8>> {
    configured_adapter_with(backend, options, GetManyShape::Pr55, Flavour::Sync)
}

/// `kv-virt plug`: `app` with a configured adapter for these options
/// plugged in (see [`plug_configured`]).
pub fn plug(app: &[u8], backend: Option<BackendKind>, options: &AdapterOptions) -> Result<Vec<u8>> {
    let (kind, config) = options.resolve(backend)?;
    plug_configured(app, kind, &config)
}

/// `app` with the adapter of `kind`, `config` baked in, plugged in, of the
/// flavour the app needs: async only for an app that imports a WASI 0.3
/// key-value interface, so that a WASI 0.2 app's composition still loads
/// on runtimes without component-model-async.
pub fn plug_configured(app: &[u8], kind: BackendKind, config: &AdapterConfig) -> Result<Vec<u8>> {
    // An app that cannot be read is reported by `kv_compose::plug`, in its words.
    let flavour = kv_compose::inspect(app).map_or(Flavour::Sync, |info| Flavour::for_app(&info));
    let adapter = configure(kind, config, GetManyShape::Pr55, flavour)?;
    kv_compose::plug(app, &adapter)
}

/// Runs one command; what it prints goes to `out`.
pub fn run(cli: Cli, out: &mut dyn std::io::Write) -> Result<()> {
    match cli.command {
        Command::Adapter {
            backend,
            options,
            draft2_get_many,
            flavour,
            output,
        } => {
            let shape = match draft2_get_many {
                GetManyArg::Pr55 => GetManyShape::Pr55,
                GetManyArg::Text2024 => GetManyShape::Text2024,
            };
            let adapter = configured_adapter_with(backend, &options, shape, flavour.into())?;
            write(&output, &adapter)?;
            writeln!(out, "wrote {} ({} bytes)", output.display(), adapter.len())?;
        }
        Command::Plug {
            app,
            backend,
            options,
            output,
        } => {
            let app_bytes = read(&app)?;
            let composed =
                plug(&app_bytes, backend, &options).with_context(|| format!("{}", app.display()))?;
            write(&output, &composed)?;
            writeln!(out, "wrote {} ({} bytes)", output.display(), composed.len())?;
        }
        Command::Export(args) => {
            let command = crate::migrate::export_command(args.backend, &args.options, &args.batch)?;
            write_component(&args.output, &command, out)?;
        }
        Command::Import(args) => {
            let command = crate::migrate::import_command(args.backend, &args.options, &args.batch)?;
            write_component(&args.output, &command, out)?;
        }
        Command::Fs(command) => crate::fs_tools::run(command, out)?,
        Command::Inspect { component } => {
            let bytes = read(&component)?;
            let info = kv_compose::inspect(&bytes).with_context(|| format!("{}", component.display()))?;
            for (title, items) in [("imports", &info.imports), ("exports", &info.exports)] {
                writeln!(out, "{title}:")?;
                if items.is_empty() {
                    writeln!(out, "  (none)")?;
                }
                for item in items {
                    let mut notes = vec![item.kind];
                    if item.is_async {
                        notes.push("async: WASI 0.3");
                    }
                    if let Some(shape) = item.get_many_shape {
                        notes.push(shape.describe());
                    }
                    writeln!(out, "  {} ({})", item.name, notes.join("; "))?;
                }
            }
            let configs =
                kv_compose::baked_configs(&bytes).with_context(|| format!("{}", component.display()))?;
            for config in configs {
                writeln!(out, "kv-virt configuration:")?;
                for line in kv_compose::describe_config(&config) {
                    writeln!(out, "  {line}")?;
                }
            }
        }
    }
    Ok(())
}
