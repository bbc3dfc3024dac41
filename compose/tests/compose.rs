//! Composition rules, on synthesized components (the real adapters and
//! apps are exercised by the tests/ crate).

use std::path::{Path, PathBuf};

use kv_compose::{DRAFT2_BATCH, DRAFT2_BATCH_2024, GetManyShape, configure, dummy_component, inspect, plug};

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

/// An unconfigured adapter: a dummy of the adapter world.
fn raw_adapter() -> Vec<u8> {
    dummy_component(
        Some(&wit_dir()),
        "package test:adapter; world a { include kv-virt:adapters/adapter@0.1.0; }",
        "a",
    )
    .unwrap()
}

/// A configured adapter: a dummy of the adapter world with its config baked in.
fn adapter() -> Vec<u8> {
    configure(&raw_adapter(), b"config bytes", GetManyShape::Pr55).unwrap()
}

/// A WIT package declaring draft2's `store` and a `batch` whose `get-many`
/// returns `get_many_result`, and an app world importing that `batch`.
fn draft2_app(get_many_result: &str) -> Vec<u8> {
    let package = format!(
        "package wasi:keyvalue@0.2.0-draft2;
        interface store {{
            variant error {{ no-such-store, access-denied, other(string) }}
            resource bucket {{ get: func(key: string) -> result<option<list<u8>>, error>; }}
        }}
        interface batch {{
            use store.{{bucket, error}};
            get-many: func(bucket: borrow<bucket>, keys: list<string>) -> result<{get_many_result}, error>;
        }}
        world app {{ import batch; export run: func(); }}"
    );
    dummy_component(None, &package, "app").unwrap()
}

const SHAPE_2024: &str = "list<option<tuple<string, list<u8>>>>";
const SHAPE_PR55: &str = "list<tuple<string, option<list<u8>>>>";

fn names(items: &[kv_compose::Item]) -> Vec<String> {
    items.iter().map(|i| i.name.clone()).collect()
}

#[test]
fn configuring_removes_the_config_import_and_keeps_the_exports() {
    let raw = raw_adapter();
    assert!(names(&inspect(&raw).unwrap().imports).contains(&kv_compose::CONFIG_INTERFACE.to_string()));
    let configured = inspect(&adapter()).unwrap();
    assert!(configured.imports.is_empty(), "{:?}", configured.imports);
    assert_eq!(configured.exported_interfaces_of("wasi:keyvalue").len(), 6);
    assert!(names(&configured.exports).contains(&kv_compose::SPIN_KEY_VALUE.to_string()));
    let err = configure(&adapter(), b"x", GetManyShape::Pr55)
        .unwrap_err()
        .to_string();
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
    assert!(
        err.contains("imports no wasi:keyvalue, Spin or wasmCloud key-value interface"),
        "{err}"
    );
    assert!(err.contains("test:app/host"), "{err}");
}

#[test]
fn names_what_it_found_and_what_is_served_on_a_version_mismatch() {
    for (package, found) in [
        (
            "package wasi:keyvalue@0.1.0; interface store { get: func(key: string) -> option<list<u8>>; } \
             world app { import store; export run: func(); }",
            "wasi:keyvalue/store@0.1.0",
        ),
        (
            "package spin:key-value@3.0.0; interface key-value { get: func(key: string) -> option<list<u8>>; } \
             world app { import key-value; export run: func(); }",
            "spin:key-value/key-value@3.0.0",
        ),
        (
            "package fermyon:spin@1.0.0; interface key-value { get: func(key: string) -> option<list<u8>>; } \
             world app { import key-value; export run: func(); }",
            "fermyon:spin/key-value@1.0.0",
        ),
    ] {
        let old = dummy_component(None, package, "app").unwrap();
        let err = plug(&old, &adapter()).unwrap_err().to_string();
        assert!(
            err.contains(&format!(
                "the app imports {found}, which the adapter does not serve"
            )),
            "{err}"
        );
        assert!(
            err.contains(
                "fermyon:spin/key-value@2.0.0, wasi:keyvalue@0.2.0-draft, wasi:keyvalue@0.2.0-draft2"
            ),
            "{err}"
        );
        assert_eq!(err.lines().count(), 1, "{err}");
    }
}

#[test]
fn plugs_both_draft2_get_many_shapes() {
    for shape in [SHAPE_PR55, SHAPE_2024] {
        let composed = plug(&draft2_app(shape), &adapter()).unwrap_or_else(|e| panic!("{shape}: {e:#}"));
        let info = inspect(&composed).unwrap();
        assert!(info.imports.is_empty(), "{shape}: {:?}", info.imports);
    }
    let shape_of = |bytes: &[u8]| {
        let info = inspect(bytes).unwrap();
        info.imports
            .iter()
            .find(|i| i.name == DRAFT2_BATCH)
            .unwrap()
            .get_many_shape
    };
    assert_eq!(shape_of(&draft2_app(SHAPE_PR55)), Some(GetManyShape::Pr55));
    assert_eq!(shape_of(&draft2_app(SHAPE_2024)), Some(GetManyShape::Text2024));
}

#[test]
fn names_a_draft2_get_many_of_neither_shape() {
    let err = plug(&draft2_app("list<list<u8>>"), &adapter())
        .unwrap_err()
        .to_string();
    assert!(err.contains("get-many"), "{err}");
    assert!(err.contains("result<list<list<u8>>, error>"), "{err}");
    assert!(err.contains("PR #55") && err.contains("2024"), "{err}");
    assert_eq!(err.lines().count(), 1, "{err}");
}

#[test]
fn a_configured_adapter_can_export_the_2024_shape_under_the_wasi_name() {
    let configured = configure(&raw_adapter(), b"config", GetManyShape::Text2024).unwrap();
    let info = inspect(&configured).unwrap();
    let batch = info.exports.iter().find(|e| e.name == DRAFT2_BATCH).unwrap();
    assert_eq!(batch.get_many_shape, Some(GetManyShape::Text2024));
    assert!(!names(&info.exports).contains(&DRAFT2_BATCH_2024.to_string()));
    // `wac plug` connects by name: the 2024 app plugs into it, the PR #55 one does not.
    assert!(plug(&draft2_app(SHAPE_2024), &configured).is_ok());
    let err = plug(&draft2_app(SHAPE_PR55), &configured)
        .unwrap_err()
        .to_string();
    assert!(err.contains("get-many"), "{err}");
    // By default, the wasi name has PR #55's shape and the 2024 one its own name.
    let default = inspect(&adapter()).unwrap();
    let batch = default.exports.iter().find(|e| e.name == DRAFT2_BATCH).unwrap();
    assert_eq!(batch.get_many_shape, Some(GetManyShape::Pr55));
    let compat = default
        .exports
        .iter()
        .find(|e| e.name == DRAFT2_BATCH_2024)
        .unwrap();
    assert_eq!(compat.get_many_shape, Some(GetManyShape::Text2024));
}

#[test]
fn plugs_a_spin_key_value_app_alone_and_beside_wasi_keyvalue() {
    for imports in [
        "import fermyon:spin/key-value@2.0.0;",
        "import fermyon:spin/key-value@2.0.0; import wasi:keyvalue/store@0.2.0-draft2; import host;",
    ] {
        let composed = plug(&app(imports), &adapter()).unwrap_or_else(|e| panic!("{imports}: {e:#}"));
        let imports_left = names(&inspect(&composed).unwrap().imports);
        assert!(
            imports_left.iter().all(|name| name == "test:app/host"),
            "{imports}: {imports_left:?}"
        );
    }
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
