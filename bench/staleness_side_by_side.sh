#!/usr/bin/env bash
# Time to accuracy under async, sync and ssp (staleness 1, 3, 10), with and
# without a straggler: the Fashion-MNIST MLP (784-256-128-10, Adam, batch
# 128) on the local cluster of 2 servers and 2 workers, 10 epochs, the chief
# evaluating on the test set at every epoch end. With the straggler, worker 1
# runs FACTOR times slower (cairn train --straggler 1:FACTOR). Runs are
# interleaved: each round runs every case once, in a fixed order.
#
#   bench/staleness_side_by_side.sh OUT_DIR BUILD_DIR
#
# Writes OUT_DIR/staleness.txt: per case, the medians over rounds of the
# training seconds until test accuracy first reached TARGET (at an epoch
# end; "-" if it never did) and of the final accuracy.
set -euo pipefail
out="$1"
build="$2"
: "${ROUNDS:=1}" "${TARGET:=0.88}" "${FACTOR:=2}" "${EPOCHS:=10}"
here="$(cd "$(dirname "$0")/.." && pwd)"
cairn="$build/bin/cairn"
mkdir -p "$out"
job="$here/launch/examples/fashion_mnist_mlp.yaml"
cases=(async sync ssp1 ssp3 ssp10)
for c in "${cases[@]}"; do
  case "$c" in
    ssp*) sed -e "s/consistency: async/consistency: ssp\n  staleness: ${c#ssp}/" "$job" > "$out/$c.yaml" ;;
    *) sed -e "s/consistency: async/consistency: $c/" "$job" > "$out/$c.yaml" ;;
  esac
done
for round in $(seq 1 "$ROUNDS"); do
  for straggler in none "1:$FACTOR"; do
    for c in "${cases[@]}"; do
      tag="$c.${straggler/:/x}.r$round"
      extra=()
      if [ "$straggler" != none ]; then extra=(--straggler "$straggler"); fi
      echo "round $round: $c, straggler $straggler" >&2
      "$cairn" train "$out/$c.yaml" --local --servers 2 --workers 2 --epochs "$EPOCHS" "${extra[@]}" \
        --summary "$out/$tag.json" > "$out/$tag.log" 2>&1
    done
  done
done
/usr/bin/python3 - "$out" "$ROUNDS" "$TARGET" "$FACTOR" "${cases[@]}" <<'PY'
import json, re, statistics, sys
out, rounds, target, factor, cases = sys.argv[1], int(sys.argv[2]), float(sys.argv[3]), sys.argv[4], sys.argv[5:]
line = re.compile(r"\[chief\].*test accuracy ([0-9.]+) at ([0-9.]+) s")
rows = []
for straggler in ["none", "1x" + factor]:
    for c in cases:
        reach, final, rate, waits = [], [], [], []
        for r in range(1, rounds + 1):
            tag = f"{c}.{straggler}.r{r}"
            evals = [(float(a), float(t)) for a, t in line.findall(open(f"{out}/{tag}.log").read())]
            hit = [t for a, t in evals if a >= target]
            reach.append(hit[0] if hit else float("inf"))
            final.append(evals[-1][0] if evals else float("nan"))
            s = json.load(open(f"{out}/{tag}.json"))
            rate.append(s["examples_per_sec"])
            waits.append(" ".join(f"w{w['worker']} pull {w['pull_seconds']:.1f} s push {w['push_seconds']:.1f} s"
                                  for w in s.get("workers_time", [])))
        t = statistics.median(reach)
        rows.append((c, straggler, "-" if t == float("inf") else f"{t:.1f}", f"{statistics.median(final):.4f}",
                     f"{statistics.median(rate):.0f}", waits[-1]))
with open(f"{out}/staleness.txt", "w") as f:
    f.write(f"Fashion-MNIST MLP, 2 servers + 2 workers, {rounds} round(s); straggler: worker 1 {factor}x slower\n")
    f.write(f"| consistency | straggler | seconds to test accuracy {target} | final accuracy | examples/s | time in pulls / pushes (last round) |\n")
    f.write("|---|---|---|---|---|---|\n")
    for r in rows:
        f.write("| " + " | ".join(r) + " |\n")
print(open(f"{out}/staleness.txt").read())
PY
