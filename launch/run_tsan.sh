#!/usr/bin/env bash
# ThreadSanitizer run of the server, transport and recovery tests, built with
# clang-14 and its thread-safety analysis (-Wthread-safety as errors: the
# CAIRN_GUARDED_BY annotations of common/mutex.h are checked while building).
#   usage: launch/run_tsan.sh [BUILD_DIR]      (default: build-tsan)
# Installs what is missing: the build's packages (install_deps.sh), then
# clang-14 and its sanitizer runtime.
# Any race TSan reports fails the run (halt_on_error); the exit code is the
# first failing binary's.
set -euo pipefail
cd "$(dirname "$0")/.."
dir="${1:-build-tsan}"
bash launch/install_deps.sh
for p in clang-14 libclang-rt-14-dev; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    apt-get update -qq && apt-get install -y -qq --no-install-recommends clang-14 libclang-rt-14-dev
    break
  fi
done
generator=()
if command -v ninja >/dev/null 2>&1; then generator=(-G Ninja); fi
targets=(common_test ps_test transport_fault_test recovery_test storage_fault_test snapshot_test sync_training_test sparse_snapshot_test)
cmake -S . -B "$dir" "${generator[@]}" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DCMAKE_CXX_COMPILER=clang++-14 \
  -DCAIRN_TSAN=ON -DCAIRN_THREAD_SAFETY=ON
cmake --build "$dir" -j "$(nproc)" --target "${targets[@]}"
export TSAN_OPTIONS="halt_on_error=1 second_deadlock_stack=1 suppressions=$PWD/launch/tsan.supp ${TSAN_OPTIONS:-}"
for t in "${targets[@]}"; do
  echo "== $t (ThreadSanitizer)"
  "$dir/bin/$t" --gtest_brief=1
done
echo "ThreadSanitizer: no races in ${targets[*]}"
