//! Builds the benchmark guest and the notes example (the serve benchmark's
//! service) for wasm32-wasip2, as `tests/build.rs` builds the conformance
//! guests.

fn main() {
    let artifacts = kv_wasm_build::build(
        &["kv-bench-guest", "kv-notes"],
        &[
            "tests/bench/guest",
            "tests/bench/src/workload.rs",
            "examples/notes",
        ],
    );
    println!(
        "cargo:rustc-env=KV_BENCH_GUEST_WASM={}",
        artifacts.wasm("kv-bench-guest").display()
    );
    println!(
        "cargo:rustc-env=NOTES_WASM={}",
        artifacts.wasm("kv_notes").display()
    );
}
