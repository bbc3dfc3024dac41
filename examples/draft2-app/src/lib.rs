//! An app on `wasi:keyvalue@0.2.0-draft2`, as Spin and wRPC users write
//! them: a small stock list. It is built twice, once against each text of
//! draft2's `batch.get-many` (`src/bin/`): upstream PR #55's
//! `list<tuple<string, option<list<u8>>>>` and the 2024 text's
//! `list<option<tuple<string, list<u8>>>>`; kv-virt serves both. The app is
//! written once, against [`Draft2`].
//!
//! Usage: `draft2-app BUCKET OP...`, the operations run in order:
//! `add ITEM N` (atomic increment), `rename ITEM NEW` (compare-and-swap on
//! a `names` list), `show ITEM,ITEM,...` (`get-many`, `-` for a missing item),
//! `list` (every item, through `list-keys` cursors), `clear` (`delete-many`
//! of every item).

/// What the app uses of draft2, whichever text it was built against.
pub trait Draft2 {
    type Bucket;
    type Cas;
    fn open(name: &str) -> Result<Self::Bucket, String>;
    fn increment(bucket: &Self::Bucket, key: &str, delta: i64) -> Result<i64, String>;
    /// One entry per key, `None` where it is missing.
    fn get_many(bucket: &Self::Bucket, keys: &[String]) -> Result<Vec<Option<Vec<u8>>>, String>;
    fn delete_many(bucket: &Self::Bucket, keys: &[String]) -> Result<(), String>;
    fn list_keys(
        bucket: &Self::Bucket,
        cursor: Option<String>,
    ) -> Result<(Vec<String>, Option<String>), String>;
    fn cas_new(bucket: &Self::Bucket, key: &str) -> Result<Self::Cas, String>;
    fn cas_current(cas: &Self::Cas) -> Result<Option<Vec<u8>>, String>;
    /// `Ok(None)` when it swapped, `Ok(Some(fresh))` on a conflict.
    fn cas_swap(cas: Self::Cas, value: &[u8]) -> Result<Option<Self::Cas>, String>;
}

const STOCK: &str = "stock/";
const NAMES: &str = "names";

fn all_keys<K: Draft2>(bucket: &K::Bucket) -> Result<Vec<String>, String> {
    let (mut keys, mut cursor) = K::list_keys(bucket, None)?;
    while let Some(next) = cursor {
        let (page, more) = K::list_keys(bucket, Some(next))?;
        keys.extend(page);
        cursor = more;
    }
    Ok(keys)
}

fn items<K: Draft2>(bucket: &K::Bucket) -> Result<Vec<String>, String> {
    let mut keys: Vec<String> = all_keys::<K>(bucket)?
        .into_iter()
        .filter(|key| key.starts_with(STOCK))
        .collect();
    keys.sort();
    Ok(keys)
}

/// Records `item` under its new display name in the `names` value
/// (`item=name` lines), retrying on a concurrent change.
fn rename<K: Draft2>(bucket: &K::Bucket, item: &str, name: &str) -> Result<(), String> {
    let mut cas = K::cas_new(bucket, NAMES)?;
    loop {
        let current = String::from_utf8_lossy(&K::cas_current(&cas)?.unwrap_or_default()).into_owned();
        let mut lines: Vec<&str> = current
            .lines()
            .filter(|line| !line.starts_with(&format!("{item}=")))
            .collect();
        let entry = format!("{item}={name}");
        lines.push(&entry);
        lines.sort();
        match K::cas_swap(cas, lines.join("\n").as_bytes())? {
            None => return Ok(()),
            Some(fresh) => cas = fresh,
        }
    }
}

/// Runs the operations, printing what each did.
pub fn run<K: Draft2>(args: &[String]) -> Result<(), String> {
    let (bucket_name, ops) = args.split_first().ok_or("usage: draft2-app BUCKET OP...")?;
    let bucket = K::open(bucket_name)?;
    let mut ops = ops.iter();
    let mut next = |what: &str| ops.next().cloned().ok_or_else(|| format!("missing {what}"));
    while let Ok(op) = next("operation") {
        match op.as_str() {
            "add" => {
                let item = next("ITEM")?;
                let n = next("N")?.parse().map_err(|_| "N must be a number".to_string())?;
                println!("{item}: {}", K::increment(&bucket, &format!("{STOCK}{item}"), n)?);
            }
            "rename" => {
                let item = next("ITEM")?;
                let name = next("NEW")?;
                rename::<K>(&bucket, &item, &name)?;
                println!("{item} is now {name}");
            }
            "show" => {
                let items: Vec<String> = next("ITEM,ITEM,...")?.split(',').map(str::to_string).collect();
                let keys: Vec<String> = items.iter().map(|item| format!("{STOCK}{item}")).collect();
                let values = K::get_many(&bucket, &keys)?;
                for (item, value) in items.iter().zip(values) {
                    let shown = value.map_or("-".to_string(), |v| String::from_utf8_lossy(&v).into_owned());
                    println!("{item}: {shown}");
                }
            }
            "list" => {
                let keys = items::<K>(&bucket)?;
                let values = K::get_many(&bucket, &keys)?;
                println!("{} items", keys.len());
                for (key, value) in keys.iter().zip(values) {
                    let count = value.map(|v| String::from_utf8_lossy(&v).into_owned());
                    println!("  {}: {}", &key[STOCK.len()..], count.unwrap_or_default());
                }
            }
            "clear" => {
                let keys = items::<K>(&bucket)?;
                K::delete_many(&bucket, &keys)?;
                println!("cleared {} items", keys.len());
            }
            other => return Err(format!("unknown operation {other:?}")),
        }
    }
    Ok(())
}

/// `main` of either build.
pub fn main<K: Draft2>() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if let Err(e) = run::<K>(&args) {
        eprintln!("draft2-app: {e}");
        std::process::exit(1);
    }
}

/// The [`Draft2`] methods both texts spell the same way, for an `impl`
/// with the draft's `store` and `atomics` modules in scope.
#[macro_export]
macro_rules! same_in_both_texts {
    () => {
        type Bucket = store::Bucket;
        type Cas = atomics::Cas;
        fn open(name: &str) -> Result<store::Bucket, String> {
            store::open(name).map_err(describe)
        }
        fn increment(bucket: &store::Bucket, key: &str, delta: i64) -> Result<i64, String> {
            atomics::increment(bucket, key, delta).map_err(describe)
        }
        fn delete_many(bucket: &store::Bucket, keys: &[String]) -> Result<(), String> {
            batch::delete_many(bucket, keys).map_err(describe)
        }
        fn list_keys(
            bucket: &store::Bucket,
            cursor: Option<String>,
        ) -> Result<(Vec<String>, Option<String>), String> {
            let response = bucket.list_keys(cursor.as_deref()).map_err(describe)?;
            Ok((response.keys, response.cursor))
        }
        fn cas_new(bucket: &store::Bucket, key: &str) -> Result<atomics::Cas, String> {
            atomics::Cas::new(bucket, key).map_err(describe)
        }
        fn cas_current(cas: &atomics::Cas) -> Result<Option<Vec<u8>>, String> {
            cas.current().map_err(describe)
        }
        fn cas_swap(cas: atomics::Cas, value: &[u8]) -> Result<Option<atomics::Cas>, String> {
            match atomics::swap(cas, value) {
                Ok(()) => Ok(None),
                Err(atomics::CasError::CasFailed(fresh)) => Ok(Some(fresh)),
                Err(atomics::CasError::StoreError(e)) => Err(describe(e)),
            }
        }
    };
}

/// A draft2 error as a message, for a `store` module in scope.
#[macro_export]
macro_rules! describe_errors {
    () => {
        fn describe(e: store::Error) -> String {
            match e {
                store::Error::NoSuchStore => "no such store".into(),
                store::Error::AccessDenied => "access denied".into(),
                store::Error::Other(message) => message,
            }
        }
    };
}
