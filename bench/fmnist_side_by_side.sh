#!/usr/bin/env bash
# Fashion-MNIST MLP throughput side by side with the PyTorch baseline
# (shared/peers/pytorch_fmnist/fmnist_torch.py), interleaved over rounds;
# medians of the per-round ratios. Per round: Cairn --in-process, --local
# 1+1 and --local 2+2 (784-256-128-10, Adam, batch 128, 2 epochs), PyTorch
# with one thread, with its best 2-core setting (--blas-threads 2) and DDP
# 2x1 (bench/fmnist_ddp_torch.py: two processes, gloo on 127.0.0.1), then
# the [4096,4096] MLP for 100 steps in both.
#
#   bench/fmnist_side_by_side.sh OUT_DIR BUILD_DIR
#
# Needs python3-torch and OpenBLAS unpacked as the peer's README says:
# OPENBLAS_LIB is the directory holding its libblas.so.3, TORCH_SCRIPT the
# path of fmnist_torch.py. OPENBLAS_CORETYPE, if set, is passed to PyTorch
# only (check OPENBLAS_VERBOSE=2 for the kernel OpenBLAS picks).
set -euo pipefail
out="$1"
build="$2"
: "${OPENBLAS_LIB:?set OPENBLAS_LIB to the unpacked OpenBLAS directory}"
: "${TORCH_SCRIPT:?set TORCH_SCRIPT to fmnist_torch.py}"
: "${ROUNDS:=3}"
here="$(cd "$(dirname "$0")/.." && pwd)"
cairn="$build/bin/cairn"
mkdir -p "$out"
sed 's/hidden: \[256, 128\]/hidden: [4096, 4096]/' "$here/launch/examples/fashion_mnist_mlp.yaml" > "$out/wide.yaml"
torch() {  # torch TAG ARGS...
  local tag="$1"; shift
  env LD_LIBRARY_PATH="$OPENBLAS_LIB" ${OPENBLAS_CORETYPE:+OPENBLAS_CORETYPE=$OPENBLAS_CORETYPE} \
    /usr/bin/python3 "$TORCH_SCRIPT" --model mlp --opt adam "$@" > "$out/$tag.log" 2>&1
}
ddp() {  # ddp TAG ARGS...
  local tag="$1"; shift
  env LD_LIBRARY_PATH="$OPENBLAS_LIB" ${OPENBLAS_CORETYPE:+OPENBLAS_CORETYPE=$OPENBLAS_CORETYPE} \
    /usr/bin/python3 "$here/bench/fmnist_ddp_torch.py" --peer-dir "$(dirname "$TORCH_SCRIPT")" "$@" > "$out/$tag.log" 2>&1
}
job="$here/launch/examples/fashion_mnist_mlp.yaml"
for r in $(seq "$ROUNDS"); do
  "$cairn" train "$job" --in-process --epochs 2 --summary "$out/ip_$r.json" > "$out/ip_$r.log" 2>&1
  torch "t1_$r" --epochs 2 --threads 1
  "$cairn" train "$job" --local --servers 1 --workers 1 --epochs 2 --summary "$out/11_$r.json" > "$out/11_$r.log" 2>&1
  "$cairn" train "$job" --local --servers 2 --workers 2 --epochs 2 --summary "$out/22_$r.json" > "$out/22_$r.log" 2>&1
  torch "t2_$r" --epochs 2 --threads 1 --blas-threads 2
  ddp "tddp_$r" --epochs 2
  "$cairn" train "$out/wide.yaml" --in-process --max-steps 100 --summary "$out/wide_$r.json" > "$out/wide_$r.log" 2>&1
  torch "twide_$r" --epochs 2 --threads 1 --hidden 4096,4096 --max-steps 100
done
python3 - "$out" "$ROUNDS" <<'PY'
import json, statistics, sys
out, rounds = sys.argv[1], int(sys.argv[2])
def cairn(k, r): return json.load(open(f"{out}/{k}_{r}.json"))["examples_per_sec"]
def torch(k, r): return json.loads(open(f"{out}/{k}_{r}.log").read().strip().splitlines()[-1])["median_examples_per_s"]
cases = [("--in-process / PyTorch 1 thread", lambda r: cairn("ip", r), lambda r: torch("t1", r)),
         ("--local 2+2 / PyTorch best 2-core", lambda r: cairn("22", r), lambda r: torch("t2", r)),
         ("--local 2+2 / PyTorch DDP 2x1", lambda r: cairn("22", r), lambda r: torch("tddp", r)),
         ("--local 1+1 / --in-process", lambda r: cairn("11", r), lambda r: cairn("ip", r)),
         ("[4096,4096] --in-process / PyTorch 1 thread", lambda r: cairn("wide", r), lambda r: torch("twide", r))]
t = json.loads(open(f"{out}/t1_1.log").read().strip().splitlines()[-1])
print(f"PyTorch {t['torch']}, blas {t['blas']}")
for name, a, b in cases:
    rat = [a(r) / b(r) for r in range(1, rounds + 1)]
    print(f"{name}: median ratio {statistics.median(rat):.3f} ({', '.join(f'{x:.3f}' for x in rat)}); "
          f"medians {statistics.median(a(r) for r in range(1, rounds + 1)):.0f} vs "
          f"{statistics.median(b(r) for r in range(1, rounds + 1)):.0f} examples/s")
PY
