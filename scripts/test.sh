#!/usr/bin/env bash
# Runs every test: builds the fixers and test fixtures for wasm32-wasip2 (installing the target if
# needed), installs and starts moto server, then runs the whole workspace's tests.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/build-fixers.sh
# Dependency policy: licenses, bans and sources (deny.toml). The advisories check needs the
# RustSec database, which these machines cannot fetch; see README, "Dependency policy".
if ! command -v cargo-deny >/dev/null 2>&1; then
  echo "installing cargo-deny ..." >&2
  cargo install --locked cargo-deny@0.20.2
fi
cargo deny check bans licenses sources
# shellcheck source=scripts/moto.sh
source scripts/moto.sh
start_moto
# Prism serves GitHub's own OpenAPI description, for the pull-request tests.
# shellcheck source=scripts/prism.sh
source scripts/prism.sh
start_prism
# cargo-lambda's Runtime API emulator, for running the binary as a Lambda bootstrap.
if [ ! -x .venv/bin/cargo-lambda ]; then
  echo "installing cargo-lambda into .venv ..." >&2
  .venv/bin/pip install --quiet --disable-pip-version-check 'cargo-lambda==1.9.2'
fi
export SALVE_CARGO_LAMBDA="$PWD/.venv/bin/cargo-lambda"
# parliament, an IAM policy auditor, checks every policy document salve prints.
if [ ! -x .venv/bin/parliament ]; then
  echo "installing parliament into .venv ..." >&2
  .venv/bin/pip install --quiet --disable-pip-version-check 'parliament==1.6.4'
fi
export SALVE_PARLIAMENT="$PWD/.venv/bin/parliament"
# The fixer crates are wasm components only (their export names do not link natively), so the
# host and the SDK are what runs here; the fixers run inside the host's tests.
# The ingest property tests run a bounded number of cases, so CI time stays predictable.
# tests/report.rs renders the HTML report in headless Chromium, driven through chromedriver:
# Debian's packages, installed here when missing.
if ! command -v chromium >/dev/null 2>&1 || ! command -v chromedriver >/dev/null 2>&1; then
  echo "installing chromium and chromium-driver ..." >&2
  apt=(apt-get); [ "$(id -u)" -eq 0 ] || apt=(sudo apt-get)
  export DEBIAN_FRONTEND=noninteractive
  "${apt[@]}" install -y -q chromium chromium-driver >/dev/null \
    || { "${apt[@]}" update -q >/dev/null && "${apt[@]}" install -y -q chromium chromium-driver >/dev/null; }
fi
export PROPTEST_CASES="${PROPTEST_CASES:-2000}"
# Every kind crate under kinds/ is tested, so adding a kind needs no edit here.
kinds=()
for d in kinds/*/; do kinds+=(-p "salve-kind-$(basename "$d")"); done
cargo test -p salve-contract -p salve-core "${kinds[@]}" -p salve -p salve-sdk
