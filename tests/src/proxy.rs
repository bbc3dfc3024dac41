//! A loopback TCP proxy that counts the connections made through it: how
//! the tests and benchmarks see how many connections (with wasmtime's
//! `wasi:http`, requests) a run opened. It can also answer some
//! connections itself, to inject a service's transient failures.

use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use anyhow::Result;

/// A proxy in front of a port on 127.0.0.1. Its threads end with the
/// process (the tests' and benchmarks' processes are short-lived).
pub struct CountingProxy {
    port: u16,
    connections: Arc<AtomicU64>,
}

impl CountingProxy {
    /// Listens on a free loopback port, forwarding to `target_port`.
    pub fn start(target_port: u16) -> Result<CountingProxy> {
        CountingProxy::with_faults(target_port, |_| None)
    }

    /// Like [`CountingProxy::start`], but the `n`th connection (from 0) for
    /// which `fault(n)` gives an answer is not forwarded: the proxy reads
    /// its request whole and sends that answer. (wasmtime's default host
    /// makes one request per connection.)
    pub fn with_faults(
        target_port: u16,
        fault: impl Fn(u64) -> Option<&'static [u8]> + Send + 'static,
    ) -> Result<CountingProxy> {
        let listener = TcpListener::bind("127.0.0.1:0")?;
        let port = listener.local_addr()?.port();
        let connections = Arc::new(AtomicU64::new(0));
        let counter = Arc::clone(&connections);
        std::thread::spawn(move || {
            for mut client in listener.incoming().flatten() {
                let n = counter.fetch_add(1, Ordering::SeqCst);
                if let Some(answer) = fault(n) {
                    std::thread::spawn(move || {
                        let _ = client.set_read_timeout(Some(Duration::from_secs(5)));
                        read_request(&mut client);
                        let _ = client.write_all(answer);
                    });
                    continue;
                }
                let Ok(server) = TcpStream::connect(("127.0.0.1", target_port)) else {
                    continue;
                };
                if let (Ok(client2), Ok(server2)) = (client.try_clone(), server.try_clone()) {
                    pipe(client, server);
                    pipe(server2, client2);
                }
            }
        });
        Ok(CountingProxy { port, connections })
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Connections accepted so far.
    pub fn connections(&self) -> u64 {
        self.connections.load(Ordering::SeqCst)
    }
}

/// Copies one direction of a connection until it closes.
fn pipe(mut from: TcpStream, mut to: TcpStream) {
    std::thread::spawn(move || {
        let mut buf = [0; 16 * 1024];
        while let Ok(n) = from.read(&mut buf) {
            if n == 0 || to.write_all(&buf[..n]).is_err() {
                break;
            }
        }
        let _ = to.shutdown(Shutdown::Write);
    });
}

/// A complete HTTP/1.1 answer that closes the connection (leaked: the
/// tests' servers live as long as the process).
pub fn canned_response(status: &str, content_type: &str, body: &str) -> &'static [u8] {
    let answer = format!(
        "HTTP/1.1 {status}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    answer.into_bytes().leak()
}

/// Reads one HTTP/1.1 request: the head, then `content-length` bytes of
/// body. A server answering before it has read the request would let the
/// kernel reset the connection, losing the answer.
pub fn read_request(stream: &mut TcpStream) {
    let mut request = Vec::new();
    let mut buf = [0; 4096];
    let complete = |request: &[u8]| {
        let Some(end) = request.windows(4).position(|w| w == b"\r\n\r\n") else {
            return false;
        };
        let head = String::from_utf8_lossy(&request[..end]).to_ascii_lowercase();
        let length = head
            .lines()
            .find_map(|line| line.strip_prefix("content-length:"))
            .and_then(|n| n.trim().parse::<usize>().ok())
            .unwrap_or(0);
        request.len() >= end + 4 + length
    };
    while !complete(&request) {
        match stream.read(&mut buf) {
            Ok(n) if n > 0 => request.extend_from_slice(&buf[..n]),
            _ => return,
        }
    }
}
