"""Switching parts off: the same text through the intact and the ablated model, side by side.

An ablation is an argument of the forward call (:class:`~scratchformer.model.ablation.Ablation`);
the shared model is only read. Here:

* :func:`make_ablation` turns a person's choice (heads as (layer, head) pairs, feed-forward blocks,
  LSTM units and cells, "zero" or "mean") into an ``Ablation``. *Mean* ablation replaces a head's
  output at every position by its mean output over this text, measured on the intact model:
  head_i(t) ← (1/T) Σ_s head_i(s). It keeps the head's average contribution and removes only what
  depends on the position.
* :func:`compare` gives the loss on the text, the top prediction at every position and a short
  greedy continuation, for the intact and the ablated model.
* :func:`head_worth` removes each head alone and measures how much the loss on the text rises.

loss = −(1/(T−1)) Σ_t ln p(x_{t+1} | x_≤t), in nats per character (÷ ln 2 for bits).
"""
from __future__ import annotations

import math
from typing import Iterable, Optional, Sequence

import torch
from torch import Tensor, nn

from ..model.ablation import Ablation
from ..model.attention import KVCache
from ..model.lstm import LSTMLM
from ..model.probe import Probe
from .choices import MODES
from .inside import check_ids, full_trace

MAX_CONTINUATION = 200


def _device(model: nn.Module) -> torch.device:
    return next(model.parameters()).device


def make_ablation(model: nn.Module, ids: Sequence[int], heads: Iterable[tuple[int, int]] = (),
                  ffn: Iterable[int] = (), mode: str = "zero", lstm_units: Iterable[tuple[int, int]] = (),
                  lstm_cells: Iterable[int] = ()) -> Ablation:
    """An Ablation from 0-based (layer, head) pairs, feed-forward layers, (layer, unit) pairs and
    LSTM layers whose cell is emptied. ValueError for a mode other than "zero"/"mean", for parts
    that do not exist, and for switching off every head and every feed-forward block at once."""
    if mode not in MODES:
        raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
    by_layer: dict[int, set[int]] = {}
    for l, h in heads:
        by_layer.setdefault(int(l), set()).add(int(h))
    units: dict[int, set[int]] = {}
    for l, u in lstm_units:
        units.setdefault(int(l), set()).add(int(u))
    ab = Ablation(heads={l: tuple(sorted(hs)) for l, hs in by_layer.items()}, ffn_off=frozenset(map(int, ffn)),
                  lstm_units={l: tuple(sorted(us)) for l, us in units.items()},
                  lstm_cells_off=frozenset(map(int, lstm_cells)))
    cfg = model.config
    if isinstance(model, LSTMLM):
        ab.check(cfg.n_layer, n_units=cfg.hidden)
        if len(ab.lstm_cells_off) == cfg.n_layer and all(len(units.get(l, ())) == cfg.hidden
                                                         for l in range(cfg.n_layer)):
            raise ValueError("that silences the whole LSTM: keep at least one unit or cell working")
        return ab
    ab.check(cfg.n_layer, cfg.n_head)
    n_heads_off = sum(len(h) for h in ab.heads.values())
    if n_heads_off == cfg.n_layer * cfg.n_head and len(ab.ffn_off) == cfg.n_layer:
        raise ValueError("that switches off every head and every feed-forward block: only the embeddings "
                         "would be left. Keep at least one part on.")
    if mode == "mean" and ab.heads:
        tr = full_trace(model, check_ids(ids, model))
        means = {l: tr.layers[l]["heads"][0].mean(dim=1) for l in ab.heads}    # [H, d_head] per layer
        ab = Ablation(heads=ab.heads, head_values=means, ffn_off=ab.ffn_off)
    return ab


def _forward(model: nn.Module, ids: Sequence[int], ablation: Optional[Ablation]) -> Tensor:
    x = torch.tensor([list(ids)], dtype=torch.long, device=_device(model))
    with torch.inference_mode():
        return model(x, probe=Probe(ablation=ablation or Ablation())).logits[0].float().cpu()  # [T, V]


def position_losses(logits: Tensor, ids: Sequence[int]) -> Tensor:
    """−ln p(x_{t+1} | x_≤t) for t = 0 … T−2, in nats: [T−1]."""
    logp = torch.log_softmax(logits.double(), -1)
    nxt = torch.tensor(list(ids[1:]))
    return -logp[:-1].gather(1, nxt[:, None])[:, 0]


def greedy_continuation(model: nn.Module, ids: Sequence[int], n: int,
                        ablation: Optional[Ablation] = None) -> tuple[list[int], int]:
    """``n`` greedy next tokens (argmax each step) after ``ids``, with the ablation in every step.

    The Transformer reads the last ``block_size − n`` tokens at most, so the whole continuation fits
    its positions with one KV cache (no refill); the LSTM reads all of ``ids`` and carries (h, c).
    Returns (new ids, how many tokens of ``ids`` were read).
    """
    if isinstance(n, bool) or not isinstance(n, int) or not 1 <= n <= MAX_CONTINUATION:
        raise ValueError(f"continuation length must be in 1…{MAX_CONTINUATION}, got {n!r}")
    limit = model.context_length
    if limit is not None:
        if n >= limit:
            raise ValueError(f"continuation length must be below the context length {limit}")
        ids = list(ids)[-(limit - n):]
    dev = _device(model)
    x = torch.tensor([list(ids)], dtype=torch.long, device=dev)
    out = []
    probe = Probe(ablation=ablation or Ablation())
    with torch.inference_mode():
        if isinstance(model, LSTMLM):
            o = model(x, probe=probe)
            for _ in range(n):
                nxt = int(o.logits[0, -1].argmax())
                out.append(nxt)
                o = model(torch.tensor([[nxt]], device=dev), state=o.state, probe=probe)
        else:
            cache = KVCache(len(model.layers))
            logits = model(x, cache=cache, probe=probe).logits
            for _ in range(n):
                nxt = int(logits[0, -1].argmax())
                out.append(nxt)
                if len(out) < n:
                    logits = model(torch.tensor([[nxt]], device=dev), cache=cache, probe=probe).logits
    return out, len(ids)


def _side(model, ids, tokenizer, ablation, n_new) -> dict:
    logits = _forward(model, ids, ablation)
    losses = position_losses(logits, ids)
    cont, read = greedy_continuation(model, ids, n_new, ablation)
    pieces = tokenizer.pieces(ids)
    return {"loss": float(losses.mean()),
            "bits_per_char": float(losses.sum()) / math.log(2) / sum(len(p) for p in pieces[1:]),
            "position_loss": losses.tolist(), "top": tokenizer.pieces(logits.argmax(-1).tolist()),
            "continuation": tokenizer.decode(cont), "context_read": read}


def describe_ablation(ab: Ablation, mode: str) -> str:
    """"layer 1 head 2, layer 3 head 1 (mean); feed-forward 2" — 1-based, for people."""
    parts = []
    heads = [f"L{l + 1}H{h + 1}" for l in sorted(ab.heads) for h in ab.heads[l]]
    if heads:
        parts.append(f"heads {', '.join(heads)} ({mode})")
    if ab.ffn_off:
        parts.append("feed-forward " + ", ".join(str(l + 1) for l in sorted(ab.ffn_off)))
    units = [f"L{l + 1}:{u}" for l in sorted(ab.lstm_units) for u in ab.lstm_units[l]]
    if units:
        parts.append(f"units {', '.join(units)}")
    if ab.lstm_cells_off:
        parts.append("cell memory of layer " + ", ".join(str(l + 1) for l in sorted(ab.lstm_cells_off)))
    return "; ".join(parts) or "nothing"


def compare(model: nn.Module, ids: Sequence[int], tokenizer, ablation: Ablation,
            n_new: int = 40, mode: str = "zero") -> dict:
    """The intact and the ablated model on the same text: loss (nats and bits per character), the
    loss at each position, the top prediction at each position, and ``n_new`` greedy characters.
    ``changed``: positions whose top prediction differs."""
    ids = check_ids(ids, model)
    if len(ids) < 2:
        raise ValueError("the text needs at least two characters to measure a loss")
    intact = _side(model, ids, tokenizer, None, n_new)
    ablated = _side(model, ids, tokenizer, ablation, n_new)
    return {"text": tokenizer.pieces(ids), "ablated_parts": describe_ablation(ablation, mode),
            "intact": intact, "ablated": ablated, "loss_increase": ablated["loss"] - intact["loss"],
            "changed": sum(a != b for a, b in zip(intact["top"][:-1], ablated["top"][:-1]))}


def head_worth(model: nn.Module, ids: Sequence[int], mode: str = "zero") -> dict:
    """For every head alone: loss(text with that head ablated) − loss(intact text), in nats per
    character — what the model loses without it. ``grid[l][h]``; positive = the head helps."""
    ids = check_ids(ids, model)
    if len(ids) < 2:
        raise ValueError("the text needs at least two characters to measure a loss")
    if mode not in MODES:
        raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
    cfg = model.config
    base = float(position_losses(_forward(model, ids, None), ids).mean())
    means = None
    if mode == "mean":
        tr = full_trace(model, ids)
        means = [r["heads"][0].mean(dim=1) for r in tr.layers]
    grid = []
    for l in range(cfg.n_layer):
        row = []
        for h in range(cfg.n_head):
            ab = Ablation(heads={l: (h,)}, head_values={l: means[l]} if means else {})
            row.append(float(position_losses(_forward(model, ids, ab), ids).mean()) - base)
        grid.append(row)
    return {"mode": mode, "intact_loss": base, "grid": grid}
