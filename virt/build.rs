//! Builds the adapters for wasm32-wasip2 so that `kv-virt` carries them.

fn main() {
    let artifacts = kv_wasm_build::build(&["kv-mem", "kv-fs", "kv-http"], &["adapters"]);
    println!(
        "cargo:rustc-env=KV_MEM_WASM={}",
        artifacts.wasm("kv_mem").display()
    );
    println!("cargo:rustc-env=KV_FS_WASM={}", artifacts.wasm("kv_fs").display());
    println!(
        "cargo:rustc-env=KV_HTTP_WASM={}",
        artifacts.wasm("kv_http").display()
    );
}
