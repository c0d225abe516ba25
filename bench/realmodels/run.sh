#!/usr/bin/env bash
# run.sh — load time, batch-1 latency and peak RSS of every real-model fixture
# (tests/fixtures/real_models.json's published models and the torch-exported
# architectures), inferd beside ONNX Runtime in one run; writes
# bench/realmodels/RESULTS.md. Each model gets the inputs of its real
# fixture's last step (speech chunk with warmed-up state, rendered text line,
# mel windows ...), fed as is to bench/bench_inferd and bench/bench_ort.js.
#
#   bench/realmodels/run.sh [--repeats 3] [--min-time 0.5] [--threads 1] [--out FILE]
#
# Environment: BUILD_DIR (default build): where bench_inferd is built and the
# models are cached (BUILD_DIR/real-models-cache, as the tests use).
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/../.." && pwd)"
BUILD_DIR="${BUILD_DIR:-$ROOT/build}"
# ONNX Runtime's telemetry off for every node process started below.
export ORT_DISABLE_TELEMETRY=1
cd "$ROOT"
if [ ! -d node_modules/onnxruntime-node ]; then npm ci --no-audit --no-fund; fi
cmake -S . -B "$BUILD_DIR" -DCMAKE_BUILD_TYPE=Release >/dev/null
nice cmake --build "$BUILD_DIR" -j2 --target bench_inferd inferd >/dev/null
exec /usr/bin/python3 bench/realmodels/measure.py --build "$BUILD_DIR" \
    --command "bench/realmodels/run.sh${*:+ $*}" "$@"
