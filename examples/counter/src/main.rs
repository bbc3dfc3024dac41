//! A counter that keeps its count in `wasi:keyvalue`: every run adds one to
//! the key (default `hits`) in the bucket (default `counter`) and prints the
//! new count. Built against wasi:keyvalue@0.2.0-draft, the draft wasmtime
//! implements, so it runs on wasmtime's host store too; kv-virt makes it
//! run anywhere.
//!
//! Usage: `counter [KEY [BUCKET [TIMES]]]`: with TIMES, it increments that
//! many times and prints every acknowledged count (the crash and
//! concurrency tests use this).

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

fn run(key: &str, bucket_name: &str, times: Option<u64>) -> Result<(), store::Error> {
    let bucket = store::open(bucket_name)?;
    for _ in 0..times.unwrap_or(1) {
        let count = atomics::increment(&bucket, key, 1)?;
        println!("{bucket_name}/{key} = {count}");
    }
    Ok(())
}

fn main() {
    let mut args = std::env::args().skip(1);
    let key = args.next().unwrap_or_else(|| "hits".into());
    let bucket = args.next().unwrap_or_else(|| "counter".into());
    let times = match args.next().map(|n| n.parse()) {
        None => None,
        Some(Ok(n)) => Some(n),
        Some(Err(_)) => {
            eprintln!("counter: TIMES must be a number");
            std::process::exit(2);
        }
    };
    if let Err(e) = run(&key, &bucket, times) {
        eprintln!("counter: {}", describe(e));
        std::process::exit(1);
    }
}
