//! The conformance guest built against wasi:keyvalue@0.2.0-draft2, its
//! `get-many` in the shape of upstream PR #55 (as Spin uses it).

use kv_conformance::{Kv, KvResult};

wit_bindgen::generate!({
    path: "../../wit",
    world: "kv-virt:adapters/app-draft2",
    generate_all,
});

use wasi::keyvalue0_2_0_draft2::{atomics, batch, store};

struct Draft2;

kv_conformance::same_in_both_drafts!(conversions);

impl Kv for Draft2 {
    kv_conformance::draft2_but_get_many!();

    fn get_many(b: &Self::Bucket, keys: &[String]) -> KvResult<Vec<(String, Option<Vec<u8>>)>> {
        batch::get_many(b, keys).map_err(err)
    }
}

fn main() {
    std::process::exit(kv_conformance::run::<Draft2>());
}
