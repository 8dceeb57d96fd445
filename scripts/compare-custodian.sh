#!/usr/bin/env bash
# salve and Cloud Custodian side by side on one fresh moto server (issue 18's comparison): builds
# salve (release) and the fixers, installs Cloud Custodian into .venv, then runs
# scripts/compare-custodian.py, which starts its own moto and interleaves three rounds.
#   ./scripts/compare-custodian.sh
#   SALVE_COMPARE_BUCKETS=50 SALVE_COMPARE_ROUNDS=1 ./scripts/compare-custodian.sh
#   SALVE_COMPARE_KIND=security-group ./scripts/compare-custodian.sh   # 200 groups open on SSH
#   SALVE_COMPARE_KIND=rds-instance ./scripts/compare-custodian.sh     # 200 public DB instances
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/build-fixers.sh
cargo build --release -p salve --bin salve
# shellcheck source=scripts/moto.sh
source scripts/moto.sh
ensure_moto
if [ ! -x .venv/bin/custodian ]; then
  echo "installing Cloud Custodian (c7n) into .venv ..." >&2
  .venv/bin/pip install --quiet --disable-pip-version-check 'c7n==0.9.53'
fi
SALVE_BIN="$(realpath "${CARGO_TARGET_DIR:-target}/release/salve")" .venv/bin/python scripts/compare-custodian.py
