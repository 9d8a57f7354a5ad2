#!/usr/bin/env bash
# Package.AnOutOfTreeProgramBuildsAgainstTheInstalledCairnAndTrains: installs
# the build (cmake --install) into a scratch prefix, configures
# launch/examples/custom_model against it with find_package(Cairn), builds
# it and runs it: it trains its own model on an embedded local cluster and
# exits non-zero unless it learned.
#
#   tests/package_test.sh BUILD_DIR SOURCE_DIR
set -euo pipefail
build="$1"
src="$2"
prefix="$(mktemp -d "${TMPDIR:-/tmp}/cairn-package.XXXXXX")"
trap 'rm -rf "$prefix"' EXIT
cmake --install "$build" --prefix "$prefix" > "$prefix/install.log"
# Only what a user of the public headers needs: not the servers' internals.
test -f "$prefix/include/cairn/worker/session.h"
test -f "$prefix/lib/cmake/Cairn/CairnConfig.cmake"
if [ -e "$prefix/include/cairn/ps/sync_steps.h" ] || [ -e "$prefix/include/cairn/worker/session_test.cc" ]; then
  echo "installed a header no public one includes" >&2
  exit 1
fi
cmake -S "$src/launch/examples/custom_model" -B "$prefix/build" -G Ninja -DCMAKE_PREFIX_PATH="$prefix" > "$prefix/configure.log" ||
  { cat "$prefix/configure.log"; exit 1; }
cmake --build "$prefix/build" > "$prefix/build.log" || { tail -40 "$prefix/build.log"; exit 1; }
# Its own model and data kinds, through cairn's job commands: trained on the
# embedded local cluster with snapshots, then re-run: it resumes from the
# last snapshot and has nothing left to train.
job="$src/launch/examples/custom_model/spiral.yaml"
"$prefix/build/custom_model" train "$job" --local --model-dir "$prefix/model" --summary "$prefix/first.json"
accuracy="$(grep -o '"test_accuracy": *[0-9.]*' "$prefix/first.json" | grep -o '[0-9.]*$')"
echo "custom model: test accuracy $accuracy"
awk -v a="$accuracy" 'BEGIN { exit !(a >= 0.9) }' || { echo "the custom model did not learn (accuracy $accuracy < 0.9)" >&2; exit 1; }
"$prefix/build/custom_model" train "$job" --local --model-dir "$prefix/model" --summary "$prefix/rerun.json"
step() { grep -o "\"$1\": *[0-9]*" "$2" | grep -o '[0-9]*$'; }
first_step="$(step global_step "$prefix/first.json")"
[ -n "$first_step" ] && [ "$(step resumed_from_step "$prefix/rerun.json")" = "$first_step" ] &&
  [ "$(step global_step "$prefix/rerun.json")" = "$first_step" ] ||
  { echo "the re-run did not resume from the finished run's snapshot at step $first_step:" >&2; cat "$prefix/rerun.json" >&2; exit 1; }
echo "custom model: the re-run resumed from step $first_step with nothing left to train"
# The same program as the ranks of an mpirun job: 1 server, 2 workers.
mpirun -np 3 --oversubscribe --allow-run-as-root --mca btl self,tcp \
  "$prefix/build/custom_model" train "$job" --servers 1 --epochs 5 --summary "$prefix/mpi.json" > "$prefix/mpi.log" 2>&1 ||
  { tail -40 "$prefix/mpi.log" >&2; exit 1; }
grep -q '"mode": *"mpirun"' "$prefix/mpi.json" || { echo "not an mpirun run:" >&2; cat "$prefix/mpi.json" >&2; exit 1; }
echo "custom model: an mpirun job of 3 ranks trained to global step $(step global_step "$prefix/mpi.json")"
