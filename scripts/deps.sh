#!/usr/bin/env bash
# deps.sh — installs the Debian packages inferd needs, and only those missing.
# Idempotent: a second run installs nothing. Usage: scripts/deps.sh [build|demo|test|bench|all]
#   build: compiler, CMake and the libraries inferd links (SQLite and hiredis:
#          the job queue's embedded and Redis backends; libpq for
#          `inferd batch --db`; libjpeg-turbo and libpng for image inputs)
#   demo:  build + Node.js/npm (scripts/demo.sh fetches Swagger UI for /docs)
#   bench: + the Python stacks the benchmarks measure against
#   test:  + what the test suite uses (ONNX test data, Debian's Python with onnx,
#            numpy, scikit-learn and torch for fixture models, clang for fuzzing,
#            prometheus for `promtool check metrics` in the server tests)
set -euo pipefail

what=${1:-all}
build=(build-essential cmake pkg-config libprotobuf-c-dev protobuf-c-compiler libjansson-dev
       libopenblas-dev libmicrohttpd-dev libssl-dev libcurl4-openssl-dev libarchive-dev
       libsqlite3-dev libhiredis-dev libpq-dev libjpeg62-turbo-dev libpng-dev)
build+=(libgrpc-dev)  # KServe V2 over gRPC (--grpc-port): gRPC's C core; messages via protobuf-c
build+=(libfmt-dev)  # src/wire's shortest round-trip digits of JSON numbers (fmt's Dragonbox)
# test: ONNX's backend test data and Debian's Python stack for fixture models;
# clang for the fuzzers; promtool (prometheus) for /metrics; OCI tools and
# yamllint for the release patterns
test=(libonnx-testdata python3-onnx python3-numpy python3-sklearn python3-torch clang prometheus
      libclang-rt-14-dev umoci skopeo yamllint curl)
test+=(wrk)           # the load generator of the live-model tests
test+=(libdouble-conversion-dev)  # tests/wire holds src/wire's shortest digits to libdouble-conversion's
test+=(redis-server)  # the job queue's Redis tests
test+=(postgresql)    # inferd batch --db tests
test+=(python3-pil)   # the image fixtures (tests/image)
test+=(python3-torchvision espeak-ng)  # real-model fixtures: torchvision architectures, spoken input for VAD and wake-word models
test+=(python3-grpcio python3-grpc-tools openssl)  # the independent gRPC client of tests/serve/test_grpc.py (stubs generated at test time; openssl makes its TLS certificates)
test+=(chromium)      # the real browser that loads /ui and /docs (through npm's puppeteer-core)
test+=(python3-torchvision)  # ResNet-18 and MobileNetV2 of the engine-model tests and bench/engine (tools/gen_engine_bench_models.py)

# bench: the Python jobs bench/batch measures against; the book's asynchronous
# stack (FastAPI, uvicorn, redis) bench/async measures against; httpx for the
# book's parallel pattern bench/pipeline rebuilds
bench=(python3-pandas python3-sqlalchemy python3-psycopg2 python3-fastapi python3-uvicorn python3-redis
       python3-httpx)
bench+=(nghttp2-client)  # h2load: the C load generator of bench/grpc (gRPC over HTTP/2 and REST alike)
bench+=(gunicorn)     # the book's web single pattern process manager (bench/serve/throughput.sh, run.sh)
bench+=(libh2o-evloop-dev)  # h2o's event loop, the leaner HTTP library bench/serve/throughput.sh weighs (h2o_responder.c)

case "$what" in
  build|demo) wanted=("${build[@]}") ;;
  test|all) wanted=("${build[@]}" "${test[@]}") ;;
  bench) wanted=("${build[@]}" "${test[@]}" "${bench[@]}") ;;
  *) echo "usage: $0 [build|demo|test|bench|all]" >&2; exit 2 ;;
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
