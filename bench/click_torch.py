#!/usr/bin/python3
"""PyTorch (CPU, one process) baseline for Cairn's click models.

Trains the same model as Cairn's model.kind click_logistic or
click_wide_deep (worker/model.cc) on a Criteo-format TSV (for instance one
written by `cairn data synth-clicks`), with the same preprocessing
(worker/click_examples.cc), initializers, loss and optimizer, so that its
throughput can be set beside `cairn train <job> --in-process`. See
bench/click_torch.md.

Example:
  /usr/bin/python3 bench/click_torch.py --train train.tsv --test test.tsv \
      --model wide_deep --batch-size 512 --epochs 1 --threads 1

Prints one JSON line per epoch ({"event": "epoch", ...}) and a final one
({"event": "final", ...}). examples/s count training steps only: loading,
preprocessing and evaluation are timed apart.

What is the same as Cairn:
  - counts: x = log(1 + max(count, 0)) as float32, 0 for a missing count.
  - ids: Cairn hashes every (slot, id) into one 63-bit id space of one sparse
    table without a fixed vocabulary (ClickTableId), a missing id being -1,
    skipped by the EmbeddingBags (a zero row). Here every distinct
    (slot, id) of train + test is given a compact row of one table
    (np.unique per slot, before timing): the same one-row-per-distinct-id
    model. Test-only ids keep their initial row, as an untouched row of a
    Cairn table does. A missing id is the padding row (zeros, never trained).
  - click_logistic: logit = sum over the 26 slots of a dim-1 row of the table
    "wide" (zeros) + x . w (w [13], zeros; raw log counts) + b (zero).
  - click_wide_deep: that wide logit + an MLP over [the 26 rows of the table
    "embedding" (dim 16, U[-0.05, 0.05)), (x - mean) * inv_std], hidden
    64, 32 with ReLU, one output; W Glorot-uniform, biases zeros. mean and
    inv_std are taken over the first 131072 training examples (or all),
    population variance, inv_std = 1 / max(0.05, std) (ClickExamples::Moments).
  - loss: mean sigmoid cross-entropy over the batch.
  - optimizer: Adagrad, lr 0.05, initial accumulator 0.1, no epsilon
    (TF ApplyAdagrad: accum += g^2; var -= lr * g / sqrt(accum)), lazy per
    sparse row (only the rows in the batch, duplicate ids' gradients summed):
    torch.optim.Adagrad with sparse gradients does exactly this.
    FTRL (Cairn's click_logistic_ftrl): PyTorch has none; --opt ftrl uses a
    hand-written FTRL-Proximal (TF ApplyFtrl, as ps/optimizer.cc) on the
    sparse and dense parameters, labelled "ftrl (hand-written)" in the output.
  - epochs: a fresh shuffle each epoch, floor(n / batch) full batches (the
    last partial batch is dropped, as Cairn's ShardIterator does).
  - evaluation: the whole test file; exact rank AUC (ties averaged) and mean
    log loss.
  - FTRL with l1 = l2 = 0 (click_logistic_ftrl's) from zero weights is
    algebraically the same update as Adagrad with the same lr and initial
    accumulator (w_t+1 = -lr z_t / sqrt(n_t) unrolls to w_t - lr g_t / sqrt(n_t)):
    Cairn's two runs agree to ~1e-9 in loss, and so do --opt adagrad and
    --opt ftrl here.
What differs: the random draws (PyTorch's generators, not Cairn's per-id
seeded initializers; the shuffling stream), float summation order, and how
ids are told apart: Cairn hashes the text (xxh3 per slot); here a text of at
most 16 hex digits is keyed by its value (Criteo's and synth-clicks' ids are
fixed-width, so value and text agree), any other text by a 64-bit FNV-1a hash.
"""
import argparse
import json
import os
import resource
import sys
import time

N_COUNTS = 13
N_SLOTS = 26
N_FIELDS = 1 + N_COUNTS + N_SLOTS
INT32_MIN = -2 ** 31
MISSING_COUNT = INT32_MIN


# ----------------------------------------------------------------------------
# Loading (numpy only).

def _hex_lut(np):
    lut = np.full(256, 255, dtype=np.uint64)  # 255: not a hex digit
    for i, c in enumerate(b"0123456789abcdef"):
        lut[c] = i
    for i, c in enumerate(b"ABCDEF"):
        lut[c] = 10 + i
    lut[0] = 0  # numpy's null padding
    return lut


def _cat_keys(np, cats, lut):
    """Categorical texts, fixed-width bytes [n, 26] (null-padded), -> uint64
    keys [n, 26] and a missing mask. A text of at most 16 hex digits (every
    Criteo and synth-clicks id) is keyed by its value, exactly; any other
    text by a 64-bit FNV-1a hash of it (a collision is ~1e-8 likely)."""
    n, width = cats.shape[0], cats.dtype.itemsize
    missing = cats == b""
    u8 = cats.view(np.uint8).reshape(n, N_SLOTS, width)
    keys = np.zeros((n, N_SLOTS), dtype=np.uint64)
    valid = np.ones((n, N_SLOTS), dtype=bool)
    four = np.uint64(4)
    for j in range(width):
        byte = u8[:, :, j]
        nib = lut[byte]
        valid &= nib != 255
        keys = np.where(byte != 0, (keys << four) | (nib & np.uint64(15)), keys)
    if width > 16:
        valid &= u8[:, :, 16] == 0
    if not valid.all():
        h = np.full((n, N_SLOTS), 0xcbf29ce484222325, dtype=np.uint64)
        prime = np.uint64(0x100000001b3)
        with np.errstate(over="ignore"):
            for j in range(width):
                byte = u8[:, :, j]
                h = np.where(byte != 0, (h ^ byte.astype(np.uint64)) * prime, h)
        keys = np.where(valid, keys, h)
    return keys, missing


def _parse_lines(np, lines, path, first_line, lut):
    """lines: list of bytes (no line end) -> labels uint8 [n], counts int32
    [n, 13] (MISSING_COUNT where empty), category keys uint64 [n, 26] and
    their missing mask."""
    for k, line in enumerate(lines):
        tabs = line.count(b"\t")
        if tabs != N_FIELDS - 1:
            raise ValueError(f"{path}:{first_line + k}: expected {N_FIELDS} tab-separated fields "
                             f"(label, 13 counts, 26 categories), found {tabs + 1}")
    n = len(lines)
    arr = np.array(b"\t".join(lines).split(b"\t")).reshape(n, N_FIELDS)
    lab = arr[:, 0]
    bad = (lab != b"0") & (lab != b"1")
    if bad.any():
        k = int(np.argmax(bad))
        raise ValueError(f"{path}:{first_line + k}: label {lab[k]!r} is not 0 or 1")
    labels = (lab == b"1").astype(np.uint8)

    ints = arr[:, 1:1 + N_COUNTS]
    miss = ints == b""
    try:
        vals = np.where(miss, b"0", ints).astype(np.int64)
    except (ValueError, OverflowError) as e:
        raise ValueError(f"{path}: lines {first_line}..{first_line + n - 1}: a count is not an integer ({e})")
    if ((vals < INT32_MIN + 1) | (vals > 2 ** 31 - 1)).any():
        raise ValueError(f"{path}: lines {first_line}..{first_line + n - 1}: "
                         "a count is outside [-2^31 + 1, 2^31 - 1]")
    vals[miss] = MISSING_COUNT
    keys, kmiss = _cat_keys(np, np.ascontiguousarray(arr[:, 1 + N_COUNTS:]), lut)
    return labels, vals.astype(np.int32), keys, kmiss


def load_split(path, chunk_bytes=16 << 20):
    """A Criteo TSV (plain or gzip) -> dict(labels float32 [n], counts int32
    [n, 13], cats uint64 [n, 26] keys, missing bool [n, 26]), read a chunk of
    lines at a time."""
    import numpy as np
    lut = _hex_lut(np)
    parts = []
    line_no = 1
    with open(path, "rb") as probe:
        gz = probe.read(2) == b"\x1f\x8b"
    if gz:
        import gzip
        f = gzip.open(path, "rb")
    else:
        f = open(path, "rb")
    with f:
        rest = b""
        while True:
            block = f.read(chunk_bytes)
            data = rest + block
            if block:
                cut = data.rfind(b"\n")
                if cut < 0:
                    rest = data
                    continue
                data, rest = data[:cut], data[cut + 1:]
            elif not data:
                break
            else:
                rest = b""
            lines = data.split(b"\n")
            if b"\r" in data:
                lines = [l[:-1] if l.endswith(b"\r") else l for l in lines]
            parts.append(_parse_lines(np, lines, path, line_no, lut))
            line_no += len(lines)
            if not block:
                break
    if not parts:
        raise ValueError(f"{path}: no examples")
    return {"labels": np.concatenate([q[0] for q in parts]).astype(np.float32),
            "counts": np.concatenate([q[1] for q in parts]),
            "cats": np.concatenate([q[2] for q in parts]),
            "missing": np.concatenate([q[3] for q in parts])}


def compact_ids(np, train, test):
    """Per slot, np.unique over the present ids of train + test: row
    offset[s] + rank. Returns int64 [n, 26] row indices for each split (the
    padding row V for a missing id) and V (the number of distinct ids)."""
    n_tr = train["cats"].shape[0]
    out_tr = np.empty((n_tr, N_SLOTS), dtype=np.int64)
    out_te = np.empty((test["cats"].shape[0], N_SLOTS), dtype=np.int64) if test is not None else None
    offset = 0
    for s in range(N_SLOTS):
        parts = [train["cats"][:, s]]
        if test is not None:
            parts.append(test["cats"][:, s])
        col = np.concatenate(parts)
        miss = np.concatenate([train["missing"][:, s]] + ([test["missing"][:, s]] if test is not None else []))
        uniq, inv = np.unique(col[~miss], return_inverse=True)
        rows = np.full(col.shape[0], -1, dtype=np.int64)
        rows[~miss] = inv + offset
        offset += uniq.shape[0]
        out_tr[:, s] = rows[:n_tr]
        if test is not None:
            out_te[:, s] = rows[n_tr:]
    v = offset
    out_tr[out_tr < 0] = v
    if out_te is not None:
        out_te[out_te < 0] = v
    return out_tr, out_te, v


def dense_features(np, counts):
    """log(1 + max(count, 0)) (computed in double, stored as float32), 0 for
    a missing count: ClickDenseFeature."""
    c = counts.astype(np.float64)
    c[(counts == MISSING_COUNT) | (counts <= 0)] = 0.0
    return np.log1p(c).astype(np.float32)


def moments(np, x, limit):
    """ClickExamples::Moments over the first `limit` rows."""
    xs = x[:limit].astype(np.float64)
    n = max(1, xs.shape[0])
    mean = xs.sum(axis=0) / n
    std = np.sqrt(np.maximum(0.0, (xs * xs).sum(axis=0) / n - mean * mean))
    return mean.astype(np.float32), (1.0 / np.maximum(0.05, std)).astype(np.float32)


# ----------------------------------------------------------------------------
# Metrics.

def auc(np, scores, labels):
    """Exact ROC AUC: Mann-Whitney U with midranks (ties count one half)."""
    scores = np.asarray(scores, dtype=np.float64)
    pos = np.asarray(labels) > 0.5
    n_pos = int(pos.sum())
    n_neg = pos.shape[0] - n_pos
    if n_pos == 0 or n_neg == 0:
        return float("nan")
    order = np.argsort(scores, kind="mergesort")
    s = scores[order]
    # Tie groups [start, end): midrank (1-based) = (start + end + 1) / 2.
    boundary = np.empty(s.shape[0], dtype=bool)
    boundary[0] = True
    boundary[1:] = s[1:] != s[:-1]
    starts = np.flatnonzero(boundary)
    ends = np.append(starts[1:], s.shape[0])
    group_rank = (starts + ends + 1) / 2.0
    ranks = np.empty(s.shape[0], dtype=np.float64)
    ranks[order] = np.repeat(group_rank, ends - starts)
    return float((ranks[pos].sum() - n_pos * (n_pos + 1) / 2.0) / (n_pos * n_neg))


def logloss(np, logits, labels):
    z = np.asarray(logits, dtype=np.float64)
    y = np.asarray(labels, dtype=np.float64)
    # max(z, 0) - z*y + log(1 + exp(-|z|)): sigmoid cross-entropy with logits.
    return float(np.mean(np.maximum(z, 0) - z * y + np.log1p(np.exp(-np.abs(z)))))


# ----------------------------------------------------------------------------
# Machine.

def set_thread_env(n):
    """Before `import torch` (and numpy: it loads libblas), so the OpenMP and
    OpenBLAS pools honour it; torch.set_num_threads does not reach OpenBLAS."""
    for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[var] = str(n)


def blas_library():
    libs = set()
    with open("/proc/self/maps") as f:
        for line in f:
            if "blas" in line:
                libs.add(line.split()[-1])
    return sorted(libs)


def machine_busy_s():
    """CPU-seconds used by all processes since boot (/proc/stat)."""
    with open("/proc/stat") as f:
        vals = [int(v) for v in f.readline().split()[1:]]
    return (sum(vals[:8]) - vals[3] - vals[4]) / os.sysconf("SC_CLK_TCK")


def peak_rss_mib():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def rss_mib():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2.0 ** 20


# ----------------------------------------------------------------------------
# Model and optimizers.

def build_model(torch, kind, vocab, embedding_dim, hidden, mean, inv_std):
    nn = torch.nn

    class ClickModel(nn.Module):
        def __init__(self):
            super().__init__()
            # The wide part: a dim-1 row per (slot, id), summed over the slots;
            # row `vocab` is the missing id's (excluded from the bag).
            self.wide = nn.EmbeddingBag(vocab + 1, 1, mode="sum", sparse=True, padding_idx=vocab)
            self.wide_w = nn.Parameter(torch.zeros(N_COUNTS, 1))
            self.wide_b = nn.Parameter(torch.zeros(1))
            with torch.no_grad():
                self.wide.weight.zero_()
            self.deep = kind == "wide_deep"
            if self.deep:
                self.embedding = nn.Embedding(vocab + 1, embedding_dim, sparse=True, padding_idx=vocab)
                with torch.no_grad():
                    self.embedding.weight.uniform_(-0.05, 0.05)
                    self.embedding.weight[vocab].zero_()
                self.register_buffer("mean", torch.from_numpy(mean))
                self.register_buffer("inv_std", torch.from_numpy(inv_std))
                layers, width = [], N_SLOTS * embedding_dim + N_COUNTS
                for h in hidden:
                    lin = nn.Linear(width, h)
                    nn.init.xavier_uniform_(lin.weight)  # Glorot uniform, like Cairn's Dense
                    nn.init.zeros_(lin.bias)
                    layers += [lin, nn.ReLU()]
                    width = h
                out = nn.Linear(width, 1)
                nn.init.xavier_uniform_(out.weight)
                nn.init.zeros_(out.bias)
                layers.append(out)
                self.mlp = nn.Sequential(*layers)

        def forward(self, ids, x):
            logit = self.wide(ids) + x @ self.wide_w + self.wide_b  # [B, 1]
            if self.deep:
                emb = self.embedding(ids).reshape(ids.shape[0], -1)  # missing ids: zero rows
                h = torch.cat([emb, (x - self.mean) * self.inv_std], dim=1)
                logit = logit + self.mlp(h)
            return logit.reshape(-1)

    return ClickModel()


class Ftrl:
    """FTRL-Proximal as TF's ApplyFtrl / Cairn's ps/optimizer.cc, lazy per
    row for sparse gradients (hand-written: PyTorch has no FTRL):
      accum_new = accum + g^2
      linear   += g - (accum_new^-p - accum^-p) / lr * var
      quadratic = accum_new^-p / lr + 2 * l2
      var       = |linear| > l1 ? (sign(linear) * l1 - linear) / quadratic : 0
      accum     = accum_new        (p = lr_power = -0.5)"""

    def __init__(self, torch, params, lr, initial_accumulator=0.1, l1=0.0, l2=0.0, lr_power=-0.5):
        self.torch = torch
        self.params = [p for p in params]
        self.lr, self.l1, self.l2, self.p = lr, l1, l2, -lr_power
        self.accum = [torch.full_like(p, initial_accumulator) for p in self.params]
        self.linear = [torch.zeros_like(p) for p in self.params]

    def zero_grad(self, set_to_none=True):
        for p in self.params:
            p.grad = None

    def _pow(self, a):
        return a.sqrt() if self.p == 0.5 else a.pow(self.p)

    def _update(self, var, g, accum, linear):
        accum_new = accum + g * g
        linear += g - (self._pow(accum_new) - self._pow(accum)) / self.lr * var
        quadratic = self._pow(accum_new) / self.lr + 2.0 * self.l2
        new_var = (linear.sign() * self.l1 - linear) / quadratic
        new_var = self.torch.where(linear.abs() > self.l1, new_var, self.torch.zeros_like(new_var))
        return new_var, accum_new

    def step(self):
        torch = self.torch
        with torch.no_grad():
            for p, accum, linear in zip(self.params, self.accum, self.linear):
                g = p.grad
                if g is None:
                    continue
                if g.is_sparse:
                    g = g.coalesce()
                    idx = g.indices()[0]
                    gv = g.values()
                    lin = linear.index_select(0, idx)
                    new_var, acc = self._update(p.index_select(0, idx), gv, accum.index_select(0, idx), lin)
                    p.index_copy_(0, idx, new_var)
                    accum.index_copy_(0, idx, acc)
                    linear.index_copy_(0, idx, lin)
                else:
                    new_var, acc = self._update(p, g, accum, linear)
                    p.copy_(new_var)
                    accum.copy_(acc)


# ----------------------------------------------------------------------------

def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--train", required=True, help="training TSV (Criteo format; gzip allowed)")
    p.add_argument("--test", default=None, help="test TSV (none: no evaluation)")
    p.add_argument("--model", choices=["logistic", "wide_deep"], default="wide_deep")
    p.add_argument("--opt", choices=["adagrad", "ftrl"], default="adagrad",
                   help="adagrad: torch.optim.Adagrad; ftrl: hand-written FTRL-Proximal (torch has none)")
    p.add_argument("--batch-size", type=int, default=512)
    p.add_argument("--epochs", type=int, default=1)
    p.add_argument("--lr", type=float, default=0.05)
    p.add_argument("--initial-accumulator", type=float, default=0.1)
    p.add_argument("--l1", type=float, default=0.0, help="ftrl")
    p.add_argument("--l2", type=float, default=0.0, help="ftrl")
    p.add_argument("--embedding-dim", type=int, default=16)
    p.add_argument("--hidden", default="64,32", help="comma-separated hidden sizes (wide_deep)")
    p.add_argument("--moment-examples", type=int, default=1 << 17,
                   help="normalization statistics over the first N training examples (Cairn: 131072)")
    p.add_argument("--threads", type=int, default=1, help="torch.set_num_threads (and the OpenMP/BLAS env)")
    p.add_argument("--blas-threads", type=int, default=None, help="OpenBLAS pool size if different from --threads")
    p.add_argument("--max-steps", type=int, default=0, help="stop each epoch after N steps (0: full epoch)")
    p.add_argument("--window-steps", type=int, default=200, help="steps per throughput window")
    p.add_argument("--train-limit", type=int, default=0, help="use only the first N training examples")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--tag", default="")
    args = p.parse_args()
    if args.batch_size < 1 or args.epochs < 1 or args.window_steps < 1:
        p.error("--batch-size, --epochs and --window-steps must be >= 1")

    set_thread_env(args.threads)  # before numpy and torch load libblas / OpenMP
    if args.blas_threads is not None:
        os.environ["OPENBLAS_NUM_THREADS"] = str(args.blas_threads)
    import numpy as np
    t_import = time.perf_counter()
    import torch
    import torch.nn.functional as F
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    import_s = time.perf_counter() - t_import

    # Loading and preprocessing: not timed as training.
    t0 = time.perf_counter()
    train = load_split(args.train)
    if args.train_limit > 0:
        train = {k: v[:args.train_limit] for k, v in train.items()}
    test = load_split(args.test) if args.test else None
    parse_s = time.perf_counter() - t0
    ids_tr, ids_te, vocab = compact_ids(np, train, test)
    x_tr = dense_features(np, train["counts"])
    y_tr = train["labels"]
    mean, inv_std = moments(np, x_tr, args.moment_examples)
    if test is not None:
        x_te, y_te = dense_features(np, test["counts"]), test["labels"]
    del train, test
    ids_tr_t, x_tr_t, y_tr_t = torch.from_numpy(ids_tr), torch.from_numpy(x_tr), torch.from_numpy(y_tr)
    load_s = time.perf_counter() - t0
    peak_load_mib, rss_load_mib = peak_rss_mib(), rss_mib()

    hidden = [int(h) for h in args.hidden.split(",") if h]
    model = build_model(torch, args.model, vocab, args.embedding_dim, hidden, mean, inv_std)
    if args.opt == "adagrad":
        opt = torch.optim.Adagrad(model.parameters(), lr=args.lr, lr_decay=0.0, weight_decay=0.0,
                                  initial_accumulator_value=args.initial_accumulator, eps=0.0)
        opt_name = "adagrad (torch.optim.Adagrad)"
    else:
        opt = Ftrl(torch, model.parameters(), lr=args.lr, initial_accumulator=args.initial_accumulator,
                   l1=args.l1, l2=args.l2)
        opt_name = "ftrl (hand-written; torch has no FTRL)"
    gen = torch.Generator().manual_seed(args.seed)
    n = ids_tr.shape[0]
    steps_per_epoch = n // args.batch_size
    if args.max_steps:
        steps_per_epoch = min(steps_per_epoch, args.max_steps)
    if steps_per_epoch < 1:
        p.error(f"fewer training examples ({n}) than one batch ({args.batch_size})")

    def evaluate():
        if ids_te is None:
            return None, None
        model.eval()
        out = []
        with torch.no_grad():
            for i in range(0, ids_te.shape[0], 4096):
                out.append(model(torch.from_numpy(ids_te[i:i + 4096]), torch.from_numpy(x_te[i:i + 4096])).numpy())
        model.train()
        z = np.concatenate(out)
        return auc(np, z, y_te), logloss(np, z, y_te)

    epochs, windows = [], []  # windows: examples/s of each full window of window_steps steps
    total_train_s, total_examples = 0.0, 0
    for epoch in range(1, args.epochs + 1):
        perm = torch.randperm(n, generator=gen)
        loss_sum = 0.0
        t_ep, c_ep, m_ep = time.perf_counter(), time.process_time(), machine_busy_s()
        t_win = t_ep
        for step in range(steps_per_epoch):
            idx = perm[step * args.batch_size:(step + 1) * args.batch_size]
            ids, xb, yb = ids_tr_t[idx], x_tr_t[idx], y_tr_t[idx]
            opt.zero_grad(set_to_none=True)
            loss = F.binary_cross_entropy_with_logits(model(ids, xb), yb)
            loss.backward()
            opt.step()
            loss_sum += loss.item()
            if (step + 1) % args.window_steps == 0:
                now = time.perf_counter()
                windows.append(args.window_steps * args.batch_size / (now - t_win))
                t_win = now
        train_s = time.perf_counter() - t_ep
        cpu_s = time.process_time() - c_ep
        other_cpu_s = max(0.0, machine_busy_s() - m_ep - cpu_s)
        examples = steps_per_epoch * args.batch_size
        total_train_s += train_s
        total_examples += examples
        t_ev = time.perf_counter()
        test_auc, test_ll = evaluate()
        eval_s = time.perf_counter() - t_ev
        rec = {"event": "epoch", "epoch": epoch, "steps": steps_per_epoch, "train_s": round(train_s, 3),
               "examples_per_s": round(examples / train_s, 1), "eval_s": round(eval_s, 3),
               "cpu_s": round(cpu_s, 3), "other_procs_cpu_s": round(other_cpu_s, 2),
               "train_loss": round(loss_sum / steps_per_epoch, 5),
               "test_auc": None if test_auc is None else round(test_auc, 5),
               "test_logloss": None if test_ll is None else round(test_ll, 5)}
        epochs.append(rec)
        print(json.dumps(rec), flush=True)

    med = sorted(windows)[len(windows) // 2] if windows else None
    final = {
        "event": "final", "script": "click_torch.py", "tag": args.tag, "model": args.model, "optimizer": opt_name,
        "lr": args.lr, "initial_accumulator": args.initial_accumulator, "batch": args.batch_size,
        "epochs": args.epochs, "max_steps": args.max_steps, "threads": args.threads,
        "blas_threads_flag": args.blas_threads, "seed": args.seed,
        "embedding_dim": args.embedding_dim if args.model == "wide_deep" else None,
        "hidden": hidden if args.model == "wide_deep" else None,
        "torch": torch.__version__, "blas": blas_library(), "os_threads": len(os.listdir("/proc/self/task")),
        "train_examples": n, "test_examples": None if ids_te is None else int(ids_te.shape[0]),
        "table_rows": vocab, "params": sum(q.numel() for q in model.parameters()),
        "import_s": round(import_s, 3), "parse_s": round(parse_s, 3), "data_load_s": round(load_s, 3),
        "train_s": round(total_train_s, 3), "steps": steps_per_epoch * args.epochs,
        "window_steps": args.window_steps, "windows": len(windows),
        "median_window_examples_per_s": None if med is None else round(med, 1),
        "overall_examples_per_s": round(total_examples / total_train_s, 1),
        "epoch_train_s": [e["train_s"] for e in epochs],
        "test_auc": epochs[-1]["test_auc"], "test_logloss": epochs[-1]["test_logloss"],
        "peak_rss_mib": round(peak_rss_mib(), 1),            # whole run, loading included
        "peak_rss_load_mib": round(peak_load_mib, 1),        # peak by the end of loading
        "rss_after_load_mib": round(rss_load_mib, 1),        # held when training starts
        "rss_end_mib": round(rss_mib(), 1),
    }
    print(json.dumps(final), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
