#!/usr/bin/env bash
# The README's main command: compose the counter example with kv-fs and run
# it three times on a WASI 0.2 runtime that has no wasi:keyvalue of its own.
# The count lives in demo-data/counter.kvfs and persists across runs (run
# the script again: it keeps counting); `kv-virt fs check` verifies the file.
#
# The runtime: `wasmtime` if it is on PATH, else Node.js through jco (the
# packages pinned in tests/node), else kv-run (the embedded wasmtime, built
# here: the slowest to build). KV_DEMO_RUNTIME=wasmtime|node|kv-run picks one.
set -euo pipefail
cd "$(dirname "$0")/.."

# Some rustups do not add the targets rust-toolchain.toml lists.
rustup target list --installed 2>/dev/null | grep -qx wasm32-wasip2 || rustup target add wasm32-wasip2
# kv-virt's build compiles Binaryen (C++), which shrinks the adapters it carries.
if ! command -v c++ >/dev/null; then
    echo "== installing g++ (Debian), for Binaryen"
    if [ "$(id -u)" = 0 ]; then sudo=; else sudo=sudo; fi
    $sudo apt-get update -qq
    $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends g++
fi

runtime=${KV_DEMO_RUNTIME:-}
if [ -z "$runtime" ]; then
    if command -v wasmtime >/dev/null; then
        runtime=wasmtime
    elif command -v node >/dev/null && command -v npm >/dev/null &&
        [ "$(node -p 'process.versions.node.split(".")[0]')" -ge 18 ]; then
        runtime=node
    else
        runtime=kv-run
    fi
fi

target=${CARGO_TARGET_DIR:-target}
echo "== building kv-virt (it carries the adapters, built for wasm32-wasip2) and the counter example"
packages=(-p kv-virt)
[ "$runtime" = kv-run ] && packages+=(-p kv-runner)
cargo build --quiet "${packages[@]}"
# The counter, as kv-virt's build script builds the adapters (same target
# directory and profile).
cargo build --quiet --target wasm32-wasip2 --profile wasm --target-dir "$target/wasm-build" -p kv-counter
counter=$target/wasm-build/wasm32-wasip2/wasm/kv-counter.wasm
kv_virt=$target/debug/kv-virt
mkdir -p target/demo demo-data

run() {
    case "$runtime" in
    wasmtime) wasmtime run --dir demo-data::/data "$@" ;;
    node) node tests/node/run.mjs --dir demo-data::/data "$@" ;;
    kv-run) "$target/debug/kv-run" --dir demo-data::/data "$@" ;;
    *) echo "KV_DEMO_RUNTIME=$runtime: expected wasmtime, node or kv-run" >&2; exit 2 ;;
    esac
}
if [ "$runtime" = node ] && [ ! tests/node/node_modules/.package-lock.json -nt tests/node/package-lock.json ]; then
    echo "== installing jco and preview2-shim (tests/node, npm ci)"
    npm ci --silent --no-audit --no-fund --prefix tests/node
fi

echo "== kv-virt plug counter.wasm fs --dir /data -o target/demo/counter-fs.wasm"
"$kv_virt" plug "$counter" fs --dir /data -o target/demo/counter-fs.wasm
echo "== kv-virt inspect target/demo/counter-fs.wasm   (no wasi:keyvalue import left)"
"$kv_virt" inspect target/demo/counter-fs.wasm
for n in 1 2 3; do
    echo "== run $n on $runtime: --dir demo-data::/data target/demo/counter-fs.wasm"
    run target/demo/counter-fs.wasm
done
echo "== kv-virt fs check demo-data/counter.kvfs"
"$kv_virt" fs check demo-data/counter.kvfs
