#!/usr/bin/env bash
# run.sh — the serving benchmark: `inferd serve` against the book's stack
# (FastAPI + uvicorn workers under gunicorn, scikit-learn / PyTorch, all from
# Debian's packages), side by side in one run, on 127.0.0.1 only.
#
# Builds inferd (Release), generates the iris_svc and digits_mlp fixtures and
# the peer's copies of the same models (bench/serve/book_app.py). Then, per
# model, with the same worker count on both sides:
#   cold start  each server alone: process start until its readiness route
#               answers 200, polled every 1 ms (loadgen coldstart); median
#               of --starts starts;
#   peak        all servers of the model up at once, each on its own port,
#               and wrk (--latency, one thread) run against them in turn —
#               inferd, then its peers — for each --connections count, for
#               --rounds rounds, so drift in the machine's load hits every
#               server alike; --warmup s discarded before each server's
#               first run at a connection count, --duration s measured
#               (requests/s, p50, p99, and the server's CPU seconds per
#               request from /proc, which does not depend on how much of
#               the machine the load generator and other jobs take);
#   paced p99   loadgen paced (open loop, fixed rate, latency from each
#               request's due time, 16 connections, 1 s warm-up then
#               --paced s) at half the server's own best rate, twice in
#               turn; for inferd also at a route it answers without
#               inference, the floor the machine and HTTP layer set;
#   memory      RSS and PSS summed over the server's process tree, peak
#               while it served (bench/serve/procstat.py).
# bench/serve/report.py turns the raw JSON lines into --out (default
# bench/serve/RESULTS.md); the lines themselves are kept beside it (.jsonl).
#
#   bench/serve/run.sh [--workers N] [--connections "16 64"] [--duration 10]
#                      [--warmup 2] [--rounds 2] [--paced 5] [--starts 5]
#                      [--out FILE]
#
# Needs (Debian): wrk gunicorn python3-uvicorn python3-fastapi python3-sklearn
# python3-numpy python3-torch python3-onnx curl gcc, and python3-uvloop
# python3-httptools for uvicorn's fast loop and parser (used when present).
# Environment: BUILD_DIR (default build-servebench).
set -euo pipefail

ROOT="$(cd "$(dirname "$0")/../.." && pwd)"
COMMAND="bench/serve/run.sh${*:+ $*}"
WORKERS="$(nproc)"
CONNECTIONS="16 64"
DURATION=10
WARMUP=2
ROUNDS=2
PACED=5
STARTS=5
OUT="$ROOT/bench/serve/RESULTS.md"
while [ $# -gt 0 ]; do
    case "$1" in
    --workers) WORKERS="$2"; shift 2 ;;
    --connections) CONNECTIONS="$2"; shift 2 ;;
    --duration) DURATION="$2"; shift 2 ;;
    --warmup) WARMUP="$2"; shift 2 ;;
    --rounds) ROUNDS="$2"; shift 2 ;;
    --paced) PACED="$2"; shift 2 ;;
    --starts) STARTS="$2"; shift 2 ;;
    --out) OUT="$2"; shift 2 ;;
    *) echo "run.sh: unknown argument '$1'" >&2; exit 64 ;;
    esac
done
PY=/usr/bin/python3
BUILD_DIR="${BUILD_DIR:-$ROOT/build-servebench}"
WORK="$BUILD_DIR/servebench"
RAW="$WORK/raw.jsonl"
HERE="$ROOT/bench/serve"
BOOK_DIR="$ROOT/../shared/book"
cd "$ROOT"

for tool in wrk gunicorn gcc curl; do
    command -v "$tool" >/dev/null || {
        echo "run.sh: '$tool' is missing; apt-get install wrk gunicorn python3-uvicorn python3-fastapi" \
             "python3-sklearn python3-torch python3-uvloop python3-httptools curl gcc" >&2
        exit 77
    }
done
"$PY" -c 'import fastapi, uvicorn, sklearn, torch, onnx' 2>/dev/null || {
    echo "run.sh: Debian's python3 lacks fastapi, uvicorn, sklearn, torch or onnx" >&2
    exit 77
}

# ---- everything started here is stopped on the way out -------------------
declare -A PORT PID SAMPLER
stop_all() {
    local s
    for s in "${!SAMPLER[@]}"; do
        kill -TERM "${SAMPLER[$s]}" 2>/dev/null || true
        wait "${SAMPLER[$s]}" 2>/dev/null || true
        unset "SAMPLER[$s]"
    done
    for s in "${!PID[@]}"; do
        kill -TERM -- "-${PID[$s]}" 2>/dev/null || true
    done
    for s in "${!PID[@]}"; do
        for _ in $(seq 100); do
            kill -0 "${PID[$s]}" 2>/dev/null || break
            sleep 0.1
        done
        kill -KILL -- "-${PID[$s]}" 2>/dev/null || true
        wait "${PID[$s]}" 2>/dev/null || true
        unset "PID[$s]"
    done
}
trap stop_all EXIT
trap 'exit 130' INT TERM

# ---- build, fixtures, the peer's models ----------------------------------
cmake -S "$ROOT" -B "$BUILD_DIR" -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build "$BUILD_DIR" -j2 --target inferd >/dev/null
INFERD="$BUILD_DIR/inferd"
mkdir -p "$WORK"
gcc -O2 -std=c11 -Wall -Wextra -o "$WORK/loadgen" "$HERE/loadgen.c"
LOADGEN="$WORK/loadgen"
"$PY" tools/gen_fixtures.py --out "$WORK/fixtures" --only iris_svc digits_mlp >/dev/null
"$PY" "$HERE/book_app.py" --make-models "$WORK/models" "$WORK/fixtures"
MODELS="$WORK/models"

free_port() {
    "$PY" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

emit() { echo "$1" >>"$RAW"; }

# The server command of a scenario, for port $2, into the array CMD.
server_command() { # scenario port
    local port="$2"
    local gunicorn=(gunicorn --chdir "$HERE" -k uvicorn.workers.UvicornWorker -w "$WORKERS"
                    -b "127.0.0.1:$port" book_app:app)
    case "$1" in
    inferd-iris) CMD=("$INFERD" serve "$WORK/fixtures/iris_svc/model.onnx" --name iris_svc
                      --workers "$WORKERS" --port "$port") ;;
    inferd-bookfile) CMD=("$INFERD" serve "$BOOK_DIR/iris_svc.onnx" --labels "$BOOK_DIR/label.json"
                          --workers "$WORKERS" --port "$port") ;;
    inferd-digits) CMD=("$INFERD" serve "$WORK/fixtures/digits_mlp/model.onnx" --name digits_mlp
                        --workers "$WORKERS" --port "$port") ;;
    book-iris) CMD=(env BOOK_MODEL=iris BOOK_MODEL_DIR="$MODELS" "${gunicorn[@]}") ;;
    book-floor) CMD=(env BOOK_MODEL=floor BOOK_MODEL_DIR="$MODELS" "${gunicorn[@]}") ;;
    book-digits) CMD=(env BOOK_MODEL=digits BOOK_MODEL_DIR="$MODELS" "${gunicorn[@]}") ;;
    *) echo "run.sh: no scenario '$1'" >&2; exit 70 ;;
    esac
}

ready_path() { case "$1" in book-iris | book-floor) echo /health ;; *) echo /v2/health/ready ;; esac; }
bench_path() { case "$1" in *digits) echo /v2/models/digits_mlp/infer ;; *) echo /predict ;; esac; }
body_file() { case "$1" in *digits) echo "$MODELS/digits_body.json" ;; *) echo "$MODELS/iris_body.json" ;; esac; }
model_of() {
    case "$1" in
    *digits) echo digits_mlp ;;
    inferd-bookfile) echo "the book's iris_svc.onnx" ;;
    book-floor) echo "none (constant answer)" ;;
    *) echo iris_svc ;;
    esac
}

wait_ready() { # port path
    for _ in $(seq 600); do
        curl -fs -o /dev/null "http://127.0.0.1:$1$2" && return 0
        sleep 0.05
    done
    echo "run.sh: server on port $1 never became ready" >&2
    return 1
}

# tag a JSON line: add_fields JSON key=value... (values kept as JSON when they parse)
add_fields() {
    "$PY" -c 'import json,sys
d=json.loads(sys.argv[1])
for kv in sys.argv[2:]:
    k, v = kv.split("=", 1)
    try: d[k] = json.loads(v)
    except ValueError: d[k] = v
print(json.dumps(d))' "$@"
}

cold_starts() { # scenario
    local s="$1" port line samples=()
    for _ in $(seq "$STARTS"); do
        port="$(free_port)"
        server_command "$s" "$port"
        line="$("$LOADGEN" coldstart --port "$port" --path "$(ready_path "$s")" --timeout 60 -- "${CMD[@]}")" || true
        samples+=("$line")
    done
    emit "$("$PY" -c 'import json,sys,statistics
xs=[json.loads(l) for l in sys.argv[3:]]
ok=[x["cold_start_ms"] for x in xs if x.get("status")=="ok"]
print(json.dumps({"kind":"coldstart","scenario":sys.argv[1],"model":sys.argv[2],"samples_ms":ok,
  "median_ms":statistics.median(ok) if ok else None,"failures":len(xs)-len(ok)}))' "$s" "$(model_of "$s")" "${samples[@]}")"
}

start_server() { # scenario
    local s="$1" port answer body
    port="$(free_port)"
    server_command "$s" "$port"
    setsid "${CMD[@]}" >"$WORK/$s.log" 2>&1 &
    PID[$s]=$!
    PORT[$s]="$port"
    wait_ready "$port" "$(ready_path "$s")"
    body="$(body_file "$s")"
    answer="$(curl -s -X POST -H 'Content-Type: application/json' --data-binary "@$body" \
              "http://127.0.0.1:$port$(bench_path "$s")")"
    emit "$("$PY" -c 'import json,sys
expected=json.load(open(sys.argv[3])); a=json.loads(sys.argv[4])
if "prediction" in a:
    got = a["prediction"]
    want = expected["book_iris_probabilities" if sys.argv[1] == "inferd-bookfile" else "iris_probabilities"]
else:
    got = [o for o in a["outputs"] if o["name"] == "probabilities"][0]["data"]
    want = expected["digits_probabilities"]
diff = max(abs(g - w) for g, w in zip(got, want))
print(json.dumps({"kind":"answer","scenario":sys.argv[1],"model":sys.argv[2],"max_abs_diff":diff,"answer":a}))' \
        "$s" "$(model_of "$s")" "$MODELS/expected.json" "$answer")"
    "$PY" "$HERE/procstat.py" memory "${PID[$s]}" >"$WORK/$s.memory" &
    SAMPLER[$s]=$!
}

wrk_run() { # scenario connections seconds [--latency]
    local s="$1" url extra=()
    url="http://127.0.0.1:${PORT[$s]}$(bench_path "$s")"
    [ -n "${4:-}" ] && extra=("$4")
    BODY_FILE="$(body_file "$s")" wrk -t1 -c"$2" -d"$3s" "${extra[@]}" -s "$HERE/post.lua" "$url" |
        sed -n 's/^RESULT //p'
}

paced_run() { # scenario path rate try label model
    local result
    result="$("$LOADGEN" paced --port "${PORT[$1]}" --path "$2" --body "$(body_file "$1")" --rate "$3" \
              --duration "$PACED" --warmup 1 --connections 16)" ||
        result='{"status":"error","error":"loadgen failed"}'
    emit "$(add_fields "$result" kind=paced "scenario=$5" "model=$6" "try=$4")"
}

# One model: cold starts, then all its servers up together, measured in turn.
run_group() { # scenario...
    local s c round result cpu0 cpu1 half try
    for s in "$@"; do
        echo "== $s: cold starts" >&2
        cold_starts "$s"
    done
    for s in "$@"; do
        start_server "$s"
    done
    for round in $(seq "$ROUNDS"); do
        for c in $CONNECTIONS; do
            for s in "$@"; do
                echo "== $s: round $round, $c connections" >&2
                [ "$round" = 1 ] && wrk_run "$s" "$c" "$WARMUP" >/dev/null
                cpu0="$("$PY" "$HERE/procstat.py" cpu "${PID[$s]}")"
                result="$(wrk_run "$s" "$c" "$DURATION" --latency)"
                cpu1="$("$PY" "$HERE/procstat.py" cpu "${PID[$s]}")"
                emit "$(add_fields "$result" kind=wrk "scenario=$s" "model=$(model_of "$s")" \
                        "connections=$c" "round=$round" "server_cpu_s=$("$PY" -c "print(round($cpu1 - $cpu0, 3))")")"
            done
        done
    done
    for try in 1 2; do
        for s in "$@"; do
            echo "== $s: paced, try $try" >&2
            half="$("$PY" -c 'import json,sys
runs=[json.loads(l) for l in open(sys.argv[1]) if "\"kind\": \"wrk\"" in l]
print(max(1, round(max(r["rps"] for r in runs if r["scenario"] == sys.argv[2]) / 2)))' "$RAW" "$s")"
            paced_run "$s" "$(bench_path "$s")" "$half" "$try" "$s" "$(model_of "$s")"
            case "$s" in
            inferd-iris | inferd-digits)
                # the same rate at a route inferd answers without inference (POST
                # on the readiness route: 405 from the HTTP thread): the floor the
                # machine, the load generator and the HTTP layer put under the p99
                paced_run "$s" /v2/health/ready "$half" "$try" "$s-floor" "none (405 answer)" ;;
            esac
        done
    done
    for s in "$@"; do
        kill -TERM "${SAMPLER[$s]}"
        wait "${SAMPLER[$s]}" || true
        unset "SAMPLER[$s]"
        emit "$(add_fields "$(cat "$WORK/$s.memory")" kind=memory "scenario=$s" "model=$(model_of "$s")")"
    done
    stop_all
}

: >"$RAW"
STARTED=$(date +%s)
emit "$("$PY" - "$COMMAND" "$WORKERS" "$CONNECTIONS" "$DURATION" "$WARMUP" "$ROUNDS" "$STARTS" "$PACED" <<'EOF'
import json, os, platform, subprocess, sys
import fastapi, uvicorn, gunicorn, sklearn, numpy, torch, pydantic
def run(*cmd):
    try:
        return subprocess.run(cmd, capture_output=True, text=True, check=False).stdout.strip()
    except OSError:
        return ""
cpu = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), "?")
versions = {"fastapi": fastapi.__version__, "uvicorn": uvicorn.__version__, "gunicorn": gunicorn.__version__,
            "scikit-learn": sklearn.__version__, "numpy": numpy.__version__, "torch": torch.__version__,
            "pydantic": pydantic.VERSION, "python": platform.python_version()}
for mod in ("uvloop", "httptools"):
    try:
        versions[mod] = __import__(mod).__version__
    except ImportError:
        versions[mod] = "absent"
rev = run("git", "rev-parse", "--short", "HEAD")
dirty = run("git", "status", "--porcelain", "--untracked-files=no")
print(json.dumps({"kind": "env", "command": sys.argv[1], "workers": int(sys.argv[2]),
                  "connections": sys.argv[3], "duration_s": float(sys.argv[4]), "warmup_s": float(sys.argv[5]),
                  "rounds": int(sys.argv[6]), "starts": int(sys.argv[7]), "paced_s": float(sys.argv[8]),
                  "inferd_rev": rev + (" + uncommitted changes" if dirty else ""),
                  "cpu": cpu, "cores": os.cpu_count(), "kernel": platform.release(),
                  "memory_gib": round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30, 1),
                  "loadavg_before": open("/proc/loadavg").read().split()[:3],
                  "wrk": run("dpkg-query", "-W", "-f=${Version}", "wrk"), "versions": versions}))
EOF
)"

IRIS=(inferd-iris book-iris book-floor)
[ -f "$BOOK_DIR/iris_svc.onnx" ] && IRIS=(inferd-iris inferd-bookfile book-iris book-floor)
run_group "${IRIS[@]}"
run_group inferd-digits book-digits

emit "{\"kind\":\"end\",\"seconds\":$(( $(date +%s) - STARTED )),\"loadavg_after\":$("$PY" -c 'import json; print(json.dumps(open("/proc/loadavg").read().split()[:3]))')}"
"$PY" "$HERE/report.py" "$RAW" "$OUT"
cp "$RAW" "${OUT%.md}.jsonl"
echo "run.sh: wrote $OUT and ${OUT%.md}.jsonl (the raw lines) in $(( $(date +%s) - STARTED )) s" >&2
