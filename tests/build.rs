//! Builds the conformance guests and the examples for wasm32-wasip2.

fn main() {
    let artifacts = kv_wasm_build::build(
        &["kv-conformance", "kv-counter", "kv-notes"],
        &["tests/guest", "examples"],
    );
    for (var, artifact) in [
        ("CONFORMANCE_DRAFT_WASM", "conformance-draft"),
        ("CONFORMANCE_DRAFT2_WASM", "conformance-draft2"),
        ("COUNTER_WASM", "kv-counter"),
        ("NOTES_WASM", "kv_notes"),
    ] {
        println!("cargo:rustc-env={var}={}", artifacts.wasm(artifact).display());
    }
}
