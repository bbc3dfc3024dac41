//! The conformance guest built against wasi:keyvalue@0.2.0-draft2.

use kv_conformance::{Kv, KvResult, Swap};

wit_bindgen::generate!({
    path: "../../wit",
    world: "kv-virt:adapters/app-draft2",
    generate_all,
});

use wasi::keyvalue0_2_0_draft2::{atomics, batch, store};

struct Draft2;

kv_conformance::same_in_both_drafts!(conversions);

impl Kv for Draft2 {
    type Bucket = store::Bucket;
    type Cursor = String;
    type Cas = atomics::Cas;
    const DRAFT: &'static str = "0.2.0-draft2";
    kv_conformance::same_in_both_drafts!(methods);

    const COUNTER_MAX: i128 = i64::MAX as i128;

    fn list_keys(b: &Self::Bucket, cursor: Option<String>) -> KvResult<(Vec<String>, Option<String>)> {
        let response = b.list_keys(cursor.as_deref()).map_err(err)?;
        Ok((response.keys, response.cursor))
    }
    fn garbage_cursors() -> Vec<String> {
        vec![
            "".into(),
            "garbage".into(),
            "kv1.AAAAAAAA".into(),
            "\u{0}".into(),
            "x".repeat(10_000),
        ]
    }
    fn increment(b: &Self::Bucket, key: &str, delta: i64) -> KvResult<i128> {
        atomics::increment(b, key, delta).map(i128::from).map_err(err)
    }
    fn get_many(b: &Self::Bucket, keys: &[String]) -> KvResult<Vec<(String, Option<Vec<u8>>)>> {
        batch::get_many(b, keys).map_err(err)
    }
    fn cas_new(b: &Self::Bucket, key: &str) -> Option<KvResult<atomics::Cas>> {
        Some(atomics::Cas::new(b, key).map_err(err))
    }
    fn cas_current(cas: &atomics::Cas) -> KvResult<Option<Vec<u8>>> {
        cas.current().map_err(err)
    }
    fn cas_swap(cas: atomics::Cas, value: &[u8]) -> KvResult<Swap<atomics::Cas>> {
        match atomics::swap(cas, value) {
            Ok(()) => Ok(Swap::Done),
            Err(atomics::CasError::CasFailed(fresh)) => Ok(Swap::Failed(fresh)),
            Err(atomics::CasError::StoreError(e)) => Err(err(e)),
        }
    }
}

fn main() {
    std::process::exit(kv_conformance::run::<Draft2>());
}
