//! `kv-virt fs check | inspect | dump | load | upgrade` on real bucket files.

use std::path::{Path, PathBuf};
use std::process::Output;

mod common;
use common::{kv_virt, temp_dir};

use kv_fs_engine::std_dir::StdDir;
use kv_fs_engine::{BucketFile, Options};

/// A bucket file with `n` keys, some with binary values, in its tree (a
/// checkpoint) and the log (the last two commits).
fn make_store(dir: &Path, name: &str, n: usize) -> PathBuf {
    let mut store = BucketFile::open(StdDir::new(dir), name, Options::default())
        .unwrap()
        .unwrap();
    let entries: Vec<(String, Vec<u8>)> = (0..n)
        .map(|i| (format!("key/{i:05} ü"), vec![(i % 256) as u8; i % 300]))
        .collect();
    let (tree, log) = entries.split_at(n - 2);
    store.put_many(tree).unwrap();
    store.checkpoint().unwrap();
    for entry in log {
        store.put(entry.0.as_bytes(), &entry.1).unwrap();
    }
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
    assert!(report.contains("2 logged commits checked"), "{report}");

    // Flip a byte in the middle of the tree's pages (after the header, the
    // checkpoint page and the 256 KiB log ring).
    let mut bytes = std::fs::read(&file).unwrap();
    let ring_end = (2 + 64) * 4096;
    let middle = ring_end + (bytes.len() - ring_end) / 2;
    bytes[middle] ^= 0x55;
    std::fs::write(&file, bytes).unwrap();
    let output = kv_virt(&["fs", "check", file.to_str().unwrap()]);
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("b.kvfs"), "names the file: {stderr}");

    // A damaged record of the log, before an intact one.
    let file = make_store(&dir, "c.kvfs", 10);
    let mut bytes = std::fs::read(&file).unwrap();
    let record = (2 * 4096..bytes.len())
        .find(|&i| bytes[i..].starts_with(b"key/00008"))
        .expect("the second-to-last key is in the log");
    bytes[record] ^= 0x55;
    std::fs::write(&file, bytes).unwrap();
    let output = kv_virt(&["fs", "check", file.to_str().unwrap()]);
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("c.kvfs") && stderr.contains("log record"),
        "{stderr}"
    );

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
        "commits in the log: 2",
        "log ring pages: 64",
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

/// A file of an earlier format (1 or 2) is refused with a message naming
/// `kv-virt fs upgrade`, which converts it in place to the current one.
#[test]
fn upgrade_converts_version_1_and_2_files() {
    let dir = temp_dir("fs-tools-upgrade");
    for version in [1, 2] {
        let file = dir.join(format!("v{version}.kvfs"));
        let fixture = Path::new(env!("CARGO_MANIFEST_DIR")).join("../adapters/fs-engine/tests/data");
        std::fs::copy(fixture.join(format!("v{version}-1k.kvfs")), &file).unwrap();
        // One line per key in the fixture's description.
        let keys = std::fs::read_to_string(fixture.join(format!("v{version}-1k.entries")))
            .unwrap()
            .lines()
            .count();
        let output = kv_virt(&["fs", "dump", file.to_str().unwrap()]);
        assert!(
            !output.status.success(),
            "format {version} was read without an upgrade"
        );
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(stderr.contains("kv-virt fs upgrade"), "{stderr}");
        let report = stdout(&kv_virt(&["fs", "upgrade", file.to_str().unwrap()]));
        assert!(
            report.contains(&format!("upgraded to format version 3 ({keys} keys)")),
            "{report}"
        );
        let report = stdout(&kv_virt(&["fs", "check", file.to_str().unwrap()]));
        assert!(report.contains(&format!(": ok ({keys} keys")), "{report}");
    }
}

/// kv-fs's defaults and bounds are kv-core's `FsConfig` (the CLI and the
/// kv-fs adapter use them); the engine, which kv-core does not depend on,
/// keeps its own for native use and its format: they must be the same.
#[test]
fn the_engine_and_kv_core_agree_on_kv_fs_defaults_and_bounds() {
    use kv_core::config::{Durability, FsConfig};
    let engine = kv_fs_engine::Options::default();
    assert_eq!(engine.page_size, FsConfig::DEFAULT_PAGE_SIZE);
    assert_eq!(kv_fs_engine::MIN_PAGE_SIZE, FsConfig::MIN_PAGE_SIZE);
    assert_eq!(kv_fs_engine::MAX_PAGE_SIZE, FsConfig::MAX_PAGE_SIZE);
    assert_eq!(
        engine.lock_lease_millis,
        u64::from(FsConfig::DEFAULT_LOCK_LEASE_MS)
    );
    assert_eq!(
        engine.lock_wait_millis,
        u64::from(FsConfig::LOCK_WAIT_LEASES * FsConfig::DEFAULT_LOCK_LEASE_MS)
    );
    assert_eq!(engine.create_if_missing, FsConfig::DEFAULT_CREATE_BUCKETS);
    assert_eq!(
        engine.sync == kv_fs_engine::SyncPolicy::EveryCommit,
        FsConfig::DEFAULT_DURABILITY == Durability::Sync
    );
}
