//! An app as Spin users write them, unchanged but for where it runs: a
//! `spin-sdk` HTTP component with a `Router`, keeping notes and a hit
//! counter in Spin's key-value store, `Store::open_default()`. Composed
//! with kv-virt it runs on any WASI 0.2 runtime that serves
//! `wasi:http/incoming-handler`, with no Spin. It answers the same API as
//! the notes example, so the same load test runs on it:
//!
//! | request | response |
//! |---|---|
//! | `PUT /notes/{id}` (body: the note) | `204` |
//! | `GET /notes/{id}` | `200` with the note; `404` if there is none |
//! | `DELETE /notes/{id}` | `204` |
//! | `GET /notes?cursor={id}` | `200` `{"ids":[…],"next":"{id}"\|null}`: up to 100 ids after `cursor` (from `get-keys`) |
//! | `POST /hits` | `200` `{"hits":N}`: adds one to the counter |
//! | `GET /hits` | `200` `{"hits":N}` |
//!
//! Ids are 1 to 128 characters of `A-Z a-z 0-9 . _ -` (else `400`). Spin's
//! key-value interface has no atomic increment, so the counter uses
//! `wasi:keyvalue/atomics@0.2.0-draft2`, which Spin (3.1 and later) offers
//! beside it on the same stores: under concurrent requests no hit is lost.
//! A store failure is a `500` with the store's message.

use spin_sdk::http::{IntoResponse, Params, Request, Response, Router};
use spin_sdk::http_component;
use spin_sdk::key_value::Store;
use spin_sdk::wit::wasi::keyvalue::{atomics, store as wasi_store};

const NOTE_PREFIX: &str = "note/";
const HITS_KEY: &str = "hits";
/// Ids per page of `GET /notes`.
const PAGE: usize = 100;

#[http_component]
fn handle(request: Request) -> Response {
    let mut router = Router::new();
    router.put("/notes/:id", put_note);
    router.get("/notes/:id", get_note);
    router.delete("/notes/:id", delete_note);
    router.get("/notes", list_notes);
    router.post("/hits", count_hit);
    router.get("/hits", get_hits);
    router.handle(request)
}

/// The store key of a note, or a `400` answer for a bad id.
fn note_key(params: &Params) -> Result<String, Response> {
    let id = params.get("id").unwrap_or_default();
    let valid = (1..=128).contains(&id.len())
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b));
    if valid {
        Ok(format!("{NOTE_PREFIX}{id}"))
    } else {
        Err(Response::new(
            400,
            "a note id is 1 to 128 characters of A-Z a-z 0-9 . _ -\n",
        ))
    }
}

fn put_note(request: Request, params: Params) -> anyhow::Result<Response> {
    let key = match note_key(&params) {
        Ok(key) => key,
        Err(bad) => return Ok(bad),
    };
    Store::open_default()?.set(&key, request.body())?;
    Ok(Response::new(204, ()))
}

fn get_note(_: Request, params: Params) -> anyhow::Result<Response> {
    let key = match note_key(&params) {
        Ok(key) => key,
        Err(bad) => return Ok(bad),
    };
    Ok(match Store::open_default()?.get(&key)? {
        Some(note) => Response::new(200, note),
        None => Response::new(404, "no such note\n"),
    })
}

fn delete_note(_: Request, params: Params) -> anyhow::Result<Response> {
    let key = match note_key(&params) {
        Ok(key) => key,
        Err(bad) => return Ok(bad),
    };
    Store::open_default()?.delete(&key)?;
    Ok(Response::new(204, ()))
}

fn list_notes(request: Request, _: Params) -> anyhow::Result<Response> {
    let after = request
        .query()
        .strip_prefix("cursor=")
        .unwrap_or_default()
        .to_string();
    let mut ids: Vec<String> = Store::open_default()?
        .get_keys()?
        .into_iter()
        .filter_map(|key| key.strip_prefix(NOTE_PREFIX).map(str::to_string))
        .filter(|id| *id > after)
        .collect();
    ids.sort();
    let next = (ids.len() > PAGE).then(|| ids[PAGE - 1].clone());
    ids.truncate(PAGE);
    // Ids need no JSON escaping: they are [A-Za-z0-9._-].
    let quoted: Vec<String> = ids.iter().map(|id| format!("\"{id}\"")).collect();
    let next = next.map_or("null".to_string(), |id| format!("\"{id}\""));
    Ok(json(format!(
        "{{\"ids\":[{}],\"next\":{next}}}",
        quoted.join(",")
    )))
}

fn count_hit(_: Request, _: Params) -> anyhow::Result<impl IntoResponse> {
    // The default store again, through wasi:keyvalue's atomic increment.
    let bucket = wasi_store::open("default").map_err(|e| anyhow::anyhow!("opening the store: {e:?}"))?;
    let hits = atomics::increment(&bucket, HITS_KEY, 1).map_err(|e| anyhow::anyhow!("counting: {e:?}"))?;
    Ok(json(format!("{{\"hits\":{hits}}}")))
}

fn get_hits(_: Request, _: Params) -> anyhow::Result<impl IntoResponse> {
    let hits: i64 = match Store::open_default()?.get(HITS_KEY)? {
        Some(value) => String::from_utf8(value)?.parse()?,
        None => 0,
    };
    Ok(json(format!("{{\"hits\":{hits}}}")))
}

fn json(body: String) -> Response {
    Response::builder()
        .status(200)
        .header("content-type", "application/json")
        .body(body)
        .build()
}
