//! The configuration baked into an adapter when it is composed
//! (`kv-virt adapter` / `kv-virt plug`), serialized with postcard and read
//! by the adapter at run time through `kv-virt:config/config`.
//!
//! Compatibility rule: the encoding starts with [`CONFIG_FORMAT`]; fields
//! and enum variants are only ever appended, and anything else bumps it.

use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;
use core::fmt;

use serde::{Deserialize, Serialize};

use crate::error::Quoted;
use crate::{Error, Result};

/// Version of the encoding below (2: `default_bucket`; 3: `ttl_ms`).
pub const CONFIG_FORMAT: u32 = 3;

/// The bucket `open("")` opens unless configured otherwise. wasmtime's host
/// accepts only the identifier `""` and wasmCloud's examples open `""`;
/// Spin's default store is the label `default`: with this name, all of them
/// open one bucket.
pub const DEFAULT_BUCKET: &str = "default";

/// The default size of a `list-keys` page.
pub const DEFAULT_LIST_PAGE_KEYS: u32 = 1000;

/// A `list-keys` page also stops at this many key bytes (keys may be 64 KiB).
pub const DEFAULT_LIST_PAGE_BYTES: u32 = 1 << 20;

/// An adapter's configuration. `B` is what its `backend` field decodes
/// to: a [`BackendConfig`] for the CLI and kv-route, an adapter's own
/// options ([`Own`]) for the other adapters, so that each carries the code
/// to decode only its own.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct AdapterConfig<B = BackendConfig> {
    /// Always [`CONFIG_FORMAT`] when written by this version.
    pub format: u32,
    /// The buckets `open` accepts; `None` accepts every valid name. Checked
    /// against the resolved name (`""` is [`AdapterConfig::default_bucket`]).
    pub allowed_buckets: Option<Vec<String>>,
    /// The bucket `open("")` and Spin's `default` label open.
    pub default_bucket: String,
    /// At most this many keys per `list-keys` page.
    pub list_page_keys: u32,
    /// A page also stops at this many key bytes.
    pub list_page_bytes: u32,
    pub backend: B,
    /// The bucket expiry: a key written without an expiry of its own
    /// expires this many milliseconds after the write (`None`: never). A
    /// route's own `ttl_ms` overrides it for the route's buckets.
    pub ttl_ms: Option<u64>,
}

/// The backend and its own options.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum BackendConfig {
    Mem(MemConfig),
    Fs(FsConfig),
    Http(HttpConfig),
    /// A backend per bucket (kv-route): each bucket goes to the first route
    /// one of whose patterns its name matches; a name no route matches is
    /// `access-denied`.
    Routed(Vec<Route>),
}

/// One route of a [`BackendConfig::Routed`]: the buckets it serves, and
/// the backend (not itself routed) that serves them.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Route {
    /// Bucket names, or patterns in which `*` stands for any run of
    /// characters (`cache-*`; `*` alone: every bucket, a default route).
    pub buckets: Vec<String>,
    pub backend: BackendConfig,
    /// The expiry of this route's buckets (else the configuration's).
    pub ttl_ms: Option<u64>,
}

impl Route {
    /// Whether `bucket` is one of this route's buckets.
    pub fn serves(&self, bucket: &str) -> bool {
        self.buckets
            .iter()
            .any(|pattern| pattern_matches(pattern, bucket))
    }
}

/// `*` matches any run of characters (none included); anything else itself.
fn pattern_matches(pattern: &str, name: &str) -> bool {
    let mut parts = pattern.split('*');
    let first = parts.next().unwrap_or_default();
    let Some(mut rest) = name.strip_prefix(first) else {
        return false;
    };
    let mut parts: Vec<&str> = parts.collect();
    let Some(last) = parts.pop() else {
        return rest.is_empty(); // no `*`: the whole name
    };
    for part in parts {
        match rest.find(part) {
            Some(at) => rest = &rest[at + part.len()..],
            None => return false,
        }
    }
    rest.ends_with(last)
}

impl BackendConfig {
    /// The adapter that serves this configuration ("kv-mem").
    pub fn adapter_name(&self) -> &'static str {
        match self {
            BackendConfig::Mem(_) => <MemConfig as Variant>::ADAPTER,
            BackendConfig::Fs(_) => <FsConfig as Variant>::ADAPTER,
            BackendConfig::Http(_) => <HttpConfig as Variant>::ADAPTER,
            BackendConfig::Routed(_) => <BackendConfig as BackendOptions>::ADAPTER,
        }
    }

    /// The error of an adapter given another adapter's configuration.
    pub fn wrong_adapter(&self, adapter: &str) -> Error {
        Error::other(format!(
            "this adapter is {adapter} but its configuration is for {}: recompose the app",
            self.adapter_name()
        ))
    }

    /// Checks the values a hand-written or corrupted configuration could get wrong.
    pub fn validate(&self) -> Result<()> {
        match self {
            BackendConfig::Mem(_) => Ok(()),
            BackendConfig::Fs(fs) => fs.validate(),
            BackendConfig::Http(http) => http.validate(),
            BackendConfig::Routed(routes) => {
                if routes.is_empty() {
                    return Err(Error::other(
                        "kv-virt configuration: routed, but there is no route",
                    ));
                }
                for (i, route) in routes.iter().enumerate() {
                    let which =
                        |why: &str| Error::other(format!("kv-virt configuration: route {}: {why}", i + 1));
                    if route.buckets.is_empty() {
                        return Err(which("it names no bucket"));
                    }
                    for pattern in &route.buckets {
                        // A pattern's literal parts must be possible in a bucket name.
                        let literal = pattern.replace('*', "x");
                        crate::validate_bucket_name(&literal).map_err(|_| {
                            which(&format!("{} is not a bucket name or pattern", Quoted(pattern)))
                        })?;
                    }
                    if let BackendConfig::Routed(_) = route.backend {
                        return Err(which("a route's backend cannot itself be routed"));
                    }
                    validate_ttl_ms(route.ttl_ms).map_err(|e| which(&format!("{e}")))?;
                    route.backend.validate().map_err(|e| which(&format!("{e}")))?;
                }
                Ok(())
            }
        }
    }
}

/// kv-mem has no options yet.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct MemConfig {}

/// kv-fs: one file per bucket in a directory under a WASI preopen.
///
/// Its defaults and bounds are the associated constants below, the one
/// definition the CLI (`kv-virt … --page-size`) and the kv-fs adapter's
/// engine options both use; [`FsConfig::validate`] checks them.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct FsConfig {
    /// The directory, as the guest sees it: a preopened directory or a
    /// directory below one (e.g. "/data" or "/data/kv").
    pub dir: String,
    /// Page size of new bucket files (a power of two, 1 KiB to 64 KiB).
    pub page_size: u32,
    pub durability: Durability,
    /// Create a bucket's file on first `open` (else `open` of a missing
    /// bucket is `no-such-store`).
    pub create_buckets: bool,
    /// The writer-lock lease: how long a writer that died holding the lock
    /// (a killed runtime) keeps other writers waiting. It must be much
    /// longer than any I/O stall of a live writer (see FORMAT.md).
    pub lock_lease_ms: u32,
    /// A writer keeps the lock from one write to the next until it has not
    /// written for this long (noticed at its next call), another instance
    /// asks for it, or the app drops the bucket. 0: release it after every
    /// write.
    pub lock_idle_ms: u32,
}

impl FsConfig {
    pub const DEFAULT_DIR: &str = "/data";
    pub const DEFAULT_PAGE_SIZE: u32 = 4096;
    /// Page sizes are powers of two in this range (the file format's).
    pub const MIN_PAGE_SIZE: u32 = 1 << 10;
    pub const MAX_PAGE_SIZE: u32 = 1 << 16;
    pub const DEFAULT_DURABILITY: Durability = Durability::Sync;
    pub const DEFAULT_CREATE_BUCKETS: bool = true;
    pub const DEFAULT_LOCK_LEASE_MS: u32 = 5000;
    /// A shorter lease would let a live writer's lock be broken by a
    /// single slow I/O call.
    pub const MIN_LOCK_LEASE_MS: u32 = 100;
    /// A writer waits this many leases for the lock before giving up: more
    /// than one, so that a dead writer's lock is always recovered within
    /// one wait.
    pub const LOCK_WAIT_LEASES: u32 = 3;
    pub const DEFAULT_LOCK_IDLE_MS: u32 = 50;

    /// How long a writer waits for the lock before giving up.
    pub fn lock_wait_ms(&self) -> u64 {
        u64::from(self.lock_lease_ms) * u64::from(Self::LOCK_WAIT_LEASES)
    }

    /// Checks the bounds above (the CLI and a decoded configuration both).
    pub fn validate(&self) -> Result<()> {
        let (min, max) = (Self::MIN_PAGE_SIZE, Self::MAX_PAGE_SIZE);
        if !self.page_size.is_power_of_two() || !(min..=max).contains(&self.page_size) {
            return Err(Error::other(format!(
                "kv-fs page size {} is not a power of two from {min} to {max}",
                self.page_size
            )));
        }
        if self.lock_lease_ms < Self::MIN_LOCK_LEASE_MS {
            return Err(Error::other(format!(
                "kv-fs lock lease of {} ms is too short: at least {} ms",
                self.lock_lease_ms,
                Self::MIN_LOCK_LEASE_MS
            )));
        }
        if self.dir.is_empty() {
            return Err(Error::other("the kv-fs directory must not be empty"));
        }
        if self.lock_idle_ms > self.lock_lease_ms / 2 {
            return Err(Error::other(format!(
                "kv-fs lock idle time of {} ms is too long: at most half the lease ({} ms)",
                self.lock_idle_ms, self.lock_lease_ms
            )));
        }
        Ok(())
    }
}

impl Default for FsConfig {
    fn default() -> Self {
        FsConfig {
            dir: Self::DEFAULT_DIR.into(),
            page_size: Self::DEFAULT_PAGE_SIZE,
            durability: Self::DEFAULT_DURABILITY,
            create_buckets: Self::DEFAULT_CREATE_BUCKETS,
            lock_lease_ms: Self::DEFAULT_LOCK_LEASE_MS,
            lock_idle_ms: Self::DEFAULT_LOCK_IDLE_MS,
        }
    }
}

/// When a write is acknowledged.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Durability {
    /// Only once it is durable (survives a power cut).
    Sync,
    /// Without waiting for the disk (survives a crash of the runtime, not
    /// of the machine).
    None,
}

/// kv-http: a key-value service reached through `wasi:http`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct HttpConfig {
    pub protocol: HttpProtocol,
    /// The service's base URL: `http://host:port` or `https://host:port`,
    /// optionally with a path prefix.
    pub endpoint: String,
    /// Every key the adapter writes starts with this (a namespace shared by
    /// all buckets; may be empty).
    pub key_prefix: String,
    /// Buckets stored under a prefix of the user's choosing instead of the
    /// default `<escaped bucket name>/` (see `kv_http::buckets`).
    pub bucket_prefixes: Vec<(String, String)>,
    /// The whole of one request (connect, send, response, body) must finish
    /// within this.
    pub timeout_ms: u32,
    pub retry: RetryPolicy,
    /// The credentials the protocol needs, by name ("password", "secret-key").
    pub credentials: Vec<(String, Secret)>,
}

impl HttpConfig {
    pub fn new(protocol: HttpProtocol, endpoint: impl Into<String>) -> Self {
        HttpConfig {
            protocol,
            endpoint: endpoint.into(),
            key_prefix: String::new(),
            bucket_prefixes: Vec::new(),
            timeout_ms: 10_000,
            retry: RetryPolicy::default(),
            credentials: Vec::new(),
        }
    }
}

impl HttpConfig {
    pub fn validate(&self) -> Result<()> {
        if self.timeout_ms == 0 || self.retry.max_attempts == 0 {
            return Err(Error::other(
                "kv-virt configuration: the HTTP timeout and the number of attempts must be at least 1",
            ));
        }
        Endpoint::parse(&self.endpoint)?;
        self.protocol.validate()?;
        for (name, _) in &self.bucket_prefixes {
            crate::validate_bucket_name(name)?;
        }
        Ok(())
    }
}

/// The service's base URL, split as `wasi:http` wants it.
#[derive(Clone, Debug)]
pub struct Endpoint {
    https: bool,
    authority: String,
    /// Empty or starting with `/`, without a trailing `/`.
    base_path: String,
}

impl Endpoint {
    pub fn parse(url: &str) -> Result<Self> {
        let bad = |why: &str| Error::other(format!("the endpoint {} {why}", Quoted(url)));
        let (https, rest) = if let Some(rest) = url.strip_prefix("http://") {
            (false, rest)
        } else if let Some(rest) = url.strip_prefix("https://") {
            (true, rest)
        } else {
            return Err(bad("must start with http:// or https://"));
        };
        let (authority, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
        if authority.is_empty() || authority.contains(['@', '?', '#', ' ']) {
            return Err(bad("needs a host[:port] without user info"));
        }
        if path.contains(['?', '#']) {
            return Err(bad("may have a path but no query or fragment"));
        }
        Ok(Endpoint {
            https,
            authority: authority.into(),
            base_path: path.trim_end_matches('/').into(),
        })
    }

    pub fn is_https(&self) -> bool {
        self.https
    }

    /// The host and port, as the `Host` header and request signatures see them.
    pub fn authority(&self) -> &str {
        &self.authority
    }

    /// The path a request for `path` goes to, base path included.
    pub fn full_path(&self, path: &str) -> String {
        format!("{}{path}", self.base_path)
    }
}

impl fmt::Display for Endpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let scheme = if self.https { "https" } else { "http" };
        write!(f, "{scheme}://{}{}", self.authority, self.base_path)
    }
}

/// The service's API. Variants are only appended (see [`CONFIG_FORMAT`]).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum HttpProtocol {
    /// etcd's v3 JSON gateway (`/v3/kv/...`).
    Etcd,
    /// Redis, reached through webdis's HTTP API (`/COMMAND/arg/...`).
    Redis,
    /// Amazon DynamoDB (JSON 1.0 API, SigV4): one table whose partition
    /// key `bucket` (S) is the bucket's prefix and sort key `key` (S) the key.
    DynamoDb {
        table: String,
        /// The SigV4 signing region ("us-east-1").
        region: String,
        /// Strongly consistent reads (`ConsistentRead`) for get and list.
        consistent_reads: bool,
    },
    /// Amazon S3 (REST, SigV4, path-style): a bucket is an object-key
    /// prefix under one S3 bucket.
    S3 {
        bucket: String,
        /// The SigV4 signing region ("us-east-1").
        region: String,
    },
    /// Azure Table storage: one table of the account, SharedKey auth.
    AzureTable { account: String, table: String },
}

impl HttpProtocol {
    /// The name used in messages, options and documentation.
    pub fn name(&self) -> &'static str {
        match self {
            HttpProtocol::Etcd => "etcd",
            HttpProtocol::Redis => "redis",
            HttpProtocol::DynamoDb { .. } => "dynamodb",
            HttpProtocol::S3 { .. } => "s3",
            HttpProtocol::AzureTable { .. } => "azure-table",
        }
    }

    /// Checks the service's names: present, and Azure's by Azure's rules.
    fn validate(&self) -> Result<()> {
        let named = |what: &str, value: &str| {
            if value.is_empty() {
                return Err(Error::other(format!(
                    "the {} protocol's {what} must not be empty",
                    self.name()
                )));
            }
            Ok(())
        };
        match self {
            HttpProtocol::Etcd | HttpProtocol::Redis => Ok(()),
            HttpProtocol::DynamoDb { table, region, .. } => {
                named("table", table)?;
                named("region", region)
            }
            HttpProtocol::S3 { bucket, region } => {
                named("S3 bucket", bucket)?;
                named("region", region)
            }
            HttpProtocol::AzureTable { account, table } => {
                if !(3..=24).contains(&account.len())
                    || !account
                        .bytes()
                        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
                {
                    return Err(Error::other(format!(
                        "Azure storage account {}: 3 to 24 lowercase letters and digits",
                        Quoted(account)
                    )));
                }
                if !(3..=63).contains(&table.len())
                    || !table.starts_with(|c: char| c.is_ascii_alphabetic())
                    || !table.bytes().all(|b| b.is_ascii_alphanumeric())
                {
                    return Err(Error::other(format!(
                        "Azure table {}: 3 to 63 letters and digits, starting with a letter",
                        Quoted(table)
                    )));
                }
                Ok(())
            }
        }
    }
}

/// Retries of failed requests: on connection errors, 5xx and 429 only, with
/// exponential backoff and full jitter.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RetryPolicy {
    /// Tries per request, the first included (1: never retry).
    pub max_attempts: u32,
    /// The backoff before the second try; it doubles for each further try.
    pub initial_backoff_ms: u32,
    /// The backoff never grows past this.
    pub max_backoff_ms: u32,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            max_attempts: 4,
            initial_backoff_ms: 50,
            max_backoff_ms: 2_000,
        }
    }
}

/// Where a credential comes from at run time.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Secret {
    /// The named environment variable (`wasi:cli/environment`): the secret
    /// never enters the component.
    Env(String),
    /// Baked into the component (explicitly asked for, with a warning).
    Baked(String),
}

/// The longest expiry: 100 years, so that an expiry time (a `u64` of
/// milliseconds) never overflows and every service takes it.
pub const MAX_TTL_MS: u64 = 100 * 365 * 24 * 3600 * 1000;

/// A TTL is at least 1 ms (0 would expire every write at once) and at most
/// [`MAX_TTL_MS`].
pub fn validate_ttl_ms(ttl_ms: Option<u64>) -> Result<()> {
    match ttl_ms {
        Some(0) => Err(Error::invalid(
            "ttl-ms must be at least 1 (leave it out for no expiry)",
        )),
        Some(ttl) if ttl > MAX_TTL_MS => Err(Error::invalid(format!(
            "ttl-ms {ttl} is over the longest expiry, {MAX_TTL_MS} ms (100 years)"
        ))),
        _ => Ok(()),
    }
}

impl AdapterConfig {
    pub fn new(backend: BackendConfig) -> Self {
        AdapterConfig {
            format: CONFIG_FORMAT,
            allowed_buckets: None,
            default_bucket: DEFAULT_BUCKET.into(),
            list_page_keys: DEFAULT_LIST_PAGE_KEYS,
            list_page_bytes: DEFAULT_LIST_PAGE_BYTES,
            backend,
            ttl_ms: None,
        }
    }

    pub fn to_bytes(&self) -> Vec<u8> {
        postcard::to_allocvec(self).expect("serializing a configuration to memory cannot fail")
    }
}

impl<B: BackendOptions> AdapterConfig<B> {
    /// Decodes and checks a configuration [`AdapterConfig::to_bytes`] wrote.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self> {
        // (postcard's own error texts are left out: they would be a
        // kilobyte in every adapter, for bytes that kv-virt wrote.)
        let unreadable = || {
            Error::other(
                "kv-virt configuration is unreadable (damaged, or written by another kv-virt): \
                 recompose the app",
            )
        };
        let (format, _) = postcard::take_from_bytes::<u32>(bytes).map_err(|_| unreadable())?;
        if format != CONFIG_FORMAT {
            return Err(Error::other(format!(
                "kv-virt configuration has format {format}, this adapter reads format {CONFIG_FORMAT}: \
                 recompose the app with the kv-virt that built this adapter"
            )));
        }
        let config: Self = postcard::from_bytes(bytes).map_err(|e| match e {
            // An `Own` refusing another adapter's options: its own message.
            postcard::Error::SerdeDeCustom => Error::other(format!(
                "this adapter is {} but its configuration is for another adapter: recompose the app",
                B::ADAPTER
            )),
            _ => unreadable(),
        })?;
        config.validate()?;
        Ok(config)
    }

    /// Checks the values a hand-written or corrupted configuration could get wrong.
    pub fn validate(&self) -> Result<()> {
        if self.list_page_keys == 0 || self.list_page_bytes == 0 {
            return Err(Error::other(
                "kv-virt configuration: list page sizes must be at least 1",
            ));
        }
        for name in self.allowed_buckets.iter().flatten() {
            crate::validate_bucket_name(name)?;
        }
        crate::validate_bucket_name(&self.default_bucket)
            .map_err(|e| Error::other(format!("kv-virt configuration: the default bucket: {e}")))?;
        validate_ttl_ms(self.ttl_ms).map_err(|e| Error::other(format!("kv-virt configuration: {e}")))?;
        self.backend.validate()
    }
}

/// What an adapter decodes the `backend` of its configuration to.
pub trait BackendOptions: serde::de::DeserializeOwned {
    /// The adapter that reads these options ("kv-fs").
    const ADAPTER: &str;
    fn validate(&self) -> Result<()>;
}

impl BackendOptions for BackendConfig {
    const ADAPTER: &str = "kv-route";
    fn validate(&self) -> Result<()> {
        BackendConfig::validate(self)
    }
}

/// One adapter's own options, decoded from the encoding of a
/// [`BackendConfig`] of the variant that holds them. Another variant is
/// refused without the code to decode it (each adapter would otherwise
/// carry the decoders of every backend's options: ~10 KB).
#[derive(Clone, Debug, PartialEq)]
pub struct Own<T>(pub T);

/// Options that are one variant of [`BackendConfig`].
pub trait Variant: serde::de::DeserializeOwned {
    /// Its variant's index in [`BackendConfig`] (postcard encodes a
    /// variant as its index, then its content).
    const INDEX: u32;
    const ADAPTER: &str;
    fn validate(&self) -> Result<()> {
        Ok(())
    }
}

impl Variant for MemConfig {
    const INDEX: u32 = 0;
    const ADAPTER: &str = "kv-mem";
}

impl Variant for FsConfig {
    const INDEX: u32 = 1;
    const ADAPTER: &str = "kv-fs";
    fn validate(&self) -> Result<()> {
        FsConfig::validate(self)
    }
}

impl Variant for HttpConfig {
    const INDEX: u32 = 2;
    const ADAPTER: &str = "kv-http";
    fn validate(&self) -> Result<()> {
        HttpConfig::validate(self)
    }
}

impl<T: Variant> BackendOptions for Own<T> {
    const ADAPTER: &str = T::ADAPTER;
    fn validate(&self) -> Result<()> {
        self.0.validate()
    }
}

impl<'de, T: Variant> Deserialize<'de> for Own<T> {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> core::result::Result<Self, D::Error> {
        use serde::de::{self, EnumAccess, VariantAccess};
        struct OwnVisitor<T>(core::marker::PhantomData<T>);
        impl<'de, T: Variant> de::Visitor<'de> for OwnVisitor<T> {
            type Value = Own<T>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("backend options")
            }
            fn visit_enum<A: EnumAccess<'de>>(self, data: A) -> core::result::Result<Own<T>, A::Error> {
                let (index, options) = data.variant::<u32>()?;
                if index != T::INDEX {
                    // Reported by `from_bytes` as another adapter's options.
                    return Err(de::Error::custom(""));
                }
                options.newtype_variant().map(Own)
            }
        }
        deserializer.deserialize_enum(
            "BackendConfig",
            BACKEND_VARIANTS,
            OwnVisitor(core::marker::PhantomData),
        )
    }
}

/// [`BackendConfig`]'s variants, in order.
const BACKEND_VARIANTS: &[&str] = &["Mem", "Fs", "Http", "Routed"];

#[cfg(test)]
mod tests {
    use super::*;
    use std::prelude::rust_2024::*;
    use std::vec;

    #[test]
    fn route_patterns_match_names_and_runs() {
        for (pattern, name, matches) in [
            ("cache", "cache", true),
            ("cache", "cache2", false),
            ("cache-*", "cache-", true),
            ("cache-*", "cache-x", true),
            ("cache-*", "cach", false),
            ("*", "anything", true),
            ("*-tmp", "a-tmp", true),
            ("*-tmp", "a-tmpx", false),
            ("a*b*c", "abc", true),
            ("a*b*c", "axxbyyc", true),
            ("a*b*c", "acb", false),
            ("a*a", "a", false),
        ] {
            assert_eq!(pattern_matches(pattern, name), matches, "{pattern:?} {name:?}");
        }
    }

    #[test]
    fn a_ttl_is_at_least_1_ms() {
        let mut plain = AdapterConfig::new(BackendConfig::Mem(MemConfig {}));
        plain.ttl_ms = Some(7);
        assert!(plain.validate().is_ok());
        plain.ttl_ms = Some(0);
        assert!(plain.validate().unwrap_err().to_string().contains("at least 1"));
    }

    #[test]
    fn an_adapter_decodes_only_its_own_options() {
        let fs = AdapterConfig::new(BackendConfig::Fs(FsConfig::default()));
        let own = AdapterConfig::<Own<FsConfig>>::from_bytes(&fs.to_bytes()).unwrap();
        assert_eq!(own.backend, Own(FsConfig::default()));
        assert_eq!(own.default_bucket, fs.default_bucket);
        let e = AdapterConfig::<Own<MemConfig>>::from_bytes(&fs.to_bytes()).unwrap_err();
        assert!(
            e.to_string()
                .contains("this adapter is kv-mem but its configuration is for another adapter"),
            "{e}"
        );
        // Its options are validated too.
        let mut bad = fs.clone();
        if let BackendConfig::Fs(options) = &mut bad.backend {
            options.page_size = 100;
        }
        assert!(AdapterConfig::<Own<FsConfig>>::from_bytes(&bad.to_bytes()).is_err());
        // Each variant's index is its place in `BackendConfig`.
        let mem = AdapterConfig::new(BackendConfig::Mem(MemConfig {}));
        assert_eq!(
            AdapterConfig::<Own<MemConfig>>::from_bytes(&mem.to_bytes())
                .unwrap()
                .backend,
            Own(MemConfig {})
        );
        let options = HttpConfig::new(HttpProtocol::Etcd, "http://127.0.0.1:2379");
        let http = AdapterConfig::new(BackendConfig::Http(options.clone()));
        assert_eq!(
            AdapterConfig::<Own<HttpConfig>>::from_bytes(&http.to_bytes())
                .unwrap()
                .backend,
            Own(options)
        );
        assert!(AdapterConfig::<Own<HttpConfig>>::from_bytes(&mem.to_bytes()).is_err());
    }

    #[test]
    fn routes_are_validated() {
        let route = |buckets: &[&str], backend| Route {
            buckets: buckets.iter().map(|b| b.to_string()).collect(),
            backend,
            ttl_ms: None,
        };
        let config = |routes| AdapterConfig::new(BackendConfig::Routed(routes));
        let mem = || BackendConfig::Mem(MemConfig {});
        assert!(
            config(vec![route(&["a", "b-*"], mem()), route(&["*"], mem())])
                .validate()
                .is_ok()
        );
        for (routes, why) in [
            (vec![], "no route"),
            (vec![route(&[], mem())], "route 1: it names no bucket"),
            (
                vec![route(&["a"], mem()), route(&["../*"], mem())],
                "route 2: \"../*\"",
            ),
            (
                vec![route(&["a"], BackendConfig::Routed(vec![]))],
                "cannot itself be routed",
            ),
            (
                vec![route(
                    &["a"],
                    BackendConfig::Fs(FsConfig {
                        page_size: 3,
                        ..FsConfig::default()
                    }),
                )],
                "route 1: kv-fs page size 3",
            ),
        ] {
            let e = config(routes).validate().unwrap_err().to_string();
            assert!(e.contains(why), "{why}: {e}");
        }
    }

    #[test]
    fn round_trips_and_rejects_other_formats() {
        let mut config = AdapterConfig::new(BackendConfig::Mem(MemConfig {}));
        config.allowed_buckets = Some(vec!["a".into(), "b".into()]);
        assert_eq!(
            AdapterConfig::<BackendConfig>::from_bytes(&config.to_bytes()).unwrap(),
            config
        );
        config.format = CONFIG_FORMAT + 1;
        assert!(
            AdapterConfig::<BackendConfig>::from_bytes(&config.to_bytes())
                .unwrap_err()
                .to_string()
                .contains(&format!("format {}", CONFIG_FORMAT + 1))
        );
        assert!(AdapterConfig::<BackendConfig>::from_bytes(&[]).is_err());
        assert!(AdapterConfig::<BackendConfig>::from_bytes(&[1, 0xff, 0xff]).is_err());
    }

    #[test]
    fn service_names_are_checked_by_validate() {
        let http = |protocol| {
            AdapterConfig::new(BackendConfig::Http(HttpConfig::new(protocol, "http://h:1"))).validate()
        };
        let azure = |account: &str, table: &str| {
            http(HttpProtocol::AzureTable {
                account: account.into(),
                table: table.into(),
            })
        };
        assert_eq!(azure("acct1", "kvvirt"), Ok(()));
        for (bad, says) in [
            (azure("ab", "kvvirt"), "Azure storage account \"ab\""),
            (azure("Acct", "kvvirt"), "lowercase letters and digits"),
            (azure("acct", "1kv"), "Azure table \"1kv\""),
            (azure("acct", "kv-virt"), "starting with a letter"),
            (
                http(HttpProtocol::S3 {
                    bucket: String::new(),
                    region: "r".into(),
                }),
                "the s3 protocol's S3 bucket must not be empty",
            ),
            (
                http(HttpProtocol::DynamoDb {
                    table: "t".into(),
                    region: String::new(),
                    consistent_reads: true,
                }),
                "the dynamodb protocol's region must not be empty",
            ),
        ] {
            let message = bad.unwrap_err().to_string();
            assert!(message.contains(says), "{message:?} does not say {says:?}");
        }
    }

    #[test]
    fn kv_fs_bounds_are_checked_by_validate() {
        let fs = |change: fn(&mut FsConfig)| {
            let mut fs = FsConfig::default();
            change(&mut fs);
            AdapterConfig::new(BackendConfig::Fs(fs)).validate()
        };
        assert_eq!(fs(|_| {}), Ok(()));
        assert_eq!(fs(|c| c.page_size = FsConfig::MIN_PAGE_SIZE), Ok(()));
        assert_eq!(fs(|c| c.page_size = FsConfig::MAX_PAGE_SIZE), Ok(()));
        assert_eq!(fs(|c| c.lock_idle_ms = 0), Ok(()));
        assert_eq!(fs(|c| c.lock_idle_ms = c.lock_lease_ms / 2), Ok(()));
        let long_idle = fs(|c| c.lock_idle_ms = c.lock_lease_ms / 2 + 1).unwrap_err();
        assert!(
            long_idle.to_string().contains("at most half the lease"),
            "{long_idle}"
        );
        assert_eq!(fs(|c| c.lock_lease_ms = FsConfig::MIN_LOCK_LEASE_MS), Ok(()));
        for (bad, says) in [
            (fs(|c| c.page_size = FsConfig::MIN_PAGE_SIZE / 2), "page size 512"),
            (
                fs(|c| c.page_size = FsConfig::MAX_PAGE_SIZE * 2),
                "page size 131072",
            ),
            (fs(|c| c.page_size = 3000), "not a power of two"),
            (
                fs(|c| c.lock_lease_ms = FsConfig::MIN_LOCK_LEASE_MS - 1),
                "at least 100 ms",
            ),
            (fs(|c| c.dir.clear()), "directory"),
        ] {
            let message = bad.unwrap_err().to_string();
            assert!(message.contains(says), "{message:?} does not say {says:?}");
        }
        // A decoded configuration is checked too.
        let mut config = AdapterConfig::new(BackendConfig::Fs(FsConfig::default()));
        if let BackendConfig::Fs(fs) = &mut config.backend {
            fs.page_size = 100;
        }
        assert!(AdapterConfig::<BackendConfig>::from_bytes(&config.to_bytes()).is_err());
    }
}
