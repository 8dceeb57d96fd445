#!/usr/bin/env bash
# Shows the moto server race behind issue 18's drain stall: overlapping DeleteMessage calls lose
# deletes; one caller's DeleteMessageBatch calls do not (see scripts/moto-delete-race.py).
#   ./scripts/moto-delete-race.sh
#   SALVE_MOTO_SWITCH_INTERVAL=off ./scripts/moto-delete-race.sh   # moto's own scheduling
# By default moto runs with Python's thread switch interval at 1 µs instead of 5 ms, so the
# interleaving a busy moto hits now and then (one drain in five, in the issue) happens every round.
set -euo pipefail
cd "$(dirname "$0")/.."
export SALVE_MOTO_SWITCH_INTERVAL="${SALVE_MOTO_SWITCH_INTERVAL:-0.000001}"
[ "$SALVE_MOTO_SWITCH_INTERVAL" = off ] && unset SALVE_MOTO_SWITCH_INTERVAL
# shellcheck source=scripts/moto.sh
source scripts/moto.sh
start_moto
.venv/bin/python scripts/moto-delete-race.py
