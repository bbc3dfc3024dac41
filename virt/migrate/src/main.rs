//! kv-virt's export and import commands, in one component: what it does is
//! baked in by `kv-virt export` / `kv-virt import` ([`kv_dump::Job`],
//! through `kv-virt:config/config`), which plug a configured adapter into
//! it, so it runs with no arguments on any WASI 0.2 runtime.
//!
//! - **export** writes each bucket as JSON lines ([`kv_dump`]) on standard
//!   output: `list-keys` page after page, the values of each page read with
//!   their expiries (`kv-virt:adapters/migration`'s `get-many-with-expiry`)
//!   in batches sized to about `batch-bytes` of values. Expired keys are
//!   left out.
//! - **import** reads JSON lines from standard input and writes them with
//!   `set-many-with-expiry`, in batches of at most `batch-keys` keys and
//!   about `batch-bytes` of values; a line's expiry is kept (a line already
//!   expired is not written).
//!
//! Either holds one batch at a time, so a bucket of any size moves in
//! constant memory. Progress goes to standard error (at most once a second),
//! and a count at the end. A malformed line or a failed write ends the run
//! with exit code 1 and one line naming the line, after everything before
//! it is written.

use std::collections::{HashMap, HashSet};
use std::io::{BufReader, BufWriter, Write};
use std::time::{Duration, Instant};

use kv_dump::{Job, Task};

wit_bindgen::generate!({
    path: "../../wit",
    inline: "
        package kv-virt:migrate@0.1.0;

        world migrate {
            import kv-virt:config/config@0.1.0;
            import wasi:keyvalue/store@0.2.0-draft2;
            import kv-virt:adapters/migration@0.1.0;
        }
    ",
    world: "kv-virt:migrate/migrate@0.1.0",
    generate_all,
});

use kv_virt::adapters::migration;
use kv_virt::config::config;
use wasi::keyvalue0_2_0_draft2::store;

fn describe(e: store::Error) -> String {
    match e {
        store::Error::NoSuchStore => "no such bucket".into(),
        store::Error::AccessDenied => "access denied".into(),
        store::Error::Other(message) => message,
    }
}

fn open(name: &str) -> Result<store::Bucket, String> {
    store::open(name).map_err(|e| format!("opening bucket {name:?}: {}", describe(e)))
}

/// Keys and bytes moved, reported on standard error as they grow.
struct Progress {
    task: &'static str,
    started: Instant,
    reported: Instant,
    keys: u64,
    bytes: u64,
}

impl Progress {
    const EVERY: Duration = Duration::from_secs(1);

    fn new(task: &'static str) -> Self {
        let now = Instant::now();
        Progress {
            task,
            started: now,
            reported: now,
            keys: 0,
            bytes: 0,
        }
    }

    fn add(&mut self, keys: usize, bytes: usize, at: &dyn Fn() -> String) {
        self.keys += keys as u64;
        self.bytes += bytes as u64;
        if self.reported.elapsed() >= Self::EVERY {
            self.reported = Instant::now();
            eprintln!(
                "{}: {} keys, {} bytes of values ({})",
                self.task,
                self.keys,
                self.bytes,
                at()
            );
        }
    }

    fn done(&self, buckets: &[&str]) {
        eprintln!(
            "{}: done: {} keys, {} bytes of values, bucket{} {} ({:.1} s)",
            self.task,
            self.keys,
            self.bytes,
            if buckets.len() == 1 { "" } else { "s" },
            buckets.join(", "),
            self.started.elapsed().as_secs_f64()
        );
    }
}

/// How many keys the next `get-many` asks for. Values' sizes are unknown
/// until read, so it starts at one key and grows at most twofold a call
/// towards `batch-bytes` of values (as the last call's average value
/// predicts), never past `batch-keys`: a call reads about `batch-bytes`,
/// and never more than twice that or one value.
struct ReadSize {
    keys: usize,
    max_keys: usize,
    target_bytes: u64,
}

impl ReadSize {
    fn new(job: &Job) -> Self {
        ReadSize {
            keys: 1,
            max_keys: job.batch_keys.max(1) as usize,
            target_bytes: job.batch_bytes.max(1),
        }
    }

    fn after(&mut self, keys: usize, bytes: usize) {
        let average = (bytes as u64 / keys.max(1) as u64).max(1);
        let fits = usize::try_from(self.target_bytes / average).unwrap_or(usize::MAX);
        self.keys = fits.min(self.keys * 2).clamp(1, self.max_keys);
    }
}

fn export(buckets: &[String], job: &Job) -> Result<(), String> {
    let mut out = BufWriter::with_capacity(1 << 16, std::io::stdout().lock());
    let result = export_to(&mut out, buckets, job);
    // What was read is passed on even when the export fails part way.
    let flushed = out
        .flush()
        .map_err(|e| format!("writing to standard output: {e}"));
    result.and(flushed)
}

fn export_to(out: &mut impl Write, buckets: &[String], job: &Job) -> Result<(), String> {
    let mut progress = Progress::new("export");
    // One bucket: exactly what `kv-virt fs dump` writes.
    let name_lines = buckets.len() > 1;
    for name in buckets {
        let bucket = open(name)?;
        let mut size = ReadSize::new(job);
        let mut cursor = None;
        loop {
            let page = bucket
                .list_keys(cursor.as_deref())
                .map_err(|e| format!("listing bucket {name:?}: {}", describe(e)))?;
            for_each_batch(&page.keys, &mut size, |keys| {
                let entries = migration::get_many_with_expiry(&bucket, keys).map_err(|e| {
                    format!(
                        "reading {} keys from {:?} in bucket {name:?}: {}",
                        keys.len(),
                        kv_dump::short(&keys[0]),
                        describe(e)
                    )
                })?;
                let mut bytes = 0;
                let mut written = 0;
                // A key deleted (or expired) since it was listed is skipped.
                for (key, entry) in keys.iter().zip(entries) {
                    if let Some((value, expires_at_ms)) = entry {
                        kv_dump::write_line(out, name_lines.then_some(name), key, &value, expires_at_ms)
                            .map_err(|e| format!("writing to standard output: {e}"))?;
                        bytes += value.len();
                        written += 1;
                    }
                }
                progress.add(written, bytes, &|| format!("bucket {name}"));
                Ok(bytes)
            })?;
            match page.cursor {
                Some(next) => cursor = Some(next),
                None => break,
            }
        }
    }
    progress.done(&buckets.iter().map(String::as_str).collect::<Vec<_>>());
    Ok(())
}

/// Calls `read` on consecutive batches of `keys`, sized by `size`; `read`
/// returns the bytes it read.
fn for_each_batch(
    mut keys: &[String],
    size: &mut ReadSize,
    mut read: impl FnMut(&[String]) -> Result<usize, String>,
) -> Result<(), String> {
    while !keys.is_empty() {
        let (now, rest) = keys.split_at(size.keys.min(keys.len()));
        let bytes = read(now)?;
        size.after(now.len(), bytes);
        keys = rest;
    }
    Ok(())
}

/// The lines read but not yet written: all of one bucket, no key twice
/// (a service may refuse a batch naming a key twice; the later line wins).
struct Pending {
    bucket: String,
    entries: Vec<(String, Vec<u8>, Option<u64>)>,
    lines: Vec<u64>,
    keys: HashSet<String>,
    bytes: u64,
}

/// Writes what import reads, a batch at a time.
struct Writer<'a> {
    job: &'a Job,
    buckets: HashMap<String, store::Bucket>,
    pending: Pending,
    progress: Progress,
}

impl Writer<'_> {
    fn add(&mut self, line: u64, bucket: &str, entry: kv_dump::Entry) -> Result<(), String> {
        let kv_dump::Entry {
            key,
            value,
            expires_at_ms,
            ..
        } = entry;
        if bucket != self.pending.bucket || self.pending.keys.contains(&key) {
            self.flush()?;
            self.pending.bucket = bucket.to_string();
        }
        self.pending.bytes += value.len() as u64;
        self.pending.keys.insert(key.clone());
        self.pending.entries.push((key, value, expires_at_ms));
        self.pending.lines.push(line);
        if self.pending.entries.len() >= self.job.batch_keys as usize
            || self.pending.bytes >= self.job.batch_bytes
        {
            self.flush()?;
        }
        Ok(())
    }

    /// Writes the pending batch with one `set-many`. If that fails, its
    /// entries one by one, so that an error names the line that failed and
    /// every line before it is written.
    fn flush(&mut self) -> Result<(), String> {
        if self.pending.entries.is_empty() {
            return Ok(());
        }
        let name = self.pending.bucket.clone();
        if !self.buckets.contains_key(&name) {
            self.buckets.insert(name.clone(), open(&name)?);
        }
        let bucket = &self.buckets[&name];
        if migration::set_many_with_expiry(bucket, &self.pending.entries).is_err() {
            for (entry, line) in self.pending.entries.iter().zip(&self.pending.lines) {
                let key = &entry.0;
                migration::set_many_with_expiry(bucket, std::slice::from_ref(entry)).map_err(|e| {
                    format!(
                        "line {line}: writing key {:?} to bucket {name:?}: {} (the lines before it are written)",
                        kv_dump::short(key),
                        describe(e)
                    )
                })?;
            }
        }
        let last = self.pending.lines.last().copied().unwrap_or_default();
        self.progress
            .add(self.pending.entries.len(), self.pending.bytes as usize, &|| {
                format!("line {last}")
            });
        self.pending.entries.clear();
        self.pending.lines.clear();
        self.pending.keys.clear();
        self.pending.bytes = 0;
        Ok(())
    }
}

fn import(default_bucket: &str, job: &Job) -> Result<(), String> {
    let input = BufReader::with_capacity(1 << 16, std::io::stdin());
    let mut writer = Writer {
        job,
        buckets: HashMap::new(),
        pending: Pending {
            bucket: default_bucket.to_string(),
            entries: Vec::new(),
            lines: Vec::new(),
            keys: HashSet::new(),
            bytes: 0,
        },
        progress: Progress::new("import"),
    };
    for line in kv_dump::Lines::new(input) {
        match line {
            Ok((number, entry)) => {
                let bucket = entry.bucket.clone();
                writer.add(number, bucket.as_deref().unwrap_or(default_bucket), entry)?;
            }
            Err(error) => {
                writer.flush()?;
                return Err(format!("{error} (the lines before it are written)"));
            }
        }
    }
    writer.flush()?;
    let mut buckets: Vec<&str> = writer.buckets.keys().map(String::as_str).collect();
    buckets.sort_unstable();
    writer.progress.done(&buckets);
    Ok(())
}

fn main() {
    let job = match Job::from_bytes(&config::get()) {
        Ok(job) => job,
        Err(message) => {
            eprintln!("kv-virt migrate: {message}");
            std::process::exit(2);
        }
    };
    let result = match &job.task {
        Task::Export { buckets } => export(buckets, &job),
        Task::Import { bucket } => import(bucket, &job),
    };
    if let Err(message) = result {
        eprintln!("{}: {message}", job.task.name());
        std::process::exit(1);
    }
}
