//! The `kv-virt` binary: outputs, one-line errors and exit codes.

use std::path::{Path, PathBuf};
use std::process::Output;

mod common;
use common::{kv_virt, temp_dir};

use kv_compose::{dummy_component, inspect};

fn wit_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../wit")
}

/// Writes a component importing `imports` and returns its path.
fn app(dir: &Path, name: &str, package: &str) -> String {
    let bytes = dummy_component(Some(&wit_dir()), package, "app").unwrap();
    let path = dir.join(name);
    std::fs::write(&path, bytes).unwrap();
    path.to_str().unwrap().to_string()
}

/// Asserts a failure with exactly one line on stderr containing `needle`.
fn assert_one_line_error(output: &Output, needle: &str) {
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success(), "expected failure, stderr: {stderr}");
    assert_eq!(stderr.trim_end().lines().count(), 1, "not one line: {stderr}");
    assert!(stderr.starts_with("kv-virt: error: "), "{stderr}");
    assert!(stderr.contains(needle), "{needle:?} not in: {stderr}");
}

#[test]
fn plug_rejects_a_file_that_is_not_a_component() {
    let dir = temp_dir("cli-not-component");
    let text = dir.join("app.txt");
    std::fs::write(&text, "hello").unwrap();
    let out = dir.join("out.wasm");
    let output = kv_virt(&["plug", text.to_str().unwrap(), "mem", "-o", out.to_str().unwrap()]);
    assert_one_line_error(&output, "not a WebAssembly component");
    assert!(!out.exists(), "wrote an output on error");

    let core = dir.join("core.wasm");
    std::fs::write(&core, wasm_encoder::Module::new().finish()).unwrap();
    let output = kv_virt(&["plug", core.to_str().unwrap(), "mem", "-o", out.to_str().unwrap()]);
    assert_one_line_error(&output, "core WebAssembly module, not a component");
}

#[test]
fn plug_rejects_an_app_without_keyvalue() {
    let dir = temp_dir("cli-no-kv");
    let app = app(
        &dir,
        "app.wasm",
        "package test:app; interface host { now: func() -> u64; } world app { import host; export run: func(); }",
    );
    let output = kv_virt(&["plug", &app, "mem", "-o", dir.join("out.wasm").to_str().unwrap()]);
    assert_one_line_error(
        &output,
        "imports no wasi:keyvalue, Spin or wasmCloud key-value interface",
    );
}

#[test]
fn plug_names_the_versions_on_a_mismatch() {
    let dir = temp_dir("cli-mismatch");
    let bytes = dummy_component(
        None,
        "package wasi:keyvalue@0.1.0; interface store { get: func(key: string) -> option<list<u8>>; } \
         world app { import store; export run: func(); }",
        "app",
    )
    .unwrap();
    let app = dir.join("old.wasm");
    std::fs::write(&app, bytes).unwrap();
    let output = kv_virt(&[
        "plug",
        app.to_str().unwrap(),
        "mem",
        "-o",
        dir.join("out.wasm").to_str().unwrap(),
    ]);
    assert_one_line_error(&output, "wasi:keyvalue/store@0.1.0");
    assert_one_line_error(
        &output,
        "fermyon:spin/key-value@2.0.0, wasi:keyvalue@0.2.0-draft, wasi:keyvalue@0.2.0-draft2",
    );
}

#[test]
fn adapter_exports_the_draft2_get_many_shape_asked_for_and_inspect_names_it() {
    let dir = temp_dir("cli-get-many-shape");
    for (shape, described) in [
        (None, "get-many of upstream PR #55"),
        (Some("pr55"), "get-many of upstream PR #55"),
        (Some("2024"), "get-many of the 2024 text"),
    ] {
        let out = dir.join("kv-mem.wasm");
        let mut args = vec!["adapter", "mem", "-o", out.to_str().unwrap()];
        args.extend(shape.iter().flat_map(|shape| ["--draft2-get-many", shape]));
        let output = kv_virt(&args);
        assert!(
            output.status.success(),
            "{}",
            String::from_utf8_lossy(&output.stderr)
        );
        let output = kv_virt(&["inspect", out.to_str().unwrap()]);
        let listing = String::from_utf8_lossy(&output.stdout);
        let line = listing
            .lines()
            .find(|line| line.trim_start().starts_with("wasi:keyvalue/batch@0.2.0-draft2 "))
            .unwrap_or_else(|| panic!("{listing}"));
        assert!(line.contains(described), "{shape:?}: {line}");
    }
    let output = kv_virt(&["adapter", "mem", "--draft2-get-many", "2023", "-o", "x.wasm"]);
    assert!(!output.status.success());
}

#[test]
fn the_default_bucket_is_configurable_and_validated() {
    let dir = temp_dir("cli-default-bucket");
    let output = adapter_with_config(&dir, "backend = \"mem\"\ndefault-bucket = \"app\"\n");
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let output = adapter_with_config(&dir, "backend = \"mem\"\ndefault-bucket = \"../up\"\n");
    assert_one_line_error(&output, "the default bucket: invalid bucket name \"../up\"");
    let output = kv_virt(&[
        "adapter",
        "mem",
        "--default-bucket",
        "",
        "-o",
        dir.join("a.wasm").to_str().unwrap(),
    ]);
    assert_one_line_error(&output, "the default bucket: invalid bucket name \"\"");
}

#[test]
fn plug_writes_a_component_without_keyvalue_imports() {
    let dir = temp_dir("cli-plug");
    let app = app(
        &dir,
        "app.wasm",
        "package test:app; world app { import wasi:keyvalue/store@0.2.0-draft2; import wasi:keyvalue/atomics@0.2.0-draft2; export run: func(); }",
    );
    let out = dir.join("composed.wasm");
    let output = kv_virt(&["plug", &app, "mem", "--bucket", "a", "-o", out.to_str().unwrap()]);
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(String::from_utf8_lossy(&output.stdout).contains("wrote"));
    let info = inspect(&std::fs::read(&out).unwrap()).unwrap();
    let imports: Vec<&str> = info.imports.iter().map(|i| i.name.as_str()).collect();
    assert_eq!(imports, [KV_MEM_IMPORT], "kv-mem's one import is left");

    let output = kv_virt(&["inspect", out.to_str().unwrap()]);
    assert!(output.status.success());
    let listing = String::from_utf8_lossy(&output.stdout);
    assert!(
        listing.contains(&format!("imports:\n  {KV_MEM_IMPORT}"))
            && listing.contains("exports:\n  run (function)"),
        "{listing}"
    );
}

/// kv-mem's one import: the wall clock its expiries are in.
const KV_MEM_IMPORT: &str = "wasi:clocks/wall-clock@0.2.12";

#[test]
fn adapter_writes_a_self_contained_adapter() {
    let dir = temp_dir("cli-adapter");
    let out = dir.join("kv-mem.wasm");
    let output = kv_virt(&["adapter", "mem", "-o", out.to_str().unwrap()]);
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let info = inspect(&std::fs::read(&out).unwrap()).unwrap();
    let imports: Vec<&str> = info.imports.iter().map(|i| i.name.as_str()).collect();
    assert_eq!(imports, [KV_MEM_IMPORT], "kv-mem needs only the wall clock");
    assert_eq!(info.exported_interfaces_of("wasi:keyvalue").len(), 6);
}

/// `kv-virt adapter --config <file with text>`.
fn adapter_with_config(dir: &Path, text: &str) -> Output {
    let config = dir.join("kv.toml");
    std::fs::write(&config, text).unwrap();
    kv_virt(&[
        "adapter",
        "--config",
        config.to_str().unwrap(),
        "-o",
        dir.join("a.wasm").to_str().unwrap(),
    ])
}

#[test]
fn config_file_errors_name_the_key() {
    let dir = temp_dir("cli-config");
    let output = adapter_with_config(&dir, "backend = \"mem\"\nbuckets = [\"a\"]\nbukets = [\"b\"]\n");
    assert_one_line_error(&output, "unknown field `bukets`");
    assert_one_line_error(&output, "line 3");

    let output = adapter_with_config(&dir, "backend = \"mem\"\nlist-page-keys = \"many\"\n");
    assert_one_line_error(&output, "list-page-keys");

    let output = adapter_with_config(&dir, "backend = \"mem\"\nbuckets = [\"../up\"]\n");
    assert_one_line_error(&output, "invalid bucket name \"../up\"");

    let output = adapter_with_config(&dir, "backend = \"mem\"\nbuckets = []\n");
    assert_one_line_error(&output, "buckets = [] would allow no bucket");

    let output = adapter_with_config(
        &dir,
        "backend = \"mem\"\nbuckets = [\"a\"]\nlist-page-keys = 10\n",
    );
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );

    let output = kv_virt(&["adapter", "-o", dir.join("a.wasm").to_str().unwrap()]);
    assert_one_line_error(&output, "no backend given");
}

/// The kv-fs and list-page bounds are kv-core's (`FsConfig`,
/// `AdapterConfig::validate`): the flags are checked against them and the
/// help shows them.
#[test]
fn flags_are_checked_against_kv_cores_bounds() {
    let dir = temp_dir("cli-bounds");
    let out = dir.join("a.wasm");
    let adapter = |args: &[&str]| kv_virt(&[&["adapter", "-o", out.to_str().unwrap()], args].concat());
    let output = adapter(&["fs", "--page-size", "3000"]);
    assert_one_line_error(&output, "page size 3000 is not a power of two from 1024 to 65536");
    let output = adapter(&["fs", "--page-size", "131072"]);
    assert_one_line_error(&output, "page size 131072");
    let output = adapter(&["fs", "--lock-lease-ms", "99"]);
    assert_one_line_error(&output, "at least 100 ms");
    let output = adapter(&["mem", "--list-page-bytes", "0"]);
    assert_one_line_error(&output, "list page sizes must be at least 1");
    let output = adapter(&["fs", "--page-size", "65536", "--list-page-bytes", "100"]);
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );

    let help = kv_virt(&["adapter", "--help"]);
    let help = String::from_utf8_lossy(&help.stdout);
    for shown in [
        "from 1024 to 65536 [default: 4096]",
        "[default: 5000]",
        "[default: 1048576]",
    ] {
        assert!(help.contains(shown), "{shown:?} not in: {help}");
    }
}

/// `ttl-ms` at the top level (flag or file) and per route: inspect shows
/// it; 0 and over 100 years are one-line errors; every command that bakes
/// an adapter takes the flag.
#[test]
fn the_bucket_ttl_is_configurable_shown_and_validated() {
    let dir = temp_dir("cli-ttl");
    let out = dir.join("a.wasm");
    let inspect_out =
        || String::from_utf8_lossy(&kv_virt(&["inspect", out.to_str().unwrap()]).stdout).into_owned();
    let output = kv_virt(&["adapter", "mem", "--ttl-ms", "60000", "-o", out.to_str().unwrap()]);
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(
        inspect_out().contains("expiry (ttl-ms) of keys written without one: 60000 ms"),
        "{}",
        inspect_out()
    );
    let output = adapter_with_config(
        &dir,
        "ttl-ms = 5000
[[route]]
buckets = [\"cache\"]
backend = \"mem\"
ttl-ms = 1000
[[route]]
buckets = [\"*\"]
backend = \"mem\"
",
    );
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let listing = inspect_out();
    assert!(
        listing.contains("keys written without one: 5000 ms")
            && listing.contains("cache -> kv-mem ttl-ms=1000 ms"),
        "{listing}"
    );
    let output = kv_virt(&["adapter", "mem", "-o", out.to_str().unwrap()]);
    assert!(output.status.success());
    assert!(inspect_out().contains("keys written without one: never"));
    assert_one_line_error(
        &kv_virt(&["adapter", "mem", "--ttl-ms", "0", "-o", out.to_str().unwrap()]),
        "ttl-ms must be at least 1",
    );
    assert_one_line_error(
        &adapter_with_config(
            &dir,
            "[[route]]\nbuckets = [\"a\"]\nbackend = \"mem\"\nttl-ms = 0\n",
        ),
        "route 1: ttl-ms must be at least 1",
    );
    assert_one_line_error(
        &kv_virt(&[
            "adapter",
            "mem",
            "--ttl-ms",
            "4000000000000",
            "-o",
            out.to_str().unwrap(),
        ]),
        "over the longest expiry",
    );
    for command in ["adapter", "plug", "export", "import"] {
        let help = kv_virt(&[command, "--help"]);
        assert!(
            String::from_utf8_lossy(&help.stdout).contains("--ttl-ms"),
            "{command} --help"
        );
    }
}

#[test]
fn every_command_has_help_with_an_example() {
    for command in ["adapter", "plug", "export", "import", "inspect"] {
        let output = kv_virt(&[command, "--help"]);
        assert!(output.status.success());
        let help = String::from_utf8_lossy(&output.stdout);
        assert!(help.contains("Example:\n  kv-virt"), "{command}: {help}");
    }
}

#[test]
fn http_secrets_are_read_at_run_time_unless_baking_is_asked_for() {
    let dir = temp_dir("cli-http-secrets");
    let out = dir.join("kv-http.wasm");
    let out = out.to_str().unwrap();
    let base = [
        "adapter",
        "http",
        "--protocol",
        "etcd",
        "--endpoint",
        "http://127.0.0.1:2379",
        "-o",
        out,
    ];

    let output = kv_virt(&[&base[..], &["--credential", "password=value:hunter2"]].concat());
    assert_one_line_error(&output, "would bake the secret into the component");

    let output = kv_virt(&[&base[..], &["--credential", "password=hunter2"]].concat());
    assert_one_line_error(&output, "must be env:VARIABLE or value:SECRET");

    let output = kv_virt(&[&base[..], &["--credential", "password=env:ETCD_PASSWORD"]].concat());
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(!std::fs::read(out).unwrap().windows(7).any(|w| w == b"hunter2"));

    let output = kv_virt(
        &[
            &base[..],
            &["--credential", "password=value:hunter2", "--bake-secrets"],
        ]
        .concat(),
    );
    assert!(output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("warning: the password credential is baked into the component"),
        "{stderr}"
    );
    assert!(std::fs::read(out).unwrap().windows(7).any(|w| w == b"hunter2"));

    let output = kv_virt(&[
        "adapter",
        "http",
        "--protocol",
        "etcd",
        "--endpoint",
        "ftp://x",
        "-o",
        out,
    ]);
    assert_one_line_error(&output, "must start with http:// or https://");
}

#[test]
fn route_tables_make_a_routed_adapter_and_their_mistakes_are_one_line_errors() {
    let dir = temp_dir("cli-routes");
    let ok = adapter_with_config(
        &dir,
        "[[route]]\nbuckets = [\"cache\"]\nbackend = \"mem\"\n[[route]]\nbuckets = [\"*\"]\nbackend = \"fs\"\n[route.fs]\ndir = \"/kv\"\n",
    );
    assert!(ok.status.success(), "{}", String::from_utf8_lossy(&ok.stderr));
    let listing = kv_virt(&["inspect", dir.join("a.wasm").to_str().unwrap()]);
    let listing = String::from_utf8_lossy(&listing.stdout);
    assert!(
        listing.contains("cache -> kv-mem") && listing.contains("* -> kv-fs dir=/kv"),
        "{listing}"
    );
    for (text, error) in [
        (
            "[[route]]\nbuckets = [\"a\"]\nbackend = \"route\"\n",
            "route 1: a route's backend is mem, fs or http",
        ),
        (
            "[[route]]\nbuckets = [\"a\"]\nbackend = \"mem\"\n[route.fs]\ndir = \"/kv\"\n",
            "route 1: a mem route takes no [route.fs] or [route.http] table",
        ),
        (
            "[[route]]\nbuckets = [\"a\"]\nbackend = \"mem\"\n[[route]]\nbuckets = [\"../*\"]\nbackend = \"mem\"\n",
            "route 2: \"../*\" is not a bucket name or pattern",
        ),
        (
            "[[route]]\nbuckets = []\nbackend = \"mem\"\n",
            "route 1: it names no bucket",
        ),
        (
            "[[route]]\nbucket = [\"a\"]\nbackend = \"mem\"\n",
            "unknown field `bucket`",
        ),
        (
            "backend = \"fs\"\n[[route]]\nbuckets = [\"a\"]\nbackend = \"mem\"\n",
            "[[route]] tables, which make a backend per bucket: drop backend fs",
        ),
        (
            "[fs]\ndir = \"/kv\"\n[[route]]\nbuckets = [\"a\"]\nbackend = \"mem\"\n",
            "each route sets its backend's options in its own",
        ),
    ] {
        assert_one_line_error(&adapter_with_config(&dir, text), error);
    }
    let output = kv_virt(&["adapter", "route", "-o", dir.join("b.wasm").to_str().unwrap()]);
    assert_one_line_error(&output, "backend route needs [[route]] tables");
}

#[test]
fn export_and_import_write_commands_that_need_only_wasi() {
    let dir = temp_dir("cli-migrate");
    for task in ["export", "import"] {
        let out = dir.join(format!("{task}.wasm"));
        let output = kv_virt(&[
            task,
            "fs",
            "--dir",
            "/data",
            "--bucket",
            "app",
            "-o",
            out.to_str().unwrap(),
        ]);
        assert!(
            output.status.success(),
            "{}",
            String::from_utf8_lossy(&output.stderr)
        );
        let info = inspect(&std::fs::read(&out).unwrap()).unwrap();
        let imports: Vec<&str> = info.imports.iter().map(|i| i.name.as_str()).collect();
        assert!(
            imports.iter().all(|name| name.starts_with("wasi:")),
            "{imports:?}"
        );
        assert!(
            !imports.iter().any(|name| name.starts_with("wasi:keyvalue")),
            "{imports:?}"
        );
        assert!(
            info.exports.iter().any(|e| e.name.starts_with("wasi:cli/run@")),
            "{:?}",
            info.exports
        );

        let output = kv_virt(&[task, "mem", "--batch-keys", "0", "-o", out.to_str().unwrap()]);
        assert_one_line_error(&output, "--batch-keys and --batch-bytes must be at least 1");
        let output = kv_virt(&[task, "-o", out.to_str().unwrap()]);
        assert_one_line_error(&output, "no backend given");
    }
}

#[test]
fn a_reader_that_closes_early_ends_the_command_quietly() {
    // `kv-virt inspect x.wasm | head -1`, with `head` gone before kv-virt
    // writes: every write to stdout fails with a broken pipe.
    let dir = temp_dir("cli-broken-pipe");
    let adapter = dir.join("kv-mem.wasm");
    let made = kv_virt(&["adapter", "mem", "-o", adapter.to_str().unwrap()]);
    assert!(made.status.success(), "{}", String::from_utf8_lossy(&made.stderr));
    let (reader, writer) = std::io::pipe().unwrap();
    drop(reader);
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_kv-virt"))
        .args(["inspect", adapter.to_str().unwrap()])
        .stdout(writer)
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&output.stderr), "");
    assert!(output.status.success(), "{:?}", output.status);

    // Any other failure is still one line and exit 1.
    let (reader, writer) = std::io::pipe().unwrap();
    drop(reader);
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_kv-virt"))
        .args(["inspect", dir.join("missing.wasm").to_str().unwrap()])
        .stdout(writer)
        .output()
        .unwrap();
    assert_one_line_error(&output, "cannot read");
}
