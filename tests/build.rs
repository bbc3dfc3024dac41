//! Builds the conformance guests and the examples for wasm32-wasip2.

fn main() {
    let artifacts = kv_wasm_build::build(
        &[
            "kv-conformance",
            "kv-counter",
            "kv-notes",
            "kv-wasmtime-command",
            "kv-wasmcloud-counter",
            "kv-draft2-app",
            "kv-spin-app",
        ],
        &["tests/conformance", "examples"],
    );
    for (var, artifact) in [
        ("CONFORMANCE_DRAFT_WASM", "conformance-draft"),
        ("CONFORMANCE_DRAFT2_WASM", "conformance-draft2"),
        ("CONFORMANCE_DRAFT2_2024_WASM", "conformance-draft2-2024"),
        ("COUNTER_WASM", "kv-counter"),
        ("NOTES_WASM", "kv_notes"),
        ("WASMTIME_COMMAND_WASM", "kv-wasmtime-command"),
        ("WASMCLOUD_COUNTER_WASM", "kv_wasmcloud_counter"),
        ("DRAFT2_APP_PR55_WASM", "draft2-app-pr55"),
        ("DRAFT2_APP_2024_WASM", "draft2-app-2024"),
        ("SPIN_APP_WASM", "kv_spin_app"),
    ] {
        println!("cargo:rustc-env={var}={}", artifacts.wasm(artifact).display());
    }

    // The WASI 0.3 guest and examples, in a cargo run of their own: they
    // turn on wit-bindgen 0.62's async runtime (async, async-spawn, std),
    // which in one run would be unified into every guest above.
    let p3 = kv_wasm_build::build_in(
        "wasm-build-p3",
        &["kv-conformance-async", "kv-spin3-app", "kv-wasmcloud-p3-app"],
        &[],
        // kv-conformance-async is built on kv-conformance's library.
        &["tests/conformance-async", "tests/conformance", "examples"],
    );
    for (var, artifact) in [
        ("CONFORMANCE_ASYNC_WASM", "kv_conformance_async"),
        ("SPIN3_APP_WASM", "kv_spin3_app"),
        ("WASMCLOUD_P3_APP_WASM", "kv_wasmcloud_p3_app"),
    ] {
        println!("cargo:rustc-env={var}={}", p3.wasm(artifact).display());
    }
}
