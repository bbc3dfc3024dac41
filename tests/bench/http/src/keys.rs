//! The benchmark's keys and values, written once: the guest includes this
//! file (`#[path]`) and the harness's native clients use it, so both read
//! and write the same keys in the same order.

pub fn key(i: u64) -> String {
    format!("key-{i:06}")
}

pub fn value(i: u64) -> Vec<u8> {
    (0..100).map(|j| (i + j) as u8).collect()
}

/// A cheap deterministic sequence of key indexes.
pub fn pick(i: u64, keys: u64) -> u64 {
    i.wrapping_mul(0x9e37_79b9_7f4a_7c15).rotate_left(17) % keys
}
