//! The conformance guest built against wasi:keyvalue@0.2.0-draft.

use kv_conformance::{Kv, KvError, KvResult, Swap};

wit_bindgen::generate!({
    path: "../../wit",
    world: "kv-virt:adapters/app-draft",
    generate_all,
});

use wasi::keyvalue0_2_0_draft::{atomics, batch, store};

struct Draft;

fn err(e: store::Error) -> KvError {
    match e {
        store::Error::NoSuchStore => KvError::NoSuchStore,
        store::Error::AccessDenied => KvError::AccessDenied,
        store::Error::Other(message) => KvError::Other(message),
    }
}

impl Kv for Draft {
    type Bucket = store::Bucket;
    type Cursor = u64;
    type Cas = ();
    const DRAFT: &'static str = "0.2.0-draft";
    const COUNTER_MAX: i128 = u64::MAX as i128;

    fn open(name: &str) -> KvResult<Self::Bucket> {
        store::open(name).map_err(err)
    }
    fn get(b: &Self::Bucket, key: &str) -> KvResult<Option<Vec<u8>>> {
        b.get(key).map_err(err)
    }
    fn set(b: &Self::Bucket, key: &str, value: &[u8]) -> KvResult<()> {
        b.set(key, value).map_err(err)
    }
    fn delete(b: &Self::Bucket, key: &str) -> KvResult<()> {
        b.delete(key).map_err(err)
    }
    fn exists(b: &Self::Bucket, key: &str) -> KvResult<bool> {
        b.exists(key).map_err(err)
    }
    fn list_keys(b: &Self::Bucket, cursor: Option<u64>) -> KvResult<(Vec<String>, Option<u64>)> {
        let response = b.list_keys(cursor).map_err(err)?;
        Ok((response.keys, response.cursor))
    }
    fn garbage_cursors() -> Vec<u64> {
        vec![0, 1, 12345, u64::MAX]
    }
    fn increment(b: &Self::Bucket, key: &str, delta: i64) -> KvResult<i128> {
        let delta = u64::try_from(delta).map_err(|_| KvError::Other("negative delta in draft".into()))?;
        atomics::increment(b, key, delta).map(i128::from).map_err(err)
    }
    fn get_many(b: &Self::Bucket, keys: &[String]) -> KvResult<Vec<(String, Option<Vec<u8>>)>> {
        let values = batch::get_many(b, keys).map_err(err)?;
        if values.len() != keys.len() {
            return Err(KvError::Other(format!(
                "get-many returned {} entries for {} keys",
                values.len(),
                keys.len()
            )));
        }
        // draft: `none` for a missing key; a present key comes with its name.
        Ok(keys
            .iter()
            .zip(values)
            .map(|(key, entry)| (key.clone(), entry.filter(|(k, _)| k == key).map(|(_, v)| v)))
            .collect())
    }
    fn set_many(b: &Self::Bucket, entries: &[(String, Vec<u8>)]) -> KvResult<()> {
        batch::set_many(b, entries).map_err(err)
    }
    fn delete_many(b: &Self::Bucket, keys: &[String]) -> KvResult<()> {
        batch::delete_many(b, keys).map_err(err)
    }
    fn cas_new(_: &Self::Bucket, _: &str) -> Option<KvResult<()>> {
        None
    }
    fn cas_current(_: &()) -> KvResult<Option<Vec<u8>>> {
        unreachable!("draft has no cas")
    }
    fn cas_swap(_: (), _: &[u8]) -> KvResult<Swap<()>> {
        unreachable!("draft has no cas")
    }
}

fn main() {
    std::process::exit(kv_conformance::run::<Draft>());
}
