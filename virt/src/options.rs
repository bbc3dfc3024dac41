//! The configuration of an adapter, from a TOML file (`--config kv.toml`)
//! and flags (flags win), turned into the [`AdapterConfig`] baked into it.
//!
//! ```toml
//! backend = "mem"            # or given on the command line
//! buckets = ["app", "cache"] # allow-list; absent: any valid name
//! list-page-keys = 1000
//! ```

use std::path::Path;

use anyhow::{Context, Result, bail};
use clap::Args;
use kv_core::config::{AdapterConfig, BackendConfig, MemConfig};
use serde::Deserialize;

use crate::adapters::BackendKind;

/// Options shared by `adapter` and `plug`.
#[derive(Args, Clone, Debug, Default)]
pub struct AdapterOptions {
    /// Read options from a TOML file (flags override it).
    #[arg(long, value_name = "FILE")]
    pub config: Option<std::path::PathBuf>,

    /// Allow only this bucket (repeat for more); `open` of any other name
    /// fails with access-denied. Default: any valid name.
    #[arg(long = "bucket", value_name = "NAME")]
    pub buckets: Vec<String>,

    /// At most this many keys per list-keys page.
    #[arg(long, value_name = "N")]
    pub list_page_keys: Option<u32>,
}

/// The TOML file. Unknown keys are errors that name the key.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct ConfigFile {
    backend: Option<BackendKind>,
    buckets: Option<Vec<String>>,
    list_page_keys: Option<u32>,
}

impl ConfigFile {
    fn read(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
        toml::from_str(&text).map_err(|e| {
            // toml's message names the expected type; the line names the key.
            let at = e
                .span()
                .map(|span| {
                    let line_start = text[..span.start].rfind('\n').map_or(0, |i| i + 1);
                    let line = text[line_start..].lines().next().unwrap_or_default().trim();
                    let number = text[..span.start].matches('\n').count() + 1;
                    format!(" line {number} `{line}`")
                })
                .unwrap_or_default();
            anyhow::anyhow!("{}{at}: {}", path.display(), e.message())
        })
    }
}

impl AdapterOptions {
    /// The backend (from the command line, else the file) and its configuration.
    pub fn resolve(&self, backend: Option<BackendKind>) -> Result<(BackendKind, AdapterConfig)> {
        let file = match &self.config {
            Some(path) => ConfigFile::read(path)?,
            None => ConfigFile::default(),
        };
        let Some(kind) = backend.or(file.backend) else {
            bail!(
                "no backend given: name one (mem) on the command line or as `backend = \"...\"` in the config file"
            );
        };
        if let (Some(a), Some(b)) = (backend, file.backend)
            && a != b
        {
            bail!(
                "the command line says backend {} but the config file says {}",
                a.name(),
                b.name()
            );
        }
        let backend_config = match kind {
            BackendKind::Mem => BackendConfig::Mem(MemConfig {}),
        };
        let mut config = AdapterConfig::new(backend_config);
        let buckets = if self.buckets.is_empty() {
            file.buckets
        } else {
            Some(self.buckets.clone())
        };
        config.allowed_buckets = buckets;
        if let Some(n) = self.list_page_keys.or(file.list_page_keys) {
            config.list_page_keys = n;
        }
        config
            .validate()
            .map_err(|e| anyhow::anyhow!("invalid configuration: {e}"))?;
        Ok((kind, config))
    }
}
