#!/usr/bin/env bash
# demo.sh — builds inferd and runs it on the bundled demo model
# (models/iris_svc.onnx, scikit-learn's StandardScaler + SVC on iris).
# Installs missing Debian packages first (scripts/deps.sh build).
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/deps.sh build
cmake -S . -B build -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build build -j"$(nproc)" --target inferd

build/inferd inspect models/iris_svc.onnx
echo
echo "\$ inferd predict models/iris_svc.onnx --data '[[5.1,3.5,1.4,0.2],[6.7,3.0,5.2,2.3]]'"
build/inferd predict models/iris_svc.onnx --data '[[5.1,3.5,1.4,0.2],[6.7,3.0,5.2,2.3]]'
