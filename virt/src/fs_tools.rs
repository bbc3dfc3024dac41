//! `kv-virt fs …`: kv-fs bucket files, natively: check (fsck), inspect,
//! dump and load as JSON lines, and upgrade from an older format.
//!
//! The JSON-lines format ([`kv_dump`]) has one object per key, here in key
//! order: `{"key": "<the key>", "value": "<the value, standard base64>"}`.

use std::io::{BufRead, BufReader, BufWriter, Write};
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use clap::Subcommand;
use indicatif::{ProgressBar, ProgressStyle};
use kv_core::config::FsConfig;
use kv_dump::Entry;
use kv_fs_engine::std_dir::StdDir;
use kv_fs_engine::{BucketFile, Dir as _, Options, upgrade};

#[derive(Subcommand, Debug)]
pub enum FsCommand {
    /// Verify every page and checksum of a bucket file; exit non-zero on any problem.
    #[command(after_help = "Example:\n  kv-virt fs check data/counter.kvfs")]
    Check { file: PathBuf },
    /// Keys (and how many expire), pages, free pages, tree depth, logical and file size.
    #[command(after_help = "Example:\n  kv-virt fs inspect data/counter.kvfs")]
    Inspect { file: PathBuf },
    /// Convert a bucket file written by an older kv-fs (format version 1 or 2) in place.
    #[command(
        after_help = "Stop every app using the file first.\n\nExample:\n  kv-virt fs upgrade data/counter.kvfs"
    )]
    Upgrade { file: PathBuf },
    /// Export every key and value as JSON lines.
    #[command(after_help = "Example:\n  kv-virt fs dump data/counter.kvfs -o counter.jsonl")]
    Dump {
        file: PathBuf,
        /// Write here instead of standard output.
        #[arg(short, long, value_name = "FILE")]
        output: Option<PathBuf>,
    },
    /// Import JSON lines (as written by `dump`) into a bucket file, creating it if needed.
    #[command(after_help = "Example:\n  kv-virt fs load data/copy.kvfs counter.jsonl")]
    Load {
        file: PathBuf,
        /// The JSON lines (standard input if absent).
        input: Option<PathBuf>,
        /// Page size if the file is created.
        #[arg(long, default_value_t = FsConfig::DEFAULT_PAGE_SIZE)]
        page_size: u32,
    },
}

/// The directory and the name of `file`.
fn split(file: &Path) -> Result<(&Path, &str)> {
    let dir = file
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let name = file
        .file_name()
        .and_then(|n| n.to_str())
        .with_context(|| format!("{}: not a file name", file.display()))?;
    Ok((dir, name))
}

fn open(file: &Path, create: bool, page_size: u32) -> Result<BucketFile<StdDir>> {
    let (dir, name) = split(file)?;
    let options = Options {
        create_if_missing: create,
        page_size,
        ..Options::default()
    };
    match BucketFile::open(StdDir::new(dir), name, options)? {
        Some(store) => Ok(store),
        None => bail!("{}: no such file", file.display()),
    }
}

fn progress(len: u64, what: &str) -> ProgressBar {
    let bar = ProgressBar::new(len);
    bar.set_style(
        ProgressStyle::with_template("{msg} [{bar:40}] {pos}/{len} ({per_sec}, {eta} left)")
            .expect("a valid template")
            .progress_chars("=> "),
    );
    bar.set_message(what.to_string());
    bar
}

pub fn run(command: FsCommand, out: &mut dyn Write) -> Result<()> {
    match command {
        FsCommand::Check { file } => {
            let mut store = open(&file, false, FsConfig::DEFAULT_PAGE_SIZE)?;
            let problems = store.check()?;
            if problems.is_empty() {
                let stats = store.stats()?;
                let (expiring, expired) = store.expiry_counts()?;
                writeln!(
                    out,
                    "{}: ok ({} keys, {} pages and {} logged commits checked; {expiring} keys expire, \
                     {expired} of them already expired)",
                    file.display(),
                    stats.keys,
                    stats.pages_total,
                    stats.log_commits
                )?;
            } else {
                for problem in &problems {
                    writeln!(out, "{}: {problem}", file.display())?;
                }
                bail!("{}: {} problem(s) found", file.display(), problems.len());
            }
        }
        FsCommand::Inspect { file } => {
            let mut store = open(&file, false, FsConfig::DEFAULT_PAGE_SIZE)?;
            let stats = store.stats()?;
            let (expiring, expired) = store.expiry_counts()?;
            let ratio = if stats.logical_bytes == 0 {
                "-".to_string()
            } else {
                format!("{:.2}", stats.file_bytes as f64 / stats.logical_bytes as f64)
            };
            for (name, value) in [
                ("keys", stats.keys.to_string()),
                ("keys that expire", expiring.to_string()),
                ("expired, not yet dropped", expired.to_string()),
                ("tree depth", stats.depth.to_string()),
                ("page size", stats.page_size.to_string()),
                ("pages", stats.pages_total.to_string()),
                ("pages in use", stats.pages_used.to_string()),
                ("pages free", stats.pages_free.to_string()),
                ("pages freed, reusable soon", stats.pages_pending.to_string()),
                ("log ring pages", stats.log_pages.to_string()),
                ("commits in the log", stats.log_commits.to_string()),
                ("log bytes since checkpoint", stats.log_bytes_live.to_string()),
                ("logical bytes (keys + values)", stats.logical_bytes.to_string()),
                ("file bytes", stats.file_bytes.to_string()),
                ("file / logical", ratio),
                ("commit", stats.commit_seq.to_string()),
                ("checkpoint", stats.checkpoint.to_string()),
            ] {
                writeln!(out, "{name:>30}: {value}")?;
            }
        }
        FsCommand::Upgrade { file } => {
            let (dir, name) = split(&file)?;
            let keys = upgrade(&StdDir::new(dir), name, Options::default())?;
            writeln!(
                out,
                "{}: upgraded to format version 3 ({keys} keys)",
                file.display()
            )?;
        }
        FsCommand::Dump { file, output } => {
            let mut store = open(&file, false, FsConfig::DEFAULT_PAGE_SIZE)?;
            let bar = progress(store.stats()?.keys, "dumping");
            let mut sink: Box<dyn Write> = match &output {
                Some(path) => Box::new(BufWriter::new(
                    std::fs::File::create(path).with_context(|| format!("creating {}", path.display()))?,
                )),
                None => Box::new(BufWriter::new(out)),
            };
            for entry in store.iter(1000) {
                let entry = entry?;
                let key = String::from_utf8(entry.key).context("a stored key is not UTF-8")?;
                kv_dump::write_line(&mut sink, None, &key, &entry.value, entry.expires_at)?;
                bar.inc(1);
            }
            sink.flush()?;
            bar.finish_and_clear();
        }
        FsCommand::Load {
            file,
            input,
            page_size,
        } => {
            let mut store = open(&file, true, page_size)?;
            let (reader, len): (Box<dyn BufRead>, u64) = match &input {
                Some(path) => {
                    let f =
                        std::fs::File::open(path).with_context(|| format!("opening {}", path.display()))?;
                    let len = f.metadata()?.len();
                    (Box::new(BufReader::new(f)), len)
                }
                None => (Box::new(BufReader::new(std::io::stdin())), 0),
            };
            let bar = progress(len, "loading");
            let mut batch: Vec<Entry> = Vec::new();
            let mut loaded = 0u64;
            let mut expired = 0u64;
            let now = store.dir().now_millis();
            let mut lines = kv_dump::Lines::new(reader);
            let mut read = || -> Result<()> {
                while let Some(line) = lines.next() {
                    let (number, entry) = line?;
                    bar.set_position(lines.bytes_read());
                    if let Some(bucket) = entry.bucket {
                        bail!(
                            "line {number}: names bucket {bucket:?}, and `fs load` loads one bucket: export \
                             one bucket per stream"
                        );
                    }
                    // A key that expired since the dump is not loaded.
                    if kv_fs_engine::is_expired(entry.expires_at_ms, now) {
                        expired += 1;
                        continue;
                    }
                    batch.push(entry);
                    if batch.len() == 1000 {
                        put_batch(&mut store, &batch)?;
                        loaded += batch.len() as u64;
                        batch.clear();
                    }
                }
                Ok(())
            };
            let result = read();
            // The lines before a bad one are loaded.
            put_batch(&mut store, &batch)?;
            loaded += batch.len() as u64;
            // Leave the keys in the tree and the log empty.
            store.checkpoint()?;
            bar.finish_and_clear();
            result.with_context(|| format!("{}: loaded the {loaded} keys before", file.display()))?;
            writeln!(
                out,
                "{}: loaded {loaded} keys ({expired} already expired, left out)",
                file.display()
            )?;
        }
    }
    Ok(())
}

/// Writes loaded entries, with their expiries, in one transaction.
fn put_batch(store: &mut BucketFile<StdDir>, batch: &[Entry]) -> Result<()> {
    store.write(|t| {
        for e in batch {
            t.put_expiring(e.key.as_bytes(), &e.value, e.expires_at_ms)?;
        }
        Ok(())
    })?;
    Ok(())
}
