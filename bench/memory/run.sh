#!/bin/sh
# Resident memory of loaded models, one command:
#   bench/memory/run.sh [BUILD_DIR]        (default: build)
# Exports the benchmark models (bench/memory/make_models.py) into
# BUILD_DIR/bench/memory-models, then runs bench_memory on each and on the
# real-model fixtures (when generated) with 4 sessions at --graph-opt none and
# all, printing one JSON line per run and the load average.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
build=${1:-build}
models=$build/bench/memory-models
/usr/bin/python3 "$here/make_models.py" "$models" > /dev/null 2>&1
uptime
for model in "$models"/*.onnx "$build"/tests/fixtures/generated/digits_*/model.onnx; do
    [ -f "$model" ] || continue
    for level in none all; do
        "$build/bench/bench_memory" "$model" --sessions 4 --graph-opt "$level"
    done
done
