//! `kv-virt fs check | inspect | dump | load` on real bucket files.

use std::path::{Path, PathBuf};
use std::process::Output;

mod common;
use common::{kv_virt, temp_dir};

use kv_fs_engine::std_dir::StdDir;
use kv_fs_engine::{Options, Store};

/// A bucket file with `n` keys, some with binary values.
fn make_store(dir: &Path, name: &str, n: usize) -> PathBuf {
    let mut store = Store::open(StdDir::new(dir), name, Options::default())
        .unwrap()
        .unwrap();
    let entries: Vec<(String, Vec<u8>)> = (0..n)
        .map(|i| (format!("key/{i:05} ü"), vec![(i % 256) as u8; i % 300]))
        .collect();
    store.put_many(&entries).unwrap();
    dir.join(name)
}

fn stdout(output: &Output) -> String {
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout.clone()).unwrap()
}

#[test]
fn check_passes_a_good_file_and_fails_a_damaged_one() {
    let dir = temp_dir("fs-tools-check");
    let file = make_store(&dir, "b.kvfs", 3000);
    let report = stdout(&kv_virt(&["fs", "check", file.to_str().unwrap()]));
    assert!(report.contains(": ok (3000 keys"), "{report}");

    // Flip a byte in the middle of the file (a tree or value page).
    let mut bytes = std::fs::read(&file).unwrap();
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0x55;
    std::fs::write(&file, bytes).unwrap();
    let output = kv_virt(&["fs", "check", file.to_str().unwrap()]);
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("b.kvfs"), "names the file: {stderr}");

    let output = kv_virt(&["fs", "check", dir.join("missing.kvfs").to_str().unwrap()]);
    assert!(!output.status.success());
    std::fs::write(dir.join("text.kvfs"), "not a store").unwrap();
    let output = kv_virt(&["fs", "check", dir.join("text.kvfs").to_str().unwrap()]);
    assert!(!output.status.success());
}

#[test]
fn inspect_reports_keys_depth_and_sizes() {
    let dir = temp_dir("fs-tools-inspect");
    let file = make_store(&dir, "b.kvfs", 2000);
    let report = stdout(&kv_virt(&["fs", "inspect", file.to_str().unwrap()]));
    for line in [
        "keys: 2000",
        "tree depth: 2",
        "page size: 4096",
        "file bytes:",
        "file / logical:",
        "pages free:",
    ] {
        assert!(report.contains(line), "{line:?} missing from:\n{report}");
    }
}

#[test]
fn dump_and_load_round_trip() {
    let dir = temp_dir("fs-tools-dump");
    let file = make_store(&dir, "a.kvfs", 2500);
    let dump = dir.join("a.jsonl");
    stdout(&kv_virt(&[
        "fs",
        "dump",
        file.to_str().unwrap(),
        "-o",
        dump.to_str().unwrap(),
    ]));
    let text = std::fs::read_to_string(&dump).unwrap();
    assert_eq!(text.lines().count(), 2500);
    assert!(
        text.starts_with("{\"key\":\"key/00000 ü\",\"value\":\"\"}\n"),
        "{}",
        &text[..80]
    );

    let copy = dir.join("copy.kvfs");
    let report = stdout(&kv_virt(&[
        "fs",
        "load",
        copy.to_str().unwrap(),
        dump.to_str().unwrap(),
    ]));
    assert!(report.contains("loaded 2500 keys"), "{report}");
    let again = stdout(&kv_virt(&["fs", "dump", copy.to_str().unwrap()]));
    assert_eq!(again, text);

    let load_fails = |jsonl: &str| {
        std::fs::write(dir.join("bad.jsonl"), jsonl).unwrap();
        let output = kv_virt(&[
            "fs",
            "load",
            dir.join("loaded.kvfs").to_str().unwrap(),
            dir.join("bad.jsonl").to_str().unwrap(),
        ]);
        assert!(!output.status.success());
        String::from_utf8_lossy(&output.stderr).trim().to_string()
    };
    let good = "{\"key\":\"a\",\"value\":\"YQ==\"}\n";
    let error = load_fails(&format!("{good}{{\"key\":\"k\",\"value\":\"!!\"}}\n"));
    let file = dir.join("loaded.kvfs");
    assert_eq!(
        error,
        format!(
            "kv-virt: error: {}: loaded the 1 keys before: line 2: the value of key \"k\" is not standard base64: \
             Invalid symbol 33, offset 0.",
            file.display()
        )
    );
    // A line naming a bucket belongs to a stream of several buckets.
    let error = load_fails(&format!(
        "{good}{{\"bucket\":\"b\",\"key\":\"k\",\"value\":\"\"}}\n"
    ));
    assert!(
        error.ends_with(
            "line 2: names bucket \"b\", and `fs load` loads one bucket: export one bucket per stream"
        ),
        "{error}"
    );
    let loaded = stdout(&kv_virt(&["fs", "dump", file.to_str().unwrap()]));
    assert_eq!(loaded, good);
}
