#!/bin/sh
# Resident memory of loaded models, one command:
#   bench/memory/run.sh [BUILD_DIR] [ENGINE_MODELS_DIR]
# (defaults: build, and BUILD_DIR/../build-bench/engine-models when it exists)
# Exports the benchmark models (bench/memory/make_models.py) into
# BUILD_DIR/bench/memory-models, then runs bench_memory on each, on the
# issue-14 engine models (tools/gen_engine_bench_models.py: resnet18,
# mobilenet_v2, transformer_encoder, lstm) and on the real-model fixtures
# (when generated) with 4 sessions at --graph-opt none and all, printing one
# JSON line per run and the load average.
# Then the sharing check: a first process loads add_table (whose 16 MiB
# weight is read in place from the mapped file) and holds it; a second one
# loads the same file and reports, from its own /proc/self/smaps, how much of
# the file's mapping is resident and how much of that is shared
# (Shared_Clean) with the first. Last, two `inferd serve` processes of that
# file, each one's mapping of it as /proc/PID/smaps shows it.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
build=${1:-build}
engine_models=${2:-$build/../build-bench/engine-models}
models=$build/bench/memory-models
/usr/bin/python3 "$here/make_models.py" "$models" > /dev/null 2>&1
uptime
for model in "$models"/*.onnx "$engine_models"/*/model.onnx \
             "$build"/tests/fixtures/generated/digits_*/model.onnx; do
    [ -f "$model" ] || continue
    for level in none all; do
        "$build/bench/bench_memory" "$model" --sessions 4 --graph-opt "$level"
    done
done

echo "# sharing: two processes, one file"
fifo=$(mktemp -u /tmp/inferd-memory-XXXXXX)
mkfifo "$fifo"
first_out=$(mktemp /tmp/inferd-memory-out-XXXXXX)
"$build/bench/bench_memory" "$models/add_table.onnx" --sessions 1 --hold < "$fifo" > "$first_out" &
first=$!
exec 3> "$fifo" # the first process holds its model until this closes
while ! [ -s "$first_out" ]; do sleep 0.1; done
cat "$first_out"
"$build/bench/bench_memory" "$models/add_table.onnx" --sessions 1
exec 3>&-
wait "$first"
rm -f "$fifo" "$first_out"

echo "# sharing: two inferd serve processes of one file (the server maps, hashes and loads it)"
# a read-only copy: the server maps only files nobody may write (a writable
# one is read into a private copy, so rewriting it in place is harmless)
served=$(mktemp /tmp/inferd-memory-add_table-XXXXXX.onnx)
cp "$models/add_table.onnx" "$served"
chmod a-w "$served"
logs=""
pids=""
for i in 1 2; do
    log=$(mktemp /tmp/inferd-memory-serve-XXXXXX)
    "$build/inferd" serve "$served" --name add_table --port 0 --workers 2 > "$log" 2>&1 &
    pids="$pids $!"
    logs="$logs $log"
done
for log in $logs; do
    tries=0
    while ! grep -q listening "$log" && [ $tries -lt 300 ]; do sleep 0.1; tries=$((tries + 1)); done
done
real=$(realpath "$served")
for pid in $pids; do
    # Rss and Shared_Clean (kB) of the process's mappings of the model file
    awk -v file="$real" -v pid="$pid" '
        /^[0-9a-f]+-[0-9a-f]+ / { inside = ($NF == file) }
        inside && $1 == "Rss:" { rss += $2 }
        inside && $1 == "Shared_Clean:" { shared += $2 }
        END { printf "{\"server_pid\": %s, \"file_mapping_rss_mib\": %.1f, \"file_mapping_shared_mib\": %.1f}\n", pid, rss / 1024, shared / 1024 }
    ' "/proc/$pid/smaps"
done
for pid in $pids; do kill "$pid"; wait "$pid" 2>/dev/null || true; done
rm -f $logs "$served"
uptime
