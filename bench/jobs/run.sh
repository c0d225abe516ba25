#!/usr/bin/env bash
# run.sh — the job queue's throughput (bench/jobs/bench_jobs.c), embedded
# SQLite and Redis side by side in one run, with a trivial callback so the
# numbers are the queue's own cost. Builds bench_jobs (Release), runs it
# (it starts and stops its own redis-server on a free 127.0.0.1 port) and
# writes bench/jobs/RESULTS.md.
#
#   bench/jobs/run.sh [--jobs 20000] [--threads 2] [--repeats 5] [--backends embedded,redis]
#
# Environment: BUILD_DIR (default build-bench). Raw JSON lines, one per
# repeat: BUILD_DIR/bench-jobs-raw.jsonl.
set -euo pipefail

ROOT="$(cd "$(dirname "$0")/../.." && pwd)"
COMMAND="bench/jobs/run.sh${*:+ $*}"
BUILD_DIR="${BUILD_DIR:-$ROOT/build-bench}"
OUT="$ROOT/bench/jobs/RESULTS.md"
cd "$ROOT"

cmake -S "$ROOT" -B "$BUILD_DIR" -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build "$BUILD_DIR" -j2 --target bench_jobs >/dev/null
RAW="$BUILD_DIR/bench-jobs-raw.jsonl"
LOAD_BEFORE="$(cut -d' ' -f1-3 /proc/loadavg)"
STARTED=$(date +%s)
TABLE="$("$BUILD_DIR/bench/bench_jobs" "$@" 2>"$RAW")"
LOAD_AFTER="$(cut -d' ' -f1-3 /proc/loadavg)"
SECONDS_TAKEN=$(($(date +%s) - STARTED))
COMMIT="$(git rev-parse --short HEAD)$(git diff --quiet HEAD -- src/jobs bench/jobs || echo ' with uncommitted changes')"

cat >"$OUT" <<MD
# Job queue throughput (src/jobs)

Written by \`$COMMAND\` (raw per-repeat JSON lines: \`${RAW#"$ROOT"/}\`).

- Machine: $(nproc) cores, $(awk '/MemTotal/ {printf "%.0f GiB", $2 / 1048576}' /proc/meminfo) RAM, Linux $(uname -r); shared with other builds: load average $LOAD_BEFORE before the run and $LOAD_AFTER after (1, 5, 15 min), so expect noise.
- inferd commit $COMMIT, Release (-O3); SQLite $(pkg-config --modversion sqlite3), hiredis $(pkg-config --modversion hiredis), $("$(command -v redis-server)" --version | cut -d' ' -f1-3).
- Each repeat is a fresh queue. *submit*: one thread submits N jobs (a 120-byte V2 request body each). *drain*: a runner with the given threads claims and completes those N (trivial callback: the result is the payload). *mixed*: the runner running, one thread submits N more; the time from the first submit to the last completion. Shown: the median over repeats in bold, the range in brackets.
- Embedded: SQLite in WAL mode, synchronous=NORMAL (a committed job survives a kill -9 of the process; a power loss may lose the last commits), in a temporary directory on the same disk as the build. Redis: a redis-server started by the benchmark on 127.0.0.1 with the append-only file on and \`appendfsync everysec\`.
- Measuring took $SECONDS_TAKEN s.

$TABLE

Generated $(date -u '+%Y-%m-%d %H:%M UTC').
MD
cat "$OUT"
