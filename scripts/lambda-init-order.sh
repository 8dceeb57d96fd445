#!/usr/bin/env bash
# Regenerates host/lambda-init.order, the functions the Lambda bootstrap runs before its first
# /invocation/next, which host/build.rs hands to lld so they are laid out together (see README,
# Performance, Lambda cold init). Rerun it after a toolchain or dependency update, or when
# `lambda_init`'s RSS creeps up: names the binary no longer has are skipped, not errors.
#
# Needs valgrind (callgrind traces every function init calls). The sandbox pool is cut to one
# fixer for the trace: valgrind cannot reserve the default pool's address space.
set -euo pipefail
cd "$(dirname "$0")/.."
command -v valgrind >/dev/null || { echo "valgrind is needed: apt-get install valgrind" >&2; exit 1; }
./scripts/build-fixers.sh >/dev/null
cargo build --release -p salve --bin salve
exec python3 scripts/lambda-init-order.py "$(realpath "${CARGO_TARGET_DIR:-target}/release/salve")"
