#!/usr/bin/env bash
# throughput.sh — the HTTP benchmark of issue 15: how close `inferd serve`
# comes to the machine's limit on the book API's iris `POST /predict`, side by
# side in ONE run with
#   epoll    bench/serve/epoll_responder.c: a bare epoll keep-alive loop that
#            sends inferd's exact answer bytes (the floor);
#   mhd      bench/serve/mhd_responder.c: libmicrohttpd with inferd's daemon
#            flags sending the same body and headers (the library's floor:
#            what lies between it and epoll is libmicrohttpd's cost, what
#            lies between it and inferd is inferd's own);
#   h2o      bench/serve/h2o_responder.c: h2o's own event loop (Debian's
#            libh2o-evloop) sending the same body and headers: the leaner
#            library issue 15 asks to weigh against libmicrohttpd (only
#            when asked: --servers "... h2o");
#   book     the book's stack: gunicorn + uvicorn worker(s) + FastAPI
#            (bench/serve/book_app.py, scikit-learn's own copy of the model);
#   ort      ONNX Runtime's node server: onnxruntime-node + node's http, one
#            process (bench/serve/ort_server.js, ORT_DISABLE_TELEMETRY=1);
# and inferd's KServe V2 REST infer on the same model.
#
# Two layouts: "pinned" — the server on core 0 (taskset -c 0, one worker),
# wrk on core 1 (taskset -c 1); "2-core" — nothing pinned, two workers where
# the server has workers (inferd --workers 2, gunicorn -w 2; the epoll loop and
# node are one thread by design). For each layout, round and connection
# count (16 and 64) every server gets a wrk run in turn (one warm-up run
# first), so drift in the machine's load hits all alike. Per run: req/s,
# p50/p99 from wrk, and the server's CPU µs per request: utime+stime of its
# process tree from /proc/PID/stat over the run ÷ requests answered
# (bench/serve/procstat.py). Medians over the rounds go to --out.
#
#   bench/serve/throughput.sh [--rounds 3] [--duration 5] [--warmup 1]
#                             [--connections "16 64"] [--layouts "pinned 2-core"]
#                             [--servers "inferd epoll mhd book ort inferd-v2"]  (h2o: add it)
#                             [--out bench/serve/THROUGHPUT.md]
# Needs (Debian): wrk gunicorn python3-uvicorn python3-fastapi python3-sklearn
# python3-torch python3-onnx nodejs gcc curl libmicrohttpd-dev (h2o: libh2o-evloop-dev);
# onnxruntime-node from npm.
# Environment: BUILD_DIR (default build), LOG_LEVEL passed to inferd as is.
set -euo pipefail

ROOT="$(cd "$(dirname "$0")/../.." && pwd)"
COMMAND="bench/serve/throughput.sh${*:+ $*}"
ROUNDS=3
DURATION=5
WARMUP=1
CONNECTIONS="16 64"
LAYOUTS="pinned 2-core"
SERVER_LIST="inferd epoll mhd book ort inferd-v2"
OUT="$ROOT/bench/serve/THROUGHPUT.md"
while [ $# -gt 0 ]; do
    case "$1" in
    --rounds) ROUNDS="$2"; shift 2 ;;
    --duration) DURATION="$2"; shift 2 ;;
    --warmup) WARMUP="$2"; shift 2 ;;
    --connections) CONNECTIONS="$2"; shift 2 ;;
    --layouts) LAYOUTS="$2"; shift 2 ;;
    --servers) SERVER_LIST="$2"; shift 2 ;;
    --out) OUT="$2"; shift 2 ;;
    *) echo "throughput.sh: unknown argument '$1'" >&2; exit 64 ;;
    esac
done
PY=/usr/bin/python3
HERE="$ROOT/bench/serve"
BUILD_DIR="${BUILD_DIR:-$ROOT/build}"
WORK="$BUILD_DIR/throughput"
RAW="$WORK/raw.jsonl"
cd "$ROOT"
for tool in wrk gunicorn gcc curl node taskset; do
    command -v "$tool" >/dev/null || { echo "throughput.sh: '$tool' is missing (scripts/deps.sh bench)" >&2; exit 77; }
done
[ "$(nproc)" -ge 2 ] || { echo "throughput.sh: needs 2 cores (server and wrk each on one)" >&2; exit 77; }

declare -A PID PORT
stop_server() { # name
    local p="${PID[$1]:-}"
    [ -n "$p" ] || return 0
    kill -TERM -- "-$p" 2>/dev/null || true
    for _ in $(seq 100); do kill -0 "$p" 2>/dev/null || break; sleep 0.05; done
    kill -KILL -- "-$p" 2>/dev/null || true
    wait "$p" 2>/dev/null || true
    unset "PID[$1]"
}
stop_all() { local s; for s in "${!PID[@]}"; do stop_server "$s"; done; }
trap stop_all EXIT
trap 'exit 130' INT TERM

# ---- build, fixtures, peers' models ----------------------------------------
cmake -S "$ROOT" -B "$BUILD_DIR" -DCMAKE_BUILD_TYPE=Release >/dev/null
nice cmake --build "$BUILD_DIR" -j2 --target inferd >/dev/null
INFERD="$BUILD_DIR/inferd"
mkdir -p "$WORK"
gcc -O2 -std=c11 -Wall -Wextra -o "$WORK/epoll_responder" "$HERE/epoll_responder.c"
gcc -O2 -std=c11 -Wall -Wextra -o "$WORK/mhd_responder" "$HERE/mhd_responder.c" -lmicrohttpd
if [[ " $SERVER_LIST " == *" h2o "* ]]; then
    gcc -O2 -std=c11 -Wall -Wextra -o "$WORK/h2o_responder" "$HERE/h2o_responder.c" -lh2o-evloop ||
        { echo "throughput.sh: cannot build the h2o responder (scripts/deps.sh bench: libh2o-evloop-dev)" >&2; exit 77; }
fi
"$PY" tools/gen_fixtures.py --out "$WORK/fixtures" --only iris_svc digits_mlp >/dev/null
"$PY" "$HERE/book_app.py" --make-models "$WORK/models" "$WORK/fixtures"
IRIS="$WORK/fixtures/iris_svc/model.onnx"
# onnxruntime-node returns tensors only: its copy ends before the ZipMap
"$PY" - "$IRIS" "$WORK/models/iris_svc_nozipmap.onnx" <<'EOF'
import sys, onnx
m = onnx.load(sys.argv[1])
g = m.graph
zm = [n for n in g.node if n.op_type == "ZipMap"]
for n in zm:
    g.node.remove(n)
    for o in list(g.output):
        if o.name == n.output[0]:
            g.output.remove(o)
            g.output.append(onnx.helper.make_tensor_value_info(n.input[0], onnx.TensorProto.FLOAT, None))
onnx.save(m, sys.argv[2])
EOF
# the fixture's input is called float_input (skl2onnx's name)
echo '{"inputs":[{"name":"float_input","shape":[1,4],"datatype":"FP32","data":[5.1,3.5,1.4,0.2]}]}' >"$WORK/models/iris_v2_body.json"

free_port() { "$PY" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
wait_ready() { # port path
    for _ in $(seq 600); do curl -fs -o /dev/null "http://127.0.0.1:$1$2" && return 0; sleep 0.05; done
    echo "throughput.sh: server on port $1 never became ready" >&2; return 1
}
emit() { echo "$1" >>"$RAW"; }

# The whole HTTP answer inferd gives to the benchmark's request, for the epoll responder.
capture_answer() { # port out
    "$PY" - "$1" "$2" "$WORK/models/iris_body.json" <<'EOF'
import socket, sys
port, out, body = int(sys.argv[1]), sys.argv[2], open(sys.argv[3], "rb").read()
s = socket.create_connection(("127.0.0.1", port))
s.sendall(b"POST /predict HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
          b"Content-Length: %d\r\n\r\n" % len(body) + body)
data = b""
while b"\r\n\r\n" not in data:
    data += s.recv(65536)
head, rest = data.split(b"\r\n\r\n", 1)
length = int([l.split(b":")[1] for l in head.split(b"\r\n") if l.lower().startswith(b"content-length:")][0])
while len(rest) < length:
    rest += s.recv(65536)
open(out, "wb").write(head + b"\r\n\r\n" + rest[:length])
EOF
}

start_server() { # name layout
    local name="$1" layout="$2" port workers=1 pin=(taskset -c 0)
    [ "$layout" = 2-core ] && { workers=2; pin=(); }
    port="$(free_port)"
    case "$name" in
    inferd | inferd-v2)
        setsid "${pin[@]}" "$INFERD" serve "$IRIS" --name iris_svc --workers "$workers" --port "$port" \
            >"$WORK/$name.log" 2>&1 & ;;
    epoll)
        setsid "${pin[@]}" "$WORK/epoll_responder" "$port" "$WORK/inferd_answer.http" >"$WORK/$name.log" 2>&1 & ;;
    mhd | h2o)
        setsid "${pin[@]}" "$WORK/${name}_responder" "$port" "$WORK/inferd_answer.http" >"$WORK/$name.log" 2>&1 & ;;
    book)
        setsid "${pin[@]}" env BOOK_MODEL=iris BOOK_MODEL_DIR="$WORK/models" gunicorn --chdir "$HERE" \
            -k uvicorn.workers.UvicornWorker -w "$workers" -b "127.0.0.1:$port" book_app:app \
            >"$WORK/$name.log" 2>&1 & ;;
    ort)
        setsid "${pin[@]}" node "$HERE/ort_server.js" "$WORK/models/iris_svc_nozipmap.onnx" "$port" \
            >"$WORK/$name.log" 2>&1 & ;;
    esac
    PID[$name]=$!
    PORT[$name]="$port"
    case "$name" in epoll | mhd | h2o) sleep 0.2 ;; inferd*) wait_ready "$port" /v2/health/ready ;; *) wait_ready "$port" /health ;; esac
}

bench_url() { case "$1" in inferd-v2) echo "http://127.0.0.1:${PORT[$1]}/v2/models/iris_svc/infer" ;; *) echo "http://127.0.0.1:${PORT[$1]}/predict" ;; esac; }
body_of() { case "$1" in inferd-v2) echo "$WORK/models/iris_v2_body.json" ;; *) echo "$WORK/models/iris_body.json" ;; esac; }

wrk_run() { # name connections seconds layout
    local pin=(taskset -c 1)
    [ "$4" = 2-core ] && pin=()
    BODY_FILE="$(body_of "$1")" "${pin[@]}" wrk -t1 -c"$2" -d"$3s" --latency -s "$HERE/post.lua" "$(bench_url "$1")" |
        sed -n 's/^RESULT //p'
}

: >"$RAW"
emit "{\"kind\":\"env\",\"command\":\"$COMMAND\",\"rev\":\"$(git rev-parse --short HEAD)$(git diff --quiet HEAD -- src || echo ' + uncommitted')\",\"cpu\":\"$(sed -n 's/^model name\s*: //p' /proc/cpuinfo | head -1)\",\"loadavg_before\":\"$(cut -d' ' -f1-3 /proc/loadavg)\"}"

read -r -a SERVERS <<<"$SERVER_LIST"
[[ " $SERVER_LIST " == *" inferd "* ]] || SERVERS=(inferd "${SERVERS[@]}") # the responders send what it sends
for layout in $LAYOUTS; do
    # the epoll responder sends what this layout's inferd sends
    start_server inferd "$layout"
    capture_answer "${PORT[inferd]}" "$WORK/inferd_answer.http"
    for s in "${SERVERS[@]}"; do [ "$s" = inferd ] || start_server "$s" "$layout"; done
    for s in book ort inferd-v2; do # each peer answers the same numbers
        [[ " ${SERVERS[*]} " == *" $s "* ]] || continue
        emit "{\"kind\":\"answer\",\"layout\":\"$layout\",\"server\":\"$s\",\"body\":$(curl -s -X POST -H 'Content-Type: application/json' --data-binary "@$(body_of "$s")" "$(bench_url "$s")")}"
    done
    for round in $(seq "$ROUNDS"); do
        for c in $CONNECTIONS; do
            for s in "${SERVERS[@]}"; do
                echo "== $layout, round $round, $c connections: $s" >&2
                [ "$round" = 1 ] && wrk_run "$s" "$c" "$WARMUP" "$layout" >/dev/null
                cpu0="$("$PY" "$HERE/procstat.py" cpu "${PID[$s]}")"
                result="$(wrk_run "$s" "$c" "$DURATION" "$layout")"
                cpu1="$("$PY" "$HERE/procstat.py" cpu "${PID[$s]}")"
                emit "$("$PY" -c 'import json,sys
d = json.loads(sys.argv[1]); d.update(kind="wrk", layout=sys.argv[2], server=sys.argv[3], connections=int(sys.argv[4]),
    round=int(sys.argv[5]), server_cpu_s=float(sys.argv[7]) - float(sys.argv[6])); print(json.dumps(d))' \
                    "${result:-{\}}" "$layout" "$s" "$c" "$round" "$cpu0" "$cpu1")"
            done
        done
    done
    stop_all
done
emit "{\"kind\":\"end\",\"loadavg_after\":\"$(cut -d' ' -f1-3 /proc/loadavg)\"}"

"$PY" - "$RAW" "$OUT" <<'EOF'
import json, statistics, sys
lines = [json.loads(l) for l in open(sys.argv[1])]
env = lines[0]; end = lines[-1]
runs = [l for l in lines if l["kind"] == "wrk" and l.get("requests")]
names = {"inferd": "inferd `POST /predict`", "epoll": "bare epoll responder (same bytes)",
         "mhd": "libmicrohttpd responder (same body and headers)",
         "h2o": "libh2o-evloop responder (same body and headers)",
         "book": "book stack (gunicorn + uvicorn + FastAPI)", "ort": "ORT node server (onnxruntime-node + http)",
         "inferd-v2": "inferd V2 REST `/v2/models/iris_svc/infer`"}
out = ["# HTTP throughput: iris, inferd vs the floor and the peers (bench/serve/throughput.sh)", "",
       "Command: `%s`, rev %s, CPU %s. Load average before %s, after %s. Medians of the rounds; "
       "CPU µs/req = the server's utime+stime over the run ÷ requests answered." % (
           env["command"], env["rev"], env["cpu"], env["loadavg_before"], end["loadavg_after"]), ""]
for layout in dict.fromkeys(r["layout"] for r in runs):
    out += ["## %s" % ("server on core 0, wrk on core 1 (taskset), one worker" if layout == "pinned"
                       else "2-core layout: nothing pinned, 2 workers where the server has workers"), "",
            "| server | conns | req/s | p50 ms | p99 ms | CPU µs/req | × epoll CPU | errors |",
            "|---|---:|---:|---:|---:|---:|---:|---:|"]
    cpu = {}
    for c in sorted({r["connections"] for r in runs}):
        for s in names:
            rs = [r for r in runs if r["layout"] == layout and r["server"] == s and r["connections"] == c]
            if rs:
                cpu[s, c] = statistics.median(1e6 * r["server_cpu_s"] / r["requests"] for r in rs)
        for s in names:
            rs = [r for r in runs if r["layout"] == layout and r["server"] == s and r["connections"] == c]
            if not rs:
                continue
            med = lambda k: statistics.median(r[k] for r in rs)
            errors = sum(r["errors_connect"] + r["errors_read"] + r["errors_write"] + r["errors_status"]
                         + r["errors_timeout"] for r in rs)
            ratio = cpu[s, c] / cpu["epoll", c] if ("epoll", c) in cpu else float("nan")
            out.append("| %s | %d | %.0f | %.3f | %.3f | %.1f | %.2f | %d |" % (
                names[s], c, med("rps"), med("p50_ms"), med("p99_ms"), cpu[s, c], ratio, errors))
    out.append("")
answers = [l for l in lines if l["kind"] == "answer"]
out += ["Answers (each peer, first layout): " + "; ".join(
    "%s `%s`" % (a["server"], json.dumps(a["body"], separators=(",", ":"))[:160])
    for a in answers if a["layout"] == answers[0]["layout"]), ""]
open(sys.argv[2], "w").write("\n".join(out))
print("\n".join(out))
EOF
