//! An app as wasmtime users write them: a command built against
//! `wasi:keyvalue@0.2.0-draft` (what `wasmtime run -S keyvalue` serves) that
//! opens the bucket `""`, the only identifier wasmtime's host accepts. It
//! keeps a visit count per name.
//!
//! Usage: `wasmtime-command OP...`, the operations run in order:
//! `greet NAME` (count a visit, print it), `forget NAME` (delete the
//! count), `list` (every name with its count, through `list-keys` pages and
//! `get-many`). On wasmtime's host the store lasts as long as the instance;
//! composed with kv-fs the counts persist across runs.

wit_bindgen::generate!({
    path: "../../wit",
    world: "kv-virt:adapters/app-draft",
    generate_all,
});

use wasi::keyvalue0_2_0_draft::{atomics, batch, store};

const PREFIX: &str = "visits/";

fn describe(e: store::Error) -> String {
    match e {
        store::Error::NoSuchStore => "no such store".into(),
        store::Error::AccessDenied => "access denied".into(),
        store::Error::Other(message) => message,
    }
}

/// Every key, following `list-keys` cursors page after page.
fn all_keys(bucket: &store::Bucket) -> Result<Vec<String>, store::Error> {
    let mut keys = Vec::new();
    let mut cursor = None;
    loop {
        let page = bucket.list_keys(cursor)?;
        keys.extend(page.keys);
        match page.cursor {
            Some(next) => cursor = Some(next),
            None => return Ok(keys),
        }
    }
}

fn run(ops: &[String]) -> Result<(), String> {
    let bucket = store::open("").map_err(describe)?;
    let mut ops = ops.iter();
    while let Some(op) = ops.next() {
        match op.as_str() {
            "greet" | "forget" => {
                let name = ops.next().ok_or_else(|| format!("{op} needs a NAME"))?;
                let key = format!("{PREFIX}{name}");
                if op == "greet" {
                    let visits = atomics::increment(&bucket, &key, 1).map_err(describe)?;
                    println!("hello, {name}: visit {visits}");
                } else {
                    let known = bucket.exists(&key).map_err(describe)?;
                    bucket.delete(&key).map_err(describe)?;
                    println!("forgot {name}{}", if known { "" } else { " (never seen)" });
                }
            }
            "list" => {
                let mut keys = all_keys(&bucket).map_err(describe)?;
                keys.retain(|key| key.starts_with(PREFIX));
                keys.sort();
                let counts = batch::get_many(&bucket, &keys).map_err(describe)?;
                println!("{} names", keys.len());
                for entry in counts.into_iter().flatten() {
                    let (key, value) = entry;
                    println!("  {}: {}", &key[PREFIX.len()..], String::from_utf8_lossy(&value));
                }
            }
            other => {
                return Err(format!(
                    "unknown operation {other:?} (greet NAME, forget NAME, list)"
                ));
            }
        }
    }
    Ok(())
}

fn main() {
    let ops: Vec<String> = std::env::args().skip(1).collect();
    if let Err(e) = run(&ops) {
        eprintln!("wasmtime-command: {e}");
        std::process::exit(1);
    }
}
