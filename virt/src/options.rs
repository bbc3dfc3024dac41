//! The configuration of an adapter, from a TOML file (`--config kv.toml`)
//! and flags (flags win), turned into the [`AdapterConfig`] baked into it.
//! One set of structs takes both: each option is a flag (clap) and the
//! same key in the file (serde). Values are checked once, by
//! [`AdapterConfig::validate`]; this module checks only what a configuration
//! cannot express (an option of another protocol, a missing one).
//!
//! ```toml
//! backend = "fs"             # or given on the command line
//! buckets = ["app", "cache"] # allow-list; absent: any valid name
//! default-bucket = "default" # what open("") and Spin's `default` label open
//! list-page-keys = 1000
//! list-page-bytes = 1048576  # a page also stops at this many bytes of keys
//! ttl-ms = 3600000           # keys written without an expiry expire after this
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
//! ttl-ms = 60000             # this route's buckets' expiry (else the top level's)
//!
//! [[route]]
//! buckets = ["*"]            # every other bucket
//! backend = "fs"
//! [route.fs]
//! dir = "/data"
//! ```

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use clap::Args;
use kv_core::config::{
    AdapterConfig, BackendConfig, Durability, FsConfig, HttpConfig, HttpProtocol, MemConfig, Route, Secret,
};
use serde::{Deserialize, Deserializer};

use crate::adapters::BackendKind;

/// Options shared by `adapter`, `plug`, `export` and `import`: the flags,
/// and the top level of the TOML file. Unknown keys are errors that name
/// the key.
#[derive(Args, Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct AdapterOptions {
    /// Read options from a TOML file (flags override it).
    #[arg(long, value_name = "FILE")]
    #[serde(skip)]
    pub config: Option<PathBuf>,

    /// The file's `backend = "..."` (the command line names the backend as
    /// an argument instead).
    #[arg(skip)]
    pub backend: Option<BackendKind>,

    /// Allow only this bucket (repeat for more); `open` of any other name
    /// fails with access-denied. Default: any valid name.
    #[arg(long = "bucket", value_name = "NAME")]
    #[serde(default, deserialize_with = "allow_list")]
    pub buckets: Vec<String>,

    /// The bucket `open("")` (wasmtime, wasmCloud) and Spin's `default`
    /// label open [default: default].
    #[arg(long, value_name = "NAME")]
    pub default_bucket: Option<String>,

    #[arg(long, value_name = "N", help = help::list_page_keys())]
    pub list_page_keys: Option<u32>,

    #[arg(long, value_name = "BYTES", help = help::list_page_bytes())]
    pub list_page_bytes: Option<u32>,

    /// Expire keys written without an expiry of their own this many
    /// milliseconds after the write (a cache bucket) [default: never].
    #[arg(long, value_name = "MS")]
    pub ttl_ms: Option<u64>,

    #[command(flatten)]
    #[serde(default)]
    pub fs: FsOptions,

    #[command(flatten)]
    #[serde(default)]
    pub http: HttpOptions,

    /// The file's `[[route]]` tables.
    #[arg(skip)]
    #[serde(default, rename = "route")]
    pub routes: Vec<RouteOptions>,
}

/// The file's `buckets`: an empty list is refused, for it would allow no
/// bucket at all, and leaving the key out is how a file allows any name.
fn allow_list<'de, D: Deserializer<'de>>(file: D) -> Result<Vec<String>, D::Error> {
    let buckets = Vec::<String>::deserialize(file)?;
    if buckets.is_empty() {
        return Err(serde::de::Error::custom(
            "buckets = [] would allow no bucket: leave `buckets` out to allow any valid name",
        ));
    }
    Ok(buckets)
}

/// One `[[route]]` table (file only).
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct RouteOptions {
    pub buckets: Vec<String>,
    pub backend: BackendKind,
    pub ttl_ms: Option<u64>,
    pub fs: Option<FsOptions>,
    pub http: Option<HttpOptions>,
}

/// kv-fs options (the file's `[fs]` table). Their help (in [`help`]) shows
/// [`FsConfig`]'s defaults and bounds.
#[derive(Args, Clone, Debug, Default, PartialEq, Deserialize)]
#[command(next_help_heading = "kv-fs options")]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
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

    #[arg(long, value_name = "MS", help = help::lock_idle_ms())]
    pub lock_idle_ms: Option<u32>,
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

    pub fn lock_idle_ms() -> String {
        format!(
            "A writer keeps a bucket's lock between its writes until it has not written for this \
             long, another instance asks for it, or the app drops the bucket; 0: release it after \
             every write [default: {}]",
            FsConfig::DEFAULT_LOCK_IDLE_MS
        )
    }
}

/// kv-http options (the file's `[http]` table).
#[derive(Args, Clone, Debug, Default, PartialEq, Deserialize)]
#[command(next_help_heading = "kv-http options")]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
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
    #[arg(long = "bucket-prefix", value_name = "NAME=PREFIX", value_parser = pair)]
    #[serde(default, deserialize_with = "pairs")]
    pub bucket_prefixes: Vec<(String, String)>,

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
    #[arg(long = "credential", value_name = "NAME=SOURCE", value_parser = pair)]
    #[serde(default, deserialize_with = "pairs")]
    pub credentials: Vec<(String, String)>,

    /// Allow credentials given as values to be baked into the component
    /// (anyone with the component can read them).
    #[arg(long)]
    #[serde(default)]
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

/// `NAME=VALUE`, as `--bucket-prefix` and `--credential` take it.
pub fn pair(entry: &str) -> Result<(String, String), String> {
    match entry.split_once('=') {
        Some((name, value)) if !name.is_empty() => Ok((name.into(), value.into())),
        _ => Err(format!("expected NAME=VALUE, not {entry:?}")),
    }
}

/// The same pairs in the file: a table (`{ name = "value" }`).
fn pairs<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Vec<(String, String)>, D::Error> {
    let table = std::collections::BTreeMap::<String, String>::deserialize(deserializer)?;
    Ok(table.into_iter().collect())
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

impl AdapterOptions {
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

    /// The backend (from the command line, else the file) and its
    /// configuration: these options (the flags) over the file's.
    pub fn resolve(&self, backend: Option<BackendKind>) -> Result<(BackendKind, AdapterConfig)> {
        let file = match &self.config {
            Some(path) => AdapterOptions::read(path)?,
            None => AdapterOptions::default(),
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
            BackendKind::Fs => BackendConfig::Fs(self.fs.resolve(file.fs)),
            BackendKind::Http => BackendConfig::Http(self.http.resolve(file.http)?),
            BackendKind::Route => self.routes(file.routes, file.fs, file.http)?,
        };
        let mut config = AdapterConfig::new(backend_config);
        config.allowed_buckets = match (self.buckets.is_empty(), file.buckets.is_empty()) {
            (false, _) => Some(self.buckets.clone()),
            (true, false) => Some(file.buckets),
            (true, true) => None,
        };
        if let Some(name) = self.default_bucket.clone().or(file.default_bucket) {
            config.default_bucket = name;
        }
        if let Some(n) = self.list_page_keys.or(file.list_page_keys) {
            config.list_page_keys = n;
        }
        if let Some(n) = self.list_page_bytes.or(file.list_page_bytes) {
            config.list_page_bytes = n;
        }
        config.ttl_ms = self.ttl_ms.or(file.ttl_ms);
        config
            .validate()
            .map_err(|e| anyhow::anyhow!("invalid configuration: {e}"))?;
        Ok((kind, config))
    }

    /// The routes of a routed configuration: each route's backend takes its
    /// options from its own tables only.
    fn routes(&self, routes: Vec<RouteOptions>, fs: FsOptions, http: HttpOptions) -> Result<BackendConfig> {
        if routes.is_empty() {
            bail!(
                "backend route needs [[route]] tables in a --config file (each with buckets, a backend and its options)"
            );
        }
        let shared = |fs: &FsOptions, http: &HttpOptions| {
            *fs != FsOptions::default() || *http != HttpOptions::default()
        };
        if shared(&self.fs, &self.http) || shared(&fs, &http) {
            bail!(
                "with routes, each route sets its backend's options in its own [route.fs] or [route.http] table, \
                 not with kv-fs or kv-http flags or top-level [fs] or [http] tables"
            );
        }
        let route = |route: RouteOptions| -> Result<Route> {
            let backend = match (route.backend, route.fs, route.http) {
                (BackendKind::Mem, None, None) => BackendConfig::Mem(MemConfig {}),
                (BackendKind::Fs, fs, None) => {
                    BackendConfig::Fs(FsOptions::default().resolve(fs.unwrap_or_default()))
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
                ttl_ms: route.ttl_ms,
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
    /// These options over the file's, over the defaults.
    fn resolve(&self, file: FsOptions) -> FsConfig {
        let defaults = FsConfig::default();
        FsConfig {
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
            lock_idle_ms: self
                .lock_idle_ms
                .or(file.lock_idle_ms)
                .unwrap_or(defaults.lock_idle_ms),
        }
    }
}

impl HttpOptions {
    /// These options over the file's, over the defaults.
    fn resolve(&self, file: HttpOptions) -> Result<HttpConfig> {
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
            ProtocolArg::Redis => HttpProtocol::Redis,
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
            ProtocolArg::AzureTable => HttpProtocol::AzureTable {
                account: required(
                    "azure-table",
                    self.azure_account.clone().or(file.azure_account),
                    "azure-account",
                    "NAME",
                )?,
                table: required(
                    "azure-table",
                    self.azure_table.clone().or(file.azure_table),
                    "azure-table",
                    "NAME",
                )?,
            },
        };
        let mut config = HttpConfig::new(protocol, endpoint);
        if let Some(prefix) = self.key_prefix.clone().or(file.key_prefix) {
            config.key_prefix = prefix;
        }
        // Per name, a flag wins over the file.
        let merged = |file: Vec<(String, String)>, flags: &[(String, String)]| {
            let mut merged: std::collections::BTreeMap<_, _> = file.into_iter().collect();
            merged.extend(flags.iter().cloned());
            merged
        };
        config.bucket_prefixes = merged(file.bucket_prefixes, &self.bucket_prefixes)
            .into_iter()
            .collect();
        if let Some(ms) = self.timeout_ms.or(file.timeout_ms) {
            config.timeout_ms = ms;
        }
        if let Some(n) = self.max_attempts.or(file.max_attempts) {
            config.retry.max_attempts = n;
        }
        let bake = self.bake_secrets || file.bake_secrets;
        for (name, source) in merged(file.credentials, &self.credentials) {
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
        Ok(config)
    }
}

/// A protocol option, given as a flag or in the file (its value is checked
/// with the configuration).
fn required(protocol: &str, value: Option<String>, option: &str, example: &str) -> Result<String> {
    value.with_context(|| {
        format!("the {protocol} protocol needs --{option} {example} (or `{option}` in the [http] table)")
    })
}
