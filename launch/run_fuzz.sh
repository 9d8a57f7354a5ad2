#!/usr/bin/env bash
# libFuzzer runs of every decoder harness (tests/fuzz), built with clang-14,
# ASan and UBSan in build-fuzz/.
#   usage: launch/run_fuzz.sh [SECONDS_PER_HARNESS | --runs N | --build-only] [-j JOBS] [HARNESS...]
#     SECONDS_PER_HARNESS  run each harness this long (default 60)
#     --runs N             run each harness for N executions instead (-runs=N)
#     --build-only         configure and build the harnesses, run nothing
#     -j JOBS              harnesses run at once (default 1; each uses one core)
#     HARNESS...           only these (fuzz_frame fuzz_messages ...; default: all)
# Each harness starts from its checked-in seeds (tests/fuzz/corpus/<harness>,
# never written) plus what earlier runs found, kept in
# build-fuzz/fuzz-runs/<harness>/corpus; crash reproducers land in
# build-fuzz/fuzz-runs/<harness>/artifacts and the log beside them.
# Prints, per harness, the executions done and the crashes found, then a
# summary table; exits non-zero if any harness crashed.
set -euo pipefail
cd "$(dirname "$0")/.."
dir=build-fuzz
seconds=60
runs=""
build_only=0
jobs=1
only=()
while [ $# -gt 0 ]; do
  case "$1" in
    --runs) runs="$2"; shift 2 ;;
    --build-only) build_only=1; shift ;;
    -j) jobs="$2"; shift 2 ;;
    -h|--help) sed -n '2,16p' "$0"; exit 0 ;;
    [0-9]*) seconds="$1"; shift ;;
    fuzz_*) only+=("$1"); shift ;;
    *) echo "run_fuzz.sh: unknown argument '$1' (see --help)" >&2; exit 2 ;;
  esac
done

generator=()
if command -v ninja >/dev/null 2>&1; then generator=(-G Ninja); fi
cmake -S . -B "$dir" "${generator[@]}" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DCMAKE_CXX_COMPILER=clang++-14 \
  -DCAIRN_FUZZ=ON >/dev/null
# Only the harnesses and what they link: not the rest of the project.
cmake --build "$dir" -j "$(nproc)" --target cairn_fuzz
[ "$build_only" = 1 ] && exit 0

harnesses=()
if [ ${#only[@]} -gt 0 ]; then
  harnesses=("${only[@]}")
else
  mapfile -t harnesses <"$dir/tests/fuzz/harnesses.txt"  # written by tests/fuzz/CMakeLists.txt
fi

# Runs one harness; its result goes to fuzz-runs/<harness>/result as
# "<executions> <exec/s> <seconds> <crashes> <exit code>".
run_one() {
  local h="$1" out="$dir/fuzz-runs/$1"
  mkdir -p "$out/corpus" "$out/artifacts"
  cp -n tests/fuzz/corpus/"$h"/* "$out/corpus/" 2>/dev/null || true
  local limit=(-max_total_time="$seconds")
  if [ -n "$runs" ]; then limit=(-runs="$runs"); fi
  local start end rc=0
  start=$(date +%s)
  "$dir/bin/$h" "${limit[@]}" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 \
    -artifact_prefix="$out/artifacts/" "$out/corpus" >"$out/log" 2>&1 || rc=$?
  end=$(date +%s)
  local execs rate crashes
  execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$out/log" | tail -1)
  rate=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$out/log" | tail -1)
  crashes=$(grep -c "Test unit written to" "$out/log" || true)
  if [ "$rc" != 0 ] && [ "$crashes" = 0 ]; then crashes=1; fi  # died without writing a reproducer
  echo "${execs:-0} ${rate:-0} $((end - start)) $crashes $rc" >"$out/result"
  printf '%-18s %12s executions  %8s exec/s  %4s crashes\n' "$h" "${execs:-0}" "${rate:-0}" "$crashes"
  if [ "$crashes" != 0 ]; then
    grep -E "ERROR: |FUZZ_CHECK|runtime error|Test unit written" "$out/log" | head -5 | sed 's/^/    /'
  fi
}

# Allocation stacks of 2 frames: ASan keeps every distinct allocation stack
# for the process's life, and stacks unwound through libraries built without
# frame pointers (yaml-cpp) are all distinct, so the YAML harnesses' RSS
# would grow past -rss_limit_mb within a long run. A crash's own stack is
# unaffected; rerun a reproducer without this for full allocation stacks.
export ASAN_OPTIONS="malloc_context_size=2${ASAN_OPTIONS:+:$ASAN_OPTIONS}"

running=0
for h in "${harnesses[@]}"; do
  if [ ! -x "$dir/bin/$h" ]; then echo "run_fuzz.sh: no harness $dir/bin/$h" >&2; exit 2; fi
  rm -f "$dir/fuzz-runs/$h/result"
  run_one "$h" &
  running=$((running + 1))
  if [ "$running" -ge "$jobs" ]; then wait -n || true; running=$((running - 1)); fi
done
wait

total_crashes=0
echo
printf '%-18s %14s %10s %8s %8s\n' harness executions exec/s seconds crashes
for h in "${harnesses[@]}"; do
  read -r execs rate secs crashes rc <"$dir/fuzz-runs/$h/result"
  printf '%-18s %14s %10s %8s %8s\n' "$h" "$execs" "$rate" "$secs" "$crashes"
  total_crashes=$((total_crashes + crashes))
done
if [ "$total_crashes" != 0 ]; then
  echo "fuzzing: $total_crashes crash(es); reproducers under $dir/fuzz-runs/*/artifacts" >&2
  exit 1
fi
echo "fuzzing: no crashes"
