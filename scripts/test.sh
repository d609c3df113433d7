#!/usr/bin/env bash
# The whole test suite, from a fresh clone: installs what the tests need, then checks
# formatting, lints and runs every test. Used by CI (.ci/run) and by developers.
set -euo pipefail
cd "$(dirname "$0")/.."

# Tokens in the interop tests are minted by Python `cryptography`, independently of claimgate.
if ! python3 -c 'import cryptography' 2>/dev/null; then
  echo "==> installing Python test requirements"
  python3 -m pip install --quiet --disable-pip-version-check -r tests/interop/requirements.txt
fi

# The end-to-end TOKEN_AUTHENTICATION tests run a real identity provider (oidc-provider).
if [ ! -d tests/idp/node_modules/oidc-provider ]; then
  echo "==> installing the test identity provider (npm ci in tests/idp)"
  (cd tests/idp && npm ci --no-audit --no-fund --loglevel=error)
fi

echo "==> cargo fmt --check"
cargo fmt --all -- --check
echo "==> cargo clippy"
cargo clippy --workspace --all-targets --quiet -- -D warnings
echo "==> cargo test"
log=$(mktemp)
trap 'rm -f "$log"' EXIT
set +e
cargo test --workspace 2>&1 | tee "$log"
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
# One closing line for the whole suite (cargo prints one per test binary, the last being the
# doc tests, which are empty here).
awk '/^test result:/ { for (i = 1; i <= NF; i++) { if ($(i+1) ~ /^passed/) p += $i; if ($(i+1) ~ /^failed/) f += $i } }
     END { printf "tests: %d passed, %d failed\n", p, f }' "$log"
exit "$status"
