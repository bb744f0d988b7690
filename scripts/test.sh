#!/usr/bin/env bash
# Runs every Atoll test on a fresh machine: installs what the tests need,
# checks formatting and lints, builds the guest fixtures once, then runs the
# whole suite. This is the README's test command and what CI runs.
set -euo pipefail
cd "$(dirname "$0")/.."

# On a fresh clone, incremental compilation only writes (about 2 GB of
# target/debug/incremental) and is never read back.
if [ -n "${CI:-}" ]; then export CARGO_INCREMENTAL=0; fi

step() { printf '\n==> %s\n' "$*" >&2; }
as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }

step "WebAssembly targets"
rustup target add wasm32-unknown-unknown wasm32-wasip1 wasm32-wasip2

step "system packages (Node.js for the AssemblyScript guest, redis-server, nats-server and postgresql for the backend tests, clang + wasi-libc for the C WAGI guest, openssl for the signing-key interchange test)"
# nats-server is in /usr/sbin, which a non-root PATH may lack.
export PATH="$PATH:/usr/sbin"
missing=()
command -v npm >/dev/null || missing+=(nodejs npm)
command -v redis-server >/dev/null || missing+=(redis-server)
command -v nats-server >/dev/null || missing+=(nats-server)
command -v openssl >/dev/null || missing+=(openssl)
# PostgreSQL's binaries are off the PATH on Debian (/usr/lib/postgresql/<version>/bin).
compgen -G "/usr/lib/postgresql/*/bin/postgres" >/dev/null || command -v postgres >/dev/null || missing+=(postgresql)
command -v clang >/dev/null || missing+=(clang)
command -v wasm-ld >/dev/null || missing+=(lld)
[ -e /usr/lib/wasm32-wasi/libc.a ] || missing+=(wasi-libc)
compgen -G "/usr/lib/llvm-*/lib/clang/*/lib/wasi/libclang_rt.builtins-wasm32.a" >/dev/null || missing+=(libclang-rt-dev-wasm32)
if [ ${#missing[@]} -gt 0 ]; then
  as_root apt-get update -qq
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
fi
# A real Prometheus scrapes a running atoll in the metrics test, and
# promtool lints /-/metrics; without recommends (no node exporter, no
# services the test does not use).
if ! command -v prometheus >/dev/null || ! command -v promtool >/dev/null; then
  step "system packages (prometheus and promtool for the metrics test)"
  as_root apt-get update -qq
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends prometheus >/dev/null
fi

step "formatting"
cargo fmt --all --check
wasm_workspaces=(sdk/rust tests/guests examples/*/)
for m in "${wasm_workspaces[@]}"; do (cd "$m" && cargo fmt --check); done

step "lints (host workspace)"
cargo clippy --workspace --all-targets -- -D warnings
step "lints (SDK, guest fixtures, examples, for wasm)"
for m in "${wasm_workspaces[@]}"; do
  CARGO_TARGET_DIR=target/guests cargo clippy -q --manifest-path "${m%/}/Cargo.toml" --target wasm32-wasip1 --all-targets -- -D warnings
done

step "guest fixtures (built once for the whole run)"
cargo run -q -p atoll-testkit --bin build-guests
export ATOLL_GUESTS_PREBUILT=1

step "tests"
if cargo nextest --version >/dev/null 2>&1; then
  cargo nextest run --workspace --no-fail-fast -E 'not binary(hostile)'
else
  cargo test --workspace --no-fail-fast --exclude atoll
  cargo test -p atoll --no-fail-fast --bins --test cli --test deploy --test apps
fi

# The Dockerfile and deploy/kubernetes checked against the code with the
# atoll just built (flags, probe paths, ports, grace periods, writable
# mounts), then the image built and run where a container engine is
# reachable; elsewhere one line says why it was not.
step "deployment: Dockerfile and Kubernetes manifests in step with the code; the image, where a container engine runs"
python3 -c 'import yaml' 2>/dev/null || python3 -m pip install -q pyyaml || as_root apt-get install -y -qq python3-yaml >/dev/null
python3 deploy/check.py target/debug/atoll
deploy/image-test.sh target/debug/atoll

# Every cargo command below selects with --workspace rather than -p: with
# -p, Cargo resolves features for that package alone, and a different feature
# set for Wasmtime means building Wasmtime again (minutes, and gigabytes of
# target/ on a machine whose disk may be small).

# The standing hostile-input suite (crates/atoll/tests/hostile.rs): alone and
# one case at a time, so its latency and memory figures are not measured on
# a machine busy with other tests. Every new attack becomes a case there.
step "hostile-input suite"
if cargo nextest --version >/dev/null 2>&1; then
  cargo nextest run --workspace -E 'binary(hostile)' --test-threads 1 --no-fail-fast --success-output final
else
  cargo test --workspace --test hostile -- --test-threads 1 --nocapture
fi
cargo test --workspace --doc
cargo test -q --manifest-path sdk/rust/Cargo.toml

step "benchmarks build and run (quick mode, in a debug build: the figures show the benches run, they are not measurements; see README Performance)"
ATOLL_BENCH_QUICK=1 cargo test -q --workspace --bench invoke --bench link --bench record --bench messaging

step "all tests passed"
