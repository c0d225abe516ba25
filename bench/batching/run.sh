#!/bin/sh
# Adaptive batching off vs on under 64 concurrent clients (see bench_batching.py).
# Needs build/inferd (Release), wrk, taskset and Debian's /usr/bin/python3.
set -e
cd "$(dirname "$0")/../.."
exec nice /usr/bin/python3 bench/batching/bench_batching.py "$@"
