//! Real key-value servers for the kv-http tests, on 127.0.0.1 only: each
//! starts on free ports with its own temporary data directory, is waited
//! on until it answers, and is killed (by its own process id) when dropped.
//! The servers come from Debian's packages, which `bash tests/run.sh` (the README's test command) installs.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};

use crate::WorkDir;
use crate::http::{HttpClient, HttpResponse};

/// A port that was free a moment ago.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .map(|addr| addr.port())
        .expect("binding a loopback port")
}

/// A fresh directory for one server of this test process, removed with
/// the server (after its processes are killed).
pub fn temp_dir(name: &str) -> WorkDir {
    WorkDir::fresh(
        std::env::temp_dir()
            .join("kv-virt-tests")
            .join(format!("{name}-{}", std::process::id())),
    )
}

/// Finds a server program, or says how to install it.
fn program(name: &str, package: &str) -> Result<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain([PathBuf::from("/usr/sbin"), PathBuf::from("/usr/bin")])
        .map(|dir| dir.join(name))
        .find(|candidate| candidate.is_file())
        .with_context(|| {
            format!("{name} is not installed: `apt-get install {package}` (`bash tests/run.sh` installs it)")
        })
}

/// One server process, killed when dropped.
pub(crate) struct Process {
    name: &'static str,
    child: Child,
    log: PathBuf,
}

impl Process {
    pub(crate) fn spawn(name: &'static str, command: &mut Command, log: PathBuf) -> Result<Self> {
        let file = std::fs::File::create(&log)?;
        let child = command
            .stdin(Stdio::null())
            .stdout(file.try_clone()?)
            .stderr(file)
            .spawn()
            .with_context(|| format!("starting {name}"))?;
        Ok(Process { name, child, log })
    }

    /// Fails with the server's log if it has exited.
    fn check_running(&mut self) -> Result<()> {
        if let Some(status) = self.child.try_wait()? {
            let log = std::fs::read_to_string(&self.log).unwrap_or_default();
            bail!("{} exited ({status}) while starting:\n{log}", self.name);
        }
        Ok(())
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// One GET on loopback: the answer, whatever its status.
fn http_get(port: u16, path: &str) -> Result<HttpResponse> {
    HttpClient::connect(([127, 0, 0, 1], port).into())?.request("GET", path, b"")
}

/// Waits until `ready` holds, checking the processes are still up.
pub(crate) fn wait_until(processes: &mut [&mut Process], what: &str, ready: impl Fn() -> bool) -> Result<()> {
    let start = Instant::now();
    while !ready() {
        for process in processes.iter_mut() {
            process.check_running()?;
        }
        if start.elapsed() > Duration::from_secs(30) {
            bail!("{what} did not become ready within 30 s");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    Ok(())
}

/// A single-member etcd cluster.
pub struct Etcd {
    client_port: u16,
    peer_port: u16,
    process: Option<Process>,
    // Last: removed after the process is killed.
    dir: WorkDir,
}

impl Etcd {
    pub fn start(name: &str) -> Result<Self> {
        let mut etcd = Etcd {
            client_port: free_port(),
            peer_port: free_port(),
            process: None,
            dir: temp_dir(&format!("etcd-{name}")),
        };
        etcd.resume()?;
        Ok(etcd)
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.client_port)
    }

    pub fn port(&self) -> u16 {
        self.client_port
    }

    /// Kills the server (its data stays).
    pub fn stop(&mut self) {
        self.process = None;
    }

    /// Starts it again on the same ports and data.
    pub fn resume(&mut self) -> Result<()> {
        let client = format!("http://127.0.0.1:{}", self.client_port);
        let peer = format!("http://127.0.0.1:{}", self.peer_port);
        let mut process = Process::spawn(
            "etcd",
            Command::new(program("etcd", "etcd-server")?)
                .arg("--name=kv-virt-test")
                .arg(format!("--data-dir={}", self.dir.join("data").display()))
                .arg(format!("--listen-client-urls={client}"))
                .arg(format!("--advertise-client-urls={client}"))
                .arg(format!("--listen-peer-urls={peer}"))
                .arg(format!("--initial-advertise-peer-urls={peer}"))
                .arg(format!("--initial-cluster=kv-virt-test={peer}"))
                .arg("--log-level=warn"),
            self.dir.join("etcd.log"),
        )?;
        let port = self.client_port;
        wait_until(&mut [&mut process], "etcd", || {
            http_get(port, "/health").is_ok_and(|answer| answer.text().contains("\"health\":\"true\""))
        })?;
        self.process = Some(process);
        Ok(())
    }
}

/// redis-server behind webdis.
pub struct Webdis {
    redis_port: u16,
    http_port: u16,
    processes: Vec<Process>,
    // Removed after `Drop` has stopped the processes.
    dir: WorkDir,
}

impl Webdis {
    pub fn start(name: &str) -> Result<Self> {
        let mut webdis = Webdis {
            redis_port: free_port(),
            http_port: free_port(),
            processes: Vec::new(),
            dir: temp_dir(&format!("redis-{name}")),
        };
        webdis.resume()?;
        Ok(webdis)
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.http_port)
    }

    /// Kills webdis and Redis (Redis keeps its data on disk).
    pub fn stop(&mut self) {
        // webdis first, so nothing talks to a Redis that is going away.
        while let Some(process) = self.processes.pop() {
            drop(process);
        }
    }

    pub fn resume(&mut self) -> Result<()> {
        let mut redis = Process::spawn(
            "redis-server",
            Command::new(program("redis-server", "redis-server")?)
                .arg("--bind")
                .arg("127.0.0.1")
                .arg("--port")
                .arg(self.redis_port.to_string())
                .arg("--dir")
                .arg(&self.dir)
                .args(["--save", "", "--appendonly", "yes", "--appendfsync", "always"]),
            self.dir.join("redis.log"),
        )?;
        let redis_port = self.redis_port;
        wait_until(&mut [&mut redis], "redis-server", || {
            TcpStream::connect(("127.0.0.1", redis_port))
                .and_then(|mut s| {
                    s.write_all(b"PING\r\n")?;
                    let mut buf = [0; 7];
                    s.read_exact(&mut buf)?;
                    Ok(&buf == b"+PONG\r\n")
                })
                .unwrap_or(false)
        })?;
        let config = self.dir.join("webdis.json");
        std::fs::write(
            &config,
            format!(
                r#"{{"redis_host": "127.0.0.1", "redis_port": {}, "http_host": "127.0.0.1", "http_port": {},
                    "threads": 2, "pool_size": 8, "daemonize": false, "websockets": false, "database": 0,
                    "verbosity": 3, "logfile": "{}"}}"#,
                self.redis_port,
                self.http_port,
                self.dir.join("webdis-internal.log").display()
            ),
        )?;
        let mut webdis = Process::spawn(
            "webdis",
            Command::new(program("webdis", "webdis")?).arg(&config),
            self.dir.join("webdis.log"),
        )?;
        let http_port = self.http_port;
        wait_until(&mut [&mut redis, &mut webdis], "webdis", || {
            http_get(http_port, "/PING.raw").is_ok_and(|answer| answer.text().ends_with("+PONG\r\n"))
        })?;
        self.processes = vec![redis, webdis];
        Ok(())
    }
}

impl Drop for Webdis {
    fn drop(&mut self) {
        self.stop();
    }
}

pub mod moto;
pub use moto::Moto;
pub mod azurite;
