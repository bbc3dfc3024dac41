#!/usr/bin/env bash
# The README's main command: compose the counter example with an adapter and
# run it three times on a WASI runtime that has no wasi:keyvalue of its own.
set -euo pipefail
cd "$(dirname "$0")/.."

cargo build --quiet -p kv-virt -p kv-runner -p kv-virt-tests
counter=$(ls target/wasm-build/wasm32-wasip2/wasm/kv-counter.wasm)
mkdir -p target/demo

echo "== kv-virt plug counter.wasm mem -o target/demo/counter-mem.wasm"
./target/debug/kv-virt plug "$counter" mem -o target/demo/counter-mem.wasm
echo "== kv-virt inspect target/demo/counter-mem.wasm (no wasi:keyvalue import left)"
./target/debug/kv-virt inspect target/demo/counter-mem.wasm
for run in 1 2 3; do
    echo "== run $run: kv-run target/demo/counter-mem.wasm"
    ./target/debug/kv-run target/demo/counter-mem.wasm
done
