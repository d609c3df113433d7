#!/usr/bin/env bash
# What the p99 of a load cell waits for (issue 20): runs one cell of bench/load.py (one
# target, one path, one workload, 12 s) and records the scheduler for 3 s in its middle with
# `perf sched record` (needs root and perf), then prints each thread of the gateway, wrk and
# the upstream: its CPU time, how often it was switched out, and how long it waited for a
# CPU once runnable (average and maximum), beside the cell's req/s and p99.
#
#   bench/sched.sh [--target claimgate|haproxy|envoy] [--path proxy|stock]
#                  [--workload noauth|one] [--claimgate BIN]
#
# On a machine where wrk, the upstream and the gateway share the cores, a thread that blocks
# (epoll_wait with nothing ready) and is woken again waits for a CPU that another process
# holds; the maximum wait is what a request caught behind it adds to the tail. BENCHMARKS.md,
# "Issue 20", has a run. Uses .venv as bench/load.sh does (run that once first).
set -euo pipefail
cd "$(dirname "$0")/.."

target=claimgate path=proxy workload=noauth binary=target/release/claimgate
while [[ $# -gt 0 ]]; do
  case "$1" in
    --target) target=$2; shift 2 ;;
    --path) path=$2; shift 2 ;;
    --workload) workload=$2; shift 2 ;;
    --claimgate) binary=$2; shift 2 ;;
    *) echo "usage: bench/sched.sh [--target T] [--path P] [--workload W] [--claimgate BIN]" >&2; exit 2 ;;
  esac
done
command -v perf >/dev/null || { echo "bench/sched.sh: perf is needed" >&2; exit 1; }
[[ -x .venv/bin/python ]] || { echo "bench/sched.sh: run bench/load.sh once first (.venv)" >&2; exit 1; }

work=$(mktemp -d /tmp/claimgate-sched.XXXXXX)
load_pid=
cleanup() {
  [[ -n $load_pid ]] && kill "$load_pid" 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

.venv/bin/python bench/load.py --claimgate "$binary" --quick --targets "$target" \
  --paths "$path" --workloads "$workload" --duration 12 --rounds 1 >"$work/load.log" 2>&1 &
load_pid=$!
# The measured run starts when wrk does (after the target's own checks).
for _ in $(seq 1 600); do
  pgrep -x wrk >/dev/null && break
  sleep 0.1
done
pgrep -x wrk >/dev/null || { cat "$work/load.log" >&2; exit 1; }
sleep 4
perf sched record -a -o "$work/sched.data" -- sleep 3 >/dev/null 2>&1
# The upstream is a HAProxy too: name its threads.
upstream=$(for pid in $(pgrep -f "upstream.cfg" || true); do ls "/proc/$pid/task"; done | xargs)
wait "$load_pid"
load_pid=

echo "$target, $path, $workload: 3 s of perf sched at $(date -u +%H:%M:%S) UTC"
perf sched latency -i "$work/sched.data" --pids --sort max 2>/dev/null |
  grep -E "^ *(Task|claimgate|haproxy|envoy|wrk)" || true
echo "the upstream's threads: ${upstream:-none found}"
grep -E "^\| $target " "$work/load.log" | head -1
