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
cargo test --workspace
