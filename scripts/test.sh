#!/usr/bin/env bash
# Runs every test: builds the fixers and test fixtures for wasm32-wasip2 (installing the target if
# needed), installs and starts moto server, then runs the whole workspace's tests.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/build-fixers.sh
# shellcheck source=scripts/moto.sh
source scripts/moto.sh
start_moto
cargo test --workspace
