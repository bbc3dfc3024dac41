//! `kv-bench-http`: kv-http's benchmark harness (a table and JSON, never a
//! timed test).
//!
//! ```sh
//! cargo run -p kv-bench-http --release            # the figures
//! cargo run -p kv-bench-http --release -- --quick # small counts
//! cargo run -p kv-bench-http --release -- --only redis,etcd
//! ```
//!
//! For each protocol (etcd; Redis through webdis; DynamoDB and S3 on moto;
//! Azure Table on Azurite), on a real server started on 127.0.0.1 for the
//! run: the benchmark guest composed with kv-http runs N calls of each
//! operation under the wasmtime runner and times them inside the instance;
//! a native Rust client (`ureq`) makes the same requests to the same server
//! in the same run. Connection reuse is the host's choice, not the
//! adapter's (wasi:http 0.2 has no say in it), so both sides run both ways
//! and are compared like for like:
//!
//! - pooled: the runner sends the guest's requests over keep-alive
//!   connections (`RunOptions::reuse_connections`, as any host may), the
//!   native client uses ureq's pool. The ≤ 1.5× target is on
//!   this pair.
//! - a new connection per request: the runner as `wasmtime run` 48 does
//!   it, the native client likewise.
//!
//! Operations: get, set, increment, get-many of 100, list-keys of 10,000
//! keys. Each figure is the median of three rounds, the four clients
//! interleaved, so a burst of load on the machine lands on all of them.
//!
//! The cloud services' native clients (`cloud`) build kv-http's own
//! requests and sign them with kv-http's own signers. moto cannot check S3
//! signatures of %-escaped paths or queries (the list's `prefix=bench%2F`),
//! so S3 runs with moto's authentication off: both sides still sign.
//!
//! It also counts the requests kv-http makes per operation, as connections
//! through a counting proxy with a new connection per request: a batch call
//! is one round trip.

use std::path::PathBuf;
use std::time::Instant;

mod cloud;
mod keys;

use anyhow::{Context, Result, bail};
use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use kv_core::config::Endpoint;
use kv_http::client::percent_encode;
use kv_http::webdis::{self, Reply};
use kv_runner::Runtime;
use kv_runner::{Command, RunOptions};
use kv_test_support::proxy::CountingProxy;
use kv_test_support::servers::azurite::{self, Azurite};
use kv_test_support::servers::{Etcd, Moto, Webdis, moto};
use kv_virt::adapters::BackendKind;
use kv_virt::options::{AdapterOptions, HttpOptions, ProtocolArg};
use serde_json::{Value, json};

use crate::keys::{key, pick, value};

use crate::cloud::{AwsKey, NativeAzureTable, NativeDynamoDb, NativeS3};

const GUEST: &str = env!("KV_BENCH_HTTP_GUEST_WASM");

/// Operations and how many calls each round makes of them.
struct Sizes {
    keys: u64,
    calls: [(&'static str, u64); 5],
}

const FULL: Sizes = Sizes {
    keys: 10_000,
    calls: [
        ("get", 300),
        ("set", 300),
        ("increment", 300),
        ("get-many", 50),
        ("list", 5),
    ],
};

const QUICK: Sizes = Sizes {
    keys: 2_000,
    calls: [
        ("get", 50),
        ("set", 50),
        ("increment", 50),
        ("get-many", 10),
        ("list", 2),
    ],
};

/// A native client making the requests kv-http makes.
trait Native {
    fn get(&self, key: &str) -> Result<Option<Vec<u8>>>;
    fn set(&self, key: &str, value: &[u8]) -> Result<()>;
    fn increment(&self, key: &str) -> Result<i64>;
    fn get_many(&self, keys: &[String]) -> Result<usize>;
    fn list_all(&self) -> Result<u64>;
}

/// The native client: with a connection pool (`pooled`), as a native program
/// would run, or with a new connection per request, as wasmtime 48's
/// `wasi:http` makes them.
/// `statuses_as_errors`: whether an error status is an `Err` (the cloud
/// clients read their error answers).
fn agent(pooled: bool, statuses_as_errors: bool) -> ureq::Agent {
    let idle = if pooled { 10 } else { 0 };
    ureq::Agent::config_builder()
        .http_status_as_error(statuses_as_errors)
        .max_idle_connections(idle)
        .max_idle_connections_per_host(idle)
        .build()
        .into()
}

struct NativeEtcd {
    agent: ureq::Agent,
    url: String,
}

impl NativeEtcd {
    fn call(&self, call: &str, body: &Value) -> Result<Value> {
        let mut response = self
            .agent
            .post(format!("{}/v3/{call}", self.url))
            .header("content-type", "application/json")
            .send(body.to_string())?;
        Ok(serde_json::from_slice(&response.body_mut().read_to_vec()?)?)
    }

    fn wire(key: &str) -> String {
        BASE64.encode(format!("bench/{key}"))
    }

    fn first(answer: &Value) -> Option<(Vec<u8>, String)> {
        let kv = answer["kvs"].get(0)?;
        let value = BASE64.decode(kv["value"].as_str().unwrap_or("")).ok()?;
        Some((value, kv["mod_revision"].as_str()?.to_string()))
    }
}

impl Native for NativeEtcd {
    fn get(&self, key: &str) -> Result<Option<Vec<u8>>> {
        let answer = self.call("kv/range", &json!({ "key": Self::wire(key) }))?;
        Ok(Self::first(&answer).map(|(value, _)| value))
    }

    fn set(&self, key: &str, value: &[u8]) -> Result<()> {
        self.call(
            "kv/put",
            &json!({ "key": Self::wire(key), "value": BASE64.encode(value) }),
        )?;
        Ok(())
    }

    fn increment(&self, key: &str) -> Result<i64> {
        let mut current = Self::first(&self.call("kv/range", &json!({ "key": Self::wire(key) }))?);
        loop {
            let (n, compare) = match &current {
                None => (
                    1,
                    json!({ "key": Self::wire(key), "target": "CREATE", "result": "EQUAL", "create_revision": "0" }),
                ),
                Some((value, revision)) => (
                    std::str::from_utf8(value)?.parse::<i64>()? + 1,
                    json!({ "key": Self::wire(key), "target": "MOD", "result": "EQUAL", "mod_revision": revision }),
                ),
            };
            let answer = self.call(
                "kv/txn",
                &json!({
                    "compare": [compare],
                    "success": [{ "request_put": { "key": Self::wire(key), "value": BASE64.encode(n.to_string()) } }],
                    "failure": [{ "request_range": { "key": Self::wire(key) } }],
                }),
            )?;
            if answer["succeeded"].as_bool().unwrap_or(false) {
                return Ok(n);
            }
            current = Self::first(&answer["responses"][0]["response_range"]);
        }
    }

    fn get_many(&self, keys: &[String]) -> Result<usize> {
        let ops: Vec<Value> = keys
            .iter()
            .map(|k| json!({ "request_range": { "key": Self::wire(k) } }))
            .collect();
        let answer = self.call("kv/txn", &json!({ "success": ops }))?;
        let responses = answer["responses"].as_array().context("no responses")?;
        Ok(responses
            .iter()
            .filter(|r| Self::first(&r["response_range"]).is_some())
            .count())
    }

    fn list_all(&self) -> Result<u64> {
        let mut start = b"bench/".to_vec();
        let mut listed = 0;
        loop {
            let answer = self.call(
                "kv/range",
                &json!({ "key": BASE64.encode(&start), "range_end": BASE64.encode("bench0"),
                         "keys_only": true, "limit": "1000" }),
            )?;
            let kvs = answer["kvs"].as_array().cloned().unwrap_or_default();
            listed += kvs.len() as u64;
            if !answer["more"].as_bool().unwrap_or(false) {
                return Ok(listed);
            }
            start = BASE64.decode(
                kvs.last().context("more without keys")?["key"]
                    .as_str()
                    .unwrap_or(""),
            )?;
            start.push(0);
        }
    }
}

struct NativeWebdis {
    agent: ureq::Agent,
    url: String,
}

impl NativeWebdis {
    fn command(&self, args: &[&[u8]], value: Option<&[u8]>) -> Result<Reply> {
        let path: String = args.iter().map(|a| format!("/{}", percent_encode(a))).collect();
        let mut response = match value {
            Some(value) => self.agent.put(format!("{}{path}.raw", self.url)).send(value)?,
            None => self.agent.get(format!("{}{path}.raw", self.url)).call()?,
        };
        let body = response.body_mut().read_to_vec()?;
        match webdis::parse_reply(&body) {
            Some((Reply::Error(e), _)) => bail!("redis: {e}"),
            Some((reply, [])) => Ok(reply),
            _ => bail!("not a Redis reply"),
        }
    }

    fn wire(key: &str) -> Vec<u8> {
        format!("bench/{key}").into_bytes()
    }
}

impl Native for NativeWebdis {
    fn get(&self, key: &str) -> Result<Option<Vec<u8>>> {
        match self.command(&[b"GET", &Self::wire(key)], None)? {
            Reply::Bulk(value) => Ok(value),
            reply => bail!("GET: {reply:?}"),
        }
    }

    fn set(&self, key: &str, value: &[u8]) -> Result<()> {
        self.command(&[b"SET", &Self::wire(key)], Some(value)).map(drop)
    }

    fn increment(&self, key: &str) -> Result<i64> {
        let args: [&[u8]; 6] = [
            b"EVAL",
            webdis::INCREMENT.as_bytes(),
            b"1",
            &Self::wire(key),
            b"1",
            b"u64",
        ];
        match self.command(&args, None)? {
            Reply::Bulk(Some(text)) => Ok(std::str::from_utf8(&text)?.parse()?),
            reply => bail!("INCRBY: {reply:?}"),
        }
    }

    fn get_many(&self, keys: &[String]) -> Result<usize> {
        let wire: Vec<Vec<u8>> = keys.iter().map(|k| Self::wire(k)).collect();
        let count = keys.len().to_string();
        let mut args: Vec<&[u8]> = vec![b"EVAL", webdis::GET_MANY.as_bytes(), count.as_bytes()];
        args.extend(wire.iter().map(Vec::as_slice));
        match self.command(&args, None)? {
            Reply::Array(items) => Ok(items
                .iter()
                .filter(|i| matches!(i, Reply::Bulk(Some(v)) if v.first() == Some(&b'1')))
                .count()),
            reply => bail!("MGET: {reply:?}"),
        }
    }

    fn list_all(&self) -> Result<u64> {
        let mut after: Option<Vec<u8>> = None;
        let mut listed = 0;
        loop {
            let flag: &[u8] = if after.is_some() { b"1" } else { b"0" };
            let args: [&[u8]; 7] = [
                b"EVAL",
                webdis::LIST_KEYS.as_bytes(),
                b"0",
                b"bench/*",
                flag,
                after.as_deref().unwrap_or(b"-"),
                // 1000 a page, and one more to know whether more follow.
                b"1001",
            ];
            let Reply::Array(mut items) = self.command(&args, None)? else {
                bail!("list-keys: not an array");
            };
            let more = items.len() > 1000;
            items.truncate(1000);
            listed += items.len() as u64;
            if !more {
                return Ok(listed);
            }
            match items.pop() {
                Some(Reply::Bulk(Some(last))) => after = Some(last),
                _ => bail!("list-keys: bad key"),
            }
        }
    }
}

/// Times `n` calls of `op` on the native client, in µs per call.
fn native_round(native: &dyn Native, op: &str, n: u64, keys: u64) -> Result<f64> {
    let start = Instant::now();
    for i in 0..n {
        match op {
            "get" => {
                native.get(&key(pick(i, keys)))?.context("a key is missing")?;
            }
            "set" => native.set(&key(pick(i, keys)), &value(i))?,
            "increment" => {
                native.increment("counter")?;
            }
            "get-many" => {
                let batch: Vec<String> = (0..100).map(|j| key(pick(i * 100 + j, keys))).collect();
                if native.get_many(&batch)? != 100 {
                    bail!("get-many missed keys");
                }
            }
            "list" => {
                if native.list_all()? < keys {
                    bail!("list-keys missed keys");
                }
            }
            _ => bail!("unknown op {op}"),
        }
    }
    Ok(start.elapsed().as_secs_f64() * 1e6 / n as f64)
}

/// Runs the guest once: `OP N KEYS`, with the credentials' environment,
/// returning its µs per call.
fn guest_round(
    command: &Command,
    env: &[(String, String)],
    reuse_connections: bool,
    (op, n, keys): (&str, u64, u64),
) -> Result<f64> {
    let output = command.run(&RunOptions {
        args: vec![op.into(), n.to_string(), keys.to_string()],
        env: env.to_vec(),
        capture_output: true,
        reuse_connections,
        ..RunOptions::default()
    })?;
    if output.exit_code != 0 {
        bail!("guest {op}: {}", output.stderr_text());
    }
    let line: Value = serde_json::from_str(output.stdout_text().trim())?;
    line["us_per_op"].as_f64().context("no us_per_op")
}

/// The port and base path of a loopback URL.
fn port_and_path(url: &str) -> Result<(u16, String)> {
    let endpoint = Endpoint::parse(url).map_err(|e| anyhow::anyhow!("{e:?}"))?;
    let port = endpoint
        .authority()
        .rsplit(':')
        .next()
        .and_then(|p| p.parse().ok())
        .with_context(|| format!("{url} has no port"))?;
    Ok((port, endpoint.full_path("")))
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// One operation's medians, µs per call: kv-http and the native client,
/// each with pooled keep-alive connections and with a new one per request.
struct Row {
    protocol: &'static str,
    op: &'static str,
    kv_http_us: f64,
    native_us: f64,
    kv_http_unpooled_us: f64,
    native_unpooled_us: f64,
    connections_per_call: f64,
}

/// The services this harness has a native client for.
enum Service {
    Etcd,
    Redis,
    DynamoDb(AwsKey),
    S3(AwsKey),
    AzureTable,
}

/// Where the cloud services keep the data.
const TABLE: &str = "bench";
const S3_BUCKET: &str = "bench";

/// The variables the composed adapter reads its credentials from.
const AWS_KEY_ID_VARIABLE: &str = "AWS_ACCESS_KEY_ID";
const AWS_SECRET_VARIABLE: &str = "AWS_SECRET_ACCESS_KEY";
const AZURE_KEY_VARIABLE: &str = "AZURE_STORAGE_KEY";

impl Service {
    fn name(&self) -> &'static str {
        match self {
            Service::Etcd => "etcd",
            Service::Redis => "redis",
            Service::DynamoDb(_) => "dynamodb",
            Service::S3(_) => "s3",
            Service::AzureTable => "azure-table",
        }
    }

    /// kv-http's options for this service at `url`.
    fn options(&self, url: String) -> HttpOptions {
        let aws_credentials = || {
            vec![
                ("access-key-id".into(), format!("env:{AWS_KEY_ID_VARIABLE}")),
                ("secret-access-key".into(), format!("env:{AWS_SECRET_VARIABLE}")),
            ]
        };
        let endpoint = Some(url);
        match self {
            Service::Etcd => HttpOptions {
                protocol: Some(ProtocolArg::Etcd),
                endpoint,
                ..HttpOptions::default()
            },
            Service::Redis => HttpOptions {
                protocol: Some(ProtocolArg::Redis),
                endpoint,
                ..HttpOptions::default()
            },
            Service::DynamoDb(_) => HttpOptions {
                protocol: Some(ProtocolArg::Dynamodb),
                endpoint,
                table: Some(TABLE.into()),
                region: Some(moto::REGION.into()),
                credentials: aws_credentials(),
                ..HttpOptions::default()
            },
            Service::S3(_) => HttpOptions {
                protocol: Some(ProtocolArg::S3),
                endpoint,
                s3_bucket: Some(S3_BUCKET.into()),
                region: Some(moto::REGION.into()),
                credentials: aws_credentials(),
                ..HttpOptions::default()
            },
            Service::AzureTable => HttpOptions {
                protocol: Some(ProtocolArg::AzureTable),
                endpoint,
                azure_account: Some(azurite::DEV_ACCOUNT.into()),
                azure_table: Some(TABLE.into()),
                credentials: vec![("account-key".into(), format!("env:{AZURE_KEY_VARIABLE}"))],
                ..HttpOptions::default()
            },
        }
    }

    /// The environment the composed adapter reads its credentials from.
    fn env(&self) -> Vec<(String, String)> {
        match self {
            Service::Etcd | Service::Redis => Vec::new(),
            Service::DynamoDb(key) | Service::S3(key) => vec![
                (AWS_KEY_ID_VARIABLE.into(), key.access_key_id.clone()),
                (AWS_SECRET_VARIABLE.into(), key.secret_access_key.clone()),
            ],
            Service::AzureTable => vec![(AZURE_KEY_VARIABLE.into(), azurite::DEV_KEY.into())],
        }
    }

    /// The native client of this service at `url`, with the same credentials.
    fn native(&self, url: &str, pooled: bool) -> Result<Box<dyn Native>> {
        Ok(match self {
            Service::Etcd => Box::new(NativeEtcd {
                agent: agent(pooled, true),
                url: url.into(),
            }),
            Service::Redis => Box::new(NativeWebdis {
                agent: agent(pooled, true),
                url: url.into(),
            }),
            Service::DynamoDb(key) => Box::new(NativeDynamoDb::new(
                url,
                agent(pooled, false),
                key,
                moto::REGION,
                TABLE,
            )?),
            Service::S3(key) => Box::new(NativeS3::new(
                url,
                agent(pooled, false),
                key,
                moto::REGION,
                S3_BUCKET,
            )?),
            Service::AzureTable => Box::new(NativeAzureTable::new(
                url,
                agent(pooled, false),
                azurite::DEV_ACCOUNT,
                azurite::DEV_KEY,
                TABLE,
            )?),
        })
    }
}

fn bench_protocol(service: Service, url: &str, sizes: &Sizes, rows: &mut Vec<Row>) -> Result<()> {
    let name = service.name();
    let env = service.env();
    let (port, base_path) = port_and_path(url)?;
    let proxy = CountingProxy::start(port)?;
    let composed = |url: String| -> Result<Command> {
        let options = AdapterOptions {
            http: service.options(url),
            ..AdapterOptions::default()
        };
        let bytes = kv_virt::cli::plug(&std::fs::read(GUEST)?, Some(BackendKind::Http), &options)?;
        Runtime::shared().command(&bytes)
    };
    let direct = composed(url.to_string())?;
    let counted = composed(format!("http://127.0.0.1:{}{base_path}", proxy.port()))?;
    let (pooled, unpooled) = (service.native(url, true)?, service.native(url, false)?);
    guest_round(&direct, &env, false, ("setup", 1, sizes.keys)).context("loading the keys")?;
    for &(op, n) in &sizes.calls {
        let run = (op, n, sizes.keys);
        let mut times = [(); 4].map(|()| Vec::new());
        for _ in 0..3 {
            times[0].push(guest_round(&direct, &env, true, run)?);
            times[1].push(native_round(pooled.as_ref(), op, n, sizes.keys)?);
            times[2].push(guest_round(&direct, &env, false, run)?);
            times[3].push(native_round(unpooled.as_ref(), op, n, sizes.keys)?);
        }
        let before = proxy.connections();
        guest_round(&counted, &env, false, run)?;
        let opened = proxy.connections() - before;
        let [ours, theirs, ours_unpooled, theirs_unpooled] = times.map(median);
        rows.push(Row {
            protocol: name,
            op,
            kv_http_us: ours,
            native_us: theirs,
            kv_http_unpooled_us: ours_unpooled,
            native_unpooled_us: theirs_unpooled,
            connections_per_call: opened as f64 / n as f64,
        });
        eprintln!("{name} {op}: done");
    }
    Ok(())
}

fn main() -> Result<()> {
    let quick = std::env::args().any(|a| a == "--quick");
    let sizes = if quick { &QUICK } else { &FULL };
    if cfg!(debug_assertions) {
        eprintln!("warning: a dev build: wasmtime's host side is much slower; use --release for figures");
    }
    // `--only redis,etcd`: just those services (names as in the table).
    let only: Option<Vec<String>> = std::env::args()
        .skip_while(|a| a != "--only")
        .nth(1)
        .map(|list| list.split(',').map(str::to_string).collect());
    let wanted = |name: &str| only.as_ref().is_none_or(|o| o.iter().any(|n| n == name));
    let mut rows = Vec::new();
    if wanted("etcd") {
        let etcd = Etcd::start("bench")?;
        bench_protocol(Service::Etcd, &etcd.url(), sizes, &mut rows)?;
    }
    if wanted("redis") {
        let webdis = Webdis::start("bench")?;
        bench_protocol(Service::Redis, &webdis.url(), sizes, &mut rows)?;
    }
    if wanted("dynamodb") {
        let moto = Moto::with_dynamodb_table("bench-dynamodb", TABLE)?;
        let key = AwsKey {
            access_key_id: moto.access_key_id.clone(),
            secret_access_key: moto.secret_access_key.clone(),
        };
        bench_protocol(Service::DynamoDb(key), &moto.url(), sizes, &mut rows)?;
    }
    if wanted("s3") {
        // Authentication off: see the top of this file.
        let moto = Moto::with_s3_bucket("bench-s3", S3_BUCKET, false)?;
        let key = AwsKey {
            access_key_id: moto.access_key_id.clone(),
            secret_access_key: moto.secret_access_key.clone(),
        };
        bench_protocol(Service::S3(key), &moto.url(), sizes, &mut rows)?;
    }
    if wanted("azure-table") {
        let azurite = Azurite::start("bench")?;
        bench_protocol(Service::AzureTable, &azurite.url(), sizes, &mut rows)?;
    }

    println!("µs per call; ratio = kv-http / native; target ≤ 1.5× with connections pooled on both sides");
    println!(
        "{:<11} {:<10} {:>10} {:>10} {:>7} {:>8} | {:>10} {:>10} {:>7} | {:>13}",
        "", "", "pooled", "", "", "", "new conn", "each", "", ""
    );
    println!(
        "{:<11} {:<10} {:>10} {:>10} {:>7} {:>8} | {:>10} {:>10} {:>7} | {:>13}",
        "service",
        "operation",
        "kv-http",
        "native",
        "ratio",
        "target",
        "kv-http",
        "native",
        "ratio",
        "requests/call"
    );
    let mut json_rows = Vec::new();
    for row in &rows {
        let ratio = row.kv_http_us / row.native_us;
        let ratio_unpooled = row.kv_http_unpooled_us / row.native_unpooled_us;
        println!(
            "{:<11} {:<10} {:>10.1} {:>10.1} {:>6.2}× {:>8} | {:>10.1} {:>10.1} {:>6.2}× | {:>13.2}",
            row.protocol,
            row.op,
            row.kv_http_us,
            row.native_us,
            ratio,
            if ratio <= 1.5 { "met" } else { "NOT met" },
            row.kv_http_unpooled_us,
            row.native_unpooled_us,
            ratio_unpooled,
            row.connections_per_call
        );
        json_rows.push(json!({
            "service": row.protocol, "operation": row.op,
            "kv_http_us_per_op": row.kv_http_us, "native_us_per_op": row.native_us,
            "ratio": ratio, "target_ratio": 1.5,
            "kv_http_unpooled_us_per_op": row.kv_http_unpooled_us,
            "native_unpooled_us_per_op": row.native_unpooled_us, "ratio_unpooled": ratio_unpooled,
            "requests_per_call": row.connections_per_call,
        }));
    }
    let out = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../target/bench/kv-http.json");
    std::fs::create_dir_all(out.parent().unwrap())?;
    let report = json!({
        "profile": if cfg!(debug_assertions) { "dev" } else { "release" },
        "keys": sizes.keys,
        "rows": json_rows,
    });
    std::fs::write(&out, serde_json::to_string_pretty(&report)?)?;
    println!("wrote {}", out.display());
    Ok(())
}
