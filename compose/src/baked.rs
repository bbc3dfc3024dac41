//! The configuration baked into an adapter, readable by `kv-virt inspect`:
//! [`crate::configure`] also writes it into a custom section of the
//! configured adapter, which stays in every component composed from it
//! (composition nests components byte for byte).

use anyhow::{Context, Result};
use kv_core::config::{AdapterConfig, BackendConfig, HttpProtocol, Secret};
use wasm_encoder::{ComponentSection, CustomSection};
use wasmparser::{Parser, Payload};

/// The custom section's name.
pub const SECTION: &str = "kv-virt-config";

/// `component` with `config` in a custom section at its end.
pub(crate) fn append_section(mut component: Vec<u8>, config: &[u8]) -> Vec<u8> {
    let section = CustomSection {
        name: SECTION.into(),
        data: config.into(),
    };
    section.append_to_component(&mut component);
    component
}

/// Every configuration baked into `component` or the components nested in it.
pub fn baked_configs(component: &[u8]) -> Result<Vec<AdapterConfig>> {
    let mut configs = Vec::new();
    for payload in Parser::new(0).parse_all(component) {
        if let Payload::CustomSection(section) = payload.context("reading the component")?
            && section.name() == SECTION
        {
            let config = AdapterConfig::<BackendConfig>::from_bytes(section.data())
                .map_err(|e| anyhow::anyhow!("a baked kv-virt configuration: {e}"))?;
            configs.push(config);
        }
    }
    Ok(configs)
}

/// A configuration as lines for people; a secret shows where it comes from
/// (`env:VARIABLE`), or that it is baked in, never itself.
pub fn describe(config: &AdapterConfig) -> Vec<String> {
    let mut lines = vec![format!("adapter: {}", config.backend.adapter_name())];
    lines.push(match &config.allowed_buckets {
        Some(names) => format!("buckets: {}", names.join(", ")),
        None => "buckets: any valid name".into(),
    });
    lines.push(format!("default bucket (open(\"\")): {}", config.default_bucket));
    lines.push(format!(
        "list-keys pages: {} keys, {} bytes of keys",
        config.list_page_keys, config.list_page_bytes
    ));
    lines.push(format!(
        "expiry (ttl-ms) of keys written without one: {}",
        ttl(config.ttl_ms)
    ));
    match &config.backend {
        BackendConfig::Routed(routes) => {
            lines.push("routes (the first that serves a bucket wins; others: access-denied):".into());
            for route in routes {
                let expiry = match route.ttl_ms {
                    Some(_) => format!(" ttl-ms={}", ttl(route.ttl_ms)),
                    None => String::new(),
                };
                lines.push(format!(
                    "  {} -> {}{expiry}",
                    route.buckets.join(", "),
                    backend(&route.backend)
                ));
            }
        }
        other => lines.push(format!("backend: {}", backend(other))),
    }
    lines
}

fn ttl(ttl_ms: Option<u64>) -> String {
    match ttl_ms {
        Some(ms) => format!("{ms} ms"),
        None => "never".into(),
    }
}

fn backend(config: &BackendConfig) -> String {
    match config {
        BackendConfig::Mem(_) => "kv-mem".into(),
        BackendConfig::Fs(fs) => format!(
            "kv-fs dir={} page-size={} durability={:?} create-buckets={} lock-lease-ms={} lock-idle-ms={}",
            fs.dir, fs.page_size, fs.durability, fs.create_buckets, fs.lock_lease_ms, fs.lock_idle_ms
        ),
        BackendConfig::Http(http) => {
            let mut text = format!("kv-http {} {}", http.protocol.name(), http.endpoint);
            match &http.protocol {
                HttpProtocol::DynamoDb { table, region, .. } => {
                    text += &format!(" table={table} region={region}")
                }
                HttpProtocol::S3 { bucket, region } => {
                    text += &format!(" s3-bucket={bucket} region={region}")
                }
                HttpProtocol::AzureTable { account, table } => {
                    text += &format!(" account={account} table={table}")
                }
                HttpProtocol::Etcd | HttpProtocol::Redis => {}
            }
            if !http.key_prefix.is_empty() {
                text += &format!(" key-prefix={:?}", http.key_prefix);
            }
            for (name, secret) in &http.credentials {
                let source = match secret {
                    Secret::Env(variable) => format!("env:{variable}"),
                    Secret::Baked(_) => "baked in".into(),
                };
                text += &format!(" {name}={source}");
            }
            text
        }
        BackendConfig::Routed(_) => "kv-route".into(),
    }
}
