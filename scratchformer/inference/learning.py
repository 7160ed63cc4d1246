"""Watching a model learn: at each training snapshot (:mod:`scratchformer.snapshots`), what the model
writes, where its attention heads look, and how its token embeddings are arranged.

For a model loaded from a snapshot, :func:`snapshot_view` computes

* a **sample**: :data:`NEW_TOKENS` tokens after :data:`PROMPT`, drawn with the same seed and settings
  at every step (temperature 0.8, top-p 0.95), so the only thing that changes is the model;
* the **attention** of a Transformer on :data:`TEXT` (every layer and head, [H, T, T] per layer) and
  each head's numbers (:func:`~scratchformer.inference.head_stats.head_numbers`: previous-token
  share, first-token share, entropy …), so a person sees when a head became what it is;
* the **token-embedding table** (for its PCA);
* an LSTM's **gates** and **cell states** on :data:`TEXT` (its last layer), so a person sees the
  gates go from ½ everywhere (random weights: σ(≈0)) to opening and closing on particular characters.

The app computes it once for every snapshot of a folder and keeps it
(:func:`scratchformer.app.learn_tab.learning_history`): moving the step slider then only draws.
Twelve snapshots of both 0.8M-parameter models take about 3 s on 2 cores.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

from torch import Tensor

from ..model.lstm import LSTMLM
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
    gates: Optional[dict] = None      # the last layer's gates on TEXT, {"i", "f", "o": [T, hidden]} (an LSTM)
    cells: Optional[Tensor] = None    # … and its cell states c_t [T, hidden] (an LSTM)


def snapshot_view(loaded, record: dict) -> SnapshotView:
    """The views of one loaded snapshot (``record``: its entry in the snapshot index)."""
    model, tok = loaded.model, loaded.tokenizer
    sample = "".join(g.text for g in generate_stream(model, tok, PROMPT, settings=SETTINGS,
                                                     max_new_tokens=NEW_TOKENS, seed=SEED))
    table = model.token_embedding_table().detach().float().cpu().clone()
    common = dict(step=int(record["step"]), tokens=int(record.get("tokens", 0)),
                  train_loss=float(record.get("train_loss", float("nan"))),
                  val_loss=float(record.get("val_loss", float("nan"))), sample=sample, embeddings=table)
    ids = tok.encode(TEXT)
    traced = run_traced(model, tok, ids)
    if isinstance(model, LSTMLM):
        gates = {k: v[-1, 0].clone() for k, v in traced.trace.gates.items()}
        return SnapshotView(**common, pieces=tuple(traced.pieces), gates=gates,
                            cells=traced.trace.cell_states[-1, 0].clone())
    attention = [a[0].clone() for a in traced.trace.self_attn]                   # [H, T, T] per layer
    heads = [[head_numbers(layer[h], ids) for h in range(layer.shape[0])] for layer in attention]
    return SnapshotView(**common, pieces=tuple(traced.pieces), attention=attention, heads=heads)
