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

import torch.nn.functional as F

from ..checkpoint import METRICS_FILE, CheckpointError, atomic_write_text, load_checkpoint
from ..inference.seq2seq import greedy_decode
from ..model.basics import IGNORE_INDEX, num_params
from ..model.transformer import Seq2SeqTransformer
from ..tokenizers import CharTokenizer
from . import data as D
from .tasks import DatesTask, encode_pairs, mask_tokens


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


# ------------------------------------------------------ the encoder-decoder and BERT-style metrics

@torch.no_grad()
def exact_match(model: Seq2SeqTransformer, tokenizer: CharTokenizer, pairs: list[tuple[str, str]],
                batch_size: int = 500) -> float:
    """Share of (source, target) pairs whose greedy output equals the target exactly."""
    device = next(model.parameters()).device
    eos = model.config.eos_id
    hits = 0
    for i in range(0, len(pairs), batch_size):
        chunk = pairs[i:i + batch_size]
        src = encode_pairs(chunk, tokenizer)[0].to(device)
        for ids, (_, target) in zip(greedy_decode(model, src), chunk):
            hits += ids[-1:] == [eos] and tokenizer.decode(ids) == target
    return hits / len(pairs)


HELD_OUT_EXAMPLES = 2000


@torch.no_grad()
def evaluate_dates(model: Seq2SeqTransformer, tokenizer: CharTokenizer, n: int = HELD_OUT_EXAMPLES,
                   batch_size: int = 500) -> dict:
    """The dates model on the first ``n`` examples of the fixed held-out set (days never trained on).

    exact_match: greedy output == target; val_loss: teacher-forced cross-entropy per target token
    (the ten characters and <eos>), in nats.
    """
    pairs = DatesTask().held_out(HELD_OUT_EXAMPLES)[:n]
    device = next(model.parameters()).device
    total, tokens = 0.0, 0
    for i in range(0, len(pairs), batch_size):
        src, tgt_in, targets = (t.to(device) for t in encode_pairs(pairs[i:i + batch_size], tokenizer))
        n_tok = int((targets != IGNORE_INDEX).sum())
        total += model(src, tgt_in, targets).loss.item() * n_tok
        tokens += n_tok
    loss = total / tokens
    return {"exact_match": exact_match(model, tokenizer, pairs, batch_size), "held_out_examples": len(pairs),
            "val_loss": loss, "bits_per_char": loss / math.log(2),
            "val_loss_method": f"teacher-forced, {len(pairs)} held-out dates ({tokens} target tokens)",
            "decoding": "greedy"}




@torch.no_grad()
def masked_char_metrics(model: nn.Module, ids: Tensor, block_size: int, mask_id: int, n_chars: int, *,
                        batch_size: int = 32, seed: int = 0, causal: bool = False,
                        max_batches: Optional[int] = None) -> dict:
    """Loss and accuracy at masked characters over non-overlapping windows of ``ids``.

    In each window 15% of the characters, chosen with a generator seeded by ``seed`` (so every run
    masks the same ones), are replaced by ``<mask>`` — all of them, as blanks in the app are (no
    80/10/10 rule). loss = mean −log p(true char) at those positions (nats, softmax over the whole
    vocabulary as in training); accuracy = share where the most likely character is the true one.
    """
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    gen = torch.Generator().manual_seed(seed)
    n_windows = len(ids) // block_size
    windows = ids[: n_windows * block_size].view(n_windows, block_size)
    total_loss, correct, count = 0.0, 0, 0
    for b, start in enumerate(range(0, n_windows, batch_size)):
        if max_batches is not None and b >= max_batches:
            break
        x = windows[start:start + batch_size]
        inputs, targets = mask_tokens(x, mask_id, n_chars, gen, rule_80_10_10=False)
        inputs, targets = inputs.to(device), targets.to(device)
        logits = model(inputs, causal=causal).logits.float()
        chosen = targets != IGNORE_INDEX
        total_loss += F.cross_entropy(logits[chosen], targets[chosen], reduction="sum").item()
        correct += (logits[chosen][:, :n_chars].argmax(-1) == targets[chosen]).sum().item()
        count += int(chosen.sum())
    model.train(was_training)
    loss = total_loss / max(count, 1)
    return {"masked_loss": loss, "masked_bits_per_char": loss / math.log(2),
            "masked_char_accuracy": correct / max(count, 1), "masked_chars": count, "causal": causal}


def evaluate_masked(model: nn.Module, tokenizer: CharTokenizer, data=None, *, batch_size: int = 32,
                    max_batches: Optional[int] = None) -> dict:
    """The BERT-style model on the validation split (last 10% of the corpus): masked-character loss
    and accuracy (see :func:`masked_char_metrics`), bidirectional and, for contrast, with the causal mask.
    """
    ids = torch.tensor(tokenizer.encode(D.load_corpus(data)), dtype=torch.long)
    _, val = D.split(ids)
    args = (model, val, model.config.block_size, model.config.mask_id, tokenizer.text_vocab_size)
    both = masked_char_metrics(*args, batch_size=batch_size, max_batches=max_batches)
    causal = masked_char_metrics(*args, batch_size=batch_size, max_batches=max_batches, causal=True)
    return {"masked_char_accuracy": both["masked_char_accuracy"], "val_loss": both["masked_loss"],
            "bits_per_char": both["masked_bits_per_char"], "masked_chars": both["masked_chars"],
            "masked_char_accuracy_causal": causal["masked_char_accuracy"],
            "val_loss_causal": causal["masked_loss"],
            "val_loss_method": (f"loss at masked characters: 15% of each non-overlapping {args[2]}-character "
                                f"window of the validation split replaced by <mask> (seed 0), "
                                f"{both['masked_chars']:,} characters scored")}


# ---------------------------------------------------------------------------------- one checkpoint

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
        atomic_write_text(Path(path) / METRICS_FILE, json.dumps(metrics, indent=2) + "\n")
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
        atomic_write_text(Path(path) / METRICS_FILE, json.dumps(metrics, indent=2) + "\n")
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
