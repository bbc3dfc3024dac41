//! Builds the adapters, in both flavours, and the export and import
//! commands, for wasm32-wasip2 so that `kv-virt` carries them.

fn main() {
    let out_dir = std::path::PathBuf::from(std::env::var_os("OUT_DIR").expect("run by cargo"));
    let adapters = ["kv-mem", "kv-fs", "kv-http"];
    // Core modules, in a target directory of their own (their linker flag
    // differs from the other wasm crates'), made components below.
    let sync = kv_wasm_build::build_core_modules_in("wasm-build-adapters", &adapters, &[], &["adapters"]);
    // kv-route links the other adapters' crates without their component
    // exports: built on its own (its own target directory too), or cargo
    // would unify their features with the standalone adapters', or write
    // their export-less `.wasm` over them.
    let route = kv_wasm_build::build_core_modules_in("wasm-build-route", &["kv-route"], &[], &["adapters"]);
    // The async flavours (kv-glue's `async` feature: the WASI 0.3
    // interfaces too), each in a target directory of its own for the same
    // reasons.
    let async_adapters = kv_wasm_build::build_core_modules_in(
        "wasm-build-async",
        &adapters,
        &["kv-glue/async"],
        &["adapters"],
    );
    let async_route = kv_wasm_build::build_core_modules_in(
        "wasm-build-route-async",
        &["kv-route"],
        &["kv-glue/async"],
        &["adapters"],
    );
    for (var, artifacts, name) in [
        ("KV_MEM_WASM", &sync, "kv_mem"),
        ("KV_FS_WASM", &sync, "kv_fs"),
        ("KV_HTTP_WASM", &sync, "kv_http"),
        ("KV_ROUTE_WASM", &route, "kv_route"),
        ("KV_MEM_ASYNC_WASM", &async_adapters, "kv_mem"),
        ("KV_FS_ASYNC_WASM", &async_adapters, "kv_fs"),
        ("KV_HTTP_ASYNC_WASM", &async_adapters, "kv_http"),
        ("KV_ROUTE_ASYNC_WASM", &async_route, "kv_route"),
    ] {
        // What kv-virt carries: the adapter shrunk by Binaryen, without a
        // `component-name` section (names that only a debugger would read).
        let component =
            kv_wasm_build::shrunk_component(&artifacts.wasm(name), &out_dir.join(format!("{var}.core.wasm")));
        let carried = out_dir.join(format!("{var}.wasm"));
        std::fs::write(
            &carried,
            kv_wasm_build::without_custom_sections(&component, &["component-name"]),
        )
        .expect("writing an adapter to OUT_DIR");
        println!("cargo:rustc-env={var}={}", carried.display());
    }
    // In a cargo run of its own: a std-using crate built with the no_std
    // adapters would turn on std features of their shared dependencies.
    let commands = kv_wasm_build::build(&["kv-migrate"], &["virt/migrate", "virt/dump"]);
    println!(
        "cargo:rustc-env=KV_MIGRATE_WASM={}",
        commands.wasm("kv-migrate").display()
    );
}
