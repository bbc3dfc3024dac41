//! Moving buckets between backends with `kv-virt export` and `kv-virt
//! import`: 10,000 odd keys from kv-fs through etcd, DynamoDB, S3 and
//! Azure Table back to kv-fs (and through Redis), byte-exact, each hop a
//! pipe between two `kv-run` processes as the README runs it; a malformed line and a failed
//! write end an import with their line's number, the lines before written;
//! a missing bucket ends an export; several buckets in one stream; and a 200 MB bucket exported and imported
//! again in bounded memory.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Stdio;

use clap::Parser;
use kv_fs_engine::std_dir::StdDir;
use kv_fs_engine::{BucketFile, Options};
use kv_runner::{RunOptions, RunOutput};
use kv_virt::cli::Cli;
use kv_virt_tests::servers::azurite::{Azurite, DEV_ACCOUNT, DEV_KEY};
use kv_virt_tests::servers::{Etcd, Moto, Webdis, moto};
use kv_virt_tests::*;

type Bucket = BTreeMap<String, Vec<u8>>;

/// A fresh directory under the target directory, removed when the test passes.
fn temp_dir(name: &str) -> WorkDir {
    WorkDir::fresh(Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("migrate-{name}")))
}

/// `work/source` and `work/target`, made.
fn source_and_target(work: &Path) -> (PathBuf, PathBuf) {
    let (source, target) = (work.join("source"), work.join("target"));
    std::fs::create_dir_all(&source).unwrap();
    std::fs::create_dir_all(&target).unwrap();
    (source, target)
}

/// `kv-virt ARGS`, in process.
fn kv_virt(args: &[&str]) {
    let cli = Cli::try_parse_from(std::iter::once("kv-virt").chain(args.iter().copied()))
        .unwrap_or_else(|e| panic!("kv-virt {args:?}: {e}"));
    kv_virt::cli::run(cli, &mut Vec::new()).unwrap_or_else(|e| panic!("kv-virt {args:?}: {e:#}"));
}

/// `kv-virt export|import BACKEND-ARGS -o FILE`: the command component, written to `file`.
fn make_command(task: &str, backend: &[String], file: &Path) -> PathBuf {
    let mut args = vec![task];
    args.extend(backend.iter().map(String::as_str));
    args.extend(["-o", file.to_str().unwrap()]);
    kv_virt(&args);
    file.to_path_buf()
}

fn strings(args: &[&str]) -> Vec<String> {
    args.iter().map(|s| s.to_string()).collect()
}

/// A bucket file's keys and values, read natively after checking every page.
fn read_fs_bucket(dir: &Path, file: &str) -> Bucket {
    let options = Options {
        create_if_missing: false,
        ..Options::default()
    };
    let mut store = BucketFile::open(StdDir::new(dir), file, options)
        .unwrap()
        .unwrap_or_else(|| panic!("{file} exists"));
    let problems = store.check().unwrap();
    assert!(problems.is_empty(), "{file}: {problems:?}");
    store
        .iter(1000)
        .map(|entry| {
            let entry = entry.unwrap();
            (String::from_utf8(entry.key).unwrap(), entry.value)
        })
        .collect()
}

fn write_fs_bucket(dir: &Path, file: &str, bucket: &Bucket) {
    let mut store = BucketFile::open(StdDir::new(dir), file, Options::default())
        .unwrap()
        .unwrap();
    let entries: Vec<(String, Vec<u8>)> = bucket.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
    for chunk in entries.chunks(1000) {
        store.put_many(chunk).unwrap();
    }
}

/// Equal, or a message naming the first difference (not 10,000 entries).
fn assert_same(got: &Bucket, expected: &Bucket) {
    for (key, value) in expected {
        match got.get(key) {
            None => panic!(
                "key {key:?} is missing ({} keys of {})",
                got.len(),
                expected.len()
            ),
            Some(v) if v != value => panic!("key {key:?}: {} bytes, expected {}", v.len(), value.len()),
            Some(_) => {}
        }
    }
    assert_eq!(got.len(), expected.len(), "keys that were not exported");
}

/// One end of a migration: the backend's `kv-virt` arguments, and what
/// `kv-run` needs to run a command composed with it (arguments, and its
/// own environment).
struct End {
    name: &'static str,
    kv_virt: Vec<String>,
    kv_run: Vec<String>,
    env: Vec<(&'static str, &'static str)>,
}

impl End {
    fn fs(dir: &Path) -> End {
        End {
            name: "fs",
            kv_virt: strings(&["fs", "--dir", "/data", "--bucket", "app"]),
            kv_run: vec!["--dir".into(), format!("{}::/data", dir.display())],
            env: Vec::new(),
        }
    }

    fn redis(webdis: &Webdis) -> End {
        End {
            name: "redis",
            kv_virt: strings(&[
                "http",
                "--protocol",
                "redis",
                "--endpoint",
                &webdis.url(),
                "--bucket",
                "app",
            ]),
            kv_run: Vec::new(),
            env: Vec::new(),
        }
    }

    fn etcd(etcd: &Etcd) -> End {
        End {
            name: "etcd",
            kv_virt: strings(&[
                "http",
                "--protocol",
                "etcd",
                "--endpoint",
                &etcd.url(),
                "--bucket",
                "app",
            ]),
            kv_run: Vec::new(),
            env: Vec::new(),
        }
    }

    fn aws(name: &'static str, moto: &Moto, flags: &[&str]) -> End {
        let mut kv_virt = strings(&["http", "--protocol", name, "--endpoint", &moto.url()]);
        kv_virt.extend(strings(flags));
        kv_virt.extend(strings(&["--region", moto::REGION, "--bucket", "app"]));
        for credential in Moto::credential_flags() {
            kv_virt.extend(["--credential".into(), credential]);
        }
        End {
            name,
            kv_virt,
            kv_run: vec![
                "--env".into(),
                format!("AWS_ACCESS_KEY_ID={}", moto.access_key_id),
                "--env".into(),
                format!("AWS_SECRET_ACCESS_KEY={}", moto.secret_access_key),
            ],
            env: Vec::new(),
        }
    }

    fn azure(azurite: &Azurite) -> End {
        End {
            name: "azure-table",
            kv_virt: strings(&[
                "http",
                "--protocol",
                "azure-table",
                "--endpoint",
                &azurite.url(),
                "--azure-account",
                DEV_ACCOUNT,
                "--azure-table",
                "kvvirt",
                "--credential",
                "account-key=env:AZURE_STORAGE_KEY",
                "--bucket",
                "app",
            ]),
            // As the README runs it: kv-run passes on its own variable.
            kv_run: strings(&["--env", "AZURE_STORAGE_KEY"]),
            env: vec![("AZURE_STORAGE_KEY", DEV_KEY)],
        }
    }
}

/// `kv-run export.wasm | kv-run import.wasm`, each with pooled
/// connections: both must succeed and count `keys` keys of bucket `app`.
fn migrate(work: &Path, from: &End, to: &End, keys: usize) {
    let hop = format!("{}-to-{}", from.name, to.name);
    let export = make_command("export", &from.kv_virt, &work.join(format!("{hop}.export.wasm")));
    let import = make_command("import", &to.kv_virt, &work.join(format!("{hop}.import.wasm")));
    let kv_run = |end: &End, component: &Path, log: &str| {
        let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_kv-run-under-test"));
        command
            .arg("--reuse-connections")
            .args(&end.kv_run)
            .envs(end.env.iter().copied())
            .arg(component)
            .stderr(std::fs::File::create(work.join(log)).unwrap());
        command
    };
    let started = std::time::Instant::now();
    let mut exporter = kv_run(from, &export, "export.log")
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let imported = kv_run(to, &import, "import.log")
        .stdin(exporter.stdout.take().unwrap())
        .status()
        .unwrap();
    let exported = exporter.wait().unwrap();
    eprintln!("{hop}: {:.1} s", started.elapsed().as_secs_f64());
    let export_log = std::fs::read_to_string(work.join("export.log")).unwrap();
    let import_log = std::fs::read_to_string(work.join("import.log")).unwrap();
    assert!(exported.success(), "{hop}: export failed: {export_log}");
    assert!(
        imported.success(),
        "{hop}: import failed: {import_log}\nexport: {export_log}"
    );
    for (log, task) in [(export_log, "export"), (import_log, "import")] {
        let done = log.lines().last().unwrap_or_default();
        assert!(
            done.starts_with(&format!("{task}: done: {keys} keys, ")) && done.contains(" bucket app ("),
            "{hop}: {log}"
        );
    }
}

/// `keys` keys with slashes, spaces, unicode, `%` and the characters Azure
/// and S3 escape; binary values with NUL bytes, some empty; one key of the
/// chain's smallest key limit and one value of its smallest value limit.
fn odd_bucket(keys: usize, max_key_bytes: usize, max_value_bytes: usize) -> Bucket {
    let mut bucket = Bucket::new();
    for i in 0..keys - 2 {
        let key = match i % 6 {
            0 => format!("plain-{i}"),
            1 => format!("a/b/c/{i}"),
            2 => format!(" with  spaces {i} "),
            3 => format!("ünïcødé 日本語 🙂/{i}"),
            4 => format!("100% {i}%2F%zz%"),
            _ => format!("?#\\&=+'\"<> {i}"),
        };
        let value = (0..i % 97)
            .map(|j| if j % 3 == 0 { 0 } else { (i * 7 + j) as u8 })
            .collect();
        bucket.insert(key, value);
    }
    let mut longest = "limit/ü%".to_string();
    while longest.len() < max_key_bytes {
        longest.push('k');
    }
    assert_eq!(longest.len(), max_key_bytes);
    bucket.insert(longest, b"\0longest key\0".to_vec());
    let largest = (0..max_value_bytes).map(|j| (j % 251) as u8).collect();
    bucket.insert("largest value".into(), largest);
    assert_eq!(bucket.len(), keys);
    bucket
}

#[test]
fn ten_thousand_odd_keys_go_round_five_backends_byte_exact() {
    let limits = [
        kv_http::etcd::LIMITS,
        kv_http::dynamodb::LIMITS,
        kv_http::s3::LIMITS,
        kv_http::azure::LIMITS,
    ];
    // kv-fs's limits (64 KiB keys, 64 MiB values) are larger than all these.
    let max_key = limits.iter().map(|l| l.max_key_bytes).min().unwrap();
    let max_value = limits.iter().map(|l| l.max_value_bytes).min().unwrap();
    let original = odd_bucket(10_000, max_key, max_value);

    let work = temp_dir("round-trip");
    let (source, target) = source_and_target(&work);
    write_fs_bucket(&source, "app.kvfs", &original);

    let etcd = Etcd::start("migrate").unwrap();
    let dynamodb = Moto::with_dynamodb_table("migrate-dynamodb", "kv").unwrap();
    // Without authentication: moto cannot check signatures of %-escaped keys
    // (see Moto::with_s3_bucket).
    let s3 = Moto::with_s3_bucket("migrate-s3", "kv-data", false).unwrap();
    let azurite = Azurite::start("migrate").unwrap();
    let chain = [
        End::fs(&source),
        End::etcd(&etcd),
        End::aws("dynamodb", &dynamodb, &["--table", "kv"]),
        End::aws("s3", &s3, &["--s3-bucket", "kv-data"]),
        End::azure(&azurite),
        End::fs(&target),
    ];
    for hop in chain.windows(2) {
        migrate(&work, &hop[0], &hop[1], original.len());
    }
    assert_same(&read_fs_bucket(&target, "app.kvfs"), &original);
}

/// Keys with expiries an hour or two ahead, and keys without, go from kv-fs
/// through etcd and DynamoDB back to kv-fs: every expiry arrives to the
/// millisecond; a line already expired is not imported.
#[test]
fn expiries_go_round_fs_etcd_dynamodb_and_back_to_the_millisecond() {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64;
    let expected: BTreeMap<String, Option<u64>> = (0..30u64)
        .map(|i| {
            let expires = match i % 3 {
                0 => Some(now + 3_600_000 + i),
                1 => None,
                _ => Some(now + 7_200_000 + i * 1000),
            };
            (format!("k/{i}"), expires)
        })
        .collect();
    let mut input = Vec::new();
    for (key, expires) in &expected {
        kv_dump::write_line(&mut input, None, key, key.as_bytes(), *expires).unwrap();
    }
    kv_dump::write_line(&mut input, None, "expired", b"x", Some(now - 1000)).unwrap();

    let work = temp_dir("expiry");
    let (source, target) = source_and_target(&work);
    let import = fs_command("import", &["--bucket", "app"], &work);
    let output = import.run(&run_on(&source, Some(input))).unwrap();
    assert_eq!(output.exit_code, 0, "{}", output.stderr_text());

    let etcd = Etcd::start("migrate-expiry").unwrap();
    let dynamodb = Moto::with_dynamodb_table("migrate-expiry", "kv").unwrap();
    let chain = [
        End::fs(&source),
        End::etcd(&etcd),
        End::aws("dynamodb", &dynamodb, &["--table", "kv"]),
        End::fs(&target),
    ];
    for hop in chain.windows(2) {
        migrate(&work, &hop[0], &hop[1], expected.len());
    }
    let export = fs_command("export", &["--bucket", "app"], &work);
    let output = export.run(&run_on(&target, None)).unwrap();
    assert_eq!(output.exit_code, 0, "{}", output.stderr_text());
    let got: BTreeMap<String, Option<u64>> = kv_dump::Lines::new(&output.stdout[..])
        .map(|line| {
            let (_, entry) = line.unwrap();
            assert_eq!(entry.value, entry.key.as_bytes());
            (entry.key, entry.expires_at_ms)
        })
        .collect();
    assert_eq!(got, expected);
}

/// The round trip's odd keys (fewer) through the one backend it leaves out.
#[test]
fn odd_keys_go_through_redis_and_back_byte_exact() {
    let limits = kv_http::webdis::LIMITS;
    let original = odd_bucket(1000, limits.max_key_bytes, limits.max_value_bytes);
    let work = temp_dir("redis");
    let (source, target) = source_and_target(&work);
    write_fs_bucket(&source, "app.kvfs", &original);
    let webdis = Webdis::start("migrate").unwrap();
    migrate(&work, &End::fs(&source), &End::redis(&webdis), original.len());
    migrate(&work, &End::redis(&webdis), &End::fs(&target), original.len());
    assert_same(&read_fs_bucket(&target, "app.kvfs"), &original);
}

/// A command composed with kv-fs on `/data` (`dir`), from `kv-virt ARGS`.
fn fs_command(task: &str, flags: &[&str], work: &Path) -> kv_runner::Command {
    let mut backend = strings(&["fs", "--dir", "/data"]);
    backend.extend(strings(flags));
    let file = make_command(task, &backend, &work.join(format!("{task}.wasm")));
    runtime().command(&read(file)).unwrap()
}

fn run_on(dir: &Path, stdin: Option<Vec<u8>>) -> RunOptions {
    RunOptions {
        preopens: vec![(dir.to_path_buf(), "/data".into())],
        capture_output: true,
        stdin,
        ..RunOptions::default()
    }
}

fn line(key: &str, value: &str) -> String {
    format!("{{\"key\":\"{key}\",\"value\":\"{value}\"}}\n")
}

/// Runs the import on `input` in a fresh `work/name`: it must fail, having
/// written keys `a` and `b` (the lines before the bad one) and nothing
/// else. Returns its standard error.
fn failed_import(import: &kv_runner::Command, work: &Path, name: &str, input: &[String]) -> String {
    let data = work.join(name);
    std::fs::create_dir_all(&data).unwrap();
    let output = import
        .run(&run_on(&data, Some(input.concat().into_bytes())))
        .unwrap();
    assert_eq!(output.exit_code, 1, "{}", output.stderr_text());
    let written = read_fs_bucket(&data, "app.kvfs");
    let expected = Bucket::from([("a".into(), b"a".to_vec()), ("b".into(), b"b".to_vec())]);
    assert_eq!(written, expected, "{}", output.stderr_text());
    output.stderr_text()
}

#[test]
fn a_malformed_line_or_a_failed_write_fails_with_its_number_after_the_lines_before_it() {
    let work = temp_dir("malformed");
    let import = fs_command("import", &["--bucket", "app"], &work);
    let (a, b, d) = (line("a", "YQ=="), line("b", "Yg=="), line("d", "ZA=="));

    let unclosed = "{\"key\":\"c\",\"value\":\"Yw==\"\n".to_string();
    let input = [a.clone(), b.clone(), "\n".into(), unclosed, d.clone()];
    assert_eq!(
        failed_import(&import, &work, "bad-line", &input),
        "import: line 4: column 25: EOF while parsing an object (expected {\"key\": \"…\", \"value\": \
         \"<base64>\"}) (the lines before it are written)\n"
    );

    // A key over kv-fs's limit: the batch fails, its lines are written one
    // by one up to the one that fails.
    let too_long = line(&"k".repeat(64 * 1024 + 1), "");
    assert_eq!(
        failed_import(&import, &work, "failed-write", &[a, b, too_long, d]),
        format!(
            "import: line 3: writing key \"{}…\" to bucket \"app\": key of 65537 bytes is over kv-fs's key \
             limit of 64 KiB (the lines before it are written)\n",
            "k".repeat(64)
        )
    );
}

#[test]
fn exporting_a_missing_bucket_is_an_error_and_creates_nothing() {
    let work = temp_dir("missing");
    let export = fs_command("export", &["--bucket", "typo"], &work);
    let output = export.run(&run_on(&work, None)).unwrap();
    assert_eq!(output.exit_code, 1, "{}", output.stdout_text());
    assert_eq!(
        output.stderr_text(),
        "export: opening bucket \"typo\": no such bucket\n"
    );
    assert!(output.stdout.is_empty());
    assert!(!work.join("typo.kvfs").exists());
}

#[test]
fn several_buckets_move_in_one_stream() {
    let work = temp_dir("several");
    let (source, target) = source_and_target(&work);
    let bucket = |tag: &str, n: usize| -> Bucket {
        (0..n)
            .map(|i| (format!("{tag}/{i}"), format!("{tag}\0{i}").into_bytes()))
            .collect()
    };
    let (first, second) = (bucket("first", 1500), bucket("second", 700));
    write_fs_bucket(&source, "first.kvfs", &first);
    write_fs_bucket(&source, "second.kvfs", &second);

    let export = fs_command("export", &["--bucket", "first", "--bucket", "second"], &work);
    let output = export.run(&run_on(&source, None)).unwrap();
    assert_eq!(output.exit_code, 0, "{}", output.stderr_text());
    let text = output.stdout_text();
    assert_eq!(text.lines().count(), 2200);
    assert!(text.starts_with("{\"bucket\":\"first\",\"key\":\"first/0\",\"value\":\"Zmlyc3QAMA==\"}\n"));
    assert!(
        output
            .stderr_text()
            .starts_with("export: done: 2200 keys, 20780 bytes of values, buckets first, second ("),
        "{}",
        output.stderr_text()
    );

    // Lines naming a bucket go to it, whatever the import's own bucket.
    let import = fs_command("import", &[], &work);
    let output = import.run(&run_on(&target, Some(output.stdout))).unwrap();
    assert_eq!(output.exit_code, 0, "{}", output.stderr_text());
    assert_same(&read_fs_bucket(&target, "first.kvfs"), &first);
    assert_same(&read_fs_bucket(&target, "second.kvfs"), &second);
    assert!(!target.join("default.kvfs").exists());
}

/// Memory the export and import commands may hold while moving 200 MB.
const MEMORY_BOUND: usize = 64 << 20;

#[test]
fn a_200_mb_bucket_moves_in_bounded_memory() {
    let work = temp_dir("200mb");
    let (source, target) = source_and_target(&work);
    // Values of 100 B to 1 MB, 200 MB in all.
    let sizes = [100, 10_000, 100_000, 1_000_000];
    let mut original = Bucket::new();
    let mut total = 0;
    for i in 0.. {
        let size = sizes[i % sizes.len()];
        if total + size > 200_000_000 {
            break;
        }
        total += size;
        let value = (0..size).map(|j| (i + j * 7) as u8).collect();
        original.insert(format!("key/{i:05}"), value);
    }
    write_fs_bucket(&source, "big.kvfs", &original);

    let export = fs_command("export", &["--bucket", "big"], &work);
    let exported = export.run(&run_on(&source, None)).unwrap();
    assert_eq!(exported.exit_code, 0, "{}", exported.stderr_text());
    let lines = exported.stdout.iter().filter(|b| **b == b'\n').count();
    assert_eq!(lines, original.len());
    assert_bounded("export", total, &exported);

    let import = fs_command("import", &["--bucket", "big", "--durability", "none"], &work);
    let imported = import.run(&run_on(&target, Some(exported.stdout))).unwrap();
    assert_eq!(imported.exit_code, 0, "{}", imported.stderr_text());
    assert_bounded("import", total, &imported);
    assert_same(&read_fs_bucket(&target, "big.kvfs"), &original);
}

fn assert_bounded(what: &str, bytes: usize, output: &RunOutput) {
    let peak = output.peak_memory_bytes.expect("kv-runner measures memory");
    eprintln!(
        "{what}: {bytes} bytes of values with {} MiB of linear memory",
        peak >> 20
    );
    assert!(peak < MEMORY_BOUND, "{what} held {peak} bytes of linear memory");
}
