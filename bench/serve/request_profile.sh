#!/usr/bin/env bash
# request_profile.sh — where one request's instructions go, counted by
# callgrind (exact and repeatable, unlike CPU time on a shared machine), for
# issue 15's CPU budget: inferd's book API iris `POST /predict` against the
# libmicrohttpd responder (bench/serve/mhd_responder.c, the library's own
# floor: same daemon flags, same body and headers). Each server runs under
# valgrind --tool=callgrind; wrk -c4 warms it for 2 s, the counters are
# zeroed, wrk runs SECONDS more, the counters are dumped, and every figure
# is divided by the requests wrk completed. Prints the totals and, for
# inferd, the inclusive instructions per request of the parts of a request.
# The h2o responder (bench/serve/h2o_responder.c, libh2o-evloop) is counted
# too when its library is installed, and the bare epoll loop: what each
# HTTP layer costs in user space (the kernel's share, the same for all, is
# not counted by callgrind).
#
#   bench/serve/request_profile.sh [--seconds 8] [--out FILE]
#
# libmicrohttpd zeroes each connection's memory pool (--max-header, 16 KiB)
# between requests with `rep stosb`, which callgrind counts once per byte:
# that memset is shown apart, since its instructions say little about its
# time. Needs valgrind and wrk; BUILD_DIR as for throughput.sh, whose
# fixtures and responders it reuses (it builds them when missing).
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/../.." && pwd)"
SECONDS_RUN=8
OUT=""
while [ $# -gt 0 ]; do
    case "$1" in
    --seconds) SECONDS_RUN="$2"; shift 2 ;;
    --out) OUT="$2"; shift 2 ;;
    *) echo "request_profile.sh: unknown argument '$1'" >&2; exit 64 ;;
    esac
done
for tool in valgrind callgrind_control callgrind_annotate wrk curl gcc; do
    command -v "$tool" >/dev/null || { echo "request_profile.sh: '$tool' is missing" >&2; exit 77; }
done
PY=/usr/bin/python3
BUILD_DIR="${BUILD_DIR:-$ROOT/build}"
WORK="$BUILD_DIR/throughput"
PROFILE="$WORK/profile"
mkdir -p "$PROFILE"
rm -f "$PROFILE"/*.wrk # a server left out this time must not show an old run
cmake -S "$ROOT" -B "$BUILD_DIR" -DCMAKE_BUILD_TYPE=Release >/dev/null
nice cmake --build "$BUILD_DIR" -j2 --target inferd >/dev/null
IRIS="$WORK/fixtures/iris_svc/model.onnx"
[ -f "$IRIS" ] || "$PY" "$ROOT/tools/gen_fixtures.py" --out "$WORK/fixtures" --only iris_svc >/dev/null
[ -x "$WORK/mhd_responder" ] || gcc -O2 -std=c11 -Wall -Wextra -o "$WORK/mhd_responder" "$ROOT/bench/serve/mhd_responder.c" -lmicrohttpd
[ -x "$WORK/epoll_responder" ] || gcc -O2 -std=c11 -Wall -Wextra -o "$WORK/epoll_responder" "$ROOT/bench/serve/epoll_responder.c"
[ -x "$WORK/h2o_responder" ] ||
    gcc -O2 -std=c11 -Wall -Wextra -o "$WORK/h2o_responder" "$ROOT/bench/serve/h2o_responder.c" -lh2o-evloop 2>/dev/null ||
    echo "request_profile.sh: no libh2o-evloop-dev: the h2o responder is left out" >&2
BODY="$PROFILE/iris_body.json"
echo '{"data": [[5.1, 3.5, 1.4, 0.2]]}' >"$BODY"
free_port() { "$PY" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }

profile() { # name port command...
    local name="$1" port="$2"
    shift 2
    rm -f "$PROFILE/$name".cg.*
    setsid valgrind --tool=callgrind --callgrind-out-file="$PROFILE/$name.cg.%p" "$@" >"$PROFILE/$name.log" 2>&1 &
    local pid=$!
    for _ in $(seq 600); do
        curl -fs -o /dev/null -X POST -H 'Content-Type: application/json' --data-binary "@$BODY" \
            "http://127.0.0.1:$port/predict" && break
        sleep 0.1
    done
    BODY_FILE="$BODY" wrk -t1 -c4 -d2s -s "$ROOT/bench/serve/post.lua" "http://127.0.0.1:$port/predict" >/dev/null
    callgrind_control -z "$pid" >/dev/null 2>&1
    BODY_FILE="$BODY" wrk -t1 -c4 -d"${SECONDS_RUN}s" -s "$ROOT/bench/serve/post.lua" \
        "http://127.0.0.1:$port/predict" | sed -n 's/^RESULT //p' >"$PROFILE/$name.wrk"
    callgrind_control -d "$pid" >/dev/null 2>&1
    kill -TERM -- "-$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
    local dump
    dump="$(ls "$PROFILE/$name".cg.*.1 | head -1)"
    callgrind_annotate --inclusive=yes --threshold=100 "$dump" >"$PROFILE/$name.inclusive" 2>/dev/null
    callgrind_annotate --inclusive=no --threshold=100 "$dump" >"$PROFILE/$name.self" 2>/dev/null
}

[ -f "$WORK/inferd_answer.http" ] ||
    { echo "request_profile.sh: run bench/serve/throughput.sh once first (it captures inferd's answer)" >&2; exit 1; }
port="$(free_port)"
profile mhd "$port" "$WORK/mhd_responder" "$port" "$WORK/inferd_answer.http"
port="$(free_port)"
profile epoll "$port" "$WORK/epoll_responder" "$port" "$WORK/inferd_answer.http"
if [ -x "$WORK/h2o_responder" ]; then
    port="$(free_port)"
    profile h2o "$port" "$WORK/h2o_responder" "$port" "$WORK/inferd_answer.http"
fi
port="$(free_port)"
profile inferd "$port" "$BUILD_DIR/inferd" serve "$IRIS" --name iris_svc --workers 1 --port "$port"

"$PY" - "$PROFILE" "$(git -C "$ROOT" rev-parse --short HEAD)" "$OUT" <<'PY'
import json, re, sys
profile, rev, out = sys.argv[1], sys.argv[2], sys.argv[3]

def table(path):
    costs = {}
    for line in open(path):
        m = re.match(r"\s*([\d,]+) \([^)]*\)\s+(\S+)", line)
        if m:
            costs.setdefault(m.group(2), int(m.group(1).replace(",", "")))
    return costs

def summary(name):
    requests = json.load(open("%s/%s.wrk" % (profile, name)))["requests"]
    inclusive, own = table("%s/%s.inclusive" % (profile, name)), table("%s/%s.self" % (profile, name))
    total = inclusive.get("PROGRAM", 0)
    memset = sum(v for k, v in own.items() if "memset" in k and "erms" in k)
    return requests, inclusive, total, memset

lines = ["# Instructions per request (callgrind), rev %s" % rev, ""]
floor = None
import os
for name in ("mhd", "epoll", "h2o", "inferd"):
    if not os.path.exists("%s/%s.wrk" % (profile, name)):
        continue
    requests, inclusive, total, memset = summary(name)
    per = (total - memset) / requests
    floor = floor or per
    lines.append("%-7s %6d requests: %6.0f instructions a request besides libmicrohttpd's pool memset "
                 "(%5.0f more counted in it), %.2fx the responder" % (name, requests, per, memset / requests, per / floor))
    if name != "inferd":
        continue
    parts = [
        ("the whole request handler (on_request)", "on_request"),
        ("book /predict handler", "book_predict"),
        ("model run (ifd_session_run)", "ifd_session_run"),
        ("  SVMClassifier", "svm_classifier_run"),
        ("  ZipMap", "zipmap_run"),
        ("  op_output (output bookkeeping)", "op_output"),
        ("body -> tensor (request_input)", "request_input"),
        ("answer numbers (json_text_number_array)", "json_text_number_array"),
        ("freeing inputs and outputs (ifd_value_free)", "ifd_value_free"),
        ("response + headers (send_response)", "send_response"),
        ("  libmicrohttpd header adds (3)", "MHD_add_response_header"),
        ("  metrics", "metrics_observe_request"),
        ("completion + access log (on_completed)", "on_completed"),
        ("  access log line (log_request)", "log_request"),
        ("model version lookup", "served_acquire_target"),
        ("routing", "routes_match"),
    ]
    for label, fn in parts:
        hits = [v for k, v in inclusive.items() if k.endswith(":" + fn)]
        if hits:
            lines.append("    %-46s %6.0f" % (label, hits[0] / requests))
text = "\n".join(lines) + "\n"
print(text, end="")
if out:
    open(out, "w").write(text)
PY
