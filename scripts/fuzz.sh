#!/usr/bin/env bash
# Runs one cargo-fuzz target: scripts/fuzz.sh [target] [runs]
#
#   target  decode_plan (default), canonical_key or sigv4_verify; `list` prints the targets
#   runs    executions for libFuzzer's -runs (default 10000000); 0 runs until stopped
#
# Installs cargo-fuzz if missing. Only the stable toolchain is needed: cargo-fuzz passes nightly
# flags, so RUSTC_BOOTSTRAP=1 lets stable accept them. No sanitizer by default (the code under
# test is safe Rust, and ASan halves the rate); FUZZ_SANITIZER=address turns ASan on.
# New inputs go to fuzz/corpus/<target>/ (the committed seeds stay there); crashes to
# fuzz/artifacts/<target>/. FUZZ_JOBS=N runs N workers in the background (logs in fuzz/fuzz-*.log); the default is one
# worker in the foreground (the machine is shared).
# FUZZ_CMIN=1 minimises the corpus after the run (cargo fuzz cmin), as committed.
set -euo pipefail
cd "$(dirname "$0")/../fuzz"

target=${1:-decode_plan}
runs=${2:-10000000}
sanitizer=${FUZZ_SANITIZER:-none}
export RUSTC_BOOTSTRAP=1

if ! cargo fuzz --version >/dev/null 2>&1; then
    cargo install cargo-fuzz --locked
fi
if [ "$target" = list ]; then
    exec cargo fuzz list
fi

mkdir -p "corpus/$target"
cargo fuzz run --sanitizer "$sanitizer" "$target" "corpus/$target" -- \
    -runs="$runs" -dict=dict/dynamodb.dict -max_len=4096 -timeout=10 \
    -print_final_stats=1 ${FUZZ_JOBS:+-jobs=$FUZZ_JOBS -workers=$FUZZ_JOBS}

if [ "${FUZZ_CMIN:-0}" = 1 ]; then
    # Edges only (no hit counts, no comparisons): a few hundred files rather than thousands.
    cargo fuzz cmin --sanitizer "$sanitizer" "$target" "corpus/$target" -- -use_counters=0 -use_cmp=0
fi
