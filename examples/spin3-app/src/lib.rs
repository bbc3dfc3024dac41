//! An app as Spin 3 users write them, unchanged but for where it runs: a
//! `spin-sdk` 7 HTTP component (`#[http_service]`, exporting
//! `wasi:http/handler@0.3.0`) keeping notes and a counter in Spin's async
//! key-value store (`spin:key-value/key-value@3.0.0`),
//! `Store::open_default()`. Composed with kv-virt it runs on any runtime
//! that serves WASI 0.3 HTTP (`wasmtime serve -S p3`), with no Spin.
//!
//! | request | response |
//! |---|---|
//! | `PUT /notes/{id}` (body: the note) | `204` |
//! | `GET /notes/{id}` | `200` with the note; `404` if there is none |
//! | `DELETE /notes/{id}` | `204` |
//! | `GET /notes` | `200`: the note ids, sorted, one per line (read from the `get-keys` stream) |
//! | `POST /count` | `200`: the counter after adding one, in decimal |
//!
//! Ids are 1 to 128 characters of `A-Z a-z 0-9 . _ -` (else `400`). Spin 3's
//! key-value interface has no atomic increment, so `POST /count` reads,
//! adds one and writes back: concurrent requests can lose counts (the
//! wasmCloud 0.3 example counts atomically). A store failure is a `500`
//! with the store's error.
//!
//! spin-sdk 7 has no `Router` (5.x had one), so the handler matches the
//! method and path itself.

use bytes::Bytes;
use spin_sdk::http::body::IncomingBodyExt;
use spin_sdk::http::{FullBody, Method, Request, Response, StatusCode};
use spin_sdk::http_service;
use spin_sdk::key_value::Store;

const NOTE_PREFIX: &str = "note/";
const COUNT_KEY: &str = "count";

type Reply = Response<FullBody<Bytes>>;

#[http_service]
async fn handle(request: Request) -> Reply {
    let method = request.method().clone();
    let path = request.uri().path().to_string();
    let result = match (&method, path.as_str()) {
        (&Method::GET, "/notes") => list_notes().await,
        (&Method::POST, "/count") => count().await,
        (method, path) => match path.strip_prefix("/notes/") {
            Some(id) => match note_key(id) {
                Ok(key) => match *method {
                    Method::PUT => put_note(&key, request).await,
                    Method::GET => get_note(&key).await,
                    Method::DELETE => delete_note(&key).await,
                    _ => Ok(reply(StatusCode::METHOD_NOT_ALLOWED, "method not allowed\n")),
                },
                Err(bad) => Ok(bad),
            },
            None => Ok(reply(StatusCode::NOT_FOUND, "no such route\n")),
        },
    };
    result.unwrap_or_else(|error| reply(StatusCode::INTERNAL_SERVER_ERROR, format!("{error}\n")))
}

/// The store key of a note, or a `400` answer for a bad id.
fn note_key(id: &str) -> Result<String, Reply> {
    let valid = (1..=128).contains(&id.len())
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b));
    if valid {
        Ok(format!("{NOTE_PREFIX}{id}"))
    } else {
        Err(reply(
            StatusCode::BAD_REQUEST,
            "a note id is 1 to 128 characters of A-Z a-z 0-9 . _ -\n",
        ))
    }
}

async fn put_note(key: &str, request: Request) -> Result<Reply, String> {
    let note = request
        .into_body()
        .bytes()
        .await
        .map_err(|e| format!("reading the request body: {e}"))?;
    Store::open_default()
        .await
        .map_err(store_error)?
        .set(key, &note)
        .await
        .map_err(store_error)?;
    Ok(reply(StatusCode::NO_CONTENT, ""))
}

async fn get_note(key: &str) -> Result<Reply, String> {
    let store = Store::open_default().await.map_err(store_error)?;
    Ok(match store.get(key).await.map_err(store_error)? {
        Some(note) => reply(StatusCode::OK, note),
        None => reply(StatusCode::NOT_FOUND, "no such note\n"),
    })
}

async fn delete_note(key: &str) -> Result<Reply, String> {
    let store = Store::open_default().await.map_err(store_error)?;
    store.delete(key).await.map_err(store_error)?;
    Ok(reply(StatusCode::NO_CONTENT, ""))
}

async fn list_notes() -> Result<Reply, String> {
    let store = Store::open_default().await.map_err(store_error)?;
    // Keys arrive on a stream; its end says nothing of success, which the
    // result future carries after it.
    let mut keys = store.get_keys().await;
    let mut ids = Vec::new();
    while let Some(key) = keys.next().await {
        if let Some(id) = key.strip_prefix(NOTE_PREFIX) {
            ids.push(id.to_string());
        }
    }
    keys.result().await.map_err(store_error)?;
    ids.sort();
    let body: String = ids.iter().map(|id| format!("{id}\n")).collect();
    Ok(reply(StatusCode::OK, body))
}

async fn count() -> Result<Reply, String> {
    let store = Store::open_default().await.map_err(store_error)?;
    let current: u64 = match store.get(COUNT_KEY).await.map_err(store_error)? {
        Some(value) => std::str::from_utf8(&value)
            .ok()
            .and_then(|text| text.parse().ok())
            .ok_or_else(|| format!("the stored count is not a decimal number: {value:?}"))?,
        None => 0,
    };
    let count = current + 1;
    store
        .set(COUNT_KEY, count.to_string())
        .await
        .map_err(store_error)?;
    Ok(reply(StatusCode::OK, format!("{count}\n")))
}

fn store_error(error: spin_sdk::key_value::Error) -> String {
    format!("key-value store: {error:?}")
}

fn reply(status: StatusCode, body: impl Into<Bytes>) -> Reply {
    let mut response = Response::new(FullBody::new(body.into()));
    *response.status_mut() = status;
    response
}
