"""Measure a checkpoint: ``python -m scratchformer.evaluate checkpoints/NAME [--max-batches N]``.

The validation loss is the mean cross-entropy, in nats per character, over the validation split (the
last 10% of the corpus) cut into non-overlapping windows of ``block_size`` characters:

    val_loss = −(1/N) Σ_windows Σ_t log p(x_{t+1} | x_{≤t} within the window),   bits/char = val_loss / ln 2

Each window starts fresh (no context from the window before it, for the LSTM too), so the GPT and the
LSTM are measured the same way and the same way as during training. ``--max-batches`` measures only
the first N batches (a quick look; the JSON says how many characters were scored).

The last line printed is one JSON object: val_loss, bits_per_char, params, chars_scored, …

The encoder-decoder and the BERT-style model are measured on their own tasks (:func:`evaluate_task`):
``seq2seq`` by ``exact_match`` of greedy decoding on 2,000 held-out dates (days never trained on) plus
the teacher-forced loss per target token; ``bert`` by ``masked_char_accuracy`` and loss at 15% masked
characters of the validation split (and, for contrast, the same with the causal mask).
"""
from __future__ import annotations

import argparse
import json
import math
import time
from pathlib import Path
from typing import Optional

import torch
from torch import Tensor, nn

from . import data as D
from .blanks import evaluate_masked
from .checkpoint import METRICS_FILE, CheckpointError, _atomic_write_text, load_checkpoint, num_params
from .seq2seq import HELD_OUT_EXAMPLES, evaluate_dates


@torch.no_grad()
def split_loss(model: nn.Module, ids: Tensor, block_size: int, batch_size: int = 32,
               max_batches: Optional[int] = None, device: str | torch.device = "cpu") -> tuple[float, int]:
    """(mean loss in nats per character, characters scored) over non-overlapping windows of ``ids``."""
    was_training = model.training
    model.eval()
    total, count = 0.0, 0
    for b, (x, y) in enumerate(D.sequential_batches(ids, batch_size, block_size)):
        if max_batches is not None and b >= max_batches:
            break
        x, y = x.to(device), y.to(device)
        loss = model(x, y).loss
        total += loss.item() * y.numel()
        count += y.numel()
    model.train(was_training)
    return total / count, count


def evaluate_checkpoint(path: str | Path, *, data: str | Path | None = None, max_batches: Optional[int] = None,
                        batch_size: int = 32, device: str = "cpu", update_metrics: bool = False) -> dict:
    """Validation loss of the checkpoint at ``path`` (see the module docstring) as a dict.

    With ``update_metrics`` (only for a whole-split measurement) ``metrics.json`` gets the measured
    val_loss / bits_per_char and ``val_loss_method`` saying how it was measured.
    """
    loaded = load_checkpoint(path, device=device)
    if loaded.config.model_type in ("seq2seq", "bert"):
        return evaluate_task(loaded, path, data=data, max_batches=max_batches, batch_size=batch_size,
                             update_metrics=update_metrics)
    text = D.load_corpus(data)
    ids = torch.tensor(loaded.tokenizer.encode(text), dtype=torch.long)
    _, val = D.split(ids)
    block = loaded.config.block_size
    t0 = time.perf_counter()
    loss, chars = split_loss(loaded.model, val, block, batch_size, max_batches, device)
    result = {"checkpoint": str(path), "model_type": loaded.config.model_type,
              "params": num_params(loaded.model), "val_loss": loss, "bits_per_char": loss / math.log(2),
              "chars_scored": chars, "val_chars": len(val), "block_size": block,
              "iters": loaded.metrics.get("iters"), "tokens_seen": loaded.metrics.get("tokens_seen"),
              "eval_seconds": round(time.perf_counter() - t0, 2)}
    if update_metrics and max_batches is None:
        metrics = dict(loaded.metrics)
        if "val_loss" in metrics and "val_loss_estimate" not in metrics:
            metrics["val_loss_estimate"] = metrics["val_loss"]
        metrics.update(val_loss=loss, bits_per_char=loss / math.log(2), val_loss_method=(
            f"whole validation split ({chars:,} characters) in non-overlapping windows of {block}"))
        _atomic_write_text(Path(path) / METRICS_FILE, json.dumps(metrics, indent=2) + "\n")
    return result


def evaluate_task(loaded, path: str | Path, *, data=None, max_batches: Optional[int] = None,
                  batch_size: int = 32, update_metrics: bool = False) -> dict:
    """seq2seq: exact match on the held-out dates (all 2,000, or max_batches × batch_size of them);
    bert: masked-character accuracy and loss on the validation split. Same result layout as above."""
    t0 = time.perf_counter()
    if loaded.config.model_type == "seq2seq":
        n = HELD_OUT_EXAMPLES if max_batches is None else min(HELD_OUT_EXAMPLES, max_batches * batch_size)
        scores = evaluate_dates(loaded.model, loaded.tokenizer, n)
    else:
        scores = evaluate_masked(loaded.model, loaded.tokenizer, data, batch_size=batch_size,
                                 max_batches=max_batches)
    result = {"checkpoint": str(path), "model_type": loaded.config.model_type,
              "params": num_params(loaded.model), **scores, "iters": loaded.metrics.get("iters"),
              "tokens_seen": loaded.metrics.get("tokens_seen"),
              "eval_seconds": round(time.perf_counter() - t0, 2)}
    if update_metrics and max_batches is None:
        metrics = dict(loaded.metrics)
        if "val_loss" in metrics and "val_loss_estimate" not in metrics:
            metrics["val_loss_estimate"] = metrics["val_loss"]
        metrics.update(scores)
        _atomic_write_text(Path(path) / METRICS_FILE, json.dumps(metrics, indent=2) + "\n")
    return result


def main(argv=None) -> None:
    p = argparse.ArgumentParser(prog="python -m scratchformer.evaluate", description=__doc__.split("\n")[0])
    p.add_argument("checkpoint", help="checkpoint folder, e.g. checkpoints/gpt-shakespeare")
    p.add_argument("--max-batches", type=int, default=None, help="score only the first N batches")
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--data", default=None, help="corpus file (default data/tinyshakespeare.txt)")
    p.add_argument("--device", default="cpu")
    p.add_argument("--update-metrics", action="store_true",
                   help="write the whole-split loss into the checkpoint's metrics.json")
    args = p.parse_args(argv)
    try:
        r = evaluate_checkpoint(args.checkpoint, data=args.data, max_batches=args.max_batches,
                                batch_size=args.batch_size, device=args.device,
                                update_metrics=args.update_metrics)
    except (CheckpointError, ValueError) as e:
        raise SystemExit(f"error: {e}") from None
    print(f"{r['checkpoint']}: {r['model_type']}, {r['params']:,} parameters, trained {r['iters']} steps "
          f"on {r['tokens_seen']} tokens")
    if "exact_match" in r:
        print(f"exact match {r['exact_match']:.4f} on {r['held_out_examples']:,} held-out dates (greedy "
              f"decoding); teacher-forced loss {r['val_loss']:.4f} nats/token ({r['eval_seconds']} s)")
    elif "masked_char_accuracy" in r:
        print(f"masked-character accuracy {r['masked_char_accuracy']:.4f} over {r['masked_chars']:,} masked "
              f"characters (with the causal mask: {r['masked_char_accuracy_causal']:.4f}); loss "
              f"{r['val_loss']:.4f} nats/char ({r['eval_seconds']} s)")
    else:
        print(f"validation loss {r['val_loss']:.4f} nats/char = {r['bits_per_char']:.4f} bits/char "
              f"over {r['chars_scored']:,} of {r['val_chars']:,} validation characters ({r['eval_seconds']} s)")
    print(json.dumps(r))


if __name__ == "__main__":
    main()
