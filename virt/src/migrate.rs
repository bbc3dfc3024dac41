//! `kv-virt export` and `kv-virt import`: command components that move
//! buckets from one backend to another, on any WASI 0.2 runtime.
//!
//! Both are one component this binary carries (`virt/migrate`, built by the
//! build script), with its task baked in ([`kv_dump::Job`], through
//! `kv-virt:config/config`) and a configured adapter plugged in, exactly as
//! `kv-virt plug` plugs one into an app. So a migration is a pipe between
//! two runtimes, each holding one batch at a time:
//!
//! ```sh
//! kv-virt export fs --dir /data --bucket app -o export.wasm
//! kv-virt import http --protocol etcd --endpoint http://127.0.0.1:2379 --bucket app -o import.wasm
//! wasmtime run --dir ./data::/data export.wasm | wasmtime run -S http import.wasm
//! ```
//!
//! The stream is the JSON lines of `kv-virt fs dump` ([`kv_dump`]).

use std::path::PathBuf;

use anyhow::{Result, bail};
use clap::Args;
use kv_core::config::{AdapterConfig, BackendConfig};
use kv_dump::{DEFAULT_BATCH_BYTES, DEFAULT_BATCH_KEYS, Job, Task};

use crate::adapters::BackendKind;
use crate::options::AdapterOptions;

/// The export and import command (imports `kv-virt:config/config` and
/// `wasi:keyvalue@0.2.0-draft2`).
pub const KV_MIGRATE: &[u8] = include_bytes!(env!("KV_MIGRATE_WASM"));

/// The arguments of `kv-virt export` and `kv-virt import`.
#[derive(Args, Debug)]
pub struct CommandArgs {
    /// The backend (or `backend = "..."` in --config).
    pub backend: Option<BackendKind>,
    #[command(flatten)]
    pub options: AdapterOptions,
    #[command(flatten)]
    pub batch: BatchOptions,
    /// Where to write the command component.
    #[arg(short, long, value_name = "FILE")]
    pub output: PathBuf,
}

/// The size of the batches `export` reads and `import` writes.
#[derive(Args, Clone, Debug, Default)]
#[command(next_help_heading = "Batches")]
pub struct BatchOptions {
    #[arg(long, value_name = "N", help = format!(
        "At most this many keys per get-many (export) or set-many (import) [default: {DEFAULT_BATCH_KEYS}]"
    ))]
    pub batch_keys: Option<u32>,

    #[arg(long, value_name = "BYTES", help = format!(
        "About this many bytes of values per get-many or set-many (always at least one value): what the \
         command holds in memory [default: {DEFAULT_BATCH_BYTES}]"
    ))]
    pub batch_bytes: Option<u64>,
}

impl BatchOptions {
    fn job(&self, task: Task) -> Result<Job> {
        let job = Job {
            task,
            batch_keys: self.batch_keys.unwrap_or(DEFAULT_BATCH_KEYS),
            batch_bytes: self.batch_bytes.unwrap_or(DEFAULT_BATCH_BYTES),
        };
        if job.batch_keys == 0 || job.batch_bytes == 0 {
            bail!("--batch-keys and --batch-bytes must be at least 1");
        }
        Ok(job)
    }
}

/// The export command: writes the buckets the options allow (`--bucket`,
/// in that order), or else the default bucket, as JSON lines on stdout. A
/// bucket that does not exist is an error (kv-fs never creates one here).
pub fn export_command(
    backend: Option<BackendKind>,
    options: &AdapterOptions,
    batch: &BatchOptions,
) -> Result<Vec<u8>> {
    // An export only reads: a misspelt kv-fs bucket is an error, not a new
    // empty file (routes set their kv-fs options in their own tables).
    let (kind, mut config) = options.resolve(backend)?;
    if let BackendConfig::Fs(fs) = &mut config.backend {
        fs.create_buckets = false;
    }
    let buckets = config
        .allowed_buckets
        .clone()
        .unwrap_or(vec![config.default_bucket.clone()]);
    command(&batch.job(Task::Export { buckets })?, kind, &config)
}

/// The import command: reads JSON lines from stdin into the buckets they
/// name; lines that name none go to the default bucket or, when the
/// allow-list is one bucket and the default bucket is not on it, to that
/// one (so `--bucket app` alone imports into `app`).
pub fn import_command(
    backend: Option<BackendKind>,
    options: &AdapterOptions,
    batch: &BatchOptions,
) -> Result<Vec<u8>> {
    let (kind, config) = options.resolve(backend)?;
    let bucket = match config.allowed_buckets.as_deref() {
        Some([only]) if *only != config.default_bucket => only.clone(),
        _ => config.default_bucket.clone(),
    };
    command(&batch.job(Task::Import { bucket })?, kind, &config)
}

fn command(job: &Job, kind: BackendKind, config: &AdapterConfig) -> Result<Vec<u8>> {
    let baked = kv_compose::bake_config(KV_MIGRATE, &job.to_bytes())?;
    crate::cli::plug_configured(&baked, kind, config)
}
