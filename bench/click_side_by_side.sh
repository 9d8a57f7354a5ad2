#!/usr/bin/env bash
# Wide & deep throughput side by side with the PyTorch baseline
# (bench/click_torch.py), interleaved over rounds: per round, Cairn
# --in-process, --local 1+1 and --local 2+2 for each given build, then
# PyTorch (one thread); medians of the per-round ratios. 2M synthetic
# click rows (seed 1), batch 512, one epoch, Adagrad.
#
#   bench/click_side_by_side.sh OUT_DIR BUILD_DIR [BUILD_DIR ...]
#
# Needs python3-torch and OpenBLAS unpacked as bench/click_torch.md says:
# OPENBLAS_LIB is the directory holding its libblas.so.3.
set -euo pipefail
out="$1"; shift
builds=("$@")
: "${OPENBLAS_LIB:?set OPENBLAS_LIB to the unpacked OpenBLAS directory (bench/click_torch.md)}"
: "${ROUNDS:=3}"
here="$(cd "$(dirname "$0")/.." && pwd)"
mkdir -p "$out/data"
cairn="${builds[0]}/bin/cairn"
[ -s "$out/data/train.tsv" ] || "$cairn" data synth-clicks --rows 2000000 --seed 1 --split train --out "$out/data/train.tsv"
[ -s "$out/data/test.tsv" ] || "$cairn" data synth-clicks --rows 200000 --seed 1 --split test --out "$out/data/test.tsv"
cat > "$out/job.yaml" <<YAML
name: click_wide_deep_512
model: {kind: click_wide_deep, embedding_dim: 16, hidden: [64, 32], activation: relu, seed: 1}
data: {kind: synthetic_clicks, seed: 1, rows: 2000000, test_rows: 200000}
train: {batch_size: 512, epochs: 1, log_every_steps: 1000, seed: 1}
optimizer: {kind: adagrad, learning_rate: 0.05}
cluster: {servers: 2, workers: 2, consistency: async}
YAML
for r in $(seq "$ROUNDS"); do
  for i in "${!builds[@]}"; do
    bin="${builds[$i]}/bin/cairn"
    "$bin" train "$out/job.yaml" --in-process --summary "$out/b${i}_ip_$r.json" > "$out/b${i}_ip_$r.log" 2>&1
    "$bin" train "$out/job.yaml" --local --servers 1 --workers 1 --summary "$out/b${i}_11_$r.json" > "$out/b${i}_11_$r.log" 2>&1
    "$bin" train "$out/job.yaml" --local --servers 2 --workers 2 --summary "$out/b${i}_22_$r.json" > "$out/b${i}_22_$r.log" 2>&1
  done
  LD_LIBRARY_PATH="$OPENBLAS_LIB" /usr/bin/python3 "$here/bench/click_torch.py" --train "$out/data/train.tsv" \
    --test "$out/data/test.tsv" --model wide_deep --batch-size 512 --epochs 1 --threads 1 > "$out/torch_$r.log" 2>&1
done
python3 - "$out" "$ROUNDS" "${builds[@]}" <<'PY'
import json, statistics, sys
out, rounds, builds = sys.argv[1], int(sys.argv[2]), sys.argv[3:]
def cairn(i, k, r): return json.load(open(f"{out}/b{i}_{k}_{r}.json"))
def torch(r): return json.loads(open(f"{out}/torch_{r}.log").read().strip().splitlines()[-1])
for r in range(1, rounds + 1):
    t = torch(r)
    line = [f"round {r}: torch {t['overall_examples_per_s']:.0f} ex/s (auc {t['test_auc']:.4f})"]
    for i in range(len(builds)):
        for k in ("ip", "11", "22"):
            s = cairn(i, k, r)
            line.append(f"{builds[i]} {k} {s['examples_per_sec']:.0f} (auc {s['metrics']['test_auc']:.4f})")
    print("; ".join(line))
print(f"torch: median {statistics.median(torch(r)['overall_examples_per_s'] for r in range(1, rounds + 1)):.0f} ex/s")
for i, b in enumerate(builds):
    for k, what in (("ip", "--in-process"), ("11", "1 server + 1 worker"), ("22", "2 servers + 2 workers")):
        ex = [cairn(i, k, r)["examples_per_sec"] for r in range(1, rounds + 1)]
        rat = [cairn(i, k, r)["examples_per_sec"] / torch(r)["overall_examples_per_s"] for r in range(1, rounds + 1)]
        print(f"{b} {what}: median {statistics.median(ex):.0f} ex/s, median ratio to torch {statistics.median(rat):.3f} "
              f"({', '.join(f'{x:.3f}' for x in rat)})")
    rat = [cairn(i, "11", r)["examples_per_sec"] / cairn(i, "ip", r)["examples_per_sec"] for r in range(1, rounds + 1)]
    print(f"{b} 1+1 / in-process: median {statistics.median(rat):.3f} ({', '.join(f'{x:.3f}' for x in rat)})")
PY
