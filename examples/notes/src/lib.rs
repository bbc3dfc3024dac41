//! A small notes service: a `wasi:http/incoming-handler` component that keeps
//! everything in `wasi:keyvalue` (the 0.2.0-draft, like the counter example,
//! so it also runs on wasmtime's host store). A runtime creates an instance
//! per request, so nothing lives in the instance between requests.
//!
//! | request | response |
//! |---|---|
//! | `PUT /notes/{id}` (body: the note, up to 1 MiB) | `204`; `413` if too large |
//! | `GET /notes/{id}` | `200` with the note; `404` if there is none |
//! | `DELETE /notes/{id}` | `204` (also when there was no such note) |
//! | `GET /notes?cursor={id}` | `200` `{"ids":[…],"next":"{id}"\|null}`: up to 100 ids after `cursor`, in order; pass `next` as the cursor of the next page |
//! | `POST /hits` | `200` `{"hits":N}`: adds one to the hit counter (an atomic increment) |
//! | `GET /hits` | `200` `{"hits":N}` |
//!
//! Ids are 1 to 128 characters of `A-Z a-z 0-9 . _ -`. Errors are JSON,
//! `{"error":"…"}`, with `400` (bad id or query), `404`, `405` (with an
//! `allow` header), `413` or `500` (the store failed; the message says how).
//!
//! The bucket is `notes`, or the value of the `NOTES_BUCKET` environment
//! variable. Notes are stored under `note/{id}`, the counter under `hits`.

wit_bindgen::generate!({
    path: "../../wit",
    world: "kv-virt:adapters/notes",
    generate_all,
});

use std::collections::BTreeSet;

use exports::wasi::http0_2_12::incoming_handler::Guest;
use wasi::http0_2_12::types::{
    Fields, IncomingRequest, Method, OutgoingBody, OutgoingResponse, ResponseOutparam,
};
use wasi::io::streams::StreamError;
use wasi::keyvalue0_2_0_draft::{atomics, store};

/// The largest note accepted.
const MAX_NOTE_BYTES: usize = 1 << 20;
/// Ids per page of `GET /notes`.
const PAGE: usize = 100;
const NOTE_PREFIX: &str = "note/";
const HITS_KEY: &str = "hits";

struct Notes;

export!(Notes);

impl Guest for Notes {
    fn handle(request: IncomingRequest, response_out: ResponseOutparam) {
        let response = route(&request).unwrap_or_else(|e| e);
        // Dropping the request before answering frees its body stream.
        drop(request);
        response.send(response_out);
    }
}

/// A response, built completely before it is sent.
struct Response {
    status: u16,
    content_type: &'static str,
    allow: Option<&'static str>,
    body: Vec<u8>,
}

impl Response {
    fn json(status: u16, body: String) -> Response {
        Response {
            status,
            content_type: "application/json",
            allow: None,
            body: body.into_bytes(),
        }
    }

    fn error(status: u16, message: &str) -> Response {
        Response::json(status, format!("{{\"error\":{}}}", json_string(message)))
    }

    fn no_content() -> Response {
        Response {
            status: 204,
            content_type: "text/plain",
            allow: None,
            body: Vec::new(),
        }
    }

    fn method_not_allowed(allow: &'static str) -> Response {
        Response {
            allow: Some(allow),
            ..Response::error(405, &format!("method not allowed: use {allow}"))
        }
    }

    fn send(self, out: ResponseOutparam) {
        let mut headers = vec![
            ("content-type".to_string(), self.content_type.as_bytes().to_vec()),
            (
                "content-length".to_string(),
                self.body.len().to_string().into_bytes(),
            ),
        ];
        if let Some(allow) = self.allow {
            headers.push(("allow".to_string(), allow.as_bytes().to_vec()));
        }
        // These headers are valid and allowed, so from_list cannot refuse them;
        // if a host did, the response goes out without them rather than not at all.
        let fields = Fields::from_list(&headers).unwrap_or_else(|_| Fields::new());
        let response = OutgoingResponse::new(fields);
        // Every status this service uses is a valid one.
        let _ = response.set_status_code(self.status);
        let Ok(body) = response.body() else {
            return;
        };
        ResponseOutparam::set(out, Ok(response));
        if let Ok(stream) = body.write() {
            // blocking-write-and-flush takes at most 4096 bytes a call. A
            // client that went away is no error of ours: stop writing.
            for chunk in self.body.chunks(4096) {
                if stream.blocking_write_and_flush(chunk).is_err() {
                    break;
                }
            }
        }
        let _ = OutgoingBody::finish(body, None);
    }
}

fn route(request: &IncomingRequest) -> Result<Response, Response> {
    let path_with_query = request.path_with_query().unwrap_or_else(|| "/".into());
    let (path, query) = path_with_query.split_once('?').unwrap_or((&path_with_query, ""));
    let method = request.method();
    match path {
        "/hits" => match method {
            Method::Get => hits(false),
            Method::Post => hits(true),
            _ => Ok(Response::method_not_allowed("GET, POST")),
        },
        "/notes" | "/notes/" => match method {
            Method::Get => list(query),
            _ => Ok(Response::method_not_allowed("GET")),
        },
        _ => match path.strip_prefix("/notes/") {
            Some(id) => {
                let id = valid_id(id)?;
                match method {
                    Method::Get => get_note(id),
                    Method::Put => put_note(id, read_body(request)?),
                    Method::Delete => delete_note(id),
                    _ => Ok(Response::method_not_allowed("GET, PUT, DELETE")),
                }
            }
            None => Err(Response::error(
                404,
                &format!("no such resource {path:?}: try /notes, /notes/{{id}} or /hits"),
            )),
        },
    }
}

fn valid_id(id: &str) -> Result<&str, Response> {
    let valid = (1..=128).contains(&id.len())
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'));
    if valid {
        Ok(id)
    } else {
        Err(Response::error(
            400,
            "a note id is 1 to 128 characters of A-Z a-z 0-9 . _ -",
        ))
    }
}

fn open() -> Result<store::Bucket, Response> {
    let name = std::env::var("NOTES_BUCKET").unwrap_or_else(|_| "notes".into());
    store::open(&name).map_err(|e| storage_error(&format!("opening bucket {name:?}"), e))
}

fn storage_error(doing: &str, e: store::Error) -> Response {
    let reason = match e {
        store::Error::NoSuchStore => "no such store".into(),
        store::Error::AccessDenied => "access denied".into(),
        store::Error::Other(message) => message,
    };
    Response::error(500, &format!("storage failed {doing}: {reason}"))
}

fn get_note(id: &str) -> Result<Response, Response> {
    let bucket = open()?;
    let note = bucket
        .get(&format!("{NOTE_PREFIX}{id}"))
        .map_err(|e| storage_error("reading the note", e))?;
    match note {
        Some(body) => Ok(Response {
            status: 200,
            content_type: "application/octet-stream",
            allow: None,
            body,
        }),
        None => Err(Response::error(404, &format!("no note {id:?}"))),
    }
}

fn put_note(id: &str, body: Vec<u8>) -> Result<Response, Response> {
    let bucket = open()?;
    bucket
        .set(&format!("{NOTE_PREFIX}{id}"), &body)
        .map_err(|e| storage_error("writing the note", e))?;
    Ok(Response::no_content())
}

fn delete_note(id: &str) -> Result<Response, Response> {
    let bucket = open()?;
    bucket
        .delete(&format!("{NOTE_PREFIX}{id}"))
        .map_err(|e| storage_error("deleting the note", e))?;
    Ok(Response::no_content())
}

fn hits(count_this_one: bool) -> Result<Response, Response> {
    let bucket = open()?;
    let hits = if count_this_one {
        atomics::increment(&bucket, HITS_KEY, 1).map_err(|e| storage_error("counting the hit", e))?
    } else {
        match bucket
            .get(HITS_KEY)
            .map_err(|e| storage_error("reading the hits", e))?
        {
            None => 0,
            Some(value) => std::str::from_utf8(&value)
                .ok()
                .and_then(|s| s.parse::<u64>().ok())
                .ok_or_else(|| Response::error(500, "the stored hit counter is not a decimal number"))?,
        }
    };
    Ok(Response::json(200, format!("{{\"hits\":{hits}}}")))
}

/// One page of ids after `cursor`. A 0.2.0-draft `list-keys` cursor is only
/// valid in the instance that issued it, and every request has a fresh
/// instance, so the page cursor is the last id of the previous page: the
/// listing walks the bucket with `list-keys` cursors and keeps the `PAGE`
/// smallest ids after it (the draft promises no key order, so it cannot
/// stop early).
fn list(query: &str) -> Result<Response, Response> {
    let mut after = None;
    for param in query.split('&').filter(|p| !p.is_empty()) {
        match param.split_once('=') {
            Some(("cursor", "")) => {}
            Some(("cursor", id)) => after = Some(valid_id(id)?.to_string()),
            _ => {
                return Err(Response::error(
                    400,
                    &format!("unknown query parameter {param:?}: the only one is cursor={{id}}"),
                ));
            }
        }
    }
    let bucket = open()?;
    // One more than a page, to know whether there is a next page.
    let mut smallest = BTreeSet::new();
    let mut cursor = None;
    loop {
        let response = bucket
            .list_keys(cursor)
            .map_err(|e| storage_error("listing the notes", e))?;
        for key in response.keys {
            let Some(id) = key.strip_prefix(NOTE_PREFIX) else {
                continue;
            };
            if after.as_deref().is_some_and(|after| id <= after) {
                continue;
            }
            smallest.insert(id.to_string());
            if smallest.len() > PAGE + 1 {
                smallest.pop_last();
            }
        }
        cursor = response.cursor;
        if cursor.is_none() {
            break;
        }
    }
    let more = smallest.len() > PAGE;
    let ids: Vec<String> = smallest.into_iter().take(PAGE).collect();
    let next = match ids.last() {
        Some(last) if more => json_string(last),
        _ => "null".into(),
    };
    let ids: Vec<String> = ids.iter().map(|id| json_string(id)).collect();
    Ok(Response::json(
        200,
        format!("{{\"ids\":[{}],\"next\":{next}}}", ids.join(",")),
    ))
}

/// The request body, refused with `413` past [`MAX_NOTE_BYTES`].
fn read_body(request: &IncomingRequest) -> Result<Vec<u8>, Response> {
    let unreadable = || Response::error(400, "the request body cannot be read");
    let body = request.consume().map_err(|()| unreadable())?;
    let stream = body.stream().map_err(|()| unreadable())?;
    let mut bytes = Vec::new();
    loop {
        match stream.blocking_read(64 * 1024) {
            Ok(chunk) => {
                bytes.extend_from_slice(&chunk);
                if bytes.len() > MAX_NOTE_BYTES {
                    return Err(Response::error(
                        413,
                        &format!("a note is at most {MAX_NOTE_BYTES} bytes"),
                    ));
                }
            }
            Err(StreamError::Closed) => return Ok(bytes),
            Err(StreamError::LastOperationFailed(e)) => {
                return Err(Response::error(
                    400,
                    &format!("reading the request body failed: {}", e.to_debug_string()),
                ));
            }
        }
    }
}

fn json_string(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}
