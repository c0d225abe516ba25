#!/usr/bin/env bash
# bench/engine/run.sh — issue 14's engine table: inferd against ONNX Runtime
# (onnxruntime-node) at real sizes, side by side in one run. Models: the digits
# MLP and CNN fixtures (tools/gen_fixtures.py), ResNet-18, MobileNetV2, a
# TransformerEncoder and an LSTM (tools/gen_engine_bench_models.py, built here,
# never committed). Every cell (model x threads x batch x engine) is a fresh
# process, so its peak RSS is its own; the two engines alternate within a
# cell and get the same input bytes (bench_inferd.c and bench_ort.js share
# the xorshift input stream, or the fixture rows tiled to the batch).
#
#   bench/engine/run.sh [--threads "1 2"] [--repeats 1] [--min-time 1]
#                       [--models "digits_mlp digits_cnn resnet18 ..."] [--out FILE]
#
# Writes a markdown section (default bench/engine/latest.md) that goes into
# bench/RESULTS.md; the raw JSON lines stay in BUILD_DIR/engine-raw.jsonl.
set -euo pipefail

ROOT="$(cd "$(dirname "$0")/../.." && pwd)"
COMMAND="bench/engine/run.sh${*:+ $*}"
THREADS="1 2"
REPEATS=1
MIN_TIME=1
MODELS="digits_mlp digits_cnn resnet18 mobilenet_v2 transformer_encoder lstm"
OUT="$ROOT/bench/engine/latest.md"
while [ $# -gt 0 ]; do
    case "$1" in
    --threads) THREADS="$2"; shift 2 ;;
    --repeats) REPEATS="$2"; shift 2 ;;
    --min-time) MIN_TIME="$2"; shift 2 ;;
    --models) MODELS="$2"; shift 2 ;;
    --out) OUT="$2"; shift 2 ;;
    *) echo "run.sh: unknown argument '$1'" >&2; exit 64 ;;
    esac
done
BUILD_DIR="${BUILD_DIR:-$ROOT/build-bench}"
MODEL_DIR="$BUILD_DIR/engine-models"
RAW="$BUILD_DIR/engine-raw.jsonl"
PY=/usr/bin/python3
export ORT_DISABLE_TELEMETRY=1
cd "$ROOT"

cmake -S "$ROOT" -B "$BUILD_DIR" -DCMAKE_BUILD_TYPE=Release >/dev/null
nice cmake --build "$BUILD_DIR" -j2 --target bench_inferd >/dev/null
BENCH_INFERD="$BUILD_DIR/bench/bench_inferd"
mkdir -p "$MODEL_DIR"
"$PY" tools/gen_fixtures.py --out "$MODEL_DIR" --only digits_mlp digits_cnn >/dev/null
"$PY" tools/gen_engine_bench_models.py --out "$MODEL_DIR" >/dev/null 2>&1

batches_of() { # the 224x224 networks stop at batch 8 (the issue's table)
    case "$1" in resnet18|mobilenet_v2) echo "1 8" ;; *) echo "1 8 64" ;; esac
}

: >"$RAW"
LOAD_BEFORE="$(cat /proc/loadavg)"
STARTED=$(date +%s)
measure() { # engine model threads batch
    local engine="$1" model="$2" threads="$3" batch="$4" line
    local args=("$MODEL_DIR/$model/model.onnx" --batch "$batch" --threads "$threads"
                --min-time "$MIN_TIME" --min-iters 5 --warmup 0.3)
    [ -d "$MODEL_DIR/$model/test_data_set_0" ] && args+=(--input-from "$MODEL_DIR/$model/test_data_set_0")
    if [ "$engine" = inferd ]; then
        line="$("$BENCH_INFERD" "${args[@]}" 2>&1 | tail -n 1)" || true
    else
        line="$(node bench/bench_ort.js "${args[@]}" 2>&1 | tail -n 1)" || true
    fi
    case "$line" in "{"*) ;; *) line="{\"status\":\"error\",\"error\":$("$PY" -c 'import json,sys; print(json.dumps(sys.argv[1]))' "$line")}" ;; esac
    "$PY" -c 'import json,sys; d=json.loads(sys.argv[1]); d.update(engine=sys.argv[2], label=sys.argv[3], threads=int(sys.argv[4]), batch=int(sys.argv[5])); print(json.dumps(d))' \
        "$line" "$engine" "$model" "$threads" "$batch" >>"$RAW"
}
for model in $MODELS; do
    for threads in $THREADS; do
        for batch in $(batches_of "$model"); do
            printf '%-22s threads %s batch %-3s' "$model" "$threads" "$batch"
            for rep in $(seq 1 "$REPEATS"); do
                if [ $((rep % 2)) -eq 1 ]; then
                    measure inferd "$model" "$threads" "$batch"; measure ort "$model" "$threads" "$batch"
                else
                    measure ort "$model" "$threads" "$batch"; measure inferd "$model" "$threads" "$batch"
                fi
                printf '.'
            done
            printf '\n'
        done
    done
done
LOAD_AFTER="$(cat /proc/loadavg)"
SECONDS_MEASURED=$(($(date +%s) - STARTED))
report() {
    "$PY" bench/engine/report.py --raw "$RAW" --command "$COMMAND" --load-before "$LOAD_BEFORE" \
        --load-after "$LOAD_AFTER" --seconds "$SECONDS_MEASURED" "$@"
}
# a per-node profile of every cell that misses (both thread counts for a
# speed-up), shown under the table
PROFILES="$BUILD_DIR/engine-profiles"
rm -rf "$PROFILES" && mkdir -p "$PROFILES"
report --list-misses | while read -r model threads batch; do
    args=("$MODEL_DIR/$model/model.onnx" --batch "$batch" --threads "$threads"
          --min-time "$MIN_TIME" --min-iters 5 --warmup 0.3 --profile)
    [ -d "$MODEL_DIR/$model/test_data_set_0" ] && args+=(--input-from "$MODEL_DIR/$model/test_data_set_0")
    "$BENCH_INFERD" "${args[@]}" 2>"$PROFILES/${model}_t${threads}_b${batch}.txt" >/dev/null || true
done
report --profiles "$PROFILES" >"$OUT"
echo "wrote $OUT (raw results in $RAW)"
