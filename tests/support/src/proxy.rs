//! A loopback TCP proxy that counts the connections made through it: how
//! the tests and benchmarks see how many connections (with wasmtime's
//! `wasi:http`, requests) a run opened. It can also answer some
//! connections itself, to inject a service's transient failures, and hold
//! some requests until several are waiting at once, to prove a client sends
//! them together.

use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

use anyhow::Result;

/// A proxy in front of a port on 127.0.0.1. Its threads end with the
/// process (the tests' and benchmarks' processes are short-lived).
pub struct CountingProxy {
    port: u16,
    connections: Arc<AtomicU64>,
    gate: Arc<Gate>,
}

/// What the proxy does besides forwarding.
struct Behaviour {
    /// An answer of its own for the `n`th connection (from 0).
    fault: Box<dyn Fn(u64) -> Option<&'static [u8]> + Send + Sync>,
    /// Requests whose request line holds this text wait at the gate.
    gathered: Option<&'static str>,
}

/// Holds requests until `count` wait at once (then lets all through, and
/// any later ones), or until a wait has lasted [`GATE_TIMEOUT`].
struct Gate {
    count: usize,
    /// (requests waiting now, whether `count` ever waited at once)
    state: Mutex<(usize, bool)>,
    opened: Condvar,
}

const GATE_TIMEOUT: Duration = Duration::from_secs(5);

impl Gate {
    fn pass(&self) {
        let mut state = self.state.lock().unwrap();
        state.0 += 1;
        if state.0 >= self.count {
            state.1 = true;
            self.opened.notify_all();
        }
        let (mut state, _) = self
            .opened
            .wait_timeout_while(state, GATE_TIMEOUT, |(_, open)| !*open)
            .unwrap();
        state.0 -= 1;
    }
}

impl CountingProxy {
    /// Listens on a free loopback port, forwarding to `target_port`.
    pub fn start(target_port: u16) -> Result<CountingProxy> {
        CountingProxy::spawn(target_port, Box::new(|_| None), None, 0)
    }

    /// Like [`CountingProxy::start`], but the `n`th connection (from 0) for
    /// which `fault(n)` gives an answer is not forwarded: the proxy reads
    /// its request whole and sends that answer. (wasmtime's default host
    /// makes one request per connection.)
    pub fn with_faults(
        target_port: u16,
        fault: impl Fn(u64) -> Option<&'static [u8]> + Send + Sync + 'static,
    ) -> Result<CountingProxy> {
        CountingProxy::spawn(target_port, Box::new(fault), None, 0)
    }

    /// Like [`CountingProxy::start`], but a `GET` whose request line holds
    /// `pattern` is held until `count` such requests wait at once (or 5 s
    /// pass): [`CountingProxy::gathered`] then says whether they came
    /// together.
    pub fn gathering(target_port: u16, pattern: &'static str, count: usize) -> Result<CountingProxy> {
        CountingProxy::spawn(target_port, Box::new(|_| None), Some(pattern), count)
    }

    fn spawn(
        target_port: u16,
        fault: Box<dyn Fn(u64) -> Option<&'static [u8]> + Send + Sync>,
        gathered: Option<&'static str>,
        count: usize,
    ) -> Result<CountingProxy> {
        let listener = TcpListener::bind("127.0.0.1:0")?;
        let port = listener.local_addr()?.port();
        let connections = Arc::new(AtomicU64::new(0));
        let gate = Arc::new(Gate {
            count,
            state: Mutex::new((0, false)),
            opened: Condvar::new(),
        });
        let behaviour = Arc::new(Behaviour { fault, gathered });
        let (counter, proxy_gate) = (Arc::clone(&connections), Arc::clone(&gate));
        std::thread::spawn(move || {
            for client in listener.incoming().flatten() {
                let n = counter.fetch_add(1, Ordering::SeqCst);
                let (behaviour, gate) = (Arc::clone(&behaviour), Arc::clone(&proxy_gate));
                std::thread::spawn(move || serve(client, n, target_port, &behaviour, &gate));
            }
        });
        Ok(CountingProxy {
            port,
            connections,
            gate,
        })
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

    /// Whether the gathered requests ever waited at once, as many as asked.
    pub fn gathered(&self) -> bool {
        self.gate.state.lock().unwrap().1
    }
}

/// One connection: answered by the proxy, or forwarded (after the gate).
fn serve(mut client: TcpStream, n: u64, target_port: u16, behaviour: &Behaviour, gate: &Gate) {
    let _ = client.set_read_timeout(Some(GATE_TIMEOUT));
    if let Some(answer) = (behaviour.fault)(n) {
        read_request(&mut client);
        let _ = client.write_all(answer);
        return;
    }
    let mut head = Vec::new();
    if let Some(pattern) = behaviour.gathered {
        head = read_head(&mut client);
        let line_end = head.iter().position(|&b| b == b'\r').unwrap_or(head.len());
        let line = String::from_utf8_lossy(&head[..line_end]);
        if line.starts_with("GET ") && line.contains(pattern) {
            gate.pass();
        }
    }
    let _ = client.set_read_timeout(None);
    let Ok(mut server) = TcpStream::connect(("127.0.0.1", target_port)) else {
        return;
    };
    if server.write_all(&head).is_err() {
        return;
    }
    if let (Ok(client2), Ok(server2)) = (client.try_clone(), server.try_clone()) {
        pipe(client, server);
        pipe(server2, client2);
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

/// Reads an HTTP/1.1 request's head (and whatever of its body came with
/// it): every byte read, up to the connection's end if the head never ends.
fn read_head(stream: &mut TcpStream) -> Vec<u8> {
    let mut request = Vec::new();
    let mut buf = [0; 4096];
    while !request.windows(4).any(|w| w == b"\r\n\r\n") {
        match stream.read(&mut buf) {
            Ok(n) if n > 0 => request.extend_from_slice(&buf[..n]),
            _ => break,
        }
    }
    request
}

/// Reads one HTTP/1.1 request: the head, then `content-length` bytes of
/// body. A server answering before it has read the request would let the
/// kernel reset the connection, losing the answer.
pub fn read_request(stream: &mut TcpStream) {
    let mut request = read_head(stream);
    let Some(end) = request.windows(4).position(|w| w == b"\r\n\r\n") else {
        return;
    };
    let head = String::from_utf8_lossy(&request[..end]).to_ascii_lowercase();
    let length = head
        .lines()
        .find_map(|line| line.strip_prefix("content-length:"))
        .and_then(|n| n.trim().parse::<usize>().ok())
        .unwrap_or(0);
    let mut buf = [0; 4096];
    while request.len() < end + 4 + length {
        match stream.read(&mut buf) {
            Ok(n) if n > 0 => request.extend_from_slice(&buf[..n]),
            _ => return,
        }
    }
}
