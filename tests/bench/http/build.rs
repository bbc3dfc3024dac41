//! Builds the benchmark guest for wasm32-wasip2.

fn main() {
    let artifacts = kv_wasm_build::build(
        &["kv-bench-http-guest"],
        &["tests/bench/http/guest", "tests/bench/http/src/keys.rs"],
    );
    println!(
        "cargo:rustc-env=KV_BENCH_HTTP_GUEST_WASM={}",
        artifacts.wasm("kv-bench-http-guest").display()
    );
}
