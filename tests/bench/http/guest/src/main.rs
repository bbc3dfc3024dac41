//! kv-bench-http's guest: `kv-bench-http-guest OP N KEYS` runs N timed
//! calls of OP on bucket `bench` (whose KEYS keys `setup` writes) and prints
//! `{"op": …, "us_per_op": …}`. The timing is inside the instance, so it is
//! the adapter's cost (requests included), not the runtime's start-up.

wit_bindgen::generate!({
    path: "../../../../wit",
    world: "kv-virt:adapters/app-draft",
    generate_all,
});

use std::time::Instant;

#[path = "../../src/keys.rs"]
mod keys;

use keys::{key, pick, value};

use wasi::keyvalue0_2_0_draft::{atomics, batch, store};

fn run(op: &str, n: u64, keys: u64) -> Result<f64, String> {
    let fail = |e: store::Error| format!("{op}: {e:?}");
    let bucket = store::open("bench").map_err(fail)?;
    let start = Instant::now();
    match op {
        "setup" => {
            let all: Vec<(String, Vec<u8>)> = (0..keys).map(|i| (key(i), value(i))).collect();
            for chunk in all.chunks(100) {
                batch::set_many(&bucket, chunk).map_err(fail)?;
            }
        }
        "get" => {
            for i in 0..n {
                bucket
                    .get(&key(pick(i, keys)))
                    .map_err(fail)?
                    .ok_or("a key is missing")?;
            }
        }
        "set" => {
            for i in 0..n {
                bucket.set(&key(pick(i, keys)), &value(i)).map_err(fail)?;
            }
        }
        "increment" => {
            for _ in 0..n {
                atomics::increment(&bucket, "counter", 1).map_err(fail)?;
            }
        }
        "get-many" => {
            for i in 0..n {
                let batch_keys: Vec<String> = (0..100).map(|j| key(pick(i * 100 + j, keys))).collect();
                let values = batch::get_many(&bucket, &batch_keys).map_err(fail)?;
                if values.iter().flatten().count() != 100 {
                    return Err("get-many missed keys".into());
                }
            }
        }
        "list" => {
            for _ in 0..n {
                let mut cursor = None;
                let mut listed = 0;
                loop {
                    let page = bucket.list_keys(cursor).map_err(fail)?;
                    listed += page.keys.len() as u64;
                    match page.cursor {
                        Some(next) => cursor = Some(next),
                        None => break,
                    }
                }
                // The bucket holds the loaded keys and the counter.
                if listed < keys {
                    return Err(format!("listed {listed} keys of {keys}"));
                }
            }
        }
        _ => return Err(format!("unknown op {op}")),
    }
    Ok(start.elapsed().as_secs_f64() * 1e6 / n.max(1) as f64)
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [op, n, keys] = args.as_slice() else {
        eprintln!("usage: kv-bench-http-guest OP N KEYS");
        std::process::exit(2);
    };
    let (n, keys) = (n.parse().unwrap_or(1), keys.parse().unwrap_or(1));
    match run(op, n, keys) {
        Ok(us) => println!("{{\"op\": \"{op}\", \"us_per_op\": {us:.1}}}"),
        Err(e) => {
            eprintln!("kv-bench-http-guest: {e}");
            std::process::exit(1);
        }
    }
}
