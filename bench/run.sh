#!/usr/bin/env bash
# run.sh — inferd's engine benchmark against ONNX Runtime, side by side in one
# run: builds inferd (Release) and bench_inferd, installs onnxruntime-node from
# package-lock.json when node_modules is missing, generates the fixture models,
# then for every model, thread count and batch size runs bench_inferd and
# bench_ort.js alternately (which goes first swaps on every repeat, so drift in
# machine load hits both) and writes the medians to bench/RESULTS.md.
#
#   bench/run.sh [--threads "1 2"] [--batches "1 8 64"] [--repeats 3]
#                [--min-time 0.5] [--models "digits_mlp iris_svc ..."]
#                [--out bench/RESULTS.md]
#
# Environment: BUILD_DIR (default build-bench), FIXTURE_DIR (default
# BUILD_DIR/bench-fixtures), BENCH_INFERD (a prebuilt bench_inferd: skips the
# build). The raw JSON lines are kept in BUILD_DIR/bench-raw.jsonl.
set -euo pipefail

ROOT="$(cd "$(dirname "$0")/.." && pwd)"
COMMAND="bench/run.sh${*:+ $*}"
THREADS="1 $(nproc)"
BATCHES="1 8 64"
REPEATS=3
MIN_TIME=0.5
MODELS=""
OUT="$ROOT/bench/RESULTS.md"
while [ $# -gt 0 ]; do
    case "$1" in
    --threads) THREADS="$2"; shift 2 ;;
    --batches) BATCHES="$2"; shift 2 ;;
    --repeats) REPEATS="$2"; shift 2 ;;
    --min-time) MIN_TIME="$2"; shift 2 ;;
    --models) MODELS="$2"; shift 2 ;;
    --out) OUT="$2"; shift 2 ;;
    *) echo "run.sh: unknown argument '$1'" >&2; exit 64 ;;
    esac
done
THREADS="$(echo "$THREADS" | tr ' ' '\n' | awk 'NF && !seen[$0]++' | tr '\n' ' ')"
BUILD_DIR="${BUILD_DIR:-$ROOT/build-bench}"
FIXTURE_DIR="${FIXTURE_DIR:-$BUILD_DIR/bench-fixtures}"
RAW="$BUILD_DIR/bench-raw.jsonl"
PY=/usr/bin/python3
# ONNX Runtime's telemetry off for every node process below (bench_ort.js sets
# it too): without it ORT 1.30 writes /tmp/mat-debug-*.log and phones home.
export ORT_DISABLE_TELEMETRY=1
cd "$ROOT"

if [ -z "${BENCH_INFERD:-}" ]; then
    cmake -S "$ROOT" -B "$BUILD_DIR" -DCMAKE_BUILD_TYPE=Release >/dev/null
    cmake --build "$BUILD_DIR" -j2 --target bench_inferd
    BENCH_INFERD="$BUILD_DIR/bench/bench_inferd"
fi
if [ ! -d "$ROOT/node_modules/onnxruntime-node" ]; then
    ONNXRUNTIME_NODE_INSTALL=skip npm ci --no-audit --no-fund
fi

mkdir -p "$FIXTURE_DIR"
"$PY" tools/gen_fixtures.py --out "$FIXTURE_DIR" >/dev/null
"$PY" bench/prepare_models.py "$FIXTURE_DIR" >"$FIXTURE_DIR/models.tsv"
if [ -z "$MODELS" ]; then
    MODELS="identity $(cut -f1 "$FIXTURE_DIR/models.tsv" | grep -vx identity | tr '\n' ' ')"
fi

: >"$RAW"
LOAD_BEFORE="$(cat /proc/loadavg)"
STARTED=$(date +%s)

# One measurement; a failure is already a JSON line, so it never stops the run.
measure() { # engine label model_path input_dir threads batch repeat
    local engine="$1" label="$2" model="$3" inputs="$4" threads="$5" batch="$6" rep="$7" line
    local args=("$model" --batch "$batch" --threads "$threads" --min-time "$MIN_TIME" --warmup 0.1)
    [ -d "$inputs" ] && args+=(--input-from "$inputs")
    if [ "$engine" = inferd ]; then
        line="$("$BENCH_INFERD" "${args[@]}" 2>&1 | tail -n 1)" || true
    else
        line="$(node bench/bench_ort.js "${args[@]}" 2>&1 | tail -n 1)" || true
    fi
    case "$line" in
    "{"*) ;;
    *) line="{\"engine\":\"$engine\",\"status\":\"error\",\"error\":$("$PY" -c 'import json,sys; print(json.dumps(sys.argv[1]))' "$line")}" ;;
    esac
    "$PY" -c 'import json,sys; d=json.loads(sys.argv[1]); d.update(label=sys.argv[2], rep=int(sys.argv[3]), threads=int(sys.argv[4]), batch=int(sys.argv[5])); print(json.dumps(d))' \
        "$line" "$label" "$rep" "$threads" "$batch" >>"$RAW"
}

for model in $MODELS; do
    row="$(awk -F'\t' -v m="$model" '$1 == m' "$FIXTURE_DIR/models.tsv")"
    if [ -z "$row" ]; then
        echo "run.sh: no model '$model' in $FIXTURE_DIR" >&2
        exit 1
    fi
    shared="$(echo "$row" | cut -f2)"
    original="$(echo "$row" | cut -f3)"
    inputs="$FIXTURE_DIR/$model/test_data_set_0"
    for threads in $THREADS; do
        for batch in $BATCHES; do
            printf '%-28s threads %s batch %-3s' "$model" "$threads" "$batch"
            for rep in $(seq 1 "$REPEATS"); do
                if [ $((rep % 2)) -eq 1 ]; then
                    measure inferd "$model" "$shared" "$inputs" "$threads" "$batch" "$rep"
                    measure ort "$model" "$shared" "$inputs" "$threads" "$batch" "$rep"
                else
                    measure ort "$model" "$shared" "$inputs" "$threads" "$batch" "$rep"
                    measure inferd "$model" "$shared" "$inputs" "$threads" "$batch" "$rep"
                fi
                # inferd also runs the original graph, ZipMap included, which
                # onnxruntime-node cannot return.
                [ -n "$original" ] && measure inferd "$model+zipmap" "$original" "$inputs" "$threads" "$batch" "$rep"
                printf '.'
            done
            printf '\n'
        done
    done
done

"$PY" bench/report.py --raw "$RAW" --command "$COMMAND" --load-before "$LOAD_BEFORE" \
    --load-after "$(cat /proc/loadavg)" --seconds $(($(date +%s) - STARTED)) \
    --repeats "$REPEATS" --min-time "$MIN_TIME" >"$OUT"
echo "wrote $OUT (raw results in $RAW)"
