//! A loopback TCP proxy that counts the connections made through it: how
//! the tests and benchmarks see how many connections (with wasmtime's
//! `wasi:http`, requests) a run opened.

use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

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
        let listener = TcpListener::bind("127.0.0.1:0")?;
        let port = listener.local_addr()?.port();
        let connections = Arc::new(AtomicU64::new(0));
        let counter = Arc::clone(&connections);
        std::thread::spawn(move || {
            for client in listener.incoming().flatten() {
                counter.fetch_add(1, Ordering::SeqCst);
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
