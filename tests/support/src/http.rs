//! A minimal HTTP/1.1 client (hyper, one keep-alive connection) for the
//! serve tests and benchmarks: blocking calls, so that each client can be a
//! plain thread.

use std::net::SocketAddr;

use anyhow::{Context, Result};
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1::SendRequest;
use wasmtime_wasi_http::io::TokioIo;

/// The longest a request may take.
const REQUEST_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(30);

pub struct HttpClient {
    runtime: tokio::runtime::Runtime,
    sender: SendRequest<Full<Bytes>>,
    addr: SocketAddr,
}

#[derive(Debug)]
pub struct HttpResponse {
    pub status: u16,
    pub body: Vec<u8>,
}

impl HttpResponse {
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

impl HttpClient {
    pub fn connect(addr: SocketAddr) -> Result<HttpClient> {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        let sender = runtime
            .block_on(async {
                let stream = tokio::net::TcpStream::connect(addr).await?;
                stream.set_nodelay(true)?;
                let (sender, connection) =
                    hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
                // Runs whenever a request is being waited for.
                tokio::spawn(connection);
                anyhow::Ok(sender)
            })
            .with_context(|| format!("connecting to {addr}"))?;
        Ok(HttpClient {
            runtime,
            sender,
            addr,
        })
    }

    /// One request on the connection; `path` includes the query.
    pub fn request(&mut self, method: &str, path: &str, body: &[u8]) -> Result<HttpResponse> {
        let request = hyper::Request::builder()
            .method(method)
            .uri(path)
            .header("host", self.addr.to_string())
            .body(Full::new(Bytes::copy_from_slice(body)))?;
        let sender = &mut self.sender;
        let exchange = async {
            sender.ready().await?;
            let response = sender.send_request(request).await?;
            let status = response.status().as_u16();
            let body = response.into_body().collect().await?.to_bytes().to_vec();
            anyhow::Ok(HttpResponse { status, body })
        };
        // A server that accepts but never answers fails the request, not the test run.
        self.runtime
            .block_on(async { tokio::time::timeout(REQUEST_TIMEOUT, exchange).await })
            .map_err(|_| anyhow::anyhow!("no answer within {REQUEST_TIMEOUT:?}"))
            .and_then(|answer| answer)
            .with_context(|| format!("{method} {path}"))
    }
}
