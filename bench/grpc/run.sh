#!/usr/bin/env bash
# run.sh — KServe V2 ModelInfer over gRPC against REST V2 on the same
# `inferd serve` (iris and the digits MLP): requests/s and server CPU µs per
# request, one command, one run (bench/grpc/bench_grpc.py says how).
#   bench/grpc/run.sh [--connections 16] [--duration 5] [--rounds 3]
#                     [--server-cpu 0] [--load-cpu 1]
# Needs: a Release build in $BUILD_DIR (default build), h2load
# (nghttp2-client), taskset, Debian's python3-grpcio, python3-grpc-tools,
# numpy and torch (the digits MLP is trained by tools/gen_fixtures.py).
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/../.." && pwd)"
exec /usr/bin/python3 "$ROOT/bench/grpc/bench_grpc.py" --build "${BUILD_DIR:-$ROOT/build}" \
    --command "bench/grpc/run.sh${*:+ $*}" "$@"
