#!/usr/bin/env bash
# Restart with a warm compile cache: from exec to the first answered request,
# for a bundle of 20 functions with 20 distinct modules. Also a cold start
# (empty cache) and the server's idle memory, measured in the same run.
#
#   bench/restart.sh [runs]
set -euo pipefail
cd "$(dirname "$0")/.."
RUNS=${1:-7}

echo "building (release)..." >&2
cargo build --release -q -p atoll
cargo run --release -q -p atoll-testkit --bin build-guests

work=$(mktemp -d)
trap 'pkill -f "atoll serve $work" 2>/dev/null || true; rm -rf "$work"' EXIT
mkdir -p "$work/app"

# 20 distinct modules: the plain guest, each with a custom section of its own.
python3 - "$work/app" target/guests/wasm32-unknown-unknown/release/wapc_plain.wasm <<'PY'
import sys
app, guest = sys.argv[1], open(sys.argv[2], "rb").read()
def leb(n):
    out = bytearray()
    while True:
        b = n & 0x7F; n >>= 7
        out.append(b | (0x80 if n else 0))
        if not n: return bytes(out)
manifest = ['[app]\nname = "twenty"\n']
for i in range(1, 21):
    name = f"f{i:02}".encode()
    payload = leb(len(name)) + name + b"distinct-" + name
    with open(f"{app}/f{i:02}.wasm", "wb") as f:
        f.write(guest + b"\x00" + leb(len(payload)) + payload)
    manifest.append(f'\n[functions.f{i:02}]\nsource = "f{i:02}.wasm"\n\n[[routes]]\nmethod = "GET"\npath = "/f{i:02}"\nsteps = [{{ fn = "f{i:02}", op = "hello" }}]\n')
open(f"{app}/atoll.toml", "w").write("".join(manifest))
PY
target/release/atoll bundle "$work/app" -o "$work/twenty.atoll" 2>/dev/null

# Prints "milliseconds-to-first-200 idle-RSS-kB" for one start.
start_once() {
  python3 - "$work/twenty.atoll" "$1" <<'PY'
import os, socket, subprocess, sys, time, urllib.request
bundle, cache = sys.argv[1], sys.argv[2]
s = socket.socket(); s.bind(("127.0.0.1", 0)); port = s.getsockname()[1]; s.close()
env = dict(os.environ, ATOLL_CACHE_DIR=cache, ATOLL_LOG="warn")
t0 = time.perf_counter()
p = subprocess.Popen(["target/release/atoll", "serve", bundle, "--listen", f"127.0.0.1:{port}", "--data-dir", cache + ".data"],
                     env=env, stderr=subprocess.DEVNULL)
while True:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/f20", timeout=1) as r:
            if r.status == 200 and r.read() == b"Hello, world!":
                break
    except Exception:
        time.sleep(0.002)
    if time.perf_counter() - t0 > 60: sys.exit("the server did not answer within 60 s")
ms = (time.perf_counter() - t0) * 1000
time.sleep(0.5)
rss = next(l.split()[1] for l in open(f"/proc/{p.pid}/status") if l.startswith("VmRSS"))
p.terminate(); p.wait()
print(f"{ms:.0f} {rss}")
PY
}

median() { sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }

cold=$(start_once "$work/cold-cache")        # compiles (and snapshots) all 20 modules
start_once "$work/warm-cache" >/dev/null      # fills the warm cache
warm=(); rss=()
for i in $(seq "$RUNS"); do
  read -r ms kb < <(start_once "$work/warm-cache")
  warm+=("$ms"); rss+=("$kb")
  echo "run $i/$RUNS: first answer after $ms ms, idle RSS $((kb / 1024)) MiB" >&2
done
w=$(printf '%s\n' "${warm[@]}" | median)
r=$(printf '%s\n' "${rss[@]}" | median)
echo
echo "restart of a 20-function bundle ($(nproc) cores), median of $RUNS"
printf '%-48s %8s\n' "first request answered, warm compile cache" "$w ms"
printf '%-48s %8s\n' "first request answered, cold (empty) cache" "${cold%% *} ms"
printf '%-48s %8s\n' "idle RSS after start" "$((r / 1024)) MiB"
