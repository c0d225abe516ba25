#!/usr/bin/env bash
# fuzz.sh — builds inferd's libFuzzer targets (clang, ASan + UBSan) and runs
# them for a bounded time; exits non-zero on any finding.
#   1. replays every reproducer under fuzz/regressions/<target>/: a crash that
#      was fixed must stay fixed. The ones listed in fuzz/regressions/KNOWN_OPEN
#      (operator bugs found but not fixed yet) are reported, not failed on; one
#      that passes is reported too, so that its line can be removed;
#   2. fuzzes fuzz_model_load for 1/2 of SECONDS, fuzz_value_decode,
#      fuzz_batch_reader (inferd batch's CSV/JSONL/.npy readers) and
#      fuzz_image_decode (src/image: JPEG/PNG decoders, EXIF, resize, base64)
#      for 1/6 each, one job each (the machine is shared), starting from
#      fuzz/seed_corpus.sh; then fuzz_jobs_url (the job queue's URL and id
#      parsers) for 5 s and fuzz_infer_request (the V2 and book request
#      decoders) for 10 s, fuzz_grpc_request (the KServe V2 gRPC decoder
#      and encoder) for 10 s; fuzz_pipeline_json and fuzz_model_config
#      (config.json, batching fields included) for 5 s each;
#      fuzz_numeric_json (the book body's fast path, checked against
#      jansson) for 10 s.
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

command -v clang++ >/dev/null || { echo "fuzz.sh: clang/clang++ not found (scripts/deps.sh test)" >&2; exit 1; }

echo "== fuzz.sh: building libFuzzer targets in $build"
CC=clang CXX=clang++ cmake -S "$src" -B "$build" -DINFERD_FUZZ=ON -DINFERD_SANITIZE=ON -DINFERD_WERROR=ON \
  -DCMAKE_BUILD_TYPE=Debug -DCMAKE_C_FLAGS_DEBUG="-O1 -g" >/dev/null
cmake --build "$build" -j"$jobs" --target fuzz_model_load fuzz_value_decode fuzz_batch_reader fuzz_jobs_url \
  fuzz_infer_request fuzz_image_decode fuzz_pipeline_json fuzz_grpc_request fuzz_model_config fuzz_numeric_json >/dev/null

export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=0:allocator_may_return_null=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-halt_on_error=1:print_stacktrace=1}
export OPENBLAS_NUM_THREADS=1
limits=(-rss_limit_mb=2048 -malloc_limit_mb=2048 -timeout=10)
# the image path decodes at most 65536 pixels: any allocation past 256 MB
# is a bug (libpng allocating a chunk's declared length was one)
image_limits=(-rss_limit_mb=1024 -malloc_limit_mb=256 -timeout=10)
limits_for() { # limits_for TARGET: its libFuzzer limits, one per line
  if [ "$1" = image_decode ]; then printf '%s\n' "${image_limits[@]}"; else printf '%s\n' "${limits[@]}"; fi
}
max_len_model_load=16384
max_len_value_decode=4096
max_len_image_decode=16384
artifacts="$build/artifacts"
mkdir -p "$artifacts"
status=0

echo "== fuzz.sh: replaying fuzz/regressions"
known="$repo/fuzz/regressions/KNOWN_OPEN"
# every folder of fuzz/regressions is named after its fuzz_<target>
for dir in "$repo"/fuzz/regressions/*/; do
  dir="${dir%/}"
  target="$(basename "$dir")"
  for f in "$dir"/*; do
    [ -f "$f" ] || continue
    rel="$target/$(basename "$f")"
    open=0
    [ -f "$known" ] && awk -v r="$rel" '$1 == r { found = 1 } END { exit !found }' "$known" && open=1
    mapfile -t target_limits < <(limits_for "$target")
    if "$build/fuzz/fuzz_$target" "${target_limits[@]}" "$f" >"$artifacts/replay.log" 2>&1; then
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
  local target_limits
  mapfile -t target_limits < <(limits_for "$name")
  if ! "$build/fuzz/fuzz_$name" "$corpus/$name" "${target_limits[@]}" -max_total_time="$secs" \
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

model_secs=$((seconds / 2))
[ "$model_secs" -lt 1 ] && model_secs=1
value_secs=$((seconds / 6))
[ "$value_secs" -lt 1 ] && value_secs=1
reader_secs=$((seconds / 6))
[ "$reader_secs" -lt 1 ] && reader_secs=1
image_secs=$((seconds - model_secs - value_secs - reader_secs))
[ "$image_secs" -lt 1 ] && image_secs=1
run_target model_load "$model_secs" -max_len=$max_len_model_load -dict="$repo/fuzz/onnx.dict"
run_target value_decode "$value_secs" -max_len=$max_len_value_decode
run_target batch_reader "$reader_secs" -max_len=4096
run_target image_decode "$image_secs" -max_len=$max_len_image_decode -dict="$repo/fuzz/image.dict"
# the job queue's URL and id parsers are small: a few seconds cover them
mkdir -p "$corpus/jobs_url"
printf 'redis://:secret@cache.example:6380/2' >"$corpus/jobs_url/seed"
run_target jobs_url 5 -max_len=512
# the inference request decoders (src/infer), seeded with one body of each form
mkdir -p "$corpus/infer_request"
printf '\000\000\000{"inputs":[{"name":"float_input","shape":[1,4],"datatype":"FP32","data":[5.1,3.5,1.4,0.2]}]}' \
  >"$corpus/infer_request/v2"
printf '\002\000\000{"data":[[5.1,3.5,1.4,0.2]]}' >"$corpus/infer_request/book"
run_target infer_request 10 -max_len=4096
# the KServe V2 gRPC request decoder (src/serve/grpc), from the committed
# ModelInferRequest seeds (fuzz/make_grpc_seeds.py)
mkdir -p "$corpus/grpc_request"
cp "$repo"/fuzz/seeds/grpc_request/* "$corpus/grpc_request/"
run_target grpc_request 10 -max_len=4096
# pipeline.json: a short run from the shipped examples (src/pipeline)
mkdir -p "$corpus/pipeline_json"
for f in "$repo"/models/pipelines/*/pipeline.json; do cp "$f" "$corpus/pipeline_json/$(basename "$(dirname "$f")")"; done
run_target pipeline_json 5 -max_len=4096
# config.json (src/models/model_config.c): a short run from a full config
mkdir -p "$corpus/model_config"
printf '%s' '{"version_policy": {"latest": 2}, "traffic": {"1": 90, "2": 10}, "sticky": "X-User-ID",
 "max_batch_size": 64, "max_queue_delay_us": 2000, "preferred_batch_sizes": [16, 32], "max_queue_size": 8,
 "dynamic_batching": {"max_queue_delay_microseconds": "100", "preferred_batch_size": [4],
 "default_queue_policy": {"max_queue_size": 4}}}' >"$corpus/model_config/full"
run_target model_config 5 -max_len=2048
# the book API's numeric fast path against jansson (src/wire/numeric_json.c)
mkdir -p "$corpus/numeric_json"
printf '{"data":[[5.1,3.5,1.4,0.2]]}' >"$corpus/numeric_json/rows"
printf '{"id":"1","inputs":[{"name":"float_input","shape":[1,4],"datatype":"FP32","data":[5.1,3.5,1.4,0.2]},{"name":"b","data":[[1],2]}]}' \
  >"$corpus/numeric_json/v2"
printf '{ "data" : [[1e-7, -0.0, 12345678901234567890.5, 3.4028235e38], [0, -7, 2E+22, 1.7976931348623157e308]] }' \
  >"$corpus/numeric_json/edges"
run_target numeric_json 10 -max_len=1024

if [ $status = 0 ]; then
  echo "fuzz.sh: no findings"
else
  echo "fuzz.sh: findings above; inputs in $artifacts" >&2
fi
exit $status
