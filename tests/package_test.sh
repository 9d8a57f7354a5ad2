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
"$prefix/build/custom_model"
