#!/usr/bin/python3
"""PyTorch DDP 2x1 (two processes, one thread each, gloo over 127.0.0.1) on
the Fashion-MNIST MLP: the data-parallel baseline Cairn's local 2+2 cluster
is compared with (bench/fmnist_side_by_side.sh).

Each rank trains on its half of each epoch's shuffled permutation, batch
--batch per rank, gradients averaged by DDP's allreduce. Uses the peer's
helpers (shared/peers/pytorch_fmnist/fmnist_common.py, put on PYTHONPATH or
next to this file with --peer-dir). Prints one JSON line at the end:
{"event": "final", "median_examples_per_s": <examples of both ranks per
second of training>, ...}.
"""
import argparse
import json
import os
import sys
import time


def run(rank, args, out_queue):
    sys.path.insert(0, args.peer_dir)
    from fmnist_common import load_split, set_thread_env
    set_thread_env(1)
    import torch
    import torch.distributed as dist
    import torch.nn.functional as F
    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{args.port}", rank=rank, world_size=2)
    torch.manual_seed(args.seed)
    xtr, ytr = load_split(args.data_dir, "train")
    xtr, ytr = torch.from_numpy(xtr), torch.from_numpy(ytr)
    hs = [int(h) for h in args.hidden.split(",")]
    layers, w = [], 784
    for h in hs:
        layers += [torch.nn.Linear(w, h), torch.nn.ReLU()]
        w = h
    layers.append(torch.nn.Linear(w, 10))
    model = torch.nn.parallel.DistributedDataParallel(torch.nn.Sequential(*layers))
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    gen = torch.Generator().manual_seed(args.seed)
    n = xtr.shape[0]
    times, steps_per_epoch = [], 0
    for _ in range(args.epochs):
        perm = torch.randperm(n, generator=gen)[rank::2]
        dist.barrier()
        t = time.perf_counter()
        steps = 0
        for i in range(0, perm.shape[0], args.batch):
            idx = perm[i:i + args.batch]
            opt.zero_grad(set_to_none=True)
            loss = F.cross_entropy(model(xtr[idx]), ytr[idx])
            loss.backward()
            opt.step()
            steps += 1
        dist.barrier()
        times.append(time.perf_counter() - t)
        steps_per_epoch = steps
    if rank == 0:
        times.sort()
        out_queue.put({"event": "final", "script": "fmnist_ddp_torch.py", "world_size": 2, "threads_per_rank": 1,
                       "batch_per_rank": args.batch, "epochs": args.epochs, "torch": torch.__version__,
                       "epoch_train_s": times, "steps_per_rank_per_epoch": steps_per_epoch,
                       "median_examples_per_s": round(n / times[len(times) // 2], 1)})
    dist.destroy_process_group()


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--epochs", type=int, default=2)
    p.add_argument("--batch", type=int, default=128)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--hidden", default="256,128")
    p.add_argument("--port", type=int, default=29517)
    p.add_argument("--data-dir", default="/usr/share/datasets/fashion-mnist")
    p.add_argument("--peer-dir", default=os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..",
                                                      "shared", "peers", "pytorch_fmnist"))
    args = p.parse_args()
    import multiprocessing as mp
    ctx = mp.get_context("spawn")
    q = ctx.Queue()
    procs = [ctx.Process(target=run, args=(r, args, q)) for r in range(2)]
    for pr in procs:
        pr.start()
    result = q.get(timeout=600)
    for pr in procs:
        pr.join(timeout=60)
    print(json.dumps(result), flush=True)
    return 0 if all(pr.exitcode == 0 for pr in procs) else 1


if __name__ == "__main__":
    sys.exit(main())
