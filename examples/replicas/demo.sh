#!/usr/bin/env bash
# Three claimgate replicas behind HAProxy, sharing one Redis, on 127.0.0.1 (README "Running
# several replicas"). Needs redis-server and haproxy (Debian: apt-get install redis-server
# haproxy) and the claimgate binary (cargo build; or CLAIMGATE=/path/to/claimgate).
#
#   examples/replicas/demo.sh            # ports 18080 (HAProxy), 18081-18083, 19081-19083, 16390
#   BASE=28080 examples/replicas/demo.sh # other ports: BASE, BASE+1.., BASE+1001.., BASE-1690
#
# Everything it starts is stopped by its PID when it ends (or on Ctrl-C).
set -euo pipefail
cd "$(dirname "$0")"
claimgate=${CLAIMGATE:-../../target/debug/claimgate}
base=${BASE:-18080}
redis_port=$((base - 1690))
work=$(mktemp -d)
pids=()
stop() {
  for pid in "${pids[@]}"; do kill -CONT "$pid" 2>/dev/null || true; kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
  [ -n "${KEEP:-}" ] || rm -rf "$work"; [ -z "${KEEP:-}" ] || echo "kept $work"
}
trap stop EXIT

for tool in redis-server haproxy redis-cli curl; do
  command -v "$tool" >/dev/null || { echo "needs $tool (apt-get install redis-server haproxy curl)" >&2; exit 2; }
done
[ -x "$claimgate" ] || { echo "no claimgate at $claimgate: run cargo build, or set CLAIMGATE" >&2; exit 2; }

# A Redis of its own: no persistence, loopback only, a password (given to claimgate through the
# environment, never on its command line).
password=demo-$RANDOM$RANDOM
redis-server --port "$redis_port" --bind 127.0.0.1 --save '' --appendonly no \
  --requirepass "$password" --logfile "$work/redis.log" &
redis_pid=$!
pids+=("$redis_pid")
export CLAIMGATE_REDIS_URL="redis://:$password@127.0.0.1:$redis_port"
export REDISCLI_AUTH=$password

servers=""
for i in 1 2 3; do
  "$claimgate" serve --deployment deployment.json --listen "127.0.0.1:$((base + i))" \
    --admin "127.0.0.1:$((base + 1000 + i))" --drain-delay 1 \
    --execution-log "$work/execution-$i.log" --access-log /dev/null 2>"$work/replica-$i.err" &
  pids+=("$!")
  servers+="    server r$i 127.0.0.1:$((base + i)) check port $((base + 1000 + i)) inter 500ms fall 1 rise 2"$'\n'
done
cat >"$work/haproxy.cfg" <<CFG
defaults
    mode http
    timeout connect 1s
    timeout client 10s
    timeout server 10s
    retries 3
    option redispatch
    retry-on conn-failure empty-response response-timeout
listen replicas
    bind 127.0.0.1:$base
    balance roundrobin
    option httpchk GET /readyz
$servers
CFG
haproxy -f "$work/haproxy.cfg" -db >"$work/haproxy.log" 2>&1 &
pids+=("$!")

# Ready when each replica has connected to Redis and HAProxy sees all three up.
for i in 1 2 3; do
  for _ in $(seq 100); do grep -q sharedState.connected "$work/execution-$i.log" 2>/dev/null && break; sleep 0.1; done
done
sleep 1.5

burst() {
  local codes=()
  for _ in $(seq "$1"); do codes+=("$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$base/v1/hello")"); done
  printf '%s\n' "${codes[@]}" | sort | uniq -c | awk '{printf "  %s x %s\n", $2, $1}'
}

echo "== 30 requests at once through HAProxy (round robin over 3 replicas), limit 10/s TOTAL:"
burst 30
echo "== the bucket, in Redis (never a token; this one is the deployment's TOTAL):"
redis-cli -p "$redis_port" --no-auth-warning --scan --pattern 'claimgate:*' | sed 's/^/  /'
sleep 1.1
echo "== Redis hung (SIGSTOP): each replica falls back to its own bucket, no request fails:"
kill -STOP "$redis_pid"
burst 30
echo "== replica 1 says so in its execution log:"
grep -h sharedState.unavailable "$work/execution-1.log" | head -1 | grep -o '"code".*' | sed 's/^/  /'
kill -CONT "$redis_pid"
sleep 1.5
echo "== Redis back: shared again, without touching the replicas:"
grep -h sharedState.restored "$work/execution-1.log" | head -1 | grep -o '"code".*' | sed 's/^/  /'
sleep 1.1
burst 30
echo "== replica 2 drained (SIGTERM, --drain-delay 1): HAProxy takes it out, nothing fails:"
kill -TERM "${pids[2]}"
sleep 1.5
burst 10
grep -h 'r2 is DOWN' "$work/haproxy.log" | grep -o 'Server.*code: 503' | sed 's/^/  haproxy: /'
