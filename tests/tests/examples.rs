//! The examples, composed with kv-virt and run on the embedded wasmtime.

use kv_runner::RunOptions;
use kv_virt::adapters::BackendKind;
use kv_virt::options::AdapterOptions;
use kv_virt_tests::*;

#[test]
fn counter_on_kv_mem_counts_within_an_instance_only() {
    let composed = compose(&read(COUNTER), BackendKind::Mem, &AdapterOptions::default()).unwrap();
    let info = kv_compose::inspect(&composed).unwrap();
    assert!(
        info.imported_interfaces_of("wasi:keyvalue").is_empty(),
        "{:?}",
        info.imports
    );
    let command = runtime().command(&composed).unwrap();
    let options = RunOptions {
        capture_output: true,
        ..RunOptions::default()
    };
    for _ in 0..2 {
        let output = command.run(&options).unwrap();
        assert_eq!(output.exit_code, 0, "{}", output.stderr_text());
        // kv-mem lives as long as the instance: every run starts from zero.
        assert_eq!(output.stdout_text(), "counter/hits = 1\n");
    }
}

#[test]
fn counter_reports_a_denied_bucket_and_exits_non_zero() {
    let options = AdapterOptions {
        buckets: vec!["other".into()],
        ..AdapterOptions::default()
    };
    let command = composed_command(COUNTER, BackendKind::Mem, &options).unwrap();
    let output = command
        .run(&RunOptions {
            capture_output: true,
            ..RunOptions::default()
        })
        .unwrap();
    assert_eq!(output.exit_code, 1);
    assert_eq!(output.stderr_text(), "counter: access denied\n");
}
