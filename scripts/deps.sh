#!/usr/bin/env bash
# deps.sh — installs the Debian packages inferd needs, and only those missing.
# Idempotent: a second run installs nothing. Usage: scripts/deps.sh [build|test|all]
#   build: compiler, CMake and the libraries inferd links
#   test:  + what the test suite uses (ONNX test data, Debian's Python with onnx,
#            numpy, scikit-learn and torch for fixture models, clang for fuzzing,
#            prometheus for `promtool check metrics` in the server tests)
set -euo pipefail

what=${1:-all}
build=(build-essential cmake pkg-config libprotobuf-c-dev protobuf-c-compiler libjansson-dev
       libopenblas-dev libmicrohttpd-dev libssl-dev libcurl4-openssl-dev libarchive-dev)
# test: ONNX's backend test data and Debian's Python stack for fixture models;
# clang for the fuzzers; promtool (prometheus) for /metrics; OCI tools and
# yamllint for the release patterns; wrk, the load generator of the live-model
# tests; FastAPI, uvicorn and httpx rebuild the book's parallel pattern for
# bench/pipeline
test=(libonnx-testdata python3-onnx python3-numpy python3-sklearn python3-torch clang prometheus
      libclang-rt-14-dev umoci skopeo yamllint curl wrk python3-fastapi python3-uvicorn python3-httpx)

case "$what" in
  build) wanted=("${build[@]}") ;;
  test|all) wanted=("${build[@]}" "${test[@]}") ;;
  *) echo "usage: $0 [build|test|all]" >&2; exit 2 ;;
esac

# Node.js and npm (ONNX Runtime for benchmarks, Swagger UI, swagger-parser):
# any installed node will do; Debian's when there is none.
if [ "$what" != build ] && ! command -v npm >/dev/null; then
  wanted+=(nodejs npm)
fi

missing=()
for pkg in "${wanted[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$pkg")
  fi
done
[ ${#missing[@]} -eq 0 ] && exit 0

echo "deps.sh: installing ${missing[*]}" >&2
sudo=""
if [ "$(id -u)" -ne 0 ]; then
  command -v sudo >/dev/null || { echo "deps.sh: need root or sudo to install ${missing[*]}" >&2; exit 1; }
  sudo=sudo
fi
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -qq
$sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
