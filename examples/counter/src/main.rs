//! A counter that keeps its count in `wasi:keyvalue`: every run adds one to
//! the key (default `hits`) in the bucket (default `counter`) and prints the
//! new count. Built against wasi:keyvalue@0.2.0-draft, the draft wasmtime
//! implements, so it runs on wasmtime's host store too; kv-virt makes it
//! run anywhere.
//!
//! Usage: `counter [KEY] [BUCKET]`

wit_bindgen::generate!({
    path: "../../wit",
    world: "kv-virt:adapters/counter",
    generate_all,
});

use wasi::keyvalue0_2_0_draft::{atomics, store};

fn describe(e: store::Error) -> String {
    match e {
        store::Error::NoSuchStore => "no such store".into(),
        store::Error::AccessDenied => "access denied".into(),
        store::Error::Other(message) => message,
    }
}

fn main() {
    let mut args = std::env::args().skip(1);
    let key = args.next().unwrap_or_else(|| "hits".into());
    let bucket_name = args.next().unwrap_or_else(|| "counter".into());
    let count = store::open(&bucket_name).and_then(|bucket| atomics::increment(&bucket, &key, 1));
    match count {
        Ok(count) => println!("{bucket_name}/{key} = {count}"),
        Err(e) => {
            eprintln!("counter: {}", describe(e));
            std::process::exit(1);
        }
    }
}
