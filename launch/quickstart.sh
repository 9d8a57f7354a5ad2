#!/usr/bin/env bash
# README command 1: install what is missing, build, and train the example job
# on the embedded local cluster (servers and workers as threads of one process,
# talking over loopback TCP).
set -euo pipefail
cd "$(dirname "$0")/.."
bash launch/install_deps.sh
bash launch/build.sh build -DCAIRN_COMMON_ONLY=OFF -DCAIRN_SANITIZE=OFF -DCAIRN_TSAN=OFF
job="${1:-launch/examples/fashion_mnist_mlp.yaml}"
echo "[cairn] training $job on the local cluster"
build/bin/cairn train "$job" --local --servers 2 --workers 2 --summary build/summary.json
echo "[cairn] summary written to build/summary.json"
