#!/usr/bin/env bash
# test.sh — the whole test suite, exactly as CI runs it:
#   1. release build, warnings as errors, then every CTest test (unit tests,
#      the ONNX backend conformance suite, real-model fixtures);
#   2. the same tests built with AddressSanitizer + UndefinedBehaviorSanitizer;
#   3. the loader fuzzers for a bounded time (FUZZ_SECONDS, default 60).
# Installs missing Debian packages first (scripts/deps.sh).
set -euo pipefail
cd "$(dirname "$0")/.."
jobs=$(nproc)
# Every step that loads onnxruntime-node (fixtures, generators, benchmarks)
# runs with ONNX Runtime's telemetry off: ORT 1.30 otherwise writes
# /tmp/mat-debug-*.log and tries to send usage data to an outside address.
export ORT_DISABLE_TELEMETRY=1

scripts/deps.sh all
# npm packages (package-lock.json): Swagger UI for /docs, swagger-parser for the
# OpenAPI test, ONNX Runtime for benchmarks (its install script would fetch GPU
# files: skip it, the CPU binding ships in the package).
# A node_modules that is a symbolic link (a git worktree sharing another
# checkout's) belongs to that checkout: never reinstall through it.
if [ ! -L node_modules ] && { [ ! -d node_modules ] || [ package-lock.json -nt node_modules ]; }; then
  ONNXRUNTIME_NODE_INSTALL=skip npm ci --no-audit --no-fund --loglevel=error
fi

echo "== release build and tests"
cmake -S . -B build -DCMAKE_BUILD_TYPE=Release -DINFERD_WERROR=ON >/dev/null
cmake --build build -j"$jobs"
ctest --test-dir build --output-on-failure -j"$jobs"

echo "== AddressSanitizer + UndefinedBehaviorSanitizer build and tests"
cmake -S . -B build-asan -DCMAKE_BUILD_TYPE=RelWithDebInfo -DINFERD_WERROR=ON -DINFERD_SANITIZE=ON >/dev/null
cmake --build build-asan -j"$jobs"
ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
  ctest --test-dir build-asan --output-on-failure -j"$jobs"

echo "== fuzzing the model loader for ${FUZZ_SECONDS:-60} s"
scripts/fuzz.sh "${FUZZ_SECONDS:-60}"
