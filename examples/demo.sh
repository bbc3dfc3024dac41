#!/usr/bin/env bash
# The README's main command: compose the counter example with kv-fs and run
# it three times on a WASI runtime that has no wasi:keyvalue of its own. The
# count lives in demo-data/counter.kvfs and persists across runs (run the
# script again: it keeps counting).
set -euo pipefail
cd "$(dirname "$0")/.."

# Older rustups do not add the targets rust-toolchain.toml lists.
rustup target add wasm32-wasip2 >/dev/null 2>&1 || true
cargo build --quiet -p kv-virt -p kv-virt-tests
counter=target/wasm-build/wasm32-wasip2/wasm/kv-counter.wasm
mkdir -p target/demo demo-data

echo "== kv-virt plug counter.wasm fs --dir /data -o target/demo/counter-fs.wasm"
./target/debug/kv-virt plug "$counter" fs --dir /data -o target/demo/counter-fs.wasm
echo "== kv-virt inspect target/demo/counter-fs.wasm   (no wasi:keyvalue import left)"
./target/debug/kv-virt inspect target/demo/counter-fs.wasm
for run in 1 2 3; do
    echo "== run $run: kv-run --dir demo-data::/data target/demo/counter-fs.wasm"
    ./target/debug/kv-run --dir demo-data::/data target/demo/counter-fs.wasm
done
echo "== kv-virt fs check demo-data/counter.kvfs"
./target/debug/kv-virt fs check demo-data/counter.kvfs
