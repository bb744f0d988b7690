# Shared by the bench/*.sh scripts (sourced, not run): waiting for a server,
# one wrk round with the server's CPU time around it, and medians.

# Waits up to 60 s for http://$1/ to answer; exits the script otherwise. A
# fresh compile cache means Atoll compiles every module before it listens,
# which on a loaded 2-core machine has taken more than 10 s.
# $2 is the scheme, http unless given (https is not verified: the benches'
# certificates are their own).
wait_port() { for _ in $(seq 600); do curl -sfk "${2:-http}://$1/" >/dev/null 2>&1 && return 0; sleep 0.1; done; echo "server on $1 did not start" >&2; exit 1; }

# CPU time (user+system, in clock ticks) a server process has used so far.
cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
TICK=$(getconf CLK_TCK)

# Prints "requests/s cpu-microseconds-per-request" for one wrk round of
# $DURATION seconds with $CONNECTIONS connections against $SCHEME://$1/$3
# (SCHEME: http unless set), served by process $2.
measure() {
  local before after out
  before=$(cpu_ticks "$2")
  out=$(wrk -t1 -c"$CONNECTIONS" -d"${DURATION}s" "${SCHEME:-http}://$1/${3:-}")
  after=$(cpu_ticks "$2")
  echo "$out" | awk -v b="$before" -v a="$after" -v t="$TICK" '
    /Requests\/sec/ {rps=$2}
    /requests in/ {n=$1}
    END {printf "%s %.3f\n", rps, (a-b)/t*1e6/n}'
}

# One unmeasured wrk round of $WARMUP seconds (default 3) against
# $SCHEME://$1/$2: a fresh server's first seconds (pool slots mapped, caches
# cold) are its slowest, and would otherwise land in its first round only.
warm() { wrk -t1 -c"$CONNECTIONS" -d"${WARMUP:-3}s" "${SCHEME:-http}://$1/${2:-}" >/dev/null; }

# The median of the numbers on standard input, one per line.
median() { sort -g | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
# The median of the space-separated numbers in $1.
med() { echo "$1" | tr ' ' '\n' | grep . | median; }
