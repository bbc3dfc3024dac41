//! The benchmark workload, written once and run by both sides: by the guest
//! (`tests/bench/guest`, over `wasi:keyvalue@0.2.0-draft`, inside the
//! instance) and by the harness natively for redb and SQLite, so every
//! store runs exactly the same loops on exactly the same keys and values.
//!
//! Plain `std` only (the guest has no other dependency): the results are a
//! flat list of named numbers printed as one JSON object.

#![allow(dead_code)]

use std::time::Instant;

/// Keys are 16 bytes: 16 hex digits of a bijective hash of the key's index,
/// so they are distinct and arrive in random order.
pub const KEY_LEN: usize = 16;
/// Every value is 100 bytes.
pub const VALUE_LEN: usize = 100;
/// `increment` cycles over this many counter keys (`counter-00000000`…).
pub const COUNTERS: u64 = 16;

/// splitmix64's finaliser: a bijection on `u64`.
pub fn mix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// The key of index `i`.
pub fn key(i: u64) -> String {
    format!("{:016x}", mix(i))
}

/// The value of index `i` as written by generation `generation` (0: the load).
pub fn value(i: u64, generation: u64) -> Vec<u8> {
    let mut state = mix(i ^ generation.rotate_left(40) ^ 0x5A5A_5A5A);
    let mut out = Vec::with_capacity(VALUE_LEN);
    while out.len() < VALUE_LEN {
        state = mix(state);
        let take = (VALUE_LEN - out.len()).min(8);
        out.extend_from_slice(&state.to_le_bytes()[..take]);
    }
    out
}

/// The counter key of index `j` (16 bytes, never a hex key).
pub fn counter_key(j: u64) -> String {
    format!("counter-{j:08}")
}

/// A tiny deterministic generator (splitmix64).
pub struct Rng(pub u64);

impl Rng {
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(1);
        mix(self.0)
    }
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n.max(1)
    }
}

/// What one run does. The harness passes it to the guest as `name=value`
/// arguments.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Params {
    /// `load`, `ops` or `open`.
    pub mode: String,
    /// Bucket name (`""` for wasmtime's in-memory host, which only has that one).
    pub bucket: String,
    /// Keys `0..keys` exist (after the load).
    pub keys: u64,
    /// `ops`: untimed random gets first (the bucket is warm after them).
    pub warm: u64,
    /// `ops`: timed random gets of existing keys.
    pub gets: u64,
    /// `ops`: timed full `list-keys` scans.
    pub lists: u64,
    /// `ops`: timed single-key sets (overwrites of random existing keys).
    pub sets: u64,
    /// `ops`: timed set-many calls.
    pub batches: u64,
    /// Entries per set-many call (also the load's batch size).
    pub batch: u64,
    /// `ops`: timed increments.
    pub incrs: u64,
    /// Seed of the random choices.
    pub seed: u64,
    /// `open`: the index of the key to get.
    pub key: u64,
}

impl Params {
    pub fn to_args(&self) -> Vec<String> {
        let mut args = vec![format!("mode={}", self.mode), format!("bucket={}", self.bucket)];
        for (name, v) in [
            ("keys", self.keys),
            ("warm", self.warm),
            ("gets", self.gets),
            ("lists", self.lists),
            ("sets", self.sets),
            ("batches", self.batches),
            ("batch", self.batch),
            ("incrs", self.incrs),
            ("seed", self.seed),
            ("key", self.key),
        ] {
            args.push(format!("{name}={v}"));
        }
        args
    }

    pub fn from_args(args: impl IntoIterator<Item = String>) -> Result<Params, String> {
        let mut p = Params::default();
        for arg in args {
            let (name, v) = arg
                .split_once('=')
                .ok_or_else(|| format!("argument {arg:?} is not name=value"))?;
            let number = || v.parse::<u64>().map_err(|e| format!("{name}={v}: {e}"));
            match name {
                "mode" => p.mode = v.to_string(),
                "bucket" => p.bucket = v.to_string(),
                "keys" => p.keys = number()?,
                "warm" => p.warm = number()?,
                "gets" => p.gets = number()?,
                "lists" => p.lists = number()?,
                "sets" => p.sets = number()?,
                "batches" => p.batches = number()?,
                "batch" => p.batch = number()?,
                "incrs" => p.incrs = number()?,
                "seed" => p.seed = number()?,
                "key" => p.key = number()?,
                _ => return Err(format!("unknown argument {name:?}")),
            }
        }
        Ok(p)
    }
}

/// One key-value store as the workload uses it: the `wasi:keyvalue` calls
/// the benchmark times, one call each.
pub trait Kv {
    fn get(&mut self, key: &str) -> Result<Option<Vec<u8>>, String>;
    /// One durable write.
    fn set(&mut self, key: &str, value: &[u8]) -> Result<(), String>;
    /// One durable transaction.
    fn set_many(&mut self, entries: &[(String, Vec<u8>)]) -> Result<(), String>;
    fn increment(&mut self, key: &str, delta: u64) -> Result<u64, String>;
    /// Lists every key (materialised as strings, page by page where the
    /// store pages); returns how many.
    fn list_all(&mut self) -> Result<u64, String>;
}

/// Named results, in order.
#[derive(Clone, Debug, Default)]
pub struct Report(pub Vec<(String, f64)>);

impl Report {
    pub fn put(&mut self, name: &str, v: f64) {
        self.0.push((name.to_string(), v));
    }

    pub fn get(&self, name: &str) -> Option<f64> {
        self.0.iter().find(|(n, _)| n == name).map(|(_, v)| *v)
    }

    /// One JSON object (non-finite numbers as `null`).
    pub fn to_json(&self) -> String {
        let fields: Vec<String> = self
            .0
            .iter()
            .map(|(name, v)| {
                if v.is_finite() {
                    format!("\"{name}\":{v}")
                } else {
                    format!("\"{name}\":null")
                }
            })
            .collect();
        format!("{{{}}}", fields.join(","))
    }
}

fn secs(since: Instant) -> f64 {
    since.elapsed().as_secs_f64()
}

fn percentile_us(samples: &mut [f64], q: f64) -> f64 {
    if samples.is_empty() {
        return f64::NAN;
    }
    samples.sort_by(f64::total_cmp);
    let at = ((samples.len() - 1) as f64 * q).round() as usize;
    samples[at] * 1e6
}

/// Loads keys `0..p.keys` with set-many calls of `p.batch` entries (one
/// transaction each); reports `load_keys` and `load_s`.
pub fn load<K: Kv>(kv: &mut K, p: &Params, r: &mut Report) -> Result<(), String> {
    let batch = p.batch.max(1);
    let batches: Vec<Vec<(String, Vec<u8>)>> = (0..p.keys.div_ceil(batch))
        .map(|b| {
            (b * batch..((b + 1) * batch).min(p.keys))
                .map(|i| (key(i), value(i, 0)))
                .collect()
        })
        .collect();
    let t = Instant::now();
    for entries in &batches {
        kv.set_many(entries)?;
    }
    r.put("load_keys", p.keys as f64);
    r.put("load_s", secs(t));
    Ok(())
}

/// The timed operations on a bucket holding keys `0..p.keys` (the gets
/// expect generation 0 values: run them before any write): warm-up gets,
/// gets, full lists, sets, set-many, increments (whichever have a non-zero
/// count), each followed by a check that it did what it says.
pub fn run_ops<K: Kv>(kv: &mut K, p: &Params) -> Result<Report, String> {
    let mut r = Report::default();
    let mut rng = Rng(p.seed);
    let n = p.keys;

    // Warm-up, untimed.
    let warm: Vec<String> = (0..p.warm).map(|_| key(rng.below(n))).collect();
    for k in &warm {
        kv.get(k)?;
    }

    if p.gets > 0 {
        let picks: Vec<u64> = (0..p.gets).map(|_| rng.below(n)).collect();
        let keys: Vec<String> = picks.iter().map(|&i| key(i)).collect();
        let mut found = 0u64;
        let t = Instant::now();
        for k in &keys {
            if let Some(v) = kv.get(k)? {
                found += u64::from(v.len() == VALUE_LEN);
            }
        }
        r.put("get_ops", p.gets as f64);
        r.put("get_s", secs(t));
        r.put("get_found", found as f64);
        // The values are the loaded ones.
        let mut right = 0u64;
        let sample = &picks[..picks.len().min(200)];
        for &i in sample {
            right += u64::from(kv.get(&key(i))? == Some(value(i, 0)));
        }
        r.put("get_checked", sample.len() as f64);
        r.put("get_right", right as f64);
    }

    if p.lists > 0 {
        let mut listed = 0u64;
        let mut count = 0u64;
        let t = Instant::now();
        for _ in 0..p.lists {
            count = kv.list_all()?;
            listed += count;
        }
        r.put("list_keys", listed as f64);
        r.put("list_s", secs(t));
        r.put("list_count", count as f64);
    }

    if p.sets > 0 {
        let items: Vec<(String, Vec<u8>, u64)> = (0..p.sets)
            .map(|_| {
                let i = rng.below(n);
                // A new value in every run (`seed` differs): never an
                // unchanged value a store could skip writing.
                (key(i), value(i, p.seed), i)
            })
            .collect();
        let mut lat = Vec::with_capacity(items.len());
        let t = Instant::now();
        for (k, v, _) in &items {
            let t1 = Instant::now();
            kv.set(k, v)?;
            lat.push(secs(t1));
        }
        r.put("set_ops", p.sets as f64);
        r.put("set_s", secs(t));
        r.put("set_p50_us", percentile_us(&mut lat, 0.5));
        r.put("set_p99_us", percentile_us(&mut lat, 0.99));
        r.put("set_max_us", percentile_us(&mut lat, 1.0));
        let (k, v, _) = items.last().expect("sets > 0");
        r.put(
            "set_readback_ok",
            f64::from(u8::from(kv.get(k)?.as_ref() == Some(v))),
        );
    }

    if p.batches > 0 {
        // Each call writes `batch` distinct existing keys (consecutive
        // indices from a random start: random places in the key order).
        let calls: Vec<Vec<(String, Vec<u8>)>> = (0..p.batches)
            .map(|b| {
                let start = rng.below(n);
                (0..p.batch.min(n))
                    .map(|j| {
                        let i = (start + j) % n;
                        (key(i), value(i, p.seed + 1 + b))
                    })
                    .collect()
            })
            .collect();
        let mut lat = Vec::with_capacity(calls.len());
        let t = Instant::now();
        for entries in &calls {
            let t1 = Instant::now();
            kv.set_many(entries)?;
            lat.push(secs(t1));
        }
        r.put("setmany_calls", p.batches as f64);
        r.put("setmany_entries", (p.batches * p.batch.min(n)) as f64);
        r.put("setmany_s", secs(t));
        r.put("setmany_p50_us", percentile_us(&mut lat, 0.5));
        let (k, v) = calls.last().and_then(|c| c.last()).expect("batches > 0");
        r.put(
            "setmany_readback_ok",
            f64::from(u8::from(kv.get(k)?.as_ref() == Some(v))),
        );
    }

    if p.incrs > 0 {
        let keys: Vec<String> = (0..COUNTERS).map(counter_key).collect();
        let before = counters_total(kv, &keys)?;
        let t = Instant::now();
        for j in 0..p.incrs {
            kv.increment(&keys[(j % COUNTERS) as usize], 1)?;
        }
        r.put("incr_ops", p.incrs as f64);
        r.put("incr_s", secs(t));
        let after = counters_total(kv, &keys)?;
        r.put("incr_ok", f64::from(u8::from(after - before == p.incrs)));
    }
    Ok(r)
}

/// The sum of the counters (absent ones count 0).
fn counters_total<K: Kv>(kv: &mut K, keys: &[String]) -> Result<u64, String> {
    let mut total = 0u64;
    for k in keys {
        if let Some(v) = kv.get(k)? {
            total += String::from_utf8_lossy(&v)
                .parse::<u64>()
                .map_err(|e| format!("counter {k}: {e}"))?;
        }
    }
    Ok(total)
}

/// A fresh instance's first access: open the bucket, then one get.
pub fn open_first_get<K: Kv>(open: impl FnOnce() -> Result<K, String>, p: &Params) -> Result<Report, String> {
    let k = key(p.key);
    let t = Instant::now();
    let mut kv = open()?;
    let opened = secs(t);
    let t = Instant::now();
    let got = kv.get(&k)?;
    let got_s = secs(t);
    let mut r = Report::default();
    r.put("open_us", opened * 1e6);
    r.put("first_get_us", got_s * 1e6);
    r.put("found", f64::from(u8::from(got == Some(value(p.key, 0)))));
    Ok(r)
}
