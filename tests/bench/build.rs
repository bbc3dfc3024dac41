//! Builds the benchmark guest for wasm32-wasip2 (as `tests/build.rs` builds
//! the conformance guests).

fn main() {
    let artifacts = kv_wasm_build::build(
        &["kv-bench-guest"],
        &["tests/bench/guest", "tests/bench/src/workload.rs"],
    );
    println!(
        "cargo:rustc-env=KV_BENCH_GUEST_WASM={}",
        artifacts.wasm("kv-bench-guest").display()
    );
}
