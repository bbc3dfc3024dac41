//! A counter that keeps its count in `wasi:keyvalue`: every run adds one to
//! the key (default `hits`) in the bucket (default `counter`) and prints the
//! new count. Built against wasi:keyvalue@0.2.0-draft, the draft wasmtime
//! implements, so it runs on wasmtime's host store too; kv-virt makes it
//! run anywhere.
//!
//! Usage: `counter [KEY [BUCKET [TIMES [PAUSE_MS]]]]`: with TIMES, it
//! increments that many times and prints every acknowledged count (the
//! crash and concurrency tests use this). With PAUSE_MS, it pauses that
//! long after each increment, and a failed increment is printed as
//! `error: …` instead of ending the run (the outage tests use this).

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

fn run(key: &str, bucket_name: &str, times: Option<u64>, pause_ms: Option<u64>) -> Result<(), store::Error> {
    let bucket = store::open(bucket_name)?;
    for _ in 0..times.unwrap_or(1) {
        match (atomics::increment(&bucket, key, 1), pause_ms) {
            (Ok(count), _) => println!("{bucket_name}/{key} = {count}"),
            (Err(e), Some(_)) => println!("error: {}", describe(e)),
            (Err(e), None) => return Err(e),
        }
        if let Some(ms) = pause_ms {
            std::thread::sleep(std::time::Duration::from_millis(ms));
        }
    }
    Ok(())
}

fn number(arg: Option<String>, name: &str) -> Option<u64> {
    let arg = arg?;
    match arg.parse() {
        Ok(n) => Some(n),
        Err(_) => {
            eprintln!("counter: {name} must be a number, not {arg:?}");
            std::process::exit(2);
        }
    }
}

fn main() {
    let mut args = std::env::args().skip(1);
    let key = args.next().unwrap_or_else(|| "hits".into());
    let bucket = args.next().unwrap_or_else(|| "counter".into());
    let times = number(args.next(), "TIMES");
    let pause_ms = number(args.next(), "PAUSE_MS");
    if let Err(e) = run(&key, &bucket, times, pause_ms) {
        eprintln!("counter: {}", describe(e));
        std::process::exit(1);
    }
}
