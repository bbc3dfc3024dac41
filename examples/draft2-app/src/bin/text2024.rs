//! The draft2 app built against the 2024 text of `get-many` (as published,
//! `wit/draft2-2024`).

wit_bindgen::generate!({
    path: "../../wit/draft2-2024",
    world: "kv-virt:draft2-2024/app",
    generate_all,
});

use kv_draft2_app::Draft2;
use wasi::keyvalue::{atomics, batch, store};

kv_draft2_app::describe_errors!();

struct Text2024;

impl Draft2 for Text2024 {
    kv_draft2_app::same_in_both_texts!();

    fn get_many(bucket: &store::Bucket, keys: &[String]) -> Result<Vec<Option<Vec<u8>>>, String> {
        // `none` for a missing key, the key and its value otherwise.
        let entries = batch::get_many(bucket, keys).map_err(describe)?;
        Ok(entries
            .into_iter()
            .map(|entry| entry.map(|(_, value)| value))
            .collect())
    }
}

fn main() {
    kv_draft2_app::main::<Text2024>();
}
