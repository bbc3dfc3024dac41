//! kv-fs, composed and run on the embedded wasmtime: conformance, data that
//! persists across runs, many instances at once (threads and processes),
//! and runtimes killed mid-write.

use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::time::Duration;

use kv_fs_engine::std_dir::StdDir;
use kv_fs_engine::{BucketFile, Options};
use kv_runner::{Command, RunOptions};
use kv_virt::adapters::BackendKind;
use kv_virt::options::{AdapterOptions, FsOptions};
use kv_virt_tests::*;

/// A fresh directory under the target directory, removed when the test passes.
fn temp_dir(name: &str) -> WorkDir {
    WorkDir::fresh(Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("fs-{name}")))
}

/// kv-fs on `/data`, with the given allow-list.
fn fs_options(buckets: &[&str]) -> AdapterOptions {
    AdapterOptions {
        buckets: buckets.iter().map(|s| s.to_string()).collect(),
        fs: FsOptions {
            dir: Some("/data".into()),
            ..FsOptions::default()
        },
        ..AdapterOptions::default()
    }
}

fn run_options(dir: &Path, args: &[&str]) -> RunOptions {
    RunOptions {
        args: args.iter().map(|s| s.to_string()).collect(),
        preopens: vec![(dir.to_path_buf(), "/data".into())],
        capture_output: true,
        ..RunOptions::default()
    }
}

fn counter(buckets: &[&str]) -> Command {
    composed_command(COUNTER, BackendKind::Fs, &fs_options(buckets)).unwrap()
}

/// Opens a bucket file natively, checks every page, and reads a counter.
fn native_counter(dir: &Path, bucket_file: &str, key: &str) -> Option<u64> {
    let options = Options {
        create_if_missing: false,
        ..Options::default()
    };
    let mut store = BucketFile::open(StdDir::new(dir), bucket_file, options)
        .unwrap()
        .expect("the bucket file exists");
    let problems = store.check().unwrap();
    assert!(problems.is_empty(), "check found problems: {problems:?}");
    store
        .get(key.as_bytes())
        .unwrap()
        .map(|v| String::from_utf8(v).unwrap().parse().unwrap())
}

/// The conformance guest on kv-fs, twice: on fresh files, then on the files
/// the first run left (with a small list page byte limit).
fn conformance(guest: &str, name: &str) {
    let dir = temp_dir(name);
    let options = AdapterOptions {
        default_bucket: Some(CONFORMANCE_BUCKETS[0].into()),
        list_page_bytes: Some(CONFORMANCE_LIST_PAGE_BYTES),
        ..fs_options(&CONFORMANCE_BUCKETS)
    };
    let command = composed_command(guest, BackendKind::Fs, &options).unwrap();
    let args = list_page_bytes_args();
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    for _ in 0..2 {
        run_conformance(&command, &run_options(&dir, &args)).unwrap();
    }
}

#[test]
fn conformance_bucket_ttl() {
    let dir = temp_dir("conformance-bucket-ttl");
    let options = AdapterOptions {
        default_bucket: Some(CONFORMANCE_BUCKETS[0].into()),
        ..fs_options(&CONFORMANCE_BUCKETS)
    };
    bucket_ttl_conformance(BackendKind::Fs, &options, &run_options(&dir, &[])).unwrap();
}

#[test]
fn conformance_draft() {
    conformance(CONFORMANCE_DRAFT, "conformance-draft");
}

#[test]
fn conformance_draft2() {
    conformance(CONFORMANCE_DRAFT2, "conformance-draft2");
}

#[test]
fn conformance_wasi_0_3_spin_and_wasmcloud() {
    conformance(CONFORMANCE_ASYNC, "conformance-async");
}

#[test]
fn conformance_draft2_built_against_the_2024_text() {
    conformance(CONFORMANCE_DRAFT2_2024, "conformance-draft2-2024");
}

#[test]
fn counter_persists_across_runs() {
    let dir = temp_dir("persist");
    let command = counter(&[]);
    for expected in 1..=3 {
        let output = command.run(&run_options(&dir, &[])).unwrap();
        assert_eq!(output.exit_code, 0, "{}", output.stderr_text());
        assert_eq!(output.stdout_text(), format!("counter/hits = {expected}\n"));
    }
    // A different composition (other options) reads the same file.
    let output = counter(&["counter"]).run(&run_options(&dir, &[])).unwrap();
    assert_eq!(output.stdout_text(), "counter/hits = 4\n");
    assert_eq!(native_counter(&dir, "counter.kvfs", "hits"), Some(4));
}

#[test]
fn a_directory_outside_the_preopens_is_a_clear_error() {
    let no_preopen = RunOptions {
        capture_output: true,
        ..RunOptions::default()
    };
    let output = counter(&[]).run(&no_preopen).unwrap();
    assert_eq!(output.exit_code, 1);
    let stderr = output.stderr_text();
    assert!(
        stderr.contains("\"/data\" is not under a preopened directory"),
        "{stderr}"
    );
}

#[test]
fn eight_instances_on_threads_increment_exactly() {
    let dir = temp_dir("threads");
    let command = counter(&[]);
    std::thread::scope(|scope| {
        for _ in 0..8 {
            let (command, dir) = (&command, &dir);
            scope.spawn(move || {
                let output = command
                    .run(&run_options(dir, &["hits", "counter", "500"]))
                    .unwrap();
                assert_eq!(output.exit_code, 0, "{}", output.stderr_text());
                assert_eq!(output.stdout_text().lines().count(), 500);
            });
        }
    });
    assert_eq!(native_counter(&dir, "counter.kvfs", "hits"), Some(4000));
}

fn kv_run(component: &Path, dir: &Path, args: &[&str]) -> Child {
    std::process::Command::new(env!("CARGO_BIN_EXE_kv-run-under-test"))
        .arg("--dir")
        .arg(format!("{}::/data", dir.display()))
        .arg(component)
        .arg("--")
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

/// The counter composed with kv-fs and precompiled for this runner.
/// `lease_ms`: how long a killed writer's lock blocks the next one.
fn precompiled_counter(dir: &Path, lease_ms: u32) -> PathBuf {
    let mut options = fs_options(&[]);
    options.fs.lock_lease_ms = Some(lease_ms);
    let composed = compose(&read(COUNTER), BackendKind::Fs, &options).unwrap();
    let path = dir.join("counter.cwasm");
    std::fs::write(&path, runtime().precompile(&composed).unwrap()).unwrap();
    path
}

#[test]
fn four_processes_increment_exactly() {
    let work = temp_dir("processes");
    let data = work.join("data");
    std::fs::create_dir_all(&data).unwrap();
    let component = precompiled_counter(&work, 5000);
    let children: Vec<Child> = (0..4)
        .map(|_| kv_run(&component, &data, &["hits", "counter", "500"]))
        .collect();
    for child in children {
        let output = child.wait_with_output().unwrap();
        assert!(
            output.status.success(),
            "{}",
            String::from_utf8_lossy(&output.stderr)
        );
        assert_eq!(String::from_utf8_lossy(&output.stdout).lines().count(), 500);
    }
    assert_eq!(native_counter(&data, "counter.kvfs", "hits"), Some(2000));
}

/// A runner killed with SIGKILL at random moments during writes, 200 times:
/// the store always opens, passes the check, and holds every acknowledged
/// increment (and at most the one in flight). A writer keeps the lock
/// between its writes, so nearly every kill leaves it behind; in every
/// other round the counter pauses between increments, so the kill often
/// lands while the lock is held by a writer that is idle. The next round's
/// writer gets the lock within the lease all the same.
#[test]
fn runtimes_killed_mid_write_lose_no_acknowledged_write() {
    use std::io::{BufRead, BufReader};
    use std::time::Instant;

    let work = temp_dir("sigkill");
    let data = work.join("data");
    std::fs::create_dir_all(&data).unwrap();
    // A short lease keeps 200 rounds quick (one process at a time: no
    // live writer can lose its lock to it).
    let lease_ms = 300;
    let component = precompiled_counter(&work, lease_ms);
    let mut acknowledged = 0u64;
    let mut killed_holding_the_lock = 0;
    let mut slowest_first_write = Duration::ZERO;
    let mut seed = 0x9e37_79b9_7f4a_7c15_u64;
    for round in 0..200 {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        let pause_ms = if round % 2 == 1 { "3" } else { "0" };
        let started = Instant::now();
        let mut child = kv_run(&component, &data, &["hits", "counter", "1000000", pause_ms]);
        let stdout = child.stdout.take().unwrap();
        // Kill after a random number of acknowledged writes (0 to 40), so
        // the kill lands at a random point of a write (or of a pause).
        let wait_for = seed % 41;
        let mut lines = BufReader::new(stdout).lines();
        let mut seen = 0;
        while seen < wait_for {
            let Some(Ok(line)) = lines.next() else { break };
            if seen == 0 {
                slowest_first_write = slowest_first_write.max(started.elapsed());
            }
            acknowledged = line.rsplit(' ').next().unwrap().parse().unwrap();
            seen += 1;
        }
        std::thread::sleep(Duration::from_micros(seed % 3000));
        child.kill().unwrap();
        // Lines printed before the kill are acknowledged too.
        for line in lines.map_while(Result::ok) {
            acknowledged = line.rsplit(' ').next().unwrap().parse().unwrap();
        }
        child.wait().unwrap();
        if data.join("counter.kvfs.lock").exists() {
            killed_holding_the_lock += 1;
        }
        let stored = native_counter(&data, "counter.kvfs", "hits").unwrap_or(0);
        assert!(
            stored == acknowledged || stored == acknowledged + 1,
            "round {round}: stored {stored}, acknowledged {acknowledged}"
        );
        acknowledged = stored;
    }
    eprintln!(
        "{killed_holding_the_lock} of 200 kills left the lock behind; the slowest first write of a round took {slowest_first_write:?} (lease {lease_ms} ms)"
    );
    assert!(
        killed_holding_the_lock >= 150,
        "only {killed_holding_the_lock} of 200 kills left the lock held"
    );
    // Breaking a dead writer's lock takes at most the lease; the rest is
    // starting the runtime (generous: the machine may be busy).
    assert!(
        slowest_first_write < Duration::from_millis(u64::from(lease_ms) + 5_000),
        "a round waited {slowest_first_write:?} for its first write"
    );
}

/// A damaged or foreign bucket file is an `other(..)` error naming the
/// file, never a trap.
#[test]
fn a_damaged_file_is_an_error_naming_it() {
    let dir = temp_dir("damaged");
    let command = counter(&[]);
    assert_eq!(command.run(&run_options(&dir, &[])).unwrap().exit_code, 0);
    let file = dir.join("counter.kvfs");
    let good = std::fs::read(&file).unwrap();
    // Flipped from the checkpoint page (page 1) through the log's first
    // records: what the counter reads first.
    let mut flipped = good.clone();
    for byte in &mut flipped[4096..3 * 4096] {
        *byte ^= 0xa5;
    }
    let cases = [
        ("flipped", flipped),
        ("truncated", good[..good.len() / 3].to_vec()),
        ("foreign", b"hello world".to_vec()),
    ];
    for (what, bytes) in cases {
        std::fs::write(&file, bytes).unwrap();
        let output = command.run(&run_options(&dir, &[])).unwrap();
        let stderr = output.stderr_text();
        assert_eq!(output.exit_code, 1, "{what}: {stderr}");
        assert!(
            stderr.contains("kv-fs store") && stderr.contains("`counter.kvfs`"),
            "{what}: {stderr}"
        );
    }
}

/// `kv-virt fs dump` writes each expiring key's `expires_at_ms` and leaves
/// out the keys already expired; `kv-virt fs load` keeps the expiries and
/// skips the lines already expired; `fs inspect` counts them.
#[test]
fn fs_dump_and_load_keep_expiries() {
    use kv_fs_engine::Dir as _;
    use kv_virt::fs_tools::{FsCommand, run};
    let dir = temp_dir("dump-expiries");
    let mut store = BucketFile::open(StdDir::new(&dir), "src.kvfs", Options::default())
        .unwrap()
        .unwrap();
    let now = store.dir().now_millis();
    let later = now + 3_600_000;
    store.put(b"plain", b"1").unwrap();
    store.put_expiring(b"later", b"2", Some(later)).unwrap();
    store.put_expiring(b"gone", b"3", Some(now - 1)).unwrap();
    drop(store);
    let dump = dir.join("src.jsonl");
    let file = |name: &str| dir.join(name);
    run(
        FsCommand::Dump {
            file: file("src.kvfs"),
            output: Some(dump.clone()),
        },
        &mut Vec::new(),
    )
    .unwrap();
    let text = std::fs::read_to_string(&dump).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 2, "{text}");
    assert!(lines[0].contains(&format!("\"expires_at_ms\":{later}")), "{text}");
    assert!(
        lines[1].contains("\"plain\"") && !lines[1].contains("expires_at_ms"),
        "{text}"
    );
    // A line that expired since the dump is not loaded.
    let stale = format!(
        "{{\"key\":\"stale\",\"value\":\"eA==\",\"expires_at_ms\":{}}}\n",
        now - 1
    );
    std::fs::write(&dump, format!("{text}{stale}")).unwrap();
    let mut out = Vec::new();
    run(
        FsCommand::Load {
            file: file("copy.kvfs"),
            input: Some(dump),
            page_size: 4096,
        },
        &mut out,
    )
    .unwrap();
    let out = String::from_utf8(out).unwrap();
    assert!(
        out.contains("loaded 2 keys (1 already expired, left out)"),
        "{out}"
    );
    let mut copy = BucketFile::open(StdDir::new(&dir), "copy.kvfs", Options::default())
        .unwrap()
        .unwrap();
    assert_eq!(
        copy.get_versioned(b"later").unwrap().unwrap().expires_at,
        Some(later)
    );
    assert_eq!(copy.get_versioned(b"plain").unwrap().unwrap().expires_at, None);
    assert_eq!(copy.keys_after(None, 10).unwrap().len(), 2);
    let mut out = Vec::new();
    run(
        FsCommand::Inspect {
            file: file("copy.kvfs"),
        },
        &mut out,
    )
    .unwrap();
    let out = String::from_utf8(out).unwrap();
    assert!(out.contains("keys that expire: 1"), "{out}");
}

/// `kv-virt fs upgrade` converts a format-2 file (before expiries).
#[test]
fn fs_upgrade_converts_format_2() {
    let dir = temp_dir("upgrade-v2");
    let data = Path::new(env!("CARGO_MANIFEST_DIR")).join("../adapters/fs-engine/tests/data");
    std::fs::copy(data.join("v2-1k.kvfs"), dir.join("old.kvfs")).unwrap();
    let mut out = Vec::new();
    kv_virt::fs_tools::run(
        kv_virt::fs_tools::FsCommand::Upgrade {
            file: dir.join("old.kvfs"),
        },
        &mut out,
    )
    .unwrap();
    let out = String::from_utf8(out).unwrap();
    let keys = std::fs::read_to_string(data.join("v2-1k.entries"))
        .unwrap()
        .lines()
        .count();
    assert!(
        out.contains(&format!("upgraded to format version 3 ({keys} keys)")),
        "{out}"
    );
}
