#!/usr/bin/env bash
# Configures and builds Cairn.  usage: launch/build.sh [BUILD_DIR] [extra cmake args...]
# Default BUILD_DIR is build/; the `cairn` command lands in BUILD_DIR/bin/cairn.
set -euo pipefail
cd "$(dirname "$0")/.."
build_dir="${1:-build}"
shift || true
generator=()
if command -v ninja >/dev/null 2>&1; then generator=(-G Ninja); fi
cmake -S . -B "$build_dir" "${generator[@]}" -DCMAKE_BUILD_TYPE=RelWithDebInfo "$@"
cmake --build "$build_dir" -j "$(nproc)"
