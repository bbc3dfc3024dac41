//! Outgoing `wasi:http` over pooled keep-alive connections, which any host
//! may do and `wasmtime run`/`serve` 48 do not (they open a new TCP
//! connection for every request). wasi:http 0.2 leaves connections to the
//! host, so an adapter cannot reuse them itself. Off by default; the
//! benchmarks turn it on to compare kv-http with a native client that pools
//! too, and the tests check that it reuses connections and recovers from a
//! server restart.
//!
//! Plain `http` only (loopback test servers); an `https` request falls back
//! to wasmtime's default connection per request. Of a request's timeouts,
//! connect and first-byte bound the wait for the response head together;
//! between-bytes is not applied (a stalled body is left to the guest's own
//! deadline, as kv-http has).

use std::time::Duration;

use http_body_util::BodyExt;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioTimer};
use wasmtime_wasi_http::{Error, RequestOptions, WasiBody, WasiHttpHooks};

/// The most a connection may sit idle in the pool.
const IDLE_TIMEOUT: Duration = Duration::from_secs(30);

/// The default of every `wasi:http` timeout, as in wasmtime.
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(600);

/// `WasiHttpHooks` that send plain-HTTP requests through one connection
/// pool. Cheap to clone: clones share the pool. The pool's connections
/// belong to the tokio runtime they were made on, so a pool is used by the
/// instances of one runtime only (one run, or one server).
#[derive(Clone)]
pub struct PooledHttp {
    client: Client<HttpConnector, WasiBody>,
}

impl PooledHttp {
    pub fn new() -> PooledHttp {
        let mut connector = HttpConnector::new();
        connector.set_nodelay(true);
        let client = Client::builder(TokioExecutor::new())
            .pool_timer(TokioTimer::new())
            .pool_idle_timeout(IDLE_TIMEOUT)
            .build(connector);
        PooledHttp { client }
    }
}

impl Default for PooledHttp {
    fn default() -> PooledHttp {
        PooledHttp::new()
    }
}

type ResponseFuture = Box<
    dyn Future<
            Output = Result<
                (
                    http::Response<WasiBody>,
                    Box<dyn Future<Output = Result<(), Error>> + Send>,
                ),
                Error,
            >,
        > + Send,
>;

impl WasiHttpHooks for PooledHttp {
    fn send_request(
        &mut self,
        request: http::Request<WasiBody>,
        options: Option<RequestOptions>,
        fut: Box<dyn Future<Output = Result<(), Error>> + Send>,
    ) -> ResponseFuture {
        if request.uri().scheme() != Some(&http::uri::Scheme::HTTP) {
            return wasmtime_wasi_http::default_hooks().send_request(request, options, fut);
        }
        // A pooled connection may already be open, so the connect and
        // first-byte timeouts together bound the wait for the head.
        let head_timeout = options.map_or(DEFAULT_TIMEOUT * 2, |o| {
            o.connect_timeout.unwrap_or(DEFAULT_TIMEOUT) + o.first_byte_timeout.unwrap_or(DEFAULT_TIMEOUT)
        });
        let client = self.client.clone();
        Box::new(async move {
            let response = tokio::time::timeout(head_timeout, client.request(request))
                .await
                .map_err(|_| Error::ConnectionReadTimeout)?
                .map_err(error_code)?;
            let response = response.map(|body| body.map_err(Error::from).boxed_unsync());
            let io: Box<dyn Future<Output = Result<(), Error>> + Send> = Box::new(async { Ok(()) });
            Ok((response, io))
        })
    }
}

/// The `wasi:http` error for a failed pooled request: the same codes as
/// wasmtime's own connection per request gives.
fn error_code(error: hyper_util::client::legacy::Error) -> Error {
    let mut source = std::error::Error::source(&error);
    while let Some(cause) = source {
        if error.is_connect()
            && let Some(io) = cause.downcast_ref::<std::io::Error>()
        {
            return Error::Connect(std::io::Error::new(io.kind(), io.to_string()));
        }
        if let Some(hyper) = cause.downcast_ref::<hyper::Error>() {
            return if hyper.is_incomplete_message() || hyper.is_closed() {
                Error::ConnectionTerminated
            } else {
                Error::HttpProtocolError
            };
        }
        source = cause.source();
    }
    Error::InternalError(Some(error.to_string()))
}
