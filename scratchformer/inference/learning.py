"""Watching a model learn: at each training snapshot (:mod:`scratchformer.snapshots`), what the model
writes, where its attention heads look, and how its token embeddings are arranged.

For every snapshot of a checkpoint folder, :func:`learning_history` computes once

* a **sample**: :data:`NEW_TOKENS` tokens after :data:`PROMPT`, drawn with the same seed and settings
  at every step (temperature 0.8, top-p 0.95), so the only thing that changes is the model;
* the **attention** of a Transformer on :data:`TEXT` (every layer and head, [H, T, T] per layer) and
  each head's numbers (:func:`~scratchformer.inference.head_stats.head_numbers`: previous-token
  share, first-token share, entropy …), so a person sees when a head became what it is;
* the **token-embedding table** (for its PCA).

and keeps it (:data:`_CACHE`, by folder and the index file's time): moving the step slider then only
draws. Twelve snapshots of a 0.8M-parameter model take about 3 s the first time on one core.
"""
from __future__ import annotations

import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import torch
from torch import Tensor

from ..model.lstm import LSTMLM
from ..snapshots import SNAPSHOT_DIR, SNAPSHOT_INDEX, load_snapshot, read_snapshots
from .generation import generate_stream
from .head_stats import head_numbers
from .sampling import SamplingSettings
from .traced import run_traced

PROMPT = "ROMEO:\n"
TEXT = "JULIET:\nO Romeo, Romeo! wherefore art thou Romeo"   # 48 characters: the grid draws each one
NEW_TOKENS = 120
SEED = 0
SETTINGS = SamplingSettings(temperature=0.8, top_k=0, top_p=0.95)


@dataclass(frozen=True)
class SnapshotView:
    """One model at one training step: what the step views draw."""

    step: int
    tokens: int                       # training tokens seen before this step
    train_loss: float                 # the trainer's estimates at this step, nats per token
    val_loss: float
    sample: str                       # NEW_TOKENS tokens after PROMPT
    embeddings: Tensor                # the token-embedding table [V, d]
    pieces: tuple = ()                # TEXT's tokens as text (a Transformer)
    attention: Optional[list] = None  # per layer [H, T, T] on TEXT (a Transformer)
    heads: Optional[list] = None      # per layer, per head: head_numbers on TEXT (a Transformer)


def snapshot_view(loaded, record: dict) -> SnapshotView:
    """The views of one loaded snapshot (``record``: its entry in the snapshot index)."""
    model, tok = loaded.model, loaded.tokenizer
    sample = "".join(g.text for g in generate_stream(model, tok, PROMPT, settings=SETTINGS,
                                                     max_new_tokens=NEW_TOKENS, seed=SEED))
    table = model.token_embedding_table().detach().float().cpu().clone()
    common = dict(step=int(record["step"]), tokens=int(record.get("tokens", 0)),
                  train_loss=float(record.get("train_loss", float("nan"))),
                  val_loss=float(record.get("val_loss", float("nan"))), sample=sample, embeddings=table)
    if isinstance(model, LSTMLM):
        return SnapshotView(**common)
    ids = tok.encode(TEXT)
    traced = run_traced(model, tok, ids)
    attention = [a[0].clone() for a in traced.trace.self_attn]                   # [H, T, T] per layer
    heads = [[head_numbers(layer[h], ids) for h in range(layer.shape[0])] for layer in attention]
    return SnapshotView(**common, pieces=tuple(traced.pieces), attention=attention, heads=heads)


_CACHE: dict[tuple, list[SnapshotView]] = {}
_LOCKS: dict[str, threading.Lock] = {}
_GUARD = threading.Lock()


def learning_history(folder: str | Path, device: str | torch.device = "cpu") -> list[SnapshotView]:
    """Every snapshot of checkpoint folder ``folder`` as :class:`SnapshotView`, in step order ([] when it
    has none); computed once per folder (and again only when its index changes). Concurrent first
    calls compute it once. CheckpointError naming the file for a broken snapshot."""
    folder = Path(folder)
    index = folder / SNAPSHOT_DIR / SNAPSHOT_INDEX
    key = (str(folder.resolve()), index.stat().st_mtime_ns if index.is_file() else 0)
    if key in _CACHE:
        return _CACHE[key]
    with _GUARD:
        lock = _LOCKS.setdefault(key[0], threading.Lock())
    with lock:
        if key not in _CACHE:
            views = [snapshot_view(load_snapshot(folder, r["step"], device), r) for r in read_snapshots(folder)]
            _CACHE[key] = views
    return _CACHE[key]
