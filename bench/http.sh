#!/usr/bin/env bash
# HTTP hello world through a waPC function, a WAGI (CGI) program and a
# wasi:http component, served by Atoll, against a plain hyper hello-world
# server (crates/atoll-bench) and against `wasmtime serve` (same Wasmtime
# version as Atoll's) running the same component, in the same run, with the
# same client (wrk), on the same machine. Prints requests/s and the ratios.
# The waPC function is also served over HTTPS (`--tls-cert`, with a
# certificate the script makes with openssl; wrk's connections are kept
# alive, so this is the cost of TLS records, not of handshakes).
#
#   bench/http.sh [seconds-per-round] [connections]
#
# `wasmtime serve` is `$WASMTIME` if set, else the pinned wasmtime-cli,
# installed once with `cargo install` into target/bench-tools/ (about 15
# minutes on 2 cores); set WASMTIME=skip to leave it out.
#
# Every server is first warmed up with an unmeasured round ($WARMUP
# seconds, default 3). Rounds alternate between the servers so drift on a
# shared machine hits both; each server's figure is the median of its
# rounds.
set -euo pipefail
cd "$(dirname "$0")/.."
DURATION=${1:-10}
CONNECTIONS=${2:-64}
ROUNDS=${ROUNDS:-3}

if ! command -v wrk >/dev/null; then
  echo "installing wrk (Debian package)..." >&2
  if [ "$(id -u)" = 0 ]; then apt-get install -y -qq wrk >/dev/null; else sudo apt-get install -y -qq wrk >/dev/null; fi
fi

echo "building (dist profile: release with fat LTO, as deployed)..." >&2
cargo build --profile dist -q -p atoll -p atoll-bench
cargo run --release -q -p atoll-testkit --bin build-guests

# Servers run as in production: a backtrace captured for every error
# (RUST_BACKTRACE=1, common in development shells) costs Wasmtime's
# component stores several microseconds per request.
unset RUST_BACKTRACE RUST_LIB_BACKTRACE

work=$(mktemp -d)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; rm -rf "$work"; }
trap cleanup EXIT

cp target/guests/wasm32-unknown-unknown/release/wapc_plain.wasm "$work/hello.wasm"
cp target/guests/wasm32-wasip1/release/wagi_rust.wasm "$work/cgi.wasm"
# A wasi:http hello that imports only what `wasmtime serve -Scli` provides.
cp target/guests/wasm32-wasip2/release/wasi_http_old.wasm "$work/component.wasm"
cat > "$work/atoll.toml" <<'TOML'
[app]
name = "bench-hello"

[functions.hello]
source = "hello.wasm"

[functions.cgi]
source = "cgi.wasm"
abi = "wagi"

[functions.component]
source = "component.wasm"
abi = "wasi-http"

[[routes]]
method = "GET"
path = "/"
steps = [{ fn = "hello", op = "hello" }]

[[routes]]
method = "GET"
path = "/cgi"
fn = "cgi"

[[routes]]
method = "GET"
path = "/component"
fn = "component"
TOML

WASMTIME_VERSION=$(sed -n 's/^wasmtime = .*version = "=\([^"]*\)".*/\1/p' Cargo.toml)
if [ -z "${WASMTIME:-}" ]; then
  WASMTIME="target/bench-tools/wasmtime-$WASMTIME_VERSION/bin/wasmtime"
  if [ ! -x "$WASMTIME" ]; then
    echo "installing wasmtime-cli $WASMTIME_VERSION for the comparison (once; about 15 minutes on 2 cores)..." >&2
    cargo install -q wasmtime-cli --version "$WASMTIME_VERSION" --locked --root "target/bench-tools/wasmtime-$WASMTIME_VERSION" >&2 \
      || { echo "could not install wasmtime-cli: the wasmtime serve row is skipped" >&2; WASMTIME=skip; }
  fi
fi

# shellcheck source=bench/lib.sh
. bench/lib.sh

target/dist/hyper-hello 127.0.0.1:38080 2>/dev/null & pids+=($!); pid_hyper=$!
ATOLL_CACHE_DIR="$work/cache" target/dist/atoll serve "$work" --listen 127.0.0.1:38081 --log-format json 2>/dev/null & pids+=($!); pid_atoll=$!
ATOLL_LOG=warn ATOLL_CACHE_DIR="$work/cache" target/dist/atoll serve "$work" --listen 127.0.0.1:38082 --log-format json 2>/dev/null & pids+=($!); pid_atoll_quiet=$!
ATOLL_CACHE_DIR="$work/cache" target/dist/atoll serve "$work" --listen 127.0.0.1:38084 --log-format json --no-metrics 2>/dev/null & pids+=($!); pid_atoll_nometrics=$!
# The same server over HTTPS, with a certificate of the run's own.
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -noenc -days 1 -subj /CN=localhost \
  -keyout "$work/tls.key" -out "$work/tls.pem" 2>/dev/null
ATOLL_CACHE_DIR="$work/cache" target/dist/atoll serve "$work" --listen 127.0.0.1:38085 --log-format json \
  --tls-cert "$work/tls.pem" --tls-key "$work/tls.key" 2>/dev/null & pids+=($!); pid_atoll_tls=$!
if [ "$WASMTIME" != skip ]; then
  "$WASMTIME" serve -Scli --addr 127.0.0.1:38083 "$work/component.wasm" 2>/dev/null & pids+=($!); pid_wasmtime=$!
fi
wait_port 127.0.0.1:38080; wait_port 127.0.0.1:38081; wait_port 127.0.0.1:38082; wait_port 127.0.0.1:38084
wait_port 127.0.0.1:38085 https
[ "$WASMTIME" = skip ] || wait_port 127.0.0.1:38083
[ "$(curl -s http://127.0.0.1:38081/)" = "Hello, world!" ] || { echo "atoll did not answer Hello, world!" >&2; exit 1; }
# The WAGI program's first argument is the query's first item.
CGI_PATH="cgi?hello"
[ "$(curl -s "http://127.0.0.1:38081/$CGI_PATH")" = "Hello, world!" ] || { echo "atoll's WAGI program did not answer Hello, world!" >&2; exit 1; }
curl -s http://127.0.0.1:38081/component | grep -q "hello from wasi:http" || { echo "atoll's component did not answer" >&2; exit 1; }
[ "$WASMTIME" = skip ] || curl -s http://127.0.0.1:38083/component | grep -q "hello from wasi:http" || { echo "wasmtime serve did not answer" >&2; exit 1; }


names="hyper atoll atoll_nometrics atoll_quiet atoll_tls atoll_wagi atoll_component"
[ "$WASMTIME" = skip ] || names+=" wasmtime_serve"
# Sets port, pid, path and scheme for a row's server.
target() {
  path=""
  scheme=http
  case $1 in
    hyper) port=38080; pid=$pid_hyper;;
    atoll) port=38081; pid=$pid_atoll;;
    atoll_quiet) port=38082; pid=$pid_atoll_quiet;;
    atoll_nometrics) port=38084; pid=$pid_atoll_nometrics;;
    atoll_tls) port=38085; pid=$pid_atoll_tls; scheme=https;;
    atoll_wagi) port=38081; pid=$pid_atoll; path=$CGI_PATH;;
    atoll_component) port=38081; pid=$pid_atoll; path=component;;
    wasmtime_serve) port=38083; pid=$pid_wasmtime; path=component;;
  esac
}

echo "warming every server up (${WARMUP:-3}s each, not measured)..." >&2
for name in $names; do target "$name"; SCHEME=$scheme warm 127.0.0.1:$port "$path"; done

declare -A results cpus
for round in $(seq "$ROUNDS"); do
  for name in $names; do
    target "$name"
    read -r r c < <(SCHEME=$scheme measure 127.0.0.1:$port "$pid" "$path")
    results[$name]+="$r "
    cpus[$name]+="$c "
    echo "round $round/$ROUNDS: $name $r req/s, $c us CPU/request" >&2
  done
done

h=$(med "${results[hyper]}"); a=$(med "${results[atoll]}"); q=$(med "${results[atoll_quiet]}")
hc=$(med "${cpus[hyper]}"); ac=$(med "${cpus[atoll]}"); qc=$(med "${cpus[atoll_quiet]}")
w=$(med "${results[atoll_wagi]}"); wc=$(med "${cpus[atoll_wagi]}")
echo
echo "HTTP hello world, wrk -t1 -c$CONNECTIONS, ${DURATION}s x $ROUNDS rounds, medians ($(nproc) cores shared by client and server)"
n=$(med "${results[atoll_nometrics]}"); nc=$(med "${cpus[atoll_nometrics]}")
# One row: name, req/s, CPU/request; the ratios are against hyper's.
row() { printf '%-44s %10.0f %8.2f %13.1f us %9.2f\n' "$1" "$2" "$(echo "$2 / $h" | bc -l)" "$3" "$(echo "$3 / $hc" | bc -l)"; }
printf '%-44s %10s %8s %16s %9s\n' "server" "req/s" "ratio" "server CPU/req" "CPU ratio"
row "plain hyper (baseline)" "$h" "$hc"
row "atoll, waPC function, request log on" "$a" "$ac"
row "atoll, waPC function, log on, --no-metrics" "$n" "$nc"
row "atoll, waPC function, request log off" "$q" "$qc"
t=$(med "${results[atoll_tls]}"); tc=$(med "${cpus[atoll_tls]}")
row "atoll, waPC function, log on, HTTPS" "$t" "$tc"
row "atoll, WAGI (CGI) program, log on" "$w" "$wc"
k=$(med "${results[atoll_component]}"); kc=$(med "${cpus[atoll_component]}")
row "atoll, wasi:http component, log on" "$k" "$kc"
printf 'metrics on cost %.1f%% of requests/s and %.1f%% of CPU/request (waPC, log on, against --no-metrics)\n' \
  "$(echo "(1 - $a / $n) * 100" | bc -l)" "$(echo "($ac / $nc - 1) * 100" | bc -l)"
if [ "$WASMTIME" != skip ]; then
  m=$(med "${results[wasmtime_serve]}"); mc=$(med "${cpus[wasmtime_serve]}")
  row "wasmtime serve $WASMTIME_VERSION, same component" "$m" "$mc"
  printf 'atoll serves the component at %.2fx the requests/s of wasmtime serve\n' "$(echo "$k / $m" | bc -l)"
fi
