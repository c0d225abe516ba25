#!/usr/bin/env bash
# image_bench.sh — image requests on `inferd serve` against the seeds'
# tutorial stack (FastAPI under uvicorn, PIL + numpy + PyTorch, all Debian's),
# one run, on 127.0.0.1: for a 28x28 PNG digit (the digits CNN) and a
# 224x224 JPEG (a small RGB CNN), each server decodes, resizes, normalises
# and runs the same network with the same weights behind POST /prediction
# (multipart field `image`). Both sides get the same worker count; wrk
# (--latency, 1 thread, --connections) runs against each server in turn for
# --rounds rounds of --duration s after a --warmup s warm-up, and the table
# shows the median requests/s and p99 over the rounds. Then /ui's page
# weight and first contentful paint in headless chromium
# (bench/serve/ui_paint.js). Appends nothing: prints the markdown section.
#
#   bench/serve/image_bench.sh [--workers 2] [--connections 8] [--duration 10]
#                              [--warmup 2] [--rounds 3]
# Needs: a Release build in $BUILD_DIR (default build), wrk, python3-fastapi,
# python3-uvicorn, python3-multipart, python3-pil, python3-torch, chromium
# and npm's puppeteer-core, and the image fixtures (ctest -R image_fixtures).
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/../.." && pwd)"
COMMAND="bench/serve/image_bench.sh${*:+ $*}"
BUILD_DIR="${BUILD_DIR:-$ROOT/build}"
WORKERS=2 CONNECTIONS=8 DURATION=10 WARMUP=2 ROUNDS=3
while [ $# -gt 0 ]; do
    case "$1" in
    --workers) WORKERS="$2"; shift 2 ;;
    --connections) CONNECTIONS="$2"; shift 2 ;;
    --duration) DURATION="$2"; shift 2 ;;
    --warmup) WARMUP="$2"; shift 2 ;;
    --rounds) ROUNDS="$2"; shift 2 ;;
    *) echo "usage: $0 [--workers N] [--connections N] [--duration S] [--warmup S] [--rounds N]" >&2; exit 2 ;;
    esac
done
INFERD="$BUILD_DIR/inferd"
FIXTURES="$BUILD_DIR/tests/image/generated/digits"
PY=/usr/bin/python3
WORK="$(mktemp -d)"
PIDS=()
cleanup() {
    for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
    for pid in "${PIDS[@]}"; do wait "$pid" 2>/dev/null || true; done
    rm -rf "$WORK"
}
trap cleanup EXIT

free_port() { $PY -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_up() { # url
    for _ in $(seq 600); do curl -sf -o /dev/null "$1" && return 0; sleep 0.05; done
    echo "not up: $1" >&2; exit 1
}

$PY "$ROOT/bench/serve/image_app.py" --make-models "$WORK/models" "$FIXTURES"
declare -A IMAGE=([digits28]="$WORK/models/digit28.png" [rgb224]="$WORK/models/photo224.jpg")
declare -A INFERD_PORT APP_PORT
for model in digits28 rgb224; do
    "$INFERD" models --store "$WORK/store" import "$WORK/models/$model/model.onnx" --name "$model" \
        --labels "$WORK/models/$model/labels.json" --preprocess "$WORK/models/$model/preprocessing.json" >/dev/null
    INFERD_PORT[$model]=$(free_port)
    "$INFERD" serve "$model" --store "$WORK/store" --workers "$WORKERS" --port "${INFERD_PORT[$model]}" \
        >"$WORK/inferd-$model.log" 2>&1 &
    PIDS+=($!)
    APP_PORT[$model]=$(free_port)
    IMAGE_MODEL=$model IMAGE_MODEL_DIR="$WORK/models" $PY -m uvicorn --app-dir "$ROOT/bench/serve" \
        --workers "$WORKERS" --port "${APP_PORT[$model]}" --log-level warning image_app:app \
        >"$WORK/app-$model.log" 2>&1 &
    PIDS+=($!)
done
for model in digits28 rgb224; do
    wait_up "http://127.0.0.1:${INFERD_PORT[$model]}/health"
    wait_up "http://127.0.0.1:${APP_PORT[$model]}/health"
    # the same answer from both before anything is timed
    a=$(curl -sf -F "image=@${IMAGE[$model]}" "http://127.0.0.1:${INFERD_PORT[$model]}/prediction")
    b=$(curl -sf -F "image=@${IMAGE[$model]}" "http://127.0.0.1:${APP_PORT[$model]}/prediction")
    ia=$(echo "$a" | $PY -c 'import json,sys; print(json.load(sys.stdin)["index"])')
    ib=$(echo "$b" | $PY -c 'import json,sys; print(json.load(sys.stdin)["index"])')
    [ "$ia" = "$ib" ] || { echo "$model: inferd answers $a, the FastAPI app $b" >&2; exit 1; }
done

LOAD_BEFORE=$(cut -d' ' -f1-3 /proc/loadavg)
RESULTS="$WORK/results.jsonl"
run_wrk() { # server model port seconds
    IMAGE_FILE="${IMAGE[$2]}" wrk -t1 -c"$CONNECTIONS" -d"${4}s" --latency -s "$ROOT/bench/serve/post_image.lua" \
        "http://127.0.0.1:$3/prediction" | sed -n 's/^RESULT //p'
}
for model in digits28 rgb224; do
    run_wrk inferd "$model" "${INFERD_PORT[$model]}" "$WARMUP" >/dev/null
    run_wrk fastapi "$model" "${APP_PORT[$model]}" "$WARMUP" >/dev/null
done
for round in $(seq "$ROUNDS"); do
    for model in digits28 rgb224; do
        echo "{\"server\":\"inferd\",\"model\":\"$model\",\"round\":$round,\"r\":$(run_wrk inferd "$model" "${INFERD_PORT[$model]}" "$DURATION")}" >>"$RESULTS"
        echo "{\"server\":\"fastapi\",\"model\":\"$model\",\"round\":$round,\"r\":$(run_wrk fastapi "$model" "${APP_PORT[$model]}" "$DURATION")}" >>"$RESULTS"
    done
done
LOAD_AFTER=$(cut -d' ' -f1-3 /proc/loadavg)

UI_PORT=${INFERD_PORT[digits28]}
UI=$(node "$ROOT/bench/serve/ui_paint.js" "http://127.0.0.1:$UI_PORT/ui" 5)

$PY - "$RESULTS" "$COMMAND" "$WORKERS" "$CONNECTIONS" "$DURATION" "$ROUNDS" "$LOAD_BEFORE" "$LOAD_AFTER" "$UI" <<'PY'
import json, statistics, sys
path, command, workers, connections, duration, rounds, before, after, ui = sys.argv[1:]
rows = [json.loads(l) for l in open(path)]
name = {"digits28": "28x28 PNG, digits CNN", "rgb224": "224x224 JPEG, RGB CNN"}
print("## Image requests: inferd vs the tutorial's FastAPI app\n")
print(f"`{command}` — {workers} workers each side, wrk 1 thread {connections} connections, {rounds} rounds of "
      f"{duration} s per server, alternating; medians over the rounds. Load average {before} before, {after} after "
      "(2 cores shared with other jobs: noisy).\n")
print("| image | server | requests/s | p50 ms | p99 ms | non-200 |")
print("|---|---|---:|---:|---:|---:|")
for model in ("digits28", "rgb224"):
    for server in ("inferd", "fastapi"):
        rs = [r["r"] for r in rows if r["model"] == model and r["server"] == server]
        med = lambda k: statistics.median(x[k] for x in rs)
        bad = sum(x["errors_status"] + x["errors_other"] for x in rs)
        label = "inferd serve" if server == "inferd" else "FastAPI + PIL + numpy + torch"
        print(f"| {name[model]} | {label} | {med('rps'):.0f} | {med('p50_ms'):.2f} | {med('p99_ms'):.2f} | {bad} |")
u = json.loads(ui)
print(f"\n/ui in headless chromium ({u['loads']} fresh loads, medians): first contentful paint "
      f"{u['fcp_ms']:.0f} ms, page weight {u['bytes']} bytes transferred ({u['files']} files, all from the binary).")
PY
