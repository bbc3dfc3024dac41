//! An app as wasmCloud users write them for WASI 0.3, in the shape of
//! wasmCloud's own p3 key-value guests: an async `wasi:http/handler@0.3.0`
//! component on `wasmcloud:keyvalue@0.2.0` (`store`, `atomics`, `cas`,
//! `batch`, every function `async`), built with `wit-bindgen` alone. Every
//! route opens the bucket `""` (wasmCloud's "default bucket").
//!
//! | request | response |
//! |---|---|
//! | `POST /hit/{id}` (body: any) | `200`: sets `hit:{id}` to the body, then `atomics.increment("hits", 1)`; answers the new count |
//! | `GET /key/{key}` | `200` with the value; `404` if there is none |
//! | `PUT /doc/{key}` (body: a line) | `200`: appends the body and `\n` to the value through `cas` (`current`, then `swap` requiring the version read, again on `stale`); answers the new value |
//! | `PUT /new/{key}?ttl-ms={ms}` (body: the value; the query optional) | `201`: `set` with `if-not-exists` (and `ttl-ms`) wrote it; `412` if the key exists |
//! | `GET /many?keys=a,b,c` | `200`: `batch.get-many`, one line per key, `key=value` or `key missing` |
//!
//! Keys are taken from the path and query as they are (no percent
//! decoding). A store failure is a `500` with the error's `Debug` text.

wit_bindgen::generate!({
    path: "../../wit",
    world: "kv-virt:adapters/wasmcloud-p3-app",
    generate_all,
});

// `http0_3_0`: ../../wit holds wasi:http at 0.2.12 and 0.3.0, so
// wit-bindgen names the modules by version.
use exports::wasi::http0_3_0::handler::Guest;
use wasi::http0_3_0::types::{ErrorCode, Fields, Method, Request, Response};
use wasmcloud::keyvalue::cas::{self, CasOptions, CasResult};
use wasmcloud::keyvalue::store::{self, Bucket};
use wasmcloud::keyvalue::types::{Error as KvError, SetOptions};
use wasmcloud::keyvalue::{atomics, batch};

/// wasmCloud's default bucket.
const BUCKET: &str = "";
const HITS_KEY: &str = "hits";

struct HttpServer;

export!(HttpServer);

/// A response to be: its status and body.
type Reply = (u16, Vec<u8>);

impl Guest for HttpServer {
    async fn handle(request: Request) -> Result<Response, ErrorCode> {
        let (status, body) = match route(request).await {
            Ok(reply) => reply,
            Err(error) => (500, format!("{error}\n").into_bytes()),
        };
        respond(status, body)
    }
}

async fn route(request: Request) -> Result<Reply, String> {
    let method = request.get_method();
    let path_with_query = request.get_path_with_query().unwrap_or_default();
    let (path, query) = path_with_query
        .split_once('?')
        .unwrap_or((path_with_query.as_str(), ""));
    if let (Method::Post, Some(id)) = (&method, path.strip_prefix("/hit/")) {
        let body = read_body(request).await?;
        return hit(id, body).await;
    }
    if let (Method::Get, Some(key)) = (&method, path.strip_prefix("/key/")) {
        return get_key(key).await;
    }
    if let (Method::Put, Some(key)) = (&method, path.strip_prefix("/doc/")) {
        let body = read_body(request).await?;
        return append_line(key, body).await;
    }
    if let (Method::Put, Some(key)) = (&method, path.strip_prefix("/new/")) {
        let ttl_ms = query
            .strip_prefix("ttl-ms=")
            .map(|ms| ms.parse().map_err(|_| format!("ttl-ms {ms:?} is not a number")))
            .transpose()?;
        let body = read_body(request).await?;
        return create(key, body, ttl_ms).await;
    }
    if let (Method::Get, "/many") = (&method, path) {
        return get_many(query).await;
    }
    Ok((404, b"no such route\n".to_vec()))
}

async fn open() -> Result<Bucket, String> {
    store::open(BUCKET.to_string())
        .await
        .map_err(|e| format!("opening the bucket: {e:?}"))
}

/// Stores the body under `hit:{id}`, then counts it. The count is atomic,
/// so concurrent clients each get a distinct count and none is lost.
async fn hit(id: &str, body: Vec<u8>) -> Result<Reply, String> {
    let bucket = open().await?;
    bucket
        .set(format!("hit:{id}"), body, None)
        .await
        .map_err(|e| format!("set: {e:?}"))?;
    let hits = atomics::increment(&bucket, HITS_KEY.to_string(), 1)
        .await
        .map_err(|e| format!("increment: {e:?}"))?;
    Ok((200, format!("{hits}\n").into_bytes()))
}

async fn get_key(key: &str) -> Result<Reply, String> {
    let bucket = open().await?;
    Ok(
        match bucket
            .get(key.to_string())
            .await
            .map_err(|e| format!("get: {e:?}"))?
        {
            Some(value) => (200, value),
            None => (404, b"no such key\n".to_vec()),
        },
    )
}

/// A read-modify-write through `cas`: each `swap` requires the version it
/// read, so concurrent appends never overwrite one another; a lost race
/// comes back as `stale` with the current entry, the input of the retry.
async fn append_line(key: &str, line: Vec<u8>) -> Result<Reply, String> {
    let bucket = open().await?;
    let mut current = cas::current(&bucket, key.to_string())
        .await
        .map_err(|e| format!("current: {e:?}"))?;
    loop {
        match current {
            Some(entry) => {
                let value = appended(entry.value, &line);
                let options = CasOptions {
                    require_version: Some(entry.version),
                    require_value: None,
                };
                match cas::swap(&bucket, key.to_string(), value.clone(), options)
                    .await
                    .map_err(|e| format!("swap: {e:?}"))?
                {
                    CasResult::Swapped => return Ok((200, value)),
                    CasResult::Stale(entry) => current = entry,
                }
            }
            None => {
                // A missing key has no version to require (and a `swap`
                // must require something), so the first line is a `set`
                // with `if-not-exists`, which fails when another writer
                // created the key first: then append to what it wrote.
                let value = appended(Vec::new(), &line);
                let options = SetOptions {
                    ttl_ms: None,
                    if_not_exists: true,
                };
                match bucket.set(key.to_string(), value.clone(), Some(options)).await {
                    Ok(()) => return Ok((200, value)),
                    Err(KvError::PreconditionFailed) => {
                        current = cas::current(&bucket, key.to_string())
                            .await
                            .map_err(|e| format!("current: {e:?}"))?;
                    }
                    Err(e) => return Err(format!("set if-not-exists: {e:?}")),
                }
            }
        }
    }
}

/// A `set` with `if-not-exists`: of concurrent creations of one key, one
/// wins; the others are `precondition-failed`.
async fn create(key: &str, value: Vec<u8>, ttl_ms: Option<u64>) -> Result<Reply, String> {
    let bucket = open().await?;
    let options = SetOptions {
        ttl_ms,
        if_not_exists: true,
    };
    match bucket.set(key.to_string(), value, Some(options)).await {
        Ok(()) => Ok((201, Vec::new())),
        Err(KvError::PreconditionFailed) => Ok((412, b"the key exists\n".to_vec())),
        Err(e) => Err(format!("set if-not-exists: {e:?}")),
    }
}

fn appended(mut value: Vec<u8>, line: &[u8]) -> Vec<u8> {
    value.extend_from_slice(line);
    value.push(b'\n');
    value
}

async fn get_many(query: &str) -> Result<Reply, String> {
    let keys: Vec<String> = query
        .split('&')
        .find_map(|pair| pair.strip_prefix("keys="))
        .unwrap_or_default()
        .split(',')
        .filter(|key| !key.is_empty())
        .map(str::to_string)
        .collect();
    let bucket = open().await?;
    let values = batch::get_many(&bucket, keys.clone())
        .await
        .map_err(|e| format!("get-many: {e:?}"))?;
    // One answer per key asked, in order: `none` is a missing key.
    let mut body = Vec::new();
    for (key, value) in keys.iter().zip(values) {
        match value {
            Some((_, value)) => {
                body.extend_from_slice(format!("{key}=").as_bytes());
                body.extend_from_slice(&value);
                body.push(b'\n');
            }
            None => body.extend_from_slice(format!("{key} missing\n").as_bytes()),
        }
    }
    Ok((200, body))
}

/// The whole request body, then the result of its transfer (the trailers
/// future), which says whether the stream's end was the body's end.
async fn read_body(request: Request) -> Result<Vec<u8>, String> {
    // Our side of the transfer, for the host: dropping the writer sends its
    // default, success, without waiting for the host to take it.
    let (done, done_reader) = wit_future::new(|| Ok(()));
    let (body, trailers) = Request::consume_body(request, done_reader);
    let bytes = body.collect().await;
    let result = trailers.await;
    drop(done);
    result.map_err(|e| format!("reading the request body: {e:?}"))?;
    Ok(bytes)
}

fn respond(status: u16, body: Vec<u8>) -> Result<Response, ErrorCode> {
    let (mut body_writer, body_reader) = wit_stream::new();
    // No trailers; the default also covers a writer dropped unwritten.
    let (trailers_writer, trailers_reader) = wit_future::new(|| Ok(None));
    let (response, _sent) = Response::new(Fields::new(), Some(body_reader), trailers_reader);
    response
        .set_status_code(status)
        .map_err(|()| ErrorCode::InternalError(Some(format!("bad status {status}"))))?;
    // The body is written after `handle` returns the response, by a task
    // that outlives it, as the component model's streams require.
    wit_bindgen::spawn_local(async move {
        body_writer.write_all(body).await;
        drop(body_writer);
        let _ = trailers_writer.write(Ok(None)).await;
    });
    Ok(response)
}
