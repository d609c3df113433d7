#!/usr/bin/env bash
# Proves the test suite's data is all in the repository: copies the tracked files (as they are
# in the work tree) into a directory with nothing beside it and runs the tests that read data
# files there. A test reading a path outside the repository (a folder beside the checkout)
# fails here, even on a machine where that path exists beside the real checkout.
#
# The copy lives at a fixed place under the target directory with the files' times kept, and
# builds into the same target directory, so the dependencies are not built again. The
# repository's own crates must be, though: their test binaries hold their source directory
# (CARGO_MANIFEST_DIR) and cargo would otherwise reuse the ones built from the real checkout.
# A profile override only for those crates gives them artifacts of their own (the profile is
# part of cargo's artifact hash), so the checkout's builds are left alone; when warm, nothing
# is rebuilt and this takes seconds.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
if ! git rev-parse --is-inside-work-tree >/dev/null 2>&1; then
  # An unpacked archive has no list of tracked files to copy.
  if [ -n "${CI:-}" ]; then
    echo "error: not a git checkout: cannot list the tracked files to copy" >&2
    exit 1
  fi
  echo "clean copy skipped: not a git checkout"
  exit 0
fi
target=${CARGO_TARGET_DIR:-$root/target}
case $target in /*) ;; *) target=$root/$target ;; esac
# target/clean-copy/ holds only the copy: the copy's parent has nothing else in it.
copy=$target/clean-copy/claimgate
rm -rf "$target/clean-copy"
mkdir -p "$copy"
# Tracked files only (no target/, .venv, node_modules, nor anything untracked), with their
# modification times so cargo's fingerprints still match.
git ls-files -z | while IFS= read -r -d '' file; do
  [ -e "$file" ] && printf '%s\0' "$file"
done | tar --null -T - -cf - | tar -xf - -C "$copy"

cd "$copy"
export CARGO_TARGET_DIR=$target
own=()
for manifest in crates/*/Cargo.toml; do
  name=$(sed -n 's/^name = "\(.*\)"$/\1/p' "$manifest" | head -n 1)
  own+=(--config "profile.dev.package.$name.codegen-units=255")
done
status=0
for args in "-p claimgate-jose --test vectors" "-p claimgate-config --test files" "-p claimgate --test cli"; do
  echo "==> (clean copy) cargo test $args"
  # shellcheck disable=SC2086
  cargo test -q "${own[@]}" $args || status=1
done
cd "$root"
rm -rf "$target/clean-copy"
exit "$status"
