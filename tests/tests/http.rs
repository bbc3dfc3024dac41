//! kv-http against real servers on 127.0.0.1 (etcd; Redis through webdis),
//! composed and run on the embedded wasmtime with wasi:http: conformance for
//! both drafts, concurrent increments and if-not-exists, an outage and
//! recovery, and broken endpoints.

use std::io::Write;
use std::net::TcpListener;
use std::time::{Duration, Instant};

use kv_runner::{Command, RunOptions};
use kv_virt::adapters::BackendKind;
use kv_virt::options::{AdapterOptions, HttpOptions, ProtocolArg};
use kv_virt_tests::http::HttpClient;
use kv_virt_tests::proxy::{CountingProxy, read_request};
use kv_virt_tests::servers::{Etcd, Webdis, free_port};
use kv_virt_tests::*;

fn http_options(protocol: ProtocolArg, url: &str, buckets: &[&str]) -> AdapterOptions {
    AdapterOptions {
        buckets: buckets.iter().map(|s| s.to_string()).collect(),
        http: HttpOptions {
            protocol: Some(protocol),
            endpoint: Some(url.into()),
            ..HttpOptions::default()
        },
        ..AdapterOptions::default()
    }
}

fn counter(protocol: ProtocolArg, url: &str, tweak: impl FnOnce(&mut HttpOptions)) -> Command {
    let mut options = http_options(protocol, url, &[]);
    tweak(&mut options.http);
    composed_command(COUNTER, BackendKind::Http, &options).unwrap()
}

fn run_args(args: &[&str]) -> RunOptions {
    RunOptions {
        args: args.iter().map(|s| s.to_string()).collect(),
        capture_output: true,
        ..RunOptions::default()
    }
}

/// `run_args` on a host that pools its outgoing connections.
fn pooled_run_args(args: &[&str]) -> RunOptions {
    RunOptions {
        reuse_connections: true,
        ..run_args(args)
    }
}

/// Both drafts' conformance guests against the same server, up to the
/// protocol's declared limits.
fn conformance(protocol: ProtocolArg, url: &str) {
    let limits = match protocol {
        ProtocolArg::Etcd => kv_http::etcd::LIMITS,
        ProtocolArg::Redis => kv_http::webdis::LIMITS,
        other => panic!("{other:?} is tested in its own file"),
    };
    let run = RunOptions {
        args: limit_args(limits),
        capture_output: true,
        ..RunOptions::default()
    };
    conformance_every_guest(
        BackendKind::Http,
        &http_options(protocol, url, &CONFORMANCE_BUCKETS),
        &run,
    )
    .unwrap();
}

#[test]
fn etcd_conformance() {
    let etcd = Etcd::start("conformance").unwrap();
    conformance(ProtocolArg::Etcd, &etcd.url());
}

#[test]
fn redis_conformance() {
    let webdis = Webdis::start("conformance").unwrap();
    conformance(ProtocolArg::Redis, &webdis.url());
}

/// 8 instances × 200 increments of one key give exactly 1,600.
fn concurrent_increments(protocol: ProtocolArg, url: &str) {
    assert_concurrent_increments(&counter(protocol, url, |_| {}), run_args, 8, 200);
}

#[test]
fn etcd_concurrent_increments_are_exact() {
    let etcd = Etcd::start("increments").unwrap();
    concurrent_increments(ProtocolArg::Etcd, &etcd.url());
}

#[test]
fn redis_concurrent_increments_are_exact() {
    let webdis = Webdis::start("increments").unwrap();
    concurrent_increments(ProtocolArg::Redis, &webdis.url());
}

/// 8 clients at once `set` one key with `if-not-exists` through the
/// wasmCloud app (`PUT /new/<key>`, each request a fresh instance, served
/// concurrently): exactly one creates it (its value is kept), the other 7
/// get `412`. Keys created with a 1 s expiry are raced for again once it
/// has passed (on etcd they are still stored then, until etcd revokes
/// their lease: the insert swaps the expired revision): again exactly one.
fn concurrent_if_not_exists(protocol: ProtocolArg, url: &str) {
    const CLIENTS: usize = 8;
    const KEYS: usize = 4;
    let work = work_dir!("http", &format!("if-not-exists-{protocol:?}"));
    let backend = AppBackend {
        name: "kv-http",
        kind: BackendKind::Http,
        options: http_options(protocol, url, &[]),
        data: None,
        _etcd: None,
    };
    let app = work.join("wasmcloud-p3-app.wasm");
    std::fs::write(&app, backend.compose(WASMCLOUD_P3_APP)).unwrap();
    let server = ServeProcess::start(env!("CARGO_BIN_EXE_kv-run-under-test"), &app, &[]);
    // Each client's status, and the value then stored.
    let race = |path: &str, key: &str| {
        let start = std::sync::Barrier::new(CLIENTS);
        let statuses: Vec<u16> = std::thread::scope(|scope| {
            let clients: Vec<_> = (0..CLIENTS)
                .map(|client| {
                    let start = &start;
                    scope.spawn(move || {
                        let mut http = HttpClient::connect(server.addr).unwrap();
                        start.wait();
                        let response = http.request("PUT", path, client.to_string().as_bytes()).unwrap();
                        assert!(
                            [201, 412].contains(&response.status),
                            "{protocol:?}: {} {}",
                            response.status,
                            response.text()
                        );
                        response.status
                    })
                })
                .collect();
            clients.into_iter().map(|c| c.join().unwrap()).collect()
        });
        let mut http = HttpClient::connect(server.addr).unwrap();
        let stored = http.request("GET", &format!("/key/{key}"), b"").unwrap();
        (statuses, stored.text())
    };
    let one_wins = |path: &str, key: &str| {
        let (statuses, stored) = race(path, key);
        let winners: Vec<usize> = (0..CLIENTS).filter(|&c| statuses[c] == 201).collect();
        assert_eq!(winners.len(), 1, "{protocol:?} {path}: {statuses:?}");
        assert_eq!(
            stored,
            winners[0].to_string(),
            "{protocol:?} {path}: the winner's value"
        );
    };
    for key in 0..KEYS {
        one_wins(&format!("/new/race{key}?ttl-ms=1000"), &format!("race{key}"));
    }
    std::thread::sleep(Duration::from_millis(1100));
    for key in 0..KEYS {
        one_wins(&format!("/new/race{key}"), &format!("race{key}"));
    }
}

#[test]
fn etcd_concurrent_if_not_exists_has_one_winner() {
    let etcd = Etcd::start("if-not-exists").unwrap();
    concurrent_if_not_exists(ProtocolArg::Etcd, &etcd.url());
}

#[test]
fn redis_concurrent_if_not_exists_has_one_winner() {
    let webdis = Webdis::start("if-not-exists").unwrap();
    concurrent_if_not_exists(ProtocolArg::Redis, &webdis.url());
}

/// The counted lines of a keep-going counter run: (acknowledged counts, errors).
fn outcomes(stdout: &str) -> (Vec<u64>, Vec<&str>) {
    let mut counts = Vec::new();
    let mut errors = Vec::new();
    for line in stdout.lines() {
        match line.strip_prefix("counter/hits = ") {
            Some(n) => counts.push(n.parse().unwrap()),
            None => errors.push(line),
        }
    }
    (counts, errors)
}

/// A server stopped while an instance keeps incrementing: the instance sees
/// clear `other(..)` errors within the timeout, then works again once the
/// server is back; every acknowledged increment counts. With `pooled`, the
/// host pools connections, so the outage also kills the ones in the pool.
fn outage(protocol: ProtocolArg, url: &str, pooled: bool, stop: impl FnOnce(), resume: impl FnOnce()) {
    let command = counter(protocol, url, |http| {
        http.timeout_ms = Some(2000);
    });
    std::thread::scope(|scope| {
        // 100 increments 20 ms apart (2 s or more), going on after errors.
        let run = scope.spawn(|| {
            let start = Instant::now();
            let args = ["hits", "counter", "100", "20"];
            let options = if pooled {
                pooled_run_args(&args)
            } else {
                run_args(&args)
            };
            let output = command.run(&options).unwrap();
            (output, start.elapsed())
        });
        std::thread::sleep(Duration::from_millis(500));
        stop();
        std::thread::sleep(Duration::from_millis(1500));
        resume();
        let (output, elapsed) = run.join().unwrap();
        assert_eq!(output.exit_code, 0, "{}", output.stderr_text());
        let stdout = output.stdout_text();
        let (counts, errors) = outcomes(&stdout);
        assert!(!errors.is_empty(), "the outage was not seen:\n{stdout}");
        for error in &errors {
            let service = if protocol == ProtocolArg::Etcd {
                "etcd"
            } else {
                "redis"
            };
            assert!(error.starts_with(&format!("error: {service}: ")), "{error}");
        }
        let lines: Vec<&str> = stdout.lines().collect();
        let last_error = lines.iter().rposition(|l| l.starts_with("error: ")).unwrap();
        assert!(last_error + 1 < lines.len(), "it never recovered:\n{stdout}");
        // Acknowledged counts are distinct and increasing; a failed try may
        // or may not have landed, never more than once.
        assert!(counts.windows(2).all(|w| w[0] < w[1]), "{stdout}");
        assert_eq!(counts.len() + errors.len(), 100);
        // No request hung past the 2 s timeout (each error costs at most that).
        assert!(
            elapsed < Duration::from_secs(2 + 2 * errors.len() as u64 + 30),
            "{elapsed:?}"
        );
    });
}

/// A server's data directory is named after the test: the pooled and the
/// plain outage tests run at once, each with a server of its own.
fn outage_name(pooled: bool) -> &'static str {
    if pooled { "outage-pooled" } else { "outage" }
}

fn etcd_outage(pooled: bool) {
    let etcd = std::sync::Mutex::new(Etcd::start(outage_name(pooled)).unwrap());
    let url = etcd.lock().unwrap().url();
    outage(
        ProtocolArg::Etcd,
        &url,
        pooled,
        || etcd.lock().unwrap().stop(),
        || etcd.lock().unwrap().resume().unwrap(),
    );
}

fn redis_outage(pooled: bool) {
    let webdis = std::sync::Mutex::new(Webdis::start(outage_name(pooled)).unwrap());
    let url = webdis.lock().unwrap().url();
    outage(
        ProtocolArg::Redis,
        &url,
        pooled,
        || webdis.lock().unwrap().stop(),
        || webdis.lock().unwrap().resume().unwrap(),
    );
}

#[test]
fn etcd_outage_is_a_clear_error_and_recovers() {
    etcd_outage(false);
}

#[test]
fn redis_outage_is_a_clear_error_and_recovers() {
    redis_outage(false);
}

#[test]
fn etcd_outage_with_pooled_connections_recovers() {
    etcd_outage(true);
}

#[test]
fn redis_outage_with_pooled_connections_recovers() {
    redis_outage(true);
}

/// A host that pools connections makes one for a whole run; wasmtime's
/// default makes one per request (an etcd increment is two).
#[test]
fn a_pooling_host_reuses_its_connections() {
    let etcd = Etcd::start("pool").unwrap();
    let proxy = CountingProxy::start(etcd.port()).unwrap();
    let command = counter(
        ProtocolArg::Etcd,
        &format!("http://127.0.0.1:{}", proxy.port()),
        |_| {},
    );
    let args = ["hits", "counter", "50"];
    for (options, expected) in [(pooled_run_args(&args), 1..=1), (run_args(&args), 100..=u64::MAX)] {
        let before = proxy.connections();
        let output = command.run(&options).unwrap();
        assert_eq!(output.exit_code, 0, "{}", output.stderr_text());
        let opened = proxy.connections() - before;
        assert!(
            expected.contains(&opened),
            "{opened} connections for 50 increments (reuse: {})",
            options.reuse_connections
        );
    }
}

/// The counter's one-line error for an endpoint, with few retries.
fn counter_error(protocol: ProtocolArg, url: &str, options: &RunOptions) -> String {
    let command = counter(protocol, url, |http| {
        http.timeout_ms = Some(3000);
        http.max_attempts = Some(2);
    });
    let output = command.run(options).unwrap();
    assert_eq!(output.exit_code, 1, "{}", output.stdout_text());
    output.stderr_text()
}

#[test]
fn a_closed_port_is_a_clear_error() {
    let port = free_port();
    for options in [run_args(&[]), pooled_run_args(&[])] {
        for (protocol, service) in [(ProtocolArg::Etcd, "etcd"), (ProtocolArg::Redis, "redis")] {
            let stderr = counter_error(protocol, &format!("http://127.0.0.1:{port}"), &options);
            assert_eq!(
                stderr.trim(),
                format!(
                    "counter: {service}: cannot reach http://127.0.0.1:{port}: connection refused (2 attempts)"
                )
            );
        }
    }
}

/// A server on loopback that reads each request whole, as a real server
/// does (answering early would let the kernel reset the connection), then
/// answers it with `answer` and closes.
fn garbage_server(answer: &'static [u8]) -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            std::thread::spawn(move || {
                let mut stream = stream;
                let _ = stream.set_read_timeout(Some(Duration::from_secs(5)));
                read_request(&mut stream);
                let _ = stream.write_all(answer);
            });
        }
    });
    port
}

#[test]
fn a_server_answering_garbage_is_a_clear_error() {
    let not_json = garbage_server(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nConnection: close\r\n\r\nhello");
    let not_http = garbage_server(b"SSH-2.0-OpenSSH\r\n");
    let failing = garbage_server(
        b"HTTP/1.1 500 Internal Server Error\r\nContent-Length: 33\r\nConnection: close\r\n\r\n{\"error\":\"boom\",\"message\":\"boom\"}",
    );
    for options in [run_args(&[]), pooled_run_args(&[])] {
        let error = |protocol, port| counter_error(protocol, &format!("http://127.0.0.1:{port}"), &options);
        let stderr = error(ProtocolArg::Etcd, not_json);
        assert!(
            stderr.starts_with(&format!(
                "counter: etcd: unexpected response from http://127.0.0.1:{not_json}"
            )),
            "{stderr}"
        );
        assert!(stderr.contains("\"hello\""), "{stderr}");
        let stderr = error(ProtocolArg::Redis, not_json);
        assert!(
            stderr.contains("redis: unexpected response") && stderr.contains("not a Redis reply"),
            "{stderr}"
        );

        let stderr = error(ProtocolArg::Etcd, not_http);
        assert!(stderr.starts_with("counter: etcd: "), "{stderr}");
        assert!(stderr.contains("not valid HTTP"), "{stderr}");

        let stderr = error(ProtocolArg::Etcd, failing);
        assert_eq!(stderr.trim(), "counter: etcd: 500 boom");
    }
}
