#!/usr/bin/env bash
# Run every cargo-fuzz target in fuzz/ (one instrumented build serves all).
#
#   scripts/fuzz.sh                 # each target for FUZZ_SECONDS (default 20)
#   FUZZ_RUNS=1000000 scripts/fuzz.sh [TARGET...]   # a fixed number of inputs
#
# Works on a stable toolchain: RUSTC_BOOTSTRAP lets cargo-fuzz pass its
# unstable flags, and `--sanitizer none` needs no nightly-only runtime. Seeds
# committed under fuzz/seeds/TARGET are read; new inputs go to fuzz/corpus
# (ignored by git). A crash fails the script and leaves the input under
# fuzz/artifacts/TARGET: add it to a regression test before fixing it.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../fuzz"

if ! cargo fuzz --version >/dev/null 2>&1; then
    echo "fuzz: installing cargo-fuzz"
    cargo install --locked cargo-fuzz >/dev/null 2>&1 || cargo install cargo-fuzz
fi

export RUSTC_BOOTSTRAP=1
targets=("$@")
if [ "${#targets[@]}" -eq 0 ]; then
    mapfile -t targets < <(cargo fuzz list)
fi

cargo fuzz build --sanitizer none -O

limit=(-max_total_time="${FUZZ_SECONDS:-20}")
[ -n "${FUZZ_RUNS:-}" ] && limit=(-runs="$FUZZ_RUNS")

for t in "${targets[@]}"; do
    mkdir -p "corpus/$t" "seeds/$t"
    out=$(mktemp)
    if ! cargo fuzz run --sanitizer none -O "$t" "corpus/$t" "seeds/$t" -- \
        "${limit[@]}" -max_len=65536 -print_final_stats=1 >"$out" 2>&1; then
        tail -n 40 "$out"
        rm -f "$out"
        echo "fuzz: $t FAILED"
        exit 1
    fi
    runs=$(grep -oE 'stat::number_of_executed_units: *[0-9]+' "$out" | grep -oE '[0-9]+$' || echo "?")
    rm -f "$out"
    echo "fuzz: $t ok, $runs inputs"
done
