#!/usr/bin/env bash
# Runs hoopguard's fuzz targets (fuzz/fuzz_targets, bodies in hoopguard-core/src/fuzz.rs) under
# libFuzzer with cargo-fuzz, each for SECONDS (default 30), seeded from fuzz/corpus/TARGET and
# growing fuzz/work/TARGET (not committed). A crash is saved under fuzz/artifacts/TARGET and
# fails the run: add the input to fuzz/corpus/TARGET as a regression seed once it is fixed.
#
#   bash scripts/fuzz.sh [SECONDS] [TARGET...]
#
# cargo-fuzz needs nightly features; RUSTC_BOOTSTRAP=1 lets the stable toolchain build them.
# Where cargo-fuzz cannot be installed this prints why and exits 0: the same targets run over the
# corpus as a plain test (hoopguard-core/tests/fuzz_corpus.rs) in `cargo test`.
set -euo pipefail
cd "$(dirname "$0")/.."
seconds="${1:-30}"
shift || true
targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
    targets=(sigv4 chunked classify percent jsonrpc_sse mask_stream)
fi
if ! cargo fuzz --version >/dev/null 2>&1; then
    if ! cargo install cargo-fuzz --locked --quiet; then
        echo "fuzz.sh: cargo-fuzz cannot be installed here; the corpus runs as a plain test instead" >&2
        exit 0
    fi
fi
export RUSTC_BOOTSTRAP=1
cd fuzz
cargo fuzz build -O
for t in "${targets[@]}"; do
    mkdir -p "work/$t"
    echo "fuzz.sh: $t for ${seconds}s" >&2
    cargo fuzz run -O "$t" "work/$t" "corpus/$t" -- \
        -max_total_time="$seconds" -rss_limit_mb=2048 -print_final_stats=1 2>&1 \
        | grep -E "^Done|stat::number_of_executed_units|ERROR|panicked|SUMMARY" || true
    if [ -n "$(ls -A "artifacts/$t" 2>/dev/null)" ]; then
        echo "fuzz.sh: $t found a crash: fuzz/artifacts/$t" >&2
        exit 1
    fi
done
