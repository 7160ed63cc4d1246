"""Training throughput (tokens/s) at nanoGPT's CPU configuration.

    python benchmarks/training.py [--threads 1,2] [--iters 30] [--nanogpt-dir DIR]

``--threads`` takes a comma-separated list (default: 1 and all cores); each count is measured and
reported separately.

Configuration (nanoGPT's README, "I only have a macbook"): 4 layers, 4 heads, 128 dims, block 64,
batch 12, no dropout, AdamW, gradient clipping 1.0. Every model is timed by the same loop — draw a
batch, forward, backward, clip, AdamW step — after a few warm-up steps:

* our GPT (scratchformer.model.transformer.GPT, fused attention path since no weights are asked for), with
  biases (as shipped and as gpt_train_tokens_per_s) and without (nanoGPT's default);
* our LSTM at about the same parameter count (embedding 64, 2 layers of 248 hidden units), both
  through the from-scratch LSTM (train.py's path: the hand-written BPTT of model/fast/lstm_bptt.py)
  and, for reference, through PyTorch's fused LSTM kernel on the same weights;
* nanoGPT's own GPT (its ``model.py`` with its ``configure_optimizers``) when ``--nanogpt-dir``
  points at a folder holding it: with bias=False (its train.py's default) and bias=True (like ours);
* nanoGPT's own ``train.py``, run as a user runs it (a subprocess, its README's CPU command:
  ``python train.py config/train_shakespeare_char.py --device=cpu --compile=False --block_size=64
  --batch_size=12 --n_layer=4 --n_head=4 --n_embd=128 --dropout=0.0``, in a scratch copy of the
  folder whose ``data/shakespeare_char`` holds the corpus as its ``prepare.py`` writes it), at the
  same thread count (``OMP_NUM_THREADS``); its own "iter N: … time X ms" lines are parsed, the
  first 5 left out as it does for its MFU. ``gpt_vs_nanogpt_train_py`` = our GPT / that.

Ratios (wall-clock, per thread count; the medians of ``--repeats`` runs, the spread min–max beside): ``gpt_vs_nanogpt`` = our GPT as shipped (bias=True) / nanoGPT
as shipped (bias=False, the harder comparison); ``gpt_vs_nanogpt_same_bias`` = both with biases;
``lstm_vs_kernel`` = our LSTM / the fused kernel. A roofline line per model: training FLOPs per
token (3 × forward, benchmarks/roofline.py) and the GFLOP/s achieved beside a measured matmul peak.

Prints a table (tokens per wall-clock second, and per CPU second of the process, steadier when
other jobs share the machine); the LAST line is one JSON object with gpt_train_tokens_per_s, lstm_train_tokens_per_s
(ours, as train.py trains it), lstm_kernel_train_tokens_per_s (reference) and, when measured,
nanogpt_train_tokens_per_s.
The median of ``--repeats`` timed runs is reported (the machine may be shared), with the spread.
On a machine whose speed drifts by tens of percent within minutes (other tenants), medians of runs
measured minutes apart disagree; so the two ratios that matter are also measured *paired*
(``--pairs``): chunks of 8 steps of the two models alternate, and the median of the pairs' ratios is
reported (``gpt_vs_nanogpt_paired``: our GPT as shipped / nanoGPT's model with bias=False;
``lstm_vs_kernel_paired``).
"""
from __future__ import annotations

import argparse
import importlib.util
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Optional

import torch
import torch.nn.functional as F
from roofline import gpt_forward_flops, line, lstm_forward_flops, matmul_peak_gflops
from torch import Tensor, nn

from scratchformer.training import data as D
from scratchformer.model.registry import build_model
from scratchformer.model.basics import num_params
from scratchformer.model.config import LSTMConfig, TransformerConfig
from scratchformer.model.fast import accelerate
from scratchformer.model.trace import ModelOutput
from scratchformer.training.train import make_optimizer


class TorchKernelLSTM(nn.Module):
    """Reference only (this benchmark): an LSTMLM's forward through PyTorch's fused LSTM kernel.

    nn.LSTM computes the same function with the same weight layout (gates stacked i, f, g, o; an
    input and a recurrent bias), so it is called as a pure function of the LSTMLM's own parameters
    (``torch.func.functional_call``). It shows how far the from-scratch LSTM (hand-written BPTT in
    scratchformer.model.lstm) is from PyTorch's C++ loop; train.py never uses it.
    """

    def __init__(self, model: nn.Module):
        super().__init__()
        cfg = model.config
        self.model = model
        # a template whose own (unused) weights are kept out of this module's parameters
        self._kernel = [nn.LSTM(cfg.n_embd, cfg.hidden, cfg.n_layer, batch_first=True,
                                dropout=cfg.dropout).to(next(model.parameters()).device)]

    def lstm_params(self) -> dict[str, Tensor]:
        """Our cells' tensors under nn.LSTM's names (weight_ih_l0 = W_i[ifgo] of layer 0, …)."""
        params = {}
        for l, cell in enumerate(self.model.lstm.cells):
            params.update({f"weight_ih_l{l}": cell.ih.weight, f"weight_hh_l{l}": cell.hh.weight,
                           f"bias_ih_l{l}": cell.ih.bias, f"bias_hh_l{l}": cell.hh.bias})
        return params

    def forward(self, ids: Tensor, targets: Optional[Tensor] = None) -> ModelOutput:
        m = self.model
        kernel = self._kernel[0]
        kernel.train(self.training)
        out, _ = torch.func.functional_call(kernel, self.lstm_params(), (m.drop(m.embed(ids)),))
        logits = m.lm_head(m.drop(out))
        loss = None
        if targets is not None:
            loss = F.cross_entropy(logits.reshape(-1, logits.size(-1)), targets.reshape(-1),
                                   ignore_index=-100)
        return ModelOutput(logits, loss)


BATCH, BLOCK = 12, 64
GPT_CFG = dict(n_layer=4, n_head=4, n_embd=128, block_size=BLOCK, dropout=0.0)
LSTM_CFG = dict(n_embd=64, hidden=248, n_layer=2, block_size=BLOCK)


def training_step(step_loss, params, opt, train_ids):
    """One full training step per call (draw a batch, forward, backward, clip, AdamW step), every
    model's batches drawn from the same seed."""
    gen = torch.Generator().manual_seed(0)

    def one() -> None:
        x, y = D.get_batch(train_ids, BATCH, BLOCK, gen)
        loss = step_loss(x, y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
    return one


def time_training(one, iters: int, warmup: int = 3) -> tuple[float, float]:
    """(tokens per wall-clock second, tokens per CPU second of this process) of ``iters`` steps after
    ``warmup`` untimed ones. On a shared machine the CPU-time figure is the steadier one."""
    for _ in range(warmup):
        one()
    t0, c0 = time.perf_counter(), time.process_time()
    for _ in range(iters):
        one()
    tokens = iters * BATCH * BLOCK
    return tokens / (time.perf_counter() - t0), tokens / (time.process_time() - c0)


def paired(one_a, one_b, pairs: int, chunk: int = 8) -> tuple[float, float, float]:
    """How many times faster A trains than B, measured so that a machine whose speed drifts (other
    tenants) hurts neither: short chunks of ``chunk`` steps alternate A, B, B, A, …, and each pair's
    time ratio is kept. Returns (median, lower quartile, upper quartile) of the ratios."""
    for _ in range(3):
        one_a(), one_b()
    ratios = []
    for p in range(pairs):
        took = {}
        for name, one in (("a", one_a), ("b", one_b)) if p % 2 == 0 else (("b", one_b), ("a", one_a)):
            t0 = time.perf_counter()
            for _ in range(chunk):
                one()
            took[name] = time.perf_counter() - t0
        ratios.append(took["b"] / took["a"])
    q1, med, q3 = statistics.quantiles(ratios, n=4)
    return round(med, 3), round(q1, 3), round(q3, 3)


def _opt_args():
    return argparse.Namespace(lr=1e-3, weight_decay=0.1, beta1=0.9, beta2=0.99)


def ours(kind: str, train_ids, vocab: int):
    """(parameters, one training step) of our GPT (``gpt``, ``gpt_nobias``), our LSTM (``lstm``) or
    PyTorch's LSTM kernel on our LSTM's weights (``lstm_kernel``)."""
    torch.manual_seed(0)
    if kind in ("gpt", "gpt_nobias"):
        model = accelerate(build_model(TransformerConfig(model_type="gpt", vocab_size=vocab, bias=kind == "gpt",
                                                         **GPT_CFG)))   # as train.py does
        step = lambda x, y: model(x, y).loss  # noqa: E731
    else:
        model = build_model(LSTMConfig(vocab_size=vocab, **LSTM_CFG))
        fused = TorchKernelLSTM(model)
        step = (lambda x, y: fused(x, y).loss) if kind == "lstm_kernel" else (lambda x, y: model(x, y).loss)
    model.train()
    opt = make_optimizer(model, _opt_args(), torch.device("cpu"))
    return num_params(model), training_step(step, list(model.parameters()), opt, train_ids)


def nanogpt(folder: Path, train_ids, vocab: int, bias: bool = False):
    """(parameters, one training step) of nanoGPT's GPT from its ``model.py``."""
    spec = importlib.util.spec_from_file_location("nanogpt_model", folder / "model.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    torch.manual_seed(0)
    model = mod.GPT(mod.GPTConfig(vocab_size=vocab, bias=bias, **GPT_CFG))
    model.train()
    opt = model.configure_optimizers(0.1, 1e-3, (0.9, 0.99), "cpu")
    step = lambda x, y: model(x, y)[1]  # noqa: E731
    n = sum(p.numel() for p in model.parameters())
    return n, training_step(step, list(model.parameters()), opt, train_ids)


def bench_ours(kind: str, train_ids, vocab: int, iters: int):
    n, one = ours(kind, train_ids, vocab)
    return n, time_training(one, iters)


def bench_nanogpt(folder: Path, train_ids, vocab: int, iters: int, bias: bool = False):
    n, one = nanogpt(folder, train_ids, vocab, bias)
    return n, time_training(one, iters)


def nanogpt_workdir(folder: Path, text: str) -> Path:
    """A scratch copy of nanoGPT's folder with ``data/shakespeare_char`` prepared from ``text``
    exactly as its ``prepare.py`` does (sorted characters, a 90/10 cut, uint16 ``.bin`` files)."""
    import pickle

    import numpy as np
    work = Path(tempfile.mkdtemp(prefix="nanogpt_"))
    for name in ("train.py", "model.py", "configurator.py"):
        shutil.copy(folder / name, work / name)
    shutil.copytree(folder / "config", work / "config")
    data = work / "data" / "shakespeare_char"
    data.mkdir(parents=True)
    chars = sorted(set(text))
    stoi = {ch: i for i, ch in enumerate(chars)}
    n = int(len(text) * 0.9)
    np.array([stoi[c] for c in text[:n]], dtype=np.uint16).tofile(data / "train.bin")
    np.array([stoi[c] for c in text[n:]], dtype=np.uint16).tofile(data / "val.bin")
    with open(data / "meta.pkl", "wb") as f:
        pickle.dump({"vocab_size": len(chars), "itos": dict(enumerate(chars)), "stoi": stoi}, f)
    return work


NANOGPT_ARGS = ["config/train_shakespeare_char.py", "--device=cpu", "--compile=False",
                f"--block_size={BLOCK}", f"--batch_size={BATCH}", "--n_layer=4", "--n_head=4",
                "--n_embd=128", "--dropout=0.0", "--lr_decay_iters=2000",
                # no evaluation or checkpoint inside the timed steps (one 1-batch evaluation at step 0)
                "--eval_interval=1000000", "--eval_iters=1", "--log_interval=1", "--always_save_checkpoint=False"]
ITER_LINE = re.compile(r"^iter (\d+): loss [-\d.naif]+, time ([\d.]+)ms", re.M)


def bench_nanogpt_train_py(work: Path, threads: int, iters: int, skip: int = 5) -> tuple[float, None]:
    """nanoGPT's train.py for ``skip + iters`` steps at ``threads`` threads → (tokens per second over
    its own per-step times after the first ``skip``, None: its CPU time per step is not known, the
    process's includes importing torch)."""
    env = dict(os.environ, OMP_NUM_THREADS=str(threads), MKL_NUM_THREADS=str(threads))
    cmd = [sys.executable, "train.py", *NANOGPT_ARGS, f"--max_iters={skip + iters}", f"--out_dir={work / 'out'}"]
    run = subprocess.run(cmd, cwd=work, env=env, capture_output=True, text=True, timeout=1800)
    if run.returncode != 0:
        raise RuntimeError(f"nanoGPT's train.py failed ({run.returncode}): {run.stderr[-2000:]}")
    times = [float(ms) / 1000 for it, ms in ITER_LINE.findall(run.stdout) if int(it) >= skip]
    if not times:
        raise RuntimeError(f"no 'iter N: ... time X ms' lines in nanoGPT's output: {run.stdout[-2000:]}")
    return len(times) * BATCH * BLOCK / sum(times), None


LABELS = {"gpt": "scratchformer GPT (bias=True, shipped)", "gpt_nobias": "scratchformer GPT (bias=False)",
          "lstm": "scratchformer LSTM (hand-written BPTT)",
          "lstm_kernel": "reference: nn.LSTM kernel, same weights",
          "nanogpt": "nanoGPT GPT (bias=False, its default)", "nanogpt_bias": "nanoGPT GPT (bias=True, like ours)",
          "nanogpt_train_py": "nanoGPT's own train.py (subprocess)"}


def measure(threads: int, args, train_ids, vocab: int) -> dict:
    """Every model at ``threads`` threads: print the table and roofline lines, return the numbers."""
    torch.set_num_threads(threads)
    runs = {
        "gpt": lambda: bench_ours("gpt", train_ids, vocab, args.iters),
        "gpt_nobias": lambda: bench_ours("gpt_nobias", train_ids, vocab, args.iters),
        "lstm": lambda: bench_ours("lstm", train_ids, vocab, args.iters),
        "lstm_kernel": lambda: bench_ours("lstm_kernel", train_ids, vocab, args.iters),
    }
    if args.nanogpt_dir is not None and (args.nanogpt_dir / "model.py").is_file():
        runs["nanogpt"] = lambda: bench_nanogpt(args.nanogpt_dir, train_ids, vocab, args.iters)
        runs["nanogpt_bias"] = lambda: bench_nanogpt(args.nanogpt_dir, train_ids, vocab, args.iters,
                                                     bias=True)
    if args.nanogpt_work is not None:
        runs["nanogpt_train_py"] = lambda: (None, bench_nanogpt_train_py(args.nanogpt_work, threads, args.iters))
    wall, cpu, params = {}, {}, {}
    for _ in range(args.repeats):  # interleaved, so a burst of load elsewhere hits every model
        for name, fn in runs.items():
            params[name], (w, c) = fn()
            wall.setdefault(name, []).append(w)
            cpu.setdefault(name, []).append(c)
    print(f"training tokens/s at nanoGPT's CPU config (batch {BATCH} x block {BLOCK}), "
          f"{threads} thread(s), median of {args.repeats}")
    print(f"{'model':42s} {'params':>10s} {'tokens/s':>10s} {'spread':>15s} {'tokens/CPU-s':>13s}")
    out = {}
    for name in wall:
        w = statistics.median(wall[name])
        c = statistics.median(cpu[name]) if None not in cpu[name] else None
        out[f"{name}_train_tokens_per_s"] = round(w, 1)
        out[f"{name}_train_tokens_per_s_spread"] = [round(min(wall[name]), 1), round(max(wall[name]), 1)]
        if c is not None:
            out[f"{name}_train_tokens_per_cpu_s"] = round(c, 1)
        n = f"{params[name]:,d}" if params[name] else "(its own)"
        spread = f"{min(wall[name]):,.0f}-{max(wall[name]):,.0f}"
        print(f"{LABELS[name]:42s} {n:>10s} {w:>10,.0f} {spread:>15s} {(f'{c:,.0f}' if c else '-'):>13s}")
    rate = lambda name: out.get(f"{name}_train_tokens_per_s")  # noqa: E731
    if rate("nanogpt"):
        out["gpt_vs_nanogpt"] = round(rate("gpt") / rate("nanogpt"), 3)
        out["gpt_vs_nanogpt_same_bias"] = round(rate("gpt") / rate("nanogpt_bias"), 3)
    if rate("nanogpt_train_py"):
        out["gpt_vs_nanogpt_train_py"] = round(rate("gpt") / rate("nanogpt_train_py"), 3)
    out["lstm_vs_kernel"] = round(rate("lstm") / rate("lstm_kernel"), 3)
    print("ratios: " + ", ".join(f"{k} {v}" for k, v in out.items() if "_vs_" in k))
    if args.pairs:
        pairs = {"lstm_vs_kernel_paired": (lambda: ours("lstm", train_ids, vocab)[1],
                                           lambda: ours("lstm_kernel", train_ids, vocab)[1])}
        if args.nanogpt_dir is not None and (args.nanogpt_dir / "model.py").is_file():
            pairs["gpt_vs_nanogpt_paired"] = (lambda: ours("gpt", train_ids, vocab)[1],
                                              lambda: nanogpt(args.nanogpt_dir, train_ids, vocab)[1])
        for key, (make_a, make_b) in pairs.items():
            med, q1, q3 = paired(make_a(), make_b(), args.pairs)
            out[key], out[key + "_quartiles"] = med, [q1, q3]
            print(f"paired ({args.pairs} pairs of 8 steps, alternating): {key} median {med} "
                  f"(quartiles {q1}-{q3})")
    peak = matmul_peak_gflops()
    c = TransformerConfig(vocab_size=vocab, **GPT_CFG)
    gpt_flops = 3 * gpt_forward_flops(c.n_layer, c.n_embd, c.d_ff, vocab, (BLOCK + 1) / 2)
    lstm_flops = 3 * lstm_forward_flops(LSTM_CFG["n_layer"], LSTM_CFG["n_embd"], LSTM_CFG["hidden"], vocab)
    roof = {}
    for name, flops in (("gpt", gpt_flops), ("nanogpt", gpt_flops), ("lstm", lstm_flops), ("lstm_kernel", lstm_flops)):
        if rate(name):
            text, roof[name] = line(LABELS[name], flops, rate(name), peak)
            print(text)
    out.update(roofline=roof, gpt_params=params["gpt"], lstm_params=params["lstm"])
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--threads", default=f"1,{os.cpu_count()}", help="comma-separated thread counts")
    p.add_argument("--iters", type=int, default=30, help="timed steps per run")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--pairs", type=int, default=10,
                   help="paired comparisons (alternating chunks of 8 steps) per ratio; 0: none")
    p.add_argument("--nanogpt-dir", type=Path, default=None, help="folder with nanoGPT's model.py")
    args = p.parse_args()
    text = D.load_corpus()
    args.nanogpt_work = None
    if args.nanogpt_dir is not None and (args.nanogpt_dir / "train.py").is_file():
        args.nanogpt_work = nanogpt_workdir(args.nanogpt_dir, text)
    tok = D.default_tokenizer(text)
    train_ids, _ = D.split(D.encode_corpus(text, tok))
    counts = sorted({int(t) for t in str(args.threads).split(",")})
    per = {}
    for threads in counts:
        per[str(threads)] = measure(threads, args, train_ids, tok.vocab_size)
        print()
    first = per[str(counts[0])]
    result = {k: v for k, v in first.items() if k != "roofline"}   # the first count, flat (as before)
    result.update(threads=counts[0], batch_size=BATCH, block_size=BLOCK, by_threads=per)
    if args.nanogpt_work is not None:
        shutil.rmtree(args.nanogpt_work, ignore_errors=True)
    for key in ("gpt_vs_nanogpt", "gpt_vs_nanogpt_same_bias", "gpt_vs_nanogpt_train_py", "lstm_vs_kernel",
                "gpt_vs_nanogpt_paired", "lstm_vs_kernel_paired"):
        if key in first:
            result[key] = {t: r[key] for t, r in per.items()}
    print(json.dumps(result))


if __name__ == "__main__":
    main()
