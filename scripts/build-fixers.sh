#!/usr/bin/env bash
# Builds the shipped fixers and the test fixtures for wasm32-wasip2 and copies the components to
# build/fixers/ and build/fixtures/. Installs the wasm32-wasip2 target if it is missing.
set -euo pipefail
cd "$(dirname "$0")/.."
if ! rustup target list --installed | grep -qx wasm32-wasip2; then
  rustup target add wasm32-wasip2
fi
fixers=(s3-block-public-access sg-close-admin-ports ebs-encryption-by-default rds-private
        nacl-close-admin-ports ebs-encrypt-volume)
fixtures=(hostile-fixer forbidden-import typed-s3)
# One cargo invocation per crate: cargo unifies features across the packages of one build, and a
# fixer must get only its own kind's SDK feature (so calling another kind's capability does not
# compile).
for p in "${fixers[@]}" "${fixtures[@]}"; do
  cargo build --release --target wasm32-wasip2 -p "$p"
done
target_dir="${CARGO_TARGET_DIR:-target}/wasm32-wasip2/release"
mkdir -p build/fixers build/fixtures
for p in "${fixers[@]}"; do cp "$target_dir/${p//-/_}.wasm" "build/fixers/$p.wasm"; done
for p in "${fixtures[@]}"; do cp "$target_dir/${p//-/_}.wasm" "build/fixtures/$p.wasm"; done
echo "fixers in build/fixers, fixtures in build/fixtures"
