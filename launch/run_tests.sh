#!/usr/bin/env bash
# README command 2: install what is missing, build, and run the whole test
# suite with ctest. common/ (frame codec, wire messages) is first rebuilt
# under AddressSanitizer + UndefinedBehaviorSanitizer and its tests run there
# too, then the libFuzzer harnesses (tests/fuzz) each run a few seconds over
# their seed corpora; the full suite runs last, so ctest's closing line
# counts all of it.
set -euo pipefail
cd "$(dirname "$0")/.."
bash launch/install_deps.sh
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1

bash launch/build.sh build-asan -DCAIRN_COMMON_ONLY=ON -DCAIRN_SANITIZE=ON
(cd build-asan && ctest --output-on-failure --timeout 300 -j 2)

# Fuzz smoke: a crash in any decoder harness fails the script. Builds only
# the harnesses and what they link.
bash launch/run_fuzz.sh --build-only
ctest --test-dir build-fuzz/tests/fuzz -L fuzz --output-on-failure -j 2

bash launch/build.sh build -DCAIRN_COMMON_ONLY=OFF -DCAIRN_SANITIZE=OFF -DCAIRN_TSAN=OFF
(cd build && ctest --output-on-failure --timeout 600 -j 2)
