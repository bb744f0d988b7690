#!/usr/bin/env bash
# What Prometheus metrics cost a request: the waPC hello served by two Atoll
# processes of the same dist build, one recording metrics and one with
# `--no-metrics`, measured in alternating short rounds with the same client
# (wrk). Each round pair gives one ratio; the figure is the median of the
# pairs, so drift on a shared machine cancels instead of landing on one side
# (bench/http.sh compares medians of a few long rounds, which is too coarse
# for a difference of a few percent).
#
#   bench/metrics.sh [seconds-per-round] [pairs] [connections]
#
# SKIP_BUILD=1 measures the dist binary already built (e.g. the one
# bench/http.sh just built), as long as the request path has not changed.
set -euo pipefail
cd "$(dirname "$0")/.."
DURATION=${1:-5}
PAIRS=${2:-9}
CONNECTIONS=${3:-64}

command -v wrk >/dev/null || { echo "needs wrk (apt-get install wrk)" >&2; exit 1; }
if [ -z "${SKIP_BUILD:-}" ]; then
  echo "building (dist profile, as deployed)..." >&2
  cargo build --profile dist -q -p atoll
  cargo run --release -q -p atoll-testkit --bin build-guests
fi
unset RUST_BACKTRACE RUST_LIB_BACKTRACE
dist=${CARGO_TARGET_DIR:-target}/dist/atoll

work=$(mktemp -d)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; rm -rf "$work"; }
trap cleanup EXIT
cp target/guests/wasm32-unknown-unknown/release/wapc_plain.wasm "$work/hello.wasm"
cat > "$work/atoll.toml" <<'TOML'
[app]
name = "bench-metrics"

[functions.hello]
source = "hello.wasm"

[[routes]]
path = "/"
fn = "hello"
TOML

ATOLL_CACHE_DIR="$work/cache" "$dist" serve "$work" --listen 127.0.0.1:38281 --log-format json 2>/dev/null & pids+=($!); pid_on=$!
ATOLL_CACHE_DIR="$work/cache" "$dist" serve "$work" --listen 127.0.0.1:38282 --log-format json --no-metrics 2>/dev/null & pids+=($!); pid_off=$!
# shellcheck source=bench/lib.sh
. bench/lib.sh
wait_port 127.0.0.1:38281; wait_port 127.0.0.1:38282
curl -sf http://127.0.0.1:38281/-/metrics | grep -q atoll_http_requests_total || { echo "the metrics server records nothing" >&2; exit 1; }
curl -s -o /dev/null -w '%{http_code}' http://127.0.0.1:38282/-/metrics | grep -q 404 || { echo "--no-metrics still serves /-/metrics" >&2; exit 1; }


# Warm both (pool slots, compile cache, connection setup).
warm 127.0.0.1:38281; warm 127.0.0.1:38282
rps_ratios=""; cpu_ratios=""
for pair in $(seq "$PAIRS"); do
  # Alternate which goes first, so neither always follows the other.
  if [ $((pair % 2)) = 1 ]; then
    read -r r_on c_on < <(measure 127.0.0.1:38281 "$pid_on"); read -r r_off c_off < <(measure 127.0.0.1:38282 "$pid_off")
  else
    read -r r_off c_off < <(measure 127.0.0.1:38282 "$pid_off"); read -r r_on c_on < <(measure 127.0.0.1:38281 "$pid_on")
  fi
  rr=$(echo "$r_on / $r_off" | bc -l); cr=$(echo "$c_on / $c_off" | bc -l)
  rps_ratios+="$rr "; cpu_ratios+="$cr "
  printf 'pair %d/%d: metrics on %.0f req/s %.1f us CPU, off %.0f req/s %.1f us CPU: on/off %.3f req/s, %.3f CPU\n' \
    "$pair" "$PAIRS" "$r_on" "$c_on" "$r_off" "$c_off" "$rr" "$cr" >&2
done
rm_=$(med "$rps_ratios"); cm=$(med "$cpu_ratios")
echo
echo "waPC hello, wrk -t1 -c$CONNECTIONS, $PAIRS pairs of ${DURATION}s rounds, medians of the per-pair ratios ($(nproc) cores shared by client and server)"
printf 'metrics on / off: %.3f of requests/s (%.1f%% fewer), %.3f of CPU per request (%.1f%% more)\n' \
  "$rm_" "$(echo "(1 - $rm_) * 100" | bc -l)" "$cm" "$(echo "($cm - 1) * 100" | bc -l)"
