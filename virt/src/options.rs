//! The configuration of an adapter, from a TOML file (`--config kv.toml`)
//! and flags (flags win), turned into the [`AdapterConfig`] baked into it.
//!
//! ```toml
//! backend = "fs"             # or given on the command line
//! buckets = ["app", "cache"] # allow-list; absent: any valid name
//! default-bucket = "default" # what open("") and Spin's `default` label open
//! list-page-keys = 1000
//! list-page-bytes = 1048576  # a page also stops at this many bytes of keys
//!
//! [fs]
//! dir = "/data"              # as the app sees it: a preopen or below one
//! page-size = 4096
//! durability = "sync"        # or "none"
//! create-buckets = true
//! lock-lease-ms = 5000
//!
//! [http]
//! protocol = "etcd"          # or "redis" (through webdis), "dynamodb", "s3"
//! endpoint = "http://127.0.0.1:2379"
//! key-prefix = "app/"        # before every bucket's prefix
//! bucket-prefixes = { legacy = "old/" }
//! timeout-ms = 10000         # per operation, retries included
//! max-attempts = 4
//! credentials = { username = "env:ETCD_USER", password = "env:ETCD_PASSWORD" }
//! # dynamodb: table = "kv", region = "us-east-1", consistent-reads = true;
//! # s3: s3-bucket = "kv", region = "us-east-1";
//! # credentials access-key-id, secret-access-key (and session-token).
//! azure-account = "myaccount" # protocol "azure-table": the storage account
//! azure-table = "kvvirt"      # and its table (credential account-key)
//! ```
//!
//! Or a backend per bucket (backend `route`): `[[route]]` tables, each with
//! its buckets (names, or patterns with `*`), its backend and that
//! backend's own `[route.fs]` / `[route.http]` table. The first route that
//! serves a bucket wins; a bucket no route serves is `access-denied`.
//!
//! ```toml
//! [[route]]
//! buckets = ["cache", "tmp-*"]
//! backend = "mem"
//!
//! [[route]]
//! buckets = ["*"]            # every other bucket
//! backend = "fs"
//! [route.fs]
//! dir = "/data"
//! ```

use std::path::Path;

use anyhow::{Context, Result, bail};
use clap::Args;
use kv_core::config::{
    AdapterConfig, BackendConfig, Durability, FsConfig, HttpConfig, HttpProtocol, MemConfig, Route, Secret,
};
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

    /// The bucket `open("")` (wasmtime, wasmCloud) and Spin's `default`
    /// label open [default: default].
    #[arg(long, value_name = "NAME")]
    pub default_bucket: Option<String>,

    #[arg(long, value_name = "N", help = help::list_page_keys())]
    pub list_page_keys: Option<u32>,

    #[arg(long, value_name = "BYTES", help = help::list_page_bytes())]
    pub list_page_bytes: Option<u32>,

    #[command(flatten)]
    pub fs: FsOptions,

    #[command(flatten)]
    pub http: HttpOptions,
}

/// kv-fs options. Their help (in [`help`]) shows [`FsConfig`]'s defaults
/// and bounds.
#[derive(Args, Clone, Debug, Default, PartialEq)]
#[command(next_help_heading = "kv-fs options")]
pub struct FsOptions {
    #[arg(long, value_name = "PATH", help = help::dir())]
    pub dir: Option<String>,

    #[arg(long, value_name = "BYTES", help = help::page_size())]
    pub page_size: Option<u32>,

    #[arg(long, value_name = "MODE", help = help::durability())]
    pub durability: Option<DurabilityArg>,

    #[arg(long, value_name = "BOOL", help = help::create_buckets())]
    pub create_buckets: Option<bool>,

    #[arg(long, value_name = "MS", help = help::lock_lease_ms())]
    pub lock_lease_ms: Option<u32>,
}

/// The help of the flags whose defaults and bounds kv-core defines.
mod help {
    use kv_core::config::{DEFAULT_LIST_PAGE_BYTES, DEFAULT_LIST_PAGE_KEYS, Durability, FsConfig};

    pub fn list_page_keys() -> String {
        format!("At most this many keys per list-keys page [default: {DEFAULT_LIST_PAGE_KEYS}]")
    }

    pub fn list_page_bytes() -> String {
        format!(
            "A list-keys page also stops at this many bytes of keys (it always holds one key, however \
             long) [default: {DEFAULT_LIST_PAGE_BYTES}]"
        )
    }

    pub fn dir() -> String {
        format!(
            "The directory holding the bucket files, as the app sees it: a preopened directory or one \
             below it [default: {}]",
            FsConfig::DEFAULT_DIR
        )
    }

    pub fn page_size() -> String {
        format!(
            "Page size of new bucket files: a power of two from {} to {} [default: {}]",
            FsConfig::MIN_PAGE_SIZE,
            FsConfig::MAX_PAGE_SIZE,
            FsConfig::DEFAULT_PAGE_SIZE
        )
    }

    pub fn durability() -> String {
        let default = match FsConfig::DEFAULT_DURABILITY {
            Durability::Sync => "sync",
            Durability::None => "none",
        };
        format!(
            "`sync`: a write returns once it is durable; `none`: without waiting for the disk (survives \
             a runtime crash, not a power cut) [default: {default}]"
        )
    }

    pub fn create_buckets() -> String {
        format!(
            "Whether `open` creates a missing bucket file (else no-such-store) [default: {}]",
            FsConfig::DEFAULT_CREATE_BUCKETS
        )
    }

    pub fn lock_lease_ms() -> String {
        format!(
            "How long a writer that died holding a bucket's lock keeps other writers waiting; much \
             longer than any I/O stall, at least {} [default: {}]",
            FsConfig::MIN_LOCK_LEASE_MS,
            FsConfig::DEFAULT_LOCK_LEASE_MS
        )
    }
}

/// kv-http options.
#[derive(Args, Clone, Debug, Default, PartialEq)]
#[command(next_help_heading = "kv-http options")]
pub struct HttpOptions {
    /// The service's API.
    #[arg(long, value_name = "PROTOCOL")]
    pub protocol: Option<ProtocolArg>,

    /// The service's base URL, e.g. http://127.0.0.1:2379.
    #[arg(long, value_name = "URL")]
    pub endpoint: Option<String>,

    /// Put before every key the adapter writes (a namespace for all buckets).
    #[arg(long, value_name = "PREFIX")]
    pub key_prefix: Option<String>,

    /// Store bucket NAME's keys under exactly PREFIX instead of
    /// `<key-prefix><NAME>/` (repeat for more buckets).
    #[arg(long = "bucket-prefix", value_name = "NAME=PREFIX")]
    pub bucket_prefixes: Vec<String>,

    /// Each operation, retries included, finishes within this [default: 10000].
    #[arg(long, value_name = "MS")]
    pub timeout_ms: Option<u32>,

    /// Tries per request on connection errors, 5xx and 429, the first
    /// included (1: never retry) [default: 4].
    #[arg(long, value_name = "N")]
    pub max_attempts: Option<u32>,

    /// A credential the protocol uses (username, password, …), read at run
    /// time from an environment variable: NAME=env:VARIABLE. NAME=value:SECRET
    /// bakes the secret into the component and needs --bake-secrets.
    #[arg(long = "credential", value_name = "NAME=SOURCE")]
    pub credentials: Vec<String>,

    /// Allow credentials given as values to be baked into the component
    /// (anyone with the component can read them).
    #[arg(long)]
    pub bake_secrets: bool,

    /// dynamodb: the table (partition key `bucket` (S), sort key `key` (S)).
    #[arg(long, value_name = "NAME")]
    pub table: Option<String>,

    /// s3: the S3 bucket holding every bucket's objects.
    #[arg(long, value_name = "NAME")]
    pub s3_bucket: Option<String>,

    /// dynamodb, s3: the AWS region requests are signed for, e.g. us-east-1.
    #[arg(long, value_name = "REGION")]
    pub region: Option<String>,

    /// dynamodb: strongly consistent reads for get and list-keys [default: true].
    #[arg(long, value_name = "BOOL")]
    pub consistent_reads: Option<bool>,
    /// Azure Table: the storage account (its key is the account-key credential).
    #[arg(long, value_name = "NAME")]
    pub azure_account: Option<String>,

    /// Azure Table: the table holding every bucket (created if absent).
    #[arg(long, value_name = "NAME")]
    pub azure_table: Option<String>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ProtocolArg {
    /// etcd's v3 JSON API.
    Etcd,
    /// Redis, through webdis.
    Redis,
    /// Amazon DynamoDB (JSON API, SigV4): needs --table and --region.
    Dynamodb,
    /// Amazon S3 (REST, SigV4): needs --s3-bucket and --region.
    S3,
    /// Azure Table storage (needs --azure-account, --azure-table and the
    /// account-key credential).
    AzureTable,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DurabilityArg {
    Sync,
    None,
}

/// The TOML file. Unknown keys are errors that name the key.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct ConfigFile {
    backend: Option<BackendKind>,
    buckets: Option<Vec<String>>,
    default_bucket: Option<String>,
    list_page_keys: Option<u32>,
    list_page_bytes: Option<u32>,
    fs: Option<FsFile>,
    http: Option<HttpFile>,
    #[serde(default, rename = "route")]
    routes: Vec<RouteFile>,
}

/// One `[[route]]` table.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct RouteFile {
    buckets: Vec<String>,
    backend: BackendKind,
    fs: Option<FsFile>,
    http: Option<HttpFile>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct HttpFile {
    protocol: Option<ProtocolArg>,
    endpoint: Option<String>,
    key_prefix: Option<String>,
    #[serde(default)]
    bucket_prefixes: std::collections::BTreeMap<String, String>,
    timeout_ms: Option<u32>,
    max_attempts: Option<u32>,
    #[serde(default)]
    credentials: std::collections::BTreeMap<String, String>,
    bake_secrets: Option<bool>,
    table: Option<String>,
    s3_bucket: Option<String>,
    region: Option<String>,
    consistent_reads: Option<bool>,
    azure_account: Option<String>,
    azure_table: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct FsFile {
    dir: Option<String>,
    page_size: Option<u32>,
    durability: Option<DurabilityArg>,
    create_buckets: Option<bool>,
    lock_lease_ms: Option<u32>,
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
        let named = backend.or(file.backend);
        let kind = match named {
            // `[[route]]` tables make a routed configuration by themselves.
            None if !file.routes.is_empty() => BackendKind::Route,
            Some(kind) => kind,
            None => bail!(
                "no backend given: name one (mem, fs, http, route) on the command line or as `backend = \"...\"` in the config file"
            ),
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
        if kind != BackendKind::Route && !file.routes.is_empty() {
            bail!(
                "the config file has [[route]] tables, which make a backend per bucket: drop backend {}",
                kind.name()
            );
        }
        let backend_config = match kind {
            BackendKind::Mem => BackendConfig::Mem(MemConfig {}),
            BackendKind::Fs => BackendConfig::Fs(self.fs.resolve(file.fs.unwrap_or_default())?),
            BackendKind::Http => BackendConfig::Http(self.http.resolve(file.http.unwrap_or_default())?),
            BackendKind::Route => self.routes(file.routes, file.fs.is_some() || file.http.is_some())?,
        };
        let mut config = AdapterConfig::new(backend_config);
        let buckets = if self.buckets.is_empty() {
            file.buckets
        } else {
            Some(self.buckets.clone())
        };
        config.allowed_buckets = buckets;
        if let Some(name) = self.default_bucket.clone().or(file.default_bucket) {
            config.default_bucket = name;
        }
        if let Some(n) = self.list_page_keys.or(file.list_page_keys) {
            config.list_page_keys = n;
        }
        if let Some(n) = self.list_page_bytes.or(file.list_page_bytes) {
            config.list_page_bytes = n;
        }
        config
            .validate()
            .map_err(|e| anyhow::anyhow!("invalid configuration: {e}"))?;
        Ok((kind, config))
    }
}

impl AdapterOptions {
    /// The routes of a routed configuration: each route's backend takes its
    /// options from its own tables only.
    fn routes(&self, routes: Vec<RouteFile>, top_level_tables: bool) -> Result<BackendConfig> {
        if routes.is_empty() {
            bail!(
                "backend route needs [[route]] tables in a --config file (each with buckets, a backend and its options)"
            );
        }
        if self.fs != FsOptions::default() || self.http != HttpOptions::default() || top_level_tables {
            bail!(
                "with routes, each route sets its backend's options in its own [route.fs] or [route.http] table, \
                 not with kv-fs or kv-http flags or top-level [fs] or [http] tables"
            );
        }
        let route = |route: RouteFile| -> Result<Route> {
            let backend = match (route.backend, route.fs, route.http) {
                (BackendKind::Mem, None, None) => BackendConfig::Mem(MemConfig {}),
                (BackendKind::Fs, fs, None) => {
                    BackendConfig::Fs(FsOptions::default().resolve(fs.unwrap_or_default())?)
                }
                (BackendKind::Http, None, http) => {
                    BackendConfig::Http(HttpOptions::default().resolve(http.unwrap_or_default())?)
                }
                (BackendKind::Route, ..) => bail!("a route's backend is mem, fs or http"),
                (kind, _, _) => bail!(
                    "a {} route takes no [route.fs] or [route.http] table but its own",
                    kind.name()
                ),
            };
            Ok(Route {
                buckets: route.buckets,
                backend,
            })
        };
        let routes = routes
            .into_iter()
            .enumerate()
            .map(|(i, r)| route(r).with_context(|| format!("route {}", i + 1)))
            .collect::<Result<Vec<_>>>()?;
        Ok(BackendConfig::Routed(routes))
    }
}

impl FsOptions {
    fn resolve(&self, file: FsFile) -> Result<FsConfig> {
        let defaults = FsConfig::default();
        let config = FsConfig {
            dir: self.dir.clone().or(file.dir).unwrap_or(defaults.dir),
            page_size: self.page_size.or(file.page_size).unwrap_or(defaults.page_size),
            durability: match self.durability.or(file.durability) {
                Some(DurabilityArg::Sync) => Durability::Sync,
                Some(DurabilityArg::None) => Durability::None,
                None => defaults.durability,
            },
            create_buckets: self
                .create_buckets
                .or(file.create_buckets)
                .unwrap_or(defaults.create_buckets),
            lock_lease_ms: self
                .lock_lease_ms
                .or(file.lock_lease_ms)
                .unwrap_or(defaults.lock_lease_ms),
        };
        // Its bounds are checked with the whole configuration (AdapterConfig::validate).
        Ok(config)
    }
}

impl HttpOptions {
    fn resolve(&self, file: HttpFile) -> Result<HttpConfig> {
        let Some(protocol) = self.protocol.or(file.protocol) else {
            bail!(
                "kv-http needs a protocol: --protocol etcd|redis|dynamodb|s3|azure-table (or `protocol` in the [http] table)"
            );
        };
        let Some(endpoint) = self.endpoint.clone().or(file.endpoint) else {
            bail!(
                "kv-http needs the service's URL: --endpoint http://HOST:PORT (or `endpoint` in the [http] table)"
            );
        };
        let options_of = |protocols: &str, given: bool, option: &str| {
            if given {
                let name = format!("{protocol:?}").to_lowercase();
                bail!("--{option} is an option of the {protocols} protocol, not of {name}");
            }
            Ok(())
        };
        if !matches!(protocol, ProtocolArg::Dynamodb) {
            options_of("dynamodb", self.table.is_some() || file.table.is_some(), "table")?;
            let consistent = self.consistent_reads.is_some() || file.consistent_reads.is_some();
            options_of("dynamodb", consistent, "consistent-reads")?;
        }
        if !matches!(protocol, ProtocolArg::S3) {
            options_of(
                "s3",
                self.s3_bucket.is_some() || file.s3_bucket.is_some(),
                "s3-bucket",
            )?;
        }
        if !matches!(protocol, ProtocolArg::Dynamodb | ProtocolArg::S3) {
            options_of(
                "dynamodb and s3",
                self.region.is_some() || file.region.is_some(),
                "region",
            )?;
        }
        if !matches!(protocol, ProtocolArg::AzureTable) {
            let account = self.azure_account.is_some() || file.azure_account.is_some();
            options_of("azure-table", account, "azure-account")?;
            let table = self.azure_table.is_some() || file.azure_table.is_some();
            options_of("azure-table", table, "azure-table")?;
        }
        let protocol = match protocol {
            ProtocolArg::Etcd => HttpProtocol::Etcd,
            ProtocolArg::Redis => HttpProtocol::Webdis,
            ProtocolArg::Dynamodb => HttpProtocol::DynamoDb {
                table: required("dynamodb", self.table.clone().or(file.table), "table", "NAME")?,
                region: required(
                    "dynamodb",
                    self.region.clone().or(file.region.clone()),
                    "region",
                    "us-east-1",
                )?,
                consistent_reads: self.consistent_reads.or(file.consistent_reads).unwrap_or(true),
            },
            ProtocolArg::S3 => HttpProtocol::S3 {
                bucket: required(
                    "s3",
                    self.s3_bucket.clone().or(file.s3_bucket),
                    "s3-bucket",
                    "NAME",
                )?,
                region: required("s3", self.region.clone().or(file.region), "region", "us-east-1")?,
            },
            ProtocolArg::AzureTable => azure_table(
                self.azure_account.clone().or(file.azure_account),
                self.azure_table.clone().or(file.azure_table),
            )?,
        };
        let mut config = HttpConfig::new(protocol, endpoint);
        if let Some(prefix) = self.key_prefix.clone().or(file.key_prefix) {
            config.key_prefix = prefix;
        }
        let mut bucket_prefixes = file.bucket_prefixes;
        for entry in &self.bucket_prefixes {
            let (name, prefix) = split_pair(entry, "--bucket-prefix", "NAME=PREFIX")?;
            bucket_prefixes.insert(name.into(), prefix.into());
        }
        config.bucket_prefixes = bucket_prefixes.into_iter().collect();
        if let Some(ms) = self.timeout_ms.or(file.timeout_ms) {
            config.timeout_ms = ms;
        }
        if let Some(n) = self.max_attempts.or(file.max_attempts) {
            config.retry.max_attempts = n;
        }
        let bake = self.bake_secrets || file.bake_secrets.unwrap_or(false);
        let mut credentials = file.credentials;
        for entry in &self.credentials {
            let (name, source) = split_pair(entry, "--credential", "NAME=env:VARIABLE")?;
            credentials.insert(name.into(), source.into());
        }
        for (name, source) in credentials {
            let secret = if let Some(variable) = source.strip_prefix("env:") {
                Secret::Env(variable.into())
            } else if let Some(value) = source.strip_prefix("value:") {
                if !bake {
                    bail!(
                        "credential {name} is given as a value, which would bake the secret into the component: \
                         read it at run time with {name}=env:VARIABLE, or pass --bake-secrets"
                    );
                }
                eprintln!(
                    "warning: the {name} credential is baked into the component: anyone with the file can read it"
                );
                Secret::Baked(value.into())
            } else {
                bail!("credential {name}: the source must be env:VARIABLE or value:SECRET, not {source:?}");
            };
            config.credentials.push((name, secret));
        }
        if config.timeout_ms == 0 || config.retry.max_attempts == 0 {
            bail!("the timeout and the number of attempts must be at least 1");
        }
        Ok(config)
    }
}

/// A protocol option given as a flag or in the file, not empty.
fn required(protocol: &str, value: Option<String>, option: &str, example: &str) -> Result<String> {
    value.filter(|v| !v.is_empty()).with_context(|| {
        format!("the {protocol} protocol needs --{option} {example} (or `{option}` in the [http] table)")
    })
}

/// `NAME=VALUE` from a flag.
fn split_pair<'a>(entry: &'a str, flag: &str, shape: &str) -> Result<(&'a str, &'a str)> {
    match entry.split_once('=') {
        Some((name, value)) if !name.is_empty() => Ok((name, value)),
        _ => bail!("{flag} takes {shape}, not {entry:?}"),
    }
}

/// The Azure Table protocol's options, checked against Azure's naming rules.
fn azure_table(account: Option<String>, table: Option<String>) -> Result<HttpProtocol> {
    let Some(account) = account else {
        bail!("--protocol azure-table needs the storage account: --azure-account NAME (or `azure-account`)");
    };
    let Some(table) = table else {
        bail!("--protocol azure-table needs a table: --azure-table NAME (or `azure-table`)");
    };
    if !(3..=24).contains(&account.len())
        || !account
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
    {
        bail!("Azure storage account {account:?}: 3 to 24 lowercase letters and digits");
    }
    if !(3..=63).contains(&table.len())
        || !table.starts_with(|c: char| c.is_ascii_alphabetic())
        || !table.bytes().all(|b| b.is_ascii_alphanumeric())
    {
        bail!("Azure table {table:?}: 3 to 63 letters and digits, starting with a letter");
    }
    Ok(HttpProtocol::AzureTable { account, table })
}
