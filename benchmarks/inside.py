"""Server-side time of the "Inside one forward pass" views on a 128-character text (the shipped GPT).

    python benchmarks/inside.py [--checkpoints checkpoints] [--repeats 20] [--threads 1]

Each view is called as the app calls it (its callback, figures included), after one warm-up call;
the median of ``--repeats`` calls is reported. Prints a table, then one JSON line with
walkthrough_ms, logit_lens_ms, head_worth_ms (every head ablated in turn) and ablation_ms
(two heads and one feed-forward block, mean ablation, 40-character greedy continuations of both models).
Goals on 2 CPU cores: walkthrough ≤ 300, logit lens ≤ 200, head worth ≤ 1000, ablation ≤ 300.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import time

import torch

from scratchformer.app import inside_tab as X
from scratchformer.app.bank import TRANSFORMER, ModelBank

GOALS = {"walkthrough_ms": 300, "logit_lens_ms": 200, "head_worth_ms": 1000, "ablation_ms": 300}


def median_ms(fn, repeats: int) -> float:
    fn()                                         # warm-up
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t0) * 1000)
    return statistics.median(times)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--checkpoints", default="checkpoints")
    ap.add_argument("--repeats", type=int, default=20)
    ap.add_argument("--threads", type=int, default=1, help="torch threads (the app uses cores ÷ concurrency)")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    bank = ModelBank.load(args.checkpoints)
    loaded = bank.get(TRANSFORMER)
    corpus = open("data/tinyshakespeare.txt", encoding="utf-8").read()
    text = corpus[10_000:10_128]
    assert len(loaded.tokenizer.encode(text)) == 128
    cfg = loaded.config
    runs = {
        "walkthrough_ms": lambda: X.inside_walkthrough(bank, text, 100, cfg.n_layer, 1, 0.8, 0, 0.95),
        "logit_lens_ms": lambda: X.inside_logit_lens(bank, text),
        "head_worth_ms": lambda: X.inside_head_worth(bank, text, "mean"),
        "ablation_ms": lambda: X.inside_ablation(bank, text, ["L1 H2", "L3 H4"], ["FFN 2"], "mean", 40),
    }
    result = {name: round(median_ms(fn, args.repeats), 1) for name, fn in runs.items()}
    print(f"shipped GPT ({cfg.n_layer} layers × {cfg.n_head} heads, d_model {cfg.n_embd}), 128 characters, "
          f"torch threads {args.threads}, {os.cpu_count()} cores, median of {args.repeats}")
    print(f"{'view':<16}{'ms':>10}{'goal':>10}")
    for name, ms in result.items():
        print(f"{name:<16}{ms:>10.1f}{GOALS[name]:>10}  {'ok' if ms <= GOALS[name] else 'OVER'}")
    print(json.dumps({**result, "chars": 128, "threads": args.threads, "repeats": args.repeats}))


if __name__ == "__main__":
    main()
