//! The conformance guest built against wasi:keyvalue@0.2.0-draft.

use kv_conformance::{Kv, KvError, KvResult, Swap};

wit_bindgen::generate!({
    path: "../../wit",
    world: "kv-virt:adapters/app-draft",
    generate_all,
});

use wasi::keyvalue0_2_0_draft::{atomics, batch, store};

struct Draft;

kv_conformance::same_in_both_drafts!(conversions);

impl Kv for Draft {
    type Bucket = store::Bucket;
    type Cursor = u64;
    type Cas = ();
    const DRAFT: &'static str = "0.2.0-draft";
    kv_conformance::same_in_both_drafts!(methods);

    const COUNTER_MAX: i128 = u64::MAX as i128;

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
        kv_conformance::entries_by_key(keys, batch::get_many(b, keys).map_err(err)?)
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
