#!/usr/bin/env bash
# fuzz.sh — builds inferd's libFuzzer targets (clang, ASan + UBSan) and runs
# them for a bounded time; exits non-zero on any finding.
#   1. replays every reproducer under fuzz/regressions/<target>/: a crash that
#      was fixed must stay fixed. The ones listed in fuzz/regressions/KNOWN_OPEN
#      (operator bugs found but not fixed yet) are reported, not failed on; one
#      that passes is reported too, so that its line can be removed;
#   2. fuzzes fuzz_model_load for 2/3 and fuzz_value_decode for 1/3 of SECONDS,
#      one job each (the machine is shared), starting from fuzz/seed_corpus.sh.
# Crashes, timeouts and out-of-memory inputs are saved as
# $FUZZ_BUILD_DIR/artifacts/<target>-crash-<sha1> (minimise one with
#   $FUZZ_BUILD_DIR/fuzz/<target> -minimize_crash=1 -runs=100000 FILE).
#
# Usage: scripts/fuzz.sh [SECONDS]        (default 60, as CI runs it)
# Environment: FUZZ_BUILD_DIR (default build-fuzz), FUZZ_CORPUS (a directory
# to keep the corpus in between runs; default a temporary one),
# FUZZ_SOURCE_DIR (default this repository).
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$(pwd)
seconds=${1:-60}
src=${FUZZ_SOURCE_DIR:-$repo}
build=${FUZZ_BUILD_DIR:-build-fuzz}
jobs=$(nproc)
[ "$jobs" -gt 2 ] && jobs=2

command -v clang >/dev/null || { echo "fuzz.sh: clang not found (scripts/deps.sh test)" >&2; exit 1; }

echo "== fuzz.sh: building libFuzzer targets in $build"
CC=clang cmake -S "$src" -B "$build" -DINFERD_FUZZ=ON -DINFERD_SANITIZE=ON -DINFERD_WERROR=ON \
  -DCMAKE_BUILD_TYPE=Debug -DCMAKE_C_FLAGS_DEBUG="-O1 -g" >/dev/null
cmake --build "$build" -j"$jobs" --target fuzz_model_load fuzz_value_decode fuzz_pipeline_json >/dev/null

export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=0:allocator_may_return_null=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-halt_on_error=1:print_stacktrace=1}
export OPENBLAS_NUM_THREADS=1
limits=(-rss_limit_mb=2048 -malloc_limit_mb=2048 -timeout=10)
max_len_model_load=16384
max_len_value_decode=4096
artifacts="$build/artifacts"
mkdir -p "$artifacts"
status=0

echo "== fuzz.sh: replaying fuzz/regressions"
known="$repo/fuzz/regressions/KNOWN_OPEN"
for target in model_load value_decode; do
  dir="$repo/fuzz/regressions/$target"
  [ -d "$dir" ] || continue
  for f in "$dir"/*; do
    [ -f "$f" ] || continue
    rel="$target/$(basename "$f")"
    open=0
    [ -f "$known" ] && awk -v r="$rel" '$1 == r { found = 1 } END { exit !found }' "$known" && open=1
    if "$build/fuzz/fuzz_$target" "${limits[@]}" "$f" >"$artifacts/replay.log" 2>&1; then
      if [ $open = 1 ]; then
        echo "fuzz.sh: $rel is listed in KNOWN_OPEN but no longer fails: remove it from the list" >&2
      fi
    elif [ $open = 1 ]; then
      echo "fuzz.sh: $rel still fails (known open)"
    else
      echo "fuzz.sh: REGRESSION: $rel fails again:" >&2
      grep -E "ERROR|SUMMARY|runtime error|broken promise|#[0-9]+ +0x.* in .*/(src|fuzz)/" \
        "$artifacts/replay.log" | head -20 >&2
      status=1
    fi
  done
done

corpus=${FUZZ_CORPUS:-}
if [ -z "$corpus" ]; then
  corpus=$(mktemp -d)
  trap 'rm -rf "$corpus"' EXIT
fi
fuzz/seed_corpus.sh "$corpus"

run_target() { # run_target NAME SECONDS EXTRA_ARGS...
  local name=$1 secs=$2
  shift 2
  echo "== fuzz.sh: fuzz_$name for ${secs}s"
  if ! "$build/fuzz/fuzz_$name" "$corpus/$name" "${limits[@]}" -max_total_time="$secs" \
      -artifact_prefix="$artifacts/$name-" -print_final_stats=1 "$@" \
      >"$artifacts/$name.log" 2>&1; then
    echo "fuzz.sh: fuzz_$name FOUND A PROBLEM:" >&2
    grep -E "ERROR|SUMMARY|runtime error|broken promise|Test unit written|#[0-9]+ +0x.* in .*/(src|fuzz)/" \
      "$artifacts/$name.log" | head -30 >&2
    status=1
  fi
  grep -E "^#[0-9]+.*cov: " "$artifacts/$name.log" | tail -1 || true
  grep -E "^stat::(number_of_executed_units|average_exec_per_sec|new_units_added|peak_rss_mb)" \
    "$artifacts/$name.log" || true
}

model_secs=$((seconds * 2 / 3))
[ "$model_secs" -lt 1 ] && model_secs=1
value_secs=$((seconds - model_secs))
[ "$value_secs" -lt 1 ] && value_secs=1
run_target model_load "$model_secs" -max_len=$max_len_model_load -dict="$repo/fuzz/onnx.dict"
run_target value_decode "$value_secs" -max_len=$max_len_value_decode
# pipeline.json: a short run from the shipped examples (src/pipeline)
mkdir -p "$corpus/pipeline_json"
for f in "$repo"/models/pipelines/*/pipeline.json; do cp "$f" "$corpus/pipeline_json/$(basename "$(dirname "$f")")"; done
run_target pipeline_json "$(( value_secs > 10 ? 10 : value_secs ))" -max_len=4096

if [ $status = 0 ]; then
  echo "fuzz.sh: no findings"
else
  echo "fuzz.sh: findings above; inputs in $artifacts" >&2
fi
exit $status
