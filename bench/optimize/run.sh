#!/bin/sh
# The graph optimiser's effect on run time, one command:
#   bench/optimize/run.sh [BUILD_DIR]      (default: build)
# Times each model with bench_inferd at --graph-opt none and all, batch 1,
# 1 thread, alternating the levels, 3 repeats; prints one JSON line per run
# (median_us is the median run) and the load average. Models: those of
# bench/memory/make_models.py (exported there if missing) and the digits CNN
# fixture when generated.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
build=${1:-build}
models=$build/bench/memory-models
/usr/bin/python3 "$here/../memory/make_models.py" "$models" > /dev/null 2>&1
uptime
for model in "$models/transformer.onnx" "$models/mobilenet_v2.onnx" \
             "$build/tests/fixtures/generated/digits_cnn/model.onnx"; do
    [ -f "$model" ] || continue
    for repeat in 1 2 3; do
        for level in none all; do
            printf '{"graph_opt": "%s", "repeat": %d, "result": ' "$level" "$repeat"
            "$build/bench/bench_inferd" "$model" --graph-opt "$level" --min-time 1 --min-iters 20 \
                --warmup 0.3 | tr -d '\n'
            echo '}'
        done
    done
done
uptime
