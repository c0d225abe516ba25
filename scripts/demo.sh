#!/usr/bin/env bash
# demo.sh — builds inferd and starts the server on the bundled demo model
# (models/iris_svc.onnx: scikit-learn's StandardScaler + SVC on iris) at
# http://127.0.0.1:8000 (PORT to change it). Ctrl-C stops it.
# Installs missing Debian packages first (scripts/deps.sh demo), and npm's
# packages (package-lock.json) when Swagger UI is missing, so that the build
# compiles it into the binary and /docs works.
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/deps.sh demo
if [ ! -f node_modules/swagger-ui-dist/swagger-ui-bundle.js ]; then
  # ONNX Runtime's install script would fetch GPU files it does not need here
  ONNXRUNTIME_NODE_INSTALL=skip npm ci --no-audit --no-fund --loglevel=error
fi
cmake -S . -B build -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build build -j"$(nproc)" --target inferd

port=${PORT:-8000}
cat <<MSG
Serving models/iris_svc.onnx on http://127.0.0.1:$port — try:
  curl -s 127.0.0.1:$port/predict/test
  curl -s -H 'Content-Type: application/json' -d '{"data": [[1.0, 2.0, 3.0, 4.0]]}' 127.0.0.1:$port/predict/label
  curl -s -H 'Content-Type: application/json' \\
    -d '{"inputs": [{"name": "float_input", "shape": [1, 4], "datatype": "FP32", "data": [5.1, 3.5, 1.4, 0.2]}]}' \\
    127.0.0.1:$port/v2/models/iris_svc/infer
  open http://127.0.0.1:$port/ui (dashboard), /docs (API documentation) and /metrics
MSG
exec build/inferd serve models/iris_svc.onnx --labels models/iris_labels.json --port "$port"
