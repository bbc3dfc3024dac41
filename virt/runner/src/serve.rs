//! Serving `wasi:http/incoming-handler@0.2` and `wasi:http/handler@0.3`
//! components the way `wasmtime serve` does: an HTTP/1.1 server (hyper) on
//! a TCP address, a fresh instance for every request, any number of
//! requests at once (tokio tasks on a multi-threaded runtime, the
//! asynchronous WASI bindings). Unlike `wasmtime serve`, a WASI 0.3
//! instance is not reused for later requests either: every request sees a
//! fresh instance, whichever WASI the component was written for.
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
use wasmtime_wasi_http::io::TokioIo;
use wasmtime_wasi_http::p2::bindings::ProxyPre;
use wasmtime_wasi_http::p2::bindings::http::types::Scheme;
use wasmtime_wasi_http::p3::bindings::ServicePre;
use wasmtime_wasi_http::{WasiBody, WasiHttpView};

use crate::{Host, PooledHttp, Runtime, Wasi, exports_list, from_file, pick_wasi_of, wasi_builder, wasm_err};

/// A response body for hyper, as both WASI versions produce it.
type HyperOutgoingBody = WasiBody;

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

/// A compiled HTTP component, ready to serve.
#[derive(Clone)]
pub struct Service {
    pre: ServicePreOf,
}

#[derive(Clone)]
enum ServicePreOf {
    P2(ProxyPre<Host>),
    P3(ServicePre<Host>),
}

impl Runtime {
    /// Compiles a component that exports `wasi:http/incoming-handler@0.2.x`
    /// or `wasi:http/handler@0.3.0`.
    pub fn service(&self, wasm: &[u8]) -> Result<Service> {
        if self.bindings() != crate::Bindings::Async {
            bail!("serving needs a runtime with the asynchronous bindings");
        }
        let component = self.component(wasm)?;
        let wasi = pick_wasi_of(&component, "wasi:http/incoming-handler", "wasi:http/handler")?;
        let instance_pre = self.instance_pre(&component)?;
        let pre = match wasi {
            Wasi::P2 => ProxyPre::new(instance_pre).map(ServicePreOf::P2),
            Wasi::P3 => ServicePre::new(instance_pre).map(ServicePreOf::P3),
        }
        .map_err(wasm_err)
        .with_context(|| {
            format!(
                "its wasi:http handler is not the version kv-run supports{}",
                exports_list(&component)
            )
        })?;
        Ok(Service { pre })
    }

    pub fn service_from_file(&self, path: &Path) -> Result<Service> {
        from_file(path, |wasm| self.service(wasm))
    }
}

impl Service {
    /// Whether it is a WASI 0.2 or a WASI 0.3 service.
    pub fn wasi(&self) -> Wasi {
        match self.pre {
            ServicePreOf::P2(_) => Wasi::P2,
            ServicePreOf::P3(_) => Wasi::P3,
        }
    }

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
    pre: ServicePreOf,
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
        match &self.pre {
            ServicePreOf::P2(pre) => respond_p2(pre.clone(), Store::new(pre.engine(), host), request).await,
            ServicePreOf::P3(pre) => respond_p3(pre.clone(), Store::new(pre.engine(), host), request).await,
        }
    }
}

/// `wasi:http/incoming-handler.handle`, with the response's head sent
/// through a `response-outparam`.
async fn respond_p2(
    pre: ProxyPre<Host>,
    mut store: Store<Host>,
    request: hyper::Request<Incoming>,
) -> Result<hyper::Response<HyperOutgoingBody>> {
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
    // In a task of its own: the component may go on (writing the body)
    // after it has sent the response's head.
    let task = tokio::spawn(async move {
        let proxy = pre.instantiate_async(&mut store).await?;
        proxy
            .wasi_http_incoming_handler()
            .call_handle(&mut store, request, out)
            .await
    });
    response_of(receiver, task, "returned without sending a response").await
}

/// How reading an incoming request's body ended, for the response.
type RequestIo = std::pin::Pin<Box<dyn Future<Output = Result<(), wasmtime_wasi_http::Error>> + Send>>;

/// `wasi:http/handler.handle` (async): it returns the response, whose body
/// (a stream) the guest may go on writing after returning.
async fn respond_p3(
    pre: ServicePre<Host>,
    mut store: Store<Host>,
    request: hyper::Request<Incoming>,
) -> Result<hyper::Response<HyperOutgoingBody>> {
    let request = request.map(|body| body.map_err(wasmtime_wasi_http::Error::from).boxed_unsync());
    let (sender, receiver) = oneshot::channel();
    let task = tokio::spawn(async move {
        let service = pre.instantiate_async(&mut store).await?;
        store
            .run_concurrent(async move |accessor| {
                let (request, request_io) = accessor.with(|mut store| {
                    let (request, io) =
                        wasmtime_wasi_http::p3::Request::from_http(store.data_mut().http().hooks, request);
                    // Boxed: its type borrows the store (2024 capture rules), its value does not.
                    let io: RequestIo = Box::pin(io);
                    (request, io)
                });
                let response = match service.handle(accessor, request).await? {
                    Ok(response) => accessor.with(|mut store| response.into_http(&mut store, request_io))?,
                    Err(code) => {
                        let _ = sender.send(Err(code));
                        return Ok(());
                    }
                };
                let _ = sender.send(Ok(response));
                // The body is read from the guest's stream by this event
                // loop: keep it turning while the guest's tasks (writing
                // the body, say) go on.
                std::future::poll_fn(|cx| accessor.poll_no_interesting_tasks(cx)).await;
                wasmtime::Result::<()>::Ok(())
            })
            .await?
    });
    response_of(receiver, task, "returned without a response").await
}

/// The response the request's task sends, whichever WASI: the task goes
/// on in the background (the body may still be being written); a task
/// that ends without one says why.
async fn response_of<E: std::fmt::Debug>(
    receiver: oneshot::Receiver<Result<hyper::Response<HyperOutgoingBody>, E>>,
    task: tokio::task::JoinHandle<wasmtime::Result<()>>,
    returned: &str,
) -> Result<hyper::Response<HyperOutgoingBody>> {
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
        Err(_) => Err(task_failure(task.await, returned)),
    }
}

/// Why a request's task ended without a response.
fn task_failure(
    result: Result<wasmtime::Result<()>, tokio::task::JoinError>,
    returned: &str,
) -> anyhow::Error {
    match result {
        Ok(Ok(())) => anyhow!("the component {returned}"),
        Ok(Err(e)) => wasm_err(e).context("the component trapped"),
        Err(e) => anyhow!(e).context("the request's task failed"),
    }
}
