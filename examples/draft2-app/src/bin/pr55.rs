//! The draft2 app built against upstream PR #55's `get-many` (the text
//! vendored in `wit/deps`, as Spin uses it).

wit_bindgen::generate!({
    path: "../../wit",
    world: "kv-virt:adapters/app-draft2",
    generate_all,
});

use kv_draft2_app::Draft2;
use wasi::keyvalue0_2_0_draft2::{atomics, batch, store};

kv_draft2_app::describe_errors!();

struct Pr55;

impl Draft2 for Pr55 {
    kv_draft2_app::same_in_both_texts!();

    fn get_many(bucket: &store::Bucket, keys: &[String]) -> Result<Vec<Option<Vec<u8>>>, String> {
        // Every key, with `none` where it is missing.
        let entries = batch::get_many(bucket, keys).map_err(describe)?;
        Ok(entries.into_iter().map(|(_, value)| value).collect())
    }
}

fn main() {
    kv_draft2_app::main::<Pr55>();
}
