#!/usr/bin/env bash
# Streaming through a component: 1 GiB uploaded to a component that echoes
# it back, and 1 GiB written by a component, with the server's peak memory
# (VmHWM) measured against its idle memory in the same run. The component
# has 4 MiB of linear memory; a body that sat whole anywhere would show up
# as a gigabyte of peak RSS.
#
#   bench/stream.sh [MiB]
set -euo pipefail
cd "$(dirname "$0")/.."
MIB=${1:-1024}

echo "building (release)..." >&2
cargo build --release -q -p atoll
cargo run --release -q -p atoll-testkit --bin build-guests

work=$(mktemp -d)
pid=""
cleanup() { [ -n "$pid" ] && kill "$pid" 2>/dev/null; rm -rf "$work"; }
trap cleanup EXIT
cp target/guests/wasm32-wasip2/release/wasi_http_rust.wasm "$work/component.wasm"
cat > "$work/atoll.toml" <<TOML
[app]
name = "stream"

[functions.pipe]
source = "component.wasm"
abi = "wasi-http"
memory = "4MiB"
timeout = "10m"

[[routes]]
path = "/pipe/*rest"
fn = "pipe"
max_body = "$((MIB + 1))MiB"
TOML

ATOLL_CACHE_DIR="$work/cache" target/release/atoll serve "$work" --listen 127.0.0.1:38090 --log-format json 2>"$work/log" & pid=$!
for _ in $(seq 100); do curl -sf http://127.0.0.1:38090/pipe/hello >/dev/null 2>&1 && break; sleep 0.1; done
hwm() { awk '/VmHWM/ {print $2}' "/proc/$pid/status"; }
rss() { awk '/VmRSS/ {print $2}' "/proc/$pid/status"; }
idle=$(rss)

started=$(date +%s.%N)
up=$(head -c "$((MIB << 20))" /dev/zero | curl -s -T - -H 'content-type: application/octet-stream' \
  http://127.0.0.1:38090/pipe/echo | wc -c)
up_s=$(echo "$(date +%s.%N) - $started" | bc -l)
after_up=$(hwm)

started=$(date +%s.%N)
down=$(curl -s "http://127.0.0.1:38090/pipe/big?$((MIB << 20))" | wc -c)
down_s=$(echo "$(date +%s.%N) - $started" | bc -l)
after_down=$(hwm)

[ "$up" = "$((MIB << 20))" ] || { echo "echo returned $up bytes, not $((MIB << 20))" >&2; exit 1; }
[ "$down" = "$((MIB << 20))" ] || { echo "download returned $down bytes, not $((MIB << 20))" >&2; exit 1; }
echo
echo "streaming $MIB MiB through a component with 4 MiB of memory ($(nproc) cores, curl on the same machine)"
printf '%-34s %10s %12s\n' "" "seconds" "peak RSS"
printf '%-34s %10s %9d MiB\n' "idle server" "" "$((idle / 1024))"
printf '%-34s %10.1f %9d MiB\n' "upload, echoed back" "$up_s" "$((after_up / 1024))"
printf '%-34s %10.1f %9d MiB\n' "download, written by the component" "$down_s" "$((after_down / 1024))"
