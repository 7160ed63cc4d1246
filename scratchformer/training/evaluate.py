"""Measure a checkpoint: ``python -m scratchformer.evaluate checkpoints/NAME [--max-batches N]``.

The validation loss is the mean cross-entropy, in nats per token, over the validation split (the
last 10% of the corpus) cut into non-overlapping windows of ``block_size`` tokens:

    val_loss = −(1/N) Σ_windows Σ_t log p(x_{t+1} | x_{≤t} within the window)      (N tokens scored)
    bits_per_char = N · val_loss / (characters of the scored tokens) / ln 2

Bits per character compare models whatever their tokens (one per character, or BPE pieces of words):
the same validation text costs the same characters. For a character model N = characters.

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
    """(mean loss in nats per token, tokens scored) over non-overlapping windows of ``ids``: the
    scored tokens are ``ids[1 : 1 + tokens scored]``."""
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
    tok = loaded.tokenizer
    _, val_text = D.split_text(D.load_corpus(data))
    val = D.encode_corpus(val_text, tok)
    block = loaded.config.block_size
    t0 = time.perf_counter()
    loss, tokens = split_loss(loaded.model, val, block, batch_size, max_batches, device)
    chars = len(tok.decode(val[1:1 + tokens].tolist()))
    bits_per_char = loss * tokens / chars / math.log(2)
    result = {"checkpoint": str(path), "model_type": loaded.config.model_type,
              "params": num_params(loaded.model), "tokenizer": tok.type, "vocab_size": tok.vocab_size,
              "val_loss": loss, "bits_per_char": bits_per_char,
              "tokens_scored": tokens, "chars_scored": chars, "val_chars": len(val_text), "block_size": block,
              "iters": loaded.metrics.get("iters"), "tokens_seen": loaded.metrics.get("tokens_seen"),
              "eval_seconds": round(time.perf_counter() - t0, 2)}
    if update_metrics and max_batches is None:
        metrics = dict(loaded.metrics)
        if "val_loss" in metrics and "val_loss_estimate" not in metrics:
            metrics["val_loss_estimate"] = metrics["val_loss"]
        metrics.update(val_loss=loss, bits_per_char=bits_per_char, val_loss_method=(
            f"whole validation split ({tokens:,} {tok.unit}s scored, {chars:,} characters) in "
            f"non-overlapping windows of {block}"))
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


def tok_unit(r: dict) -> str:
    return "character" if r.get("tokenizer") == "char" else "token"


def language_model_folders(root: str | Path) -> list[Path]:
    """Every checkpoint folder under ``root`` that holds a language model (gpt or lstm), sorted."""
    from ..checkpoint import read_config
    found = []
    for folder in sorted(Path(root).iterdir()):
        if (folder / "config.json").is_file():
            try:
                if read_config(folder)[0].model_type in ("gpt", "lstm"):
                    found.append(folder)
            except (CheckpointError, ValueError):
                continue
    return found


def print_result(r: dict) -> None:
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
        print(f"validation loss {r['val_loss']:.4f} nats per {tok_unit(r)} = {r['bits_per_char']:.4f} bits/char "
              f"over {r['chars_scored']:,} of {r['val_chars']:,} validation characters "
              f"({r['tokens_scored']:,} {tok_unit(r)}s, {r['eval_seconds']} s)")


def main(argv=None) -> None:
    p = argparse.ArgumentParser(prog="python -m scratchformer.evaluate", description=__doc__.split("\n")[0])
    p.add_argument("checkpoint", nargs="?", default=None,
                   help="checkpoint folder, e.g. checkpoints/gpt-shakespeare (default: every language model "
                        "under --checkpoints, compared in bits per character)")
    p.add_argument("--checkpoints", default=None, help="folder of checkpoints (default: the repository's)")
    p.add_argument("--max-batches", type=int, default=None, help="score only the first N batches")
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--data", default=None, help="corpus file (default data/tinyshakespeare.txt)")
    p.add_argument("--device", default="cpu")
    p.add_argument("--update-metrics", action="store_true",
                   help="write the whole-split loss into the checkpoint's metrics.json")
    args = p.parse_args(argv)
    if args.checkpoint is None:
        root = Path(args.checkpoints) if args.checkpoints else Path(__file__).resolve().parents[2] / "checkpoints"
        folders = language_model_folders(root) if root.is_dir() else []
        if not folders:
            raise SystemExit(f"error: no language-model checkpoints in {root}")
    else:
        folders = [Path(args.checkpoint)]
    results = []
    for folder in folders:
        try:
            r = evaluate_checkpoint(folder, data=args.data, max_batches=args.max_batches,
                                    batch_size=args.batch_size, device=args.device,
                                    update_metrics=args.update_metrics)
        except (CheckpointError, ValueError) as e:
            raise SystemExit(f"error: {e}") from None
        print_result(r)
        results.append(r)
    if len(results) == 1:
        print(json.dumps(results[0]))
        return
    print(f"\n{'checkpoint':34}{'tokenizer':>10}{'vocab':>7}{'params':>11}{'nats/token':>12}{'bits/char':>11}")
    for r in results:
        print(f"{Path(r['checkpoint']).name:34}{r['tokenizer']:>10}{r['vocab_size']:>7,}{r['params']:>11,}"
              f"{r['val_loss']:>12.4f}{r['bits_per_char']:>11.4f}")
    print(json.dumps({Path(r["checkpoint"]).name: {k: r[k] for k in ("bits_per_char", "val_loss", "params",
                                                                      "tokenizer", "vocab_size")}
                      for r in results}))


if __name__ == "__main__":
    main()
