//! The native baselines, running the same workload as the guest
//! ([`crate::workload`]): redb and SQLite (Spin's key-value schema, with
//! Spin's rollback journal and in WAL mode), all durable, one transaction
//! per `wasi:keyvalue` call; and the physical limit of a durable write (one
//! page rewritten in place and synced). Also the native kv-fs engine, to
//! build the 1M-key file and to count file operations.

use std::path::Path;

use anyhow::{Context, Result};
use kv_fs_engine::std_dir::StdDir;
use kv_fs_engine::testing::{Counters, MemDir};
use kv_fs_engine::{BucketFile, Options, SyncPolicy};
use redb::{Database, ReadableDatabase, ReadableTable, TableDefinition};
use rusqlite::{Connection, OptionalExtension, params};

use crate::workload::{self, Kv};

fn e(err: impl std::fmt::Display) -> String {
    err.to_string()
}

// ---------------------------------------------------------------- redb

/// One table of `&str` → `&[u8]`; every call is its own transaction (reads:
/// a read transaction; writes: a write transaction with redb's default
/// `Durability::Immediate`, i.e. synced before `commit` returns).
pub struct Redb {
    db: Database,
}

const REDB_TABLE: TableDefinition<&str, &[u8]> = TableDefinition::new("kv");

impl Redb {
    pub fn create(path: &Path) -> Result<Redb> {
        let db = Database::create(path).with_context(|| format!("creating {}", path.display()))?;
        // Create the table, so that reads of an empty database work.
        let txn = db.begin_write()?;
        txn.open_table(REDB_TABLE)?;
        txn.commit()?;
        Ok(Redb { db })
    }

    pub fn open(path: &Path) -> Result<Redb, String> {
        Database::open(path).map(|db| Redb { db }).map_err(e)
    }

    /// Loads `entries` in one transaction without syncing (building the
    /// 1M-key file: not timed as an operation).
    pub fn bulk_load(&mut self, entries: &[(String, Vec<u8>)]) -> Result<()> {
        let mut txn = self.db.begin_write()?;
        txn.set_durability(redb::Durability::None)?;
        {
            let mut table = txn.open_table(REDB_TABLE)?;
            for (k, v) in entries {
                table.insert(k.as_str(), v.as_slice())?;
            }
        }
        txn.commit()?;
        // A durable empty commit, so the file is complete when closed.
        let txn = self.db.begin_write()?;
        txn.commit()?;
        Ok(())
    }
}

impl Kv for Redb {
    fn get(&mut self, key: &str) -> Result<Option<Vec<u8>>, String> {
        let txn = self.db.begin_read().map_err(e)?;
        let table = txn.open_table(REDB_TABLE).map_err(e)?;
        Ok(table.get(key).map_err(e)?.map(|v| v.value().to_vec()))
    }

    fn set(&mut self, key: &str, value: &[u8]) -> Result<(), String> {
        let txn = self.db.begin_write().map_err(e)?;
        txn.open_table(REDB_TABLE)
            .map_err(e)?
            .insert(key, value)
            .map_err(e)?;
        txn.commit().map_err(e)
    }

    fn set_many(&mut self, entries: &[(String, Vec<u8>)]) -> Result<(), String> {
        let txn = self.db.begin_write().map_err(e)?;
        {
            let mut table = txn.open_table(REDB_TABLE).map_err(e)?;
            for (k, v) in entries {
                table.insert(k.as_str(), v.as_slice()).map_err(e)?;
            }
        }
        txn.commit().map_err(e)
    }

    fn increment(&mut self, key: &str, delta: u64) -> Result<u64, String> {
        let txn = self.db.begin_write().map_err(e)?;
        let next = {
            let mut table = txn.open_table(REDB_TABLE).map_err(e)?;
            let current = match table.get(key).map_err(e)? {
                Some(v) => parse_counter(v.value())?,
                None => 0,
            };
            let next = current.checked_add(delta).ok_or("counter overflow")?;
            table.insert(key, next.to_string().as_bytes()).map_err(e)?;
            next
        };
        txn.commit().map_err(e)?;
        Ok(next)
    }

    fn list_all(&mut self) -> Result<u64, String> {
        let txn = self.db.begin_read().map_err(e)?;
        let table = txn.open_table(REDB_TABLE).map_err(e)?;
        let mut keys = Vec::new();
        for entry in table.iter().map_err(e)? {
            let (k, _) = entry.map_err(e)?;
            keys.push(k.value().to_string());
        }
        Ok(keys.len() as u64)
    }
}

fn parse_counter(v: &[u8]) -> Result<u64, String> {
    std::str::from_utf8(v)
        .ok()
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| "counter is not a decimal number".to_string())
}

// ---------------------------------------------------------------- SQLite

/// Spin's SQLite key-value store: its schema and its statements, one
/// transaction per write (autocommit; set-many and increment in an explicit
/// transaction), `synchronous=FULL`, with the default rollback journal (as
/// Spin opens it) or in WAL mode (the stronger configuration).
pub struct Sqlite {
    conn: Connection,
}

const STORE: &str = "bench";

/// How a SQLite database journals its writes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Journal {
    /// The default rollback journal (Spin's configuration).
    Rollback,
    /// Write-ahead log.
    Wal,
}

impl Sqlite {
    pub fn open(path: &Path, journal: Journal) -> Result<Sqlite, String> {
        let conn = Connection::open(path).map_err(e)?;
        if journal == Journal::Wal {
            conn.pragma_update(None, "journal_mode", "WAL").map_err(e)?;
        }
        conn.execute_batch(
            "PRAGMA synchronous = FULL;
             CREATE TABLE IF NOT EXISTS spin_key_value (
               store TEXT NOT NULL,
               key   TEXT NOT NULL,
               value BLOB NOT NULL,
               PRIMARY KEY (store, key)
             );",
        )
        .map_err(e)?;
        Ok(Sqlite { conn })
    }

    /// Opens an existing file as a fresh process would, without any setup
    /// statement (the open-to-first-get measurement; a WAL database stays
    /// in WAL mode).
    pub fn open_existing(path: &Path) -> Result<Sqlite, String> {
        Connection::open(path).map(|conn| Sqlite { conn }).map_err(e)
    }

    /// Loads `entries` in one transaction (building the 1M-key file).
    pub fn bulk_load(&mut self, entries: &[(String, Vec<u8>)]) -> Result<()> {
        self.set_many(entries).map_err(anyhow::Error::msg)
    }

    fn upsert(conn: &Connection, key: &str, value: &[u8]) -> rusqlite::Result<usize> {
        conn.prepare_cached(
            "INSERT INTO spin_key_value (store, key, value) VALUES ($1, $2, $3)
             ON CONFLICT(store, key) DO UPDATE SET value = $3",
        )?
        .execute(params![STORE, key, value])
    }

    fn select(conn: &Connection, key: &str) -> rusqlite::Result<Option<Vec<u8>>> {
        conn.prepare_cached("SELECT value FROM spin_key_value WHERE store = $1 AND key = $2")?
            .query_row(params![STORE, key], |row| row.get(0))
            .optional()
    }
}

impl Kv for Sqlite {
    fn get(&mut self, key: &str) -> Result<Option<Vec<u8>>, String> {
        Self::select(&self.conn, key).map_err(e)
    }

    fn set(&mut self, key: &str, value: &[u8]) -> Result<(), String> {
        Self::upsert(&self.conn, key, value).map(drop).map_err(e)
    }

    fn set_many(&mut self, entries: &[(String, Vec<u8>)]) -> Result<(), String> {
        let txn = self.conn.transaction().map_err(e)?;
        for (k, v) in entries {
            Self::upsert(&txn, k, v).map_err(e)?;
        }
        txn.commit().map_err(e)
    }

    fn increment(&mut self, key: &str, delta: u64) -> Result<u64, String> {
        let txn = self.conn.transaction().map_err(e)?;
        let current = match Self::select(&txn, key).map_err(e)? {
            Some(v) => parse_counter(&v)?,
            None => 0,
        };
        let next = current.checked_add(delta).ok_or("counter overflow")?;
        Self::upsert(&txn, key, next.to_string().as_bytes()).map_err(e)?;
        txn.commit().map_err(e)?;
        Ok(next)
    }

    fn list_all(&mut self) -> Result<u64, String> {
        let mut stmt = self
            .conn
            .prepare_cached("SELECT key FROM spin_key_value WHERE store = $1")
            .map_err(e)?;
        let keys = stmt
            .query_map(params![STORE], |row| row.get::<_, String>(0))
            .map_err(e)?
            .collect::<rusqlite::Result<Vec<String>>>()
            .map_err(e)?;
        Ok(keys.len() as u64)
    }
}

// ---------------------------------------------------------------- the limit

/// The ceiling for any durable write on this file system: one 4 KiB page
/// rewritten in place with `pwrite` and made durable with `fdatasync`, in
/// a loop (no lock, no read, nothing else).
pub struct PageSync {
    file: std::fs::File,
}

impl PageSync {
    pub fn create(path: &Path) -> Result<PageSync> {
        use std::os::unix::fs::FileExt;
        let file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .open(path)
            .with_context(|| format!("creating {}", path.display()))?;
        // The page exists on disk before the loop: the loop never allocates.
        file.write_all_at(&[0u8; 4096], 0)?;
        file.sync_all()?;
        Ok(PageSync { file })
    }

    /// `n` durable page writes: the same figures as the workload's sets.
    pub fn run(&self, n: u64) -> Result<workload::Report> {
        use std::os::unix::fs::FileExt;
        use std::time::Instant;
        let mut page = [0u8; 4096];
        let mut lat = Vec::with_capacity(n as usize);
        let t = Instant::now();
        for i in 0..n {
            page[..8].copy_from_slice(&i.to_le_bytes());
            let t1 = Instant::now();
            self.file.write_all_at(&page, 0)?;
            self.file.sync_data()?;
            lat.push(t1.elapsed().as_secs_f64());
        }
        let mut r = workload::Report::default();
        r.put("set_ops", n as f64);
        r.put("set_s", t.elapsed().as_secs_f64());
        lat.sort_by(f64::total_cmp);
        if let (Some(p50), Some(p99)) = (lat.get(lat.len() / 2), lat.get(lat.len() * 99 / 100)) {
            r.put("set_p50_us", p50 * 1e6);
            r.put("set_p99_us", p99 * 1e6);
        }
        Ok(r)
    }
}

// ---------------------------------------------------------------- kv-fs engine

/// Builds the bucket file `name` in `dir` natively with the engine (what
/// kv-fs opens under wasmtime): `entries` in transactions of `batch`, no
/// syncs.
pub fn build_kvfs(dir: &Path, name: &str, entries: &[(String, Vec<u8>)], batch: usize) -> Result<()> {
    let options = Options {
        sync: SyncPolicy::Never,
        ..Options::default()
    };
    let mut store = BucketFile::open(StdDir::new(dir), name, options)
        .map_err(|e| anyhow::anyhow!("kv-fs engine: {e}"))?
        .context("the engine did not create the file")?;
    for chunk in entries.chunks(batch) {
        store
            .put_many(chunk)
            .map_err(|e| anyhow::anyhow!("kv-fs engine: {e}"))?;
    }
    Ok(())
}

/// The engine's file operations for one kind of call, summed over `calls`
/// calls.
#[derive(Debug, Clone)]
pub struct OpCount {
    pub name: &'static str,
    pub calls: u64,
    pub total: Counters,
}

impl OpCount {
    /// Per-call averages.
    pub fn per_call(&self) -> [(&'static str, f64); 8] {
        let n = self.calls.max(1) as f64;
        let c = &self.total;
        [
            ("reads", c.reads as f64 / n),
            ("read_kib", c.read_bytes as f64 / n / 1024.0),
            ("writes", c.writes as f64 / n),
            ("write_kib", c.write_bytes as f64 / n / 1024.0),
            ("syncs", c.syncs as f64 / n),
            ("dir_syncs", c.dir_syncs as f64 / n),
            ("opens", c.opens as f64 / n),
            ("set_lens", c.set_lens as f64 / n),
        ]
    }
}

/// What each kind of `wasi:keyvalue` call costs the engine in file
/// operations (each one `wasi:filesystem` call under kv-fs), counted by the
/// engine's instrumented in-memory directory
/// (`kv_fs_engine::testing::MemDir`) with kv-fs's options (the engine's
/// defaults: `SyncPolicy::EveryCommit`, 4 KiB pages, a 1 MiB log ring), on a
/// bucket of `keys` keys loaded as the benchmark loads it. The calls are
/// the ones kv-fs makes: `get`, `put`, `put_many`, a `write` with a get and
/// a put (increment), `keys_after` pages of 1001 (list-keys), and
/// `BucketFile::open` + `get` (a fresh instance's first get).
#[derive(Debug, Clone)]
pub struct EngineCounts {
    pub keys: u64,
    pub set_many_entries: u64,
    pub ops: Vec<OpCount>,
}

impl EngineCounts {
    pub fn op(&self, name: &str) -> Option<&OpCount> {
        self.ops.iter().find(|o| o.name == name)
    }
}

pub fn count_engine_ops(keys: u64, batch: u64, gets: u64) -> Result<EngineCounts> {
    let engine = |e: kv_fs_engine::Error| anyhow::anyhow!("kv-fs engine: {e}");
    let dir = MemDir::new_untracked();
    let name = "count.kvfs";
    let mut store = BucketFile::open(dir.clone(), name, Options::default())
        .map_err(engine)?
        .context("the engine did not create the file")?;
    let entries: Vec<(String, Vec<u8>)> = (0..keys)
        .map(|i| (workload::key(i), workload::value(i, 0)))
        .collect();
    for chunk in entries.chunks(batch.max(1) as usize) {
        store.put_many(chunk).map_err(engine)?;
    }
    drop(entries);
    let mut rng = workload::Rng(99);
    let mut ops = vec![];
    let mut count = |store: &mut BucketFile<MemDir>,
                     name: &'static str,
                     calls: u64,
                     f: &mut dyn FnMut(&mut BucketFile<MemDir>) -> Result<()>| {
        dir.reset_counters();
        for _ in 0..calls {
            f(store)?;
        }
        ops.push(OpCount {
            name,
            calls,
            total: dir.counters(),
        });
        Ok::<_, anyhow::Error>(())
    };

    // Warm the cache, then count.
    for _ in 0..gets {
        store
            .get(workload::key(rng.below(keys)).as_bytes())
            .map_err(engine)?;
    }
    count(&mut store, "get", gets, &mut |s| {
        s.get(workload::key(rng.below(keys)).as_bytes()).map_err(engine)?;
        Ok(())
    })?;
    count(&mut store, "set", 50, &mut |s| {
        let i = rng.below(keys);
        s.put(workload::key(i).as_bytes(), &workload::value(i, 1))
            .map_err(engine)
    })?;
    let many: Vec<(String, Vec<u8>)> = (0..batch.min(keys))
        .map(|j| {
            let i = (keys / 3 + j) % keys;
            (workload::key(i), workload::value(i, 2))
        })
        .collect();
    count(&mut store, "set-many", 3, &mut |s| {
        s.put_many(&many).map_err(engine)
    })?;
    let mut j = 0;
    count(&mut store, "increment", 50, &mut |s| {
        let counter = workload::counter_key(j % workload::COUNTERS);
        j += 1;
        s.write(|txn| {
            let current = txn.get(counter.as_bytes())?;
            let next = current
                .and_then(|v| String::from_utf8(v).ok())
                .and_then(|s| s.parse::<u64>().ok())
                .unwrap_or(0)
                + 1;
            txn.put(counter.as_bytes(), next.to_string().as_bytes())
        })
        .map_err(engine)
    })?;
    let mut after: Option<Vec<u8>> = None;
    let pages = keys.div_ceil(1000) + 1;
    count(&mut store, "list-keys page", pages, &mut |s| {
        let mut keys = s.keys_after(after.as_deref(), 1001).map_err(engine)?;
        keys.truncate(1000);
        after = keys.pop();
        Ok(())
    })?;
    let reopen_dir = dir.clone();
    count(&mut store, "open + first get", 5, &mut |_| {
        let mut fresh = BucketFile::open(reopen_dir.clone(), name, Options::default())
            .map_err(engine)?
            .context("the file vanished")?;
        fresh
            .get(workload::key(rng.below(keys)).as_bytes())
            .map_err(engine)?;
        Ok(())
    })?;
    Ok(EngineCounts {
        keys,
        set_many_entries: many.len() as u64,
        ops,
    })
}

/// Times the same raw file calls as the guest's `probe` mode, natively
/// with `std::fs`: a 4 KiB `pread` at a random page, `fstat`, and an
/// exclusive create + unlink.
pub fn probe(dir: &Path, pages: u64, reads: u64, creates: u64) -> Result<workload::Report> {
    use std::os::unix::fs::FileExt;
    use std::time::Instant;
    let file = std::fs::File::open(dir.join("probe.bin"))?;
    let mut rng = workload::Rng(1);
    let offsets: Vec<u64> = (0..reads).map(|_| rng.below(pages) * 4096).collect();
    let mut buf = vec![0u8; 4096];
    let mut r = workload::Report::default();
    let t = Instant::now();
    for &offset in &offsets {
        file.read_at(&mut buf, offset)?;
    }
    r.put("read_4k_us", t.elapsed().as_secs_f64() * 1e6 / reads as f64);
    let t = Instant::now();
    for &offset in &offsets {
        file.read_at(&mut buf[..160], offset)?;
    }
    r.put("read_160_us", t.elapsed().as_secs_f64() * 1e6 / reads as f64);
    let t = Instant::now();
    for _ in 0..reads {
        file.metadata()?;
    }
    r.put("stat_us", t.elapsed().as_secs_f64() * 1e6 / reads as f64);
    let lock = dir.join("probe.lock");
    let t = Instant::now();
    for _ in 0..creates {
        drop(
            std::fs::OpenOptions::new()
                .read(true)
                .write(true)
                .create_new(true)
                .open(&lock)?,
        );
        std::fs::remove_file(&lock)?;
    }
    r.put(
        "create_unlink_us",
        t.elapsed().as_secs_f64() * 1e6 / creates as f64,
    );
    Ok(r)
}
