//! Serving `wasi:http/incoming-handler` components the way `wasmtime serve`
//! does: an HTTP/1.1 server (hyper) on a TCP address, a fresh instance for
//! every request, any number of requests at once (tokio tasks on a
//! multi-threaded runtime, the asynchronous WASI bindings).
//!
//! One difference: file calls run on the instance's own worker thread
//! (`allow_blocking_current_thread`), not handed to tokio's blocking pool
//! as `wasmtime serve` does. A hop costs ~25 µs a call, and a kv-fs writer
//! holds its bucket's lock across ~20 calls: with hops, 16 concurrent
//! writers served about 1,000 requests/s with a 400 ms p99; without, about
//! 2,300 with 50 ms (`kv-serve-bench`). A call blocks its worker for
//! microseconds, a sync for a fraction of a millisecond.

use std::convert::Infallible;
use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use anyhow::{Context, Result, anyhow, bail};
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use tokio::sync::oneshot;
use wasmtime::Store;
use wasmtime_wasi_http::WasiHttpView;
use wasmtime_wasi_http::io::TokioIo;
use wasmtime_wasi_http::p2::bindings::ProxyPre;
use wasmtime_wasi_http::p2::bindings::http::types::Scheme;
use wasmtime_wasi_http::p2::body::HyperOutgoingBody;

use crate::{Host, PooledHttp, Runtime, from_file, wasi_builder, wasm_err};

/// What every instance of a served component sees.
#[derive(Clone, Debug)]
pub struct ServeOptions {
    /// Where to listen; port 0 picks a free port ([`Server::addr`] tells which).
    pub addr: SocketAddr,
    pub env: Vec<(String, String)>,
    /// Host directory → guest path.
    pub preopens: Vec<(PathBuf, String)>,
    /// Send the instances' outgoing `wasi:http` requests over one shared
    /// pool of keep-alive connections ([`crate::PooledHttp`]).
    pub reuse_connections: bool,
    /// What wasmtime's in-memory `wasi:keyvalue` holds when an instance starts.
    #[cfg(feature = "wasi-keyvalue")]
    pub keyvalue: crate::HostKeyValue,
}

impl Default for ServeOptions {
    fn default() -> ServeOptions {
        ServeOptions {
            addr: SocketAddr::from(([127, 0, 0, 1], 0)),
            env: Vec::new(),
            preopens: Vec::new(),
            reuse_connections: false,
            #[cfg(feature = "wasi-keyvalue")]
            keyvalue: crate::HostKeyValue::default(),
        }
    }
}

/// A compiled `wasi:http/incoming-handler` component, ready to serve.
#[derive(Clone)]
pub struct Service {
    pre: ProxyPre<Host>,
}

impl Runtime {
    /// Compiles a component that exports `wasi:http/incoming-handler`.
    pub fn service(&self, wasm: &[u8]) -> Result<Service> {
        if self.bindings() != crate::Bindings::Async {
            bail!("serving needs a runtime with the asynchronous bindings");
        }
        let pre = ProxyPre::new(self.instance_pre(wasm)?)
            .map_err(wasm_err)
            .context("the component does not export wasi:http/incoming-handler")?;
        Ok(Service { pre })
    }

    pub fn service_from_file(&self, path: &Path) -> Result<Service> {
        from_file(path, |wasm| self.service(wasm))
    }
}

impl Service {
    /// Binds `options.addr` and serves on a thread of its own until the
    /// returned [`Server`] is stopped or dropped.
    pub fn serve(&self, options: &ServeOptions) -> Result<Server> {
        let listener =
            TcpListener::bind(options.addr).with_context(|| format!("binding {}", options.addr))?;
        listener.set_nonblocking(true)?;
        let addr = listener.local_addr()?;
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .thread_name("kv-serve")
            .build()
            .context("starting the server's tokio runtime")?;
        let handler = Arc::new(Handler {
            pre: self.pre.clone(),
            options: options.clone(),
            http_pool: options.reuse_connections.then(PooledHttp::new),
        });
        let (stop, stopped) = oneshot::channel();
        let thread = std::thread::Builder::new()
            .name("kv-serve-accept".into())
            .spawn(move || runtime.block_on(accept(listener, handler, stopped)))
            .context("starting the server thread")?;
        Ok(Server {
            addr,
            stop: Some(stop),
            thread: Some(thread),
        })
    }
}

/// A running server. Dropping it stops it too.
pub struct Server {
    addr: SocketAddr,
    stop: Option<oneshot::Sender<()>>,
    thread: Option<JoinHandle<Result<()>>>,
}

impl Server {
    /// The address it listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Stops accepting, drops the requests in flight and waits for the
    /// server thread to end.
    pub fn stop(mut self) -> Result<()> {
        self.stop.take();
        self.join()
    }

    /// Serves until the server fails (it does not end otherwise).
    pub fn wait(mut self) -> Result<()> {
        self.join()
    }

    fn join(&mut self) -> Result<()> {
        match self.thread.take() {
            Some(thread) => thread.join().map_err(|_| anyhow!("the server thread panicked"))?,
            None => Ok(()),
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop.take();
        let _ = self.join();
    }
}

/// Accepts connections until `stopped` fires (or its sender is dropped);
/// each connection is served by a task of its own.
async fn accept(
    listener: TcpListener,
    handler: Arc<Handler>,
    mut stopped: oneshot::Receiver<()>,
) -> Result<()> {
    let listener = tokio::net::TcpListener::from_std(listener)?;
    loop {
        let stream = tokio::select! {
            _ = &mut stopped => return Ok(()),
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
                Err(e) => {
                    // Out of file descriptors, say: back off, keep serving.
                    eprintln!("kv-run serve: accepting a connection: {e}");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        let handler = Arc::clone(&handler);
        tokio::spawn(async move {
            let service = hyper::service::service_fn(move |request| {
                let handler = Arc::clone(&handler);
                async move { Ok::<_, Infallible>(handler.handle(request).await) }
            });
            if let Err(e) = http1::Builder::new()
                .keep_alive(true)
                .serve_connection(TokioIo::new(stream), service)
                .await
            {
                eprintln!("kv-run serve: connection: {e}");
            }
        });
    }
}

struct Handler {
    pre: ProxyPre<Host>,
    options: ServeOptions,
    /// Shared by all instances (all on the server's runtime).
    http_pool: Option<PooledHttp>,
}

impl Handler {
    /// A request the component could not answer is a `500` carrying the
    /// reason (also logged): the server goes on.
    async fn handle(&self, request: hyper::Request<Incoming>) -> hyper::Response<HyperOutgoingBody> {
        match self.respond(request).await {
            Ok(response) => response,
            Err(e) => {
                eprintln!("kv-run serve: {e:#}");
                let body = Full::new(Bytes::from(format!("{e:#}\n")))
                    .map_err(|never| match never {})
                    .boxed_unsync();
                let mut response = hyper::Response::new(body);
                *response.status_mut() = hyper::StatusCode::INTERNAL_SERVER_ERROR;
                response
            }
        }
    }

    /// Runs the request in a fresh instance.
    async fn respond(&self, request: hyper::Request<Incoming>) -> Result<hyper::Response<HyperOutgoingBody>> {
        let mut builder = wasi_builder(&self.options.env, &self.options.preopens)?;
        builder.inherit_stdio();
        let host = Host::new(
            builder.build(),
            self.http_pool.clone(),
            #[cfg(feature = "wasi-keyvalue")]
            &self.options.keyvalue,
        );
        let mut store = Store::new(self.pre.engine(), host);
        let (sender, receiver) = oneshot::channel();
        let request = store
            .data_mut()
            .http()
            .new_incoming_request(Scheme::Http, request)
            .map_err(wasm_err)?;
        let out = store
            .data_mut()
            .http()
            .new_response_outparam(sender)
            .map_err(wasm_err)?;
        let pre = self.pre.clone();
        // In a task of its own: the component may go on (writing the body)
        // after it has sent the response's head.
        let task = tokio::spawn(async move {
            let proxy = pre.instantiate_async(&mut store).await?;
            proxy
                .wasi_http_incoming_handler()
                .call_handle(&mut store, request, out)
                .await
        });
        match receiver.await {
            Ok(Ok(response)) => {
                tokio::spawn(async move {
                    if let Ok(Err(e)) = task.await {
                        eprintln!("kv-run serve: the component trapped after responding: {e:?}");
                    }
                });
                Ok(response)
            }
            Ok(Err(code)) => bail!("the component responded with the error {code:?}"),
            Err(_) => Err(match task.await {
                Ok(Ok(())) => anyhow!("the component returned without sending a response"),
                Ok(Err(e)) => wasm_err(e).context("the component trapped"),
                Err(e) => anyhow!(e).context("the request's task failed"),
            }),
        }
    }
}
