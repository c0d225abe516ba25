#!/usr/bin/env bash
# run.sh — builds inferd (Release) and runs bench/batch/bench_batch.py: inferd
# batch against Python batch jobs on CSV and PostgreSQL, side by side; writes
# bench/batch/RESULTS.md. Needs scripts/deps.sh bench (pandas, SQLAlchemy,
# psycopg2) and test (scikit-learn, postgresql). Usage: bench/batch/run.sh
# [--rows N] [--repeats R] [--book-repeats B]
set -euo pipefail
cd "$(dirname "$0")/../.."
cmake -S . -B build -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build build -j2 --target inferd >/dev/null
exec /usr/bin/python3 bench/batch/bench_batch.py "$@"
