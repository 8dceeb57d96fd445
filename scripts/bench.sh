#!/usr/bin/env bash
# Runs the benchmarks (release build): builds the fixers, starts moto server for the ones that
# need a queue, then runs each bench binary named (all when none is).
#   ./scripts/bench.sh                     # every bench
#   ./scripts/bench.sh batch_throughput    # one
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/build-fixers.sh
# shellcheck source=scripts/moto.sh
source scripts/moto.sh
start_moto
benches=("$@")
if [ ${#benches[@]} -eq 0 ]; then
  benches=(sandbox_cost decision_cost batch_throughput lambda_init queue_drain fixer_test drift_check)
fi
for b in "${benches[@]}"; do
  echo "== $b"
  cargo bench -p salve --bench "$b"
done
