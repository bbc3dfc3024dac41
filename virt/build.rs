//! Builds the adapters, and the export and import commands, for
//! wasm32-wasip2 so that `kv-virt` carries them.

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
    // In a cargo run of its own: a std-using crate built with the no_std
    // adapters would turn on std features of their shared dependencies.
    let commands = kv_wasm_build::build(&["kv-migrate"], &["virt/migrate", "virt/dump"]);
    println!(
        "cargo:rustc-env=KV_MIGRATE_WASM={}",
        commands.wasm("kv-migrate").display()
    );
}
