//! Composition rules, on synthesized components (the real adapters and
//! apps are exercised by the tests/ crate).

use std::path::{Path, PathBuf};

use kv_compose::{configure, dummy_component, inspect, plug};

fn wit_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../wit")
}

/// An app importing `imports` (WIT `import` lines) and exporting a function.
fn app(imports: &str) -> Vec<u8> {
    let package = format!(
        "package test:app; interface host {{ now: func() -> u64; }} world app {{ {imports} export run: func(); }}"
    );
    dummy_component(Some(&wit_dir()), &package, "app").unwrap()
}

/// A configured adapter: a dummy of the adapter world with its config baked in.
fn adapter() -> Vec<u8> {
    let raw = dummy_component(
        Some(&wit_dir()),
        "package test:adapter; world a { include kv-virt:adapters/adapter@0.1.0; }",
        "a",
    )
    .unwrap();
    configure(&raw, b"config bytes").unwrap()
}

fn names(items: &[kv_compose::Item]) -> Vec<String> {
    items.iter().map(|i| i.name.clone()).collect()
}

#[test]
fn configuring_removes_the_config_import_and_keeps_the_exports() {
    let raw = dummy_component(
        Some(&wit_dir()),
        "package test:adapter; world a { include kv-virt:adapters/adapter@0.1.0; }",
        "a",
    )
    .unwrap();
    assert!(names(&inspect(&raw).unwrap().imports).contains(&kv_compose::CONFIG_INTERFACE.to_string()));
    let configured = inspect(&adapter()).unwrap();
    assert!(configured.imports.is_empty(), "{:?}", configured.imports);
    assert_eq!(configured.exported_interfaces_of("wasi:keyvalue").len(), 6);
    let err = configure(&adapter(), b"x").unwrap_err().to_string();
    assert!(err.contains("not an unconfigured kv-virt adapter"), "{err}");
}

#[test]
fn plugs_apps_importing_one_draft_or_only_store() {
    for imports in [
        "import wasi:keyvalue/store@0.2.0-draft;",
        "import wasi:keyvalue/store@0.2.0-draft2; import wasi:keyvalue/batch@0.2.0-draft2;",
        "import wasi:keyvalue/store@0.2.0-draft; import wasi:keyvalue/atomics@0.2.0-draft; \
         import wasi:keyvalue/store@0.2.0-draft2; import wasi:keyvalue/atomics@0.2.0-draft2;",
    ] {
        let composed = plug(&app(imports), &adapter()).unwrap_or_else(|e| panic!("{imports}: {e:#}"));
        let info = inspect(&composed).unwrap();
        assert!(
            info.imports.is_empty(),
            "{imports}: composed imports {:?}",
            info.imports
        );
        assert_eq!(names(&info.exports), vec!["run".to_string()]);
    }
}

#[test]
fn keeps_the_apps_other_imports_and_adds_nothing() {
    let composed = plug(
        &app("import wasi:keyvalue/store@0.2.0-draft; import host;"),
        &adapter(),
    )
    .unwrap();
    let imports = names(&inspect(&composed).unwrap().imports);
    assert_eq!(imports, vec!["test:app/host"]);
}

#[test]
fn rejects_what_is_not_a_component() {
    let err = plug(b"hello", &adapter()).unwrap_err().to_string();
    assert!(err.contains("the app is not a WebAssembly component"), "{err}");
    let core = wasm_encoder::Module::new().finish();
    let err = plug(&core, &adapter()).unwrap_err().to_string();
    assert!(err.contains("core WebAssembly module, not a component"), "{err}");
    let err = plug(&app("import wasi:keyvalue/store@0.2.0-draft;"), b"\0asm junk")
        .unwrap_err()
        .to_string();
    assert!(err.starts_with("the adapter"), "{err}");
}

#[test]
fn rejects_an_app_without_keyvalue_imports() {
    let err = plug(&app("import host;"), &adapter()).unwrap_err().to_string();
    assert!(err.contains("imports no wasi:keyvalue interface"), "{err}");
    assert!(err.contains("test:app/host"), "{err}");
}

#[test]
fn names_the_versions_on_a_version_mismatch() {
    let package = "package wasi:keyvalue@0.1.0; interface store { get: func(key: string) -> option<list<u8>>; } \
                   world app { import store; export run: func(); }";
    let old = dummy_component(None, package, "app").unwrap();
    let err = plug(&old, &adapter()).unwrap_err().to_string();
    assert!(err.contains("wasi:keyvalue/store@0.1.0"), "{err}");
    assert!(
        err.contains("wasi:keyvalue@0.2.0-draft, wasi:keyvalue@0.2.0-draft2 supported"),
        "{err}"
    );
    assert_eq!(err.lines().count(), 1, "{err}");
}

#[test]
fn names_the_old_draft2_get_many_shape() {
    let package = "package wasi:keyvalue@0.2.0-draft2;
        interface store {
            variant error { no-such-store, access-denied, other(string) }
            resource bucket { get: func(key: string) -> result<option<list<u8>>, error>; }
        }
        interface batch {
            use store.{bucket, error};
            get-many: func(bucket: borrow<bucket>, keys: list<string>) -> result<list<option<tuple<string, list<u8>>>>, error>;
        }
        world app { import batch; export run: func(); }";
    let old = dummy_component(None, package, "app").unwrap();
    let err = plug(&old, &adapter()).unwrap_err().to_string();
    assert!(err.contains("get-many"), "{err}");
    assert!(
        err.contains("result<list<option<tuple<string, list<u8>>>>, error>"),
        "{err}"
    );
    assert!(err.contains("PR #55"), "{err}");
    assert_eq!(err.lines().count(), 1, "{err}");
}

#[test]
fn rejects_an_unconfigured_adapter() {
    let raw = dummy_component(
        Some(&wit_dir()),
        "package test:adapter; world a { include kv-virt:adapters/adapter@0.1.0; }",
        "a",
    )
    .unwrap();
    let err = plug(&app("import wasi:keyvalue/store@0.2.0-draft;"), &raw)
        .unwrap_err()
        .to_string();
    assert!(err.contains("not configured"), "{err}");
}
