//! Opens arbitrary bytes as a kv-fs bucket file and reads everything.
//! Under `cfg(fuzzing)` the engine skips checksum verification so the
//! fuzzer reaches the page parsers, the allocator and the checker.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    kv_fs_engine::fuzz_open_and_read(data);
});
