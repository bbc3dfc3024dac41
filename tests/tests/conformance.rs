//! The conformance guest, composed with each adapter, on the embedded
//! wasmtime: every rule of DESIGN.md "Interfaces and semantics".

use kv_runner::RunOptions;
use kv_virt::adapters::BackendKind;
use kv_virt::options::AdapterOptions;
use kv_virt_tests::*;

/// With the default list page byte limit, then a small one.
fn conformance(guest: &str, backend: BackendKind, expected_checks: usize) {
    let command = composed_command(guest, backend, &conformance_options()).unwrap();
    let passed = run_conformance(&command, &RunOptions::default()).unwrap();
    assert_eq!(passed, expected_checks, "every check ran");
    let options = AdapterOptions {
        list_page_bytes: Some(CONFORMANCE_LIST_PAGE_BYTES),
        ..conformance_options()
    };
    let run = RunOptions {
        args: list_page_bytes_args(),
        ..RunOptions::default()
    };
    let passed = run_conformance(&composed_command(guest, backend, &options).unwrap(), &run).unwrap();
    assert_eq!(passed, expected_checks, "every check ran");
}

#[test]
fn kv_mem_draft() {
    conformance(CONFORMANCE_DRAFT, BackendKind::Mem, DRAFT_CHECKS);
}

#[test]
fn kv_mem_draft2() {
    conformance(CONFORMANCE_DRAFT2, BackendKind::Mem, DRAFT2_CHECKS);
}

#[test]
fn kv_mem_wasi_0_3_spin_and_wasmcloud() {
    conformance(CONFORMANCE_ASYNC, BackendKind::Mem, ASYNC_CHECKS);
}

#[test]
fn kv_mem_draft2_built_against_the_2024_text() {
    conformance(CONFORMANCE_DRAFT2_2024, BackendKind::Mem, DRAFT2_CHECKS);
}

#[test]
fn kv_mem_bucket_ttl() {
    bucket_ttl_conformance(BackendKind::Mem, &conformance_options(), &RunOptions::default()).unwrap();
}
