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
* :func:`head_worth` removes each head alone and measures how much the loss on the text rises. For
  a GPT it computes the ablated passes in batches (:func:`_head_worth_batched`: the stream before the
  head's layer is the intact one, computed once; then one row per head of the layer, each with its
  own head off); :func:`head_worth_one_at_a_time` is the same number, one plain forward pass per
  head, for every model (tests/test_interventions.py keeps the two equal).

loss = −(1/(T−1)) Σ_t ln p(x_{t+1} | x_≤t), in nats per character (÷ ln 2 for bits).
"""
from __future__ import annotations

import math
from typing import Iterable, Optional, Sequence

import torch
from torch import Tensor, nn

from ..model.ablation import Ablation
from ..model.attention import KVCache, fused_attention
from ..model.fast import fast_decoder
from ..model.fast.gemm import linear as fast_linear
from ..model.lstm import LSTMLM
from ..model.probe import Probe
from ..model.transformer import TransformerLM
from .choices import MODES
from .inside import check_ids, full_trace

MAX_CONTINUATION = 200
WORTH_LOGITS_BUDGET = 1 << 26   # numbers of logits one batch of head_worth's ablated passes may hold (256 MB)


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
    """−ln p(x_{t+1} | x_≤t) for t = 0 … T−2, in nats: [T−1] (the last position's logits are not used)."""
    return _next_token_losses(logits[:-1], ids)


def _next_token_losses(logits: Tensor, ids: Sequence[int], rows: int = 8) -> Tensor:
    """−ln p(x_{t+1} | x_≤t) = log Σ_v exp z_{t,v} − z_{t,x_{t+1}} from the logits z [T−1, V] of
    positions t = 0 … T−2, in float64. Taken ``rows`` positions at a time: each one's float64 copy
    then stays in the processor's cache (about 6× faster for GPT-2's 50,257 logits; the same numbers)."""
    nxt = torch.tensor(list(ids[1:]), device=logits.device)
    lse = torch.cat([torch.logsumexp(logits[i:i + rows].double(), -1) for i in range(0, logits.size(0), rows)])
    return lse - logits.gather(1, nxt[:, None])[:, 0].double()


def greedy_continuation(model: nn.Module, ids: Sequence[int], n: int,
                        ablation: Optional[Ablation] = None) -> tuple[list[int], int]:
    """``n`` greedy next tokens (argmax each step) after ``ids``, with the ablation in every step.

    The Transformer reads the last ``block_size − n`` tokens at most, so the whole continuation fits
    its positions with one KV cache (no refill); the LSTM reads all of ``ids`` and carries (h, c).
    Returns (new ids, how many tokens of ``ids`` were read).
    """
    out, read, _ = _continue(model, ids, n, ablation)
    return out, read


def _continue(model: nn.Module, ids: Sequence[int], n: int,
              ablation: Optional[Ablation]) -> tuple[list[int], int, Tensor]:
    """:func:`greedy_continuation`, and the logits [T, V] of its first pass, the model's own over the
    ``ids`` it read (the same as :func:`_forward`'s when it read them all, so a caller needs no second
    pass). After that pass an intact GPT decodes through
    :class:`~scratchformer.model.fast.decode.FastGPTDecoder` (the same function with fewer calls,
    tests/test_fast_decode.py), filling the same cache; an ablated one through the model itself."""
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
    fast = fast_decoder(model) if probe.ablation.is_empty() else None
    with torch.inference_mode():
        if isinstance(model, LSTMLM):
            o = model(x, probe=probe)
            first = o.logits[0].float().cpu()
            for _ in range(n):
                nxt = int(o.logits[0, -1].argmax())
                out.append(nxt)
                if len(out) < n:
                    o = model(torch.tensor([[nxt]], device=dev), state=o.state, probe=probe)
        else:
            # the prompt through the model's own pass (every position's logits, the cache filled), the
            # new tokens one at a time through the fast decoder when the model is intact
            cache = KVCache(len(model.layers), capacity=len(ids) + n)
            logits = model(x, cache=cache, probe=probe).logits
            first = logits[0].float().cpu()
            step = fast or (lambda new, cache: model(new, cache=cache, probe=probe).logits[:, -1])
            last = logits[0, -1]
            for _ in range(n):
                nxt = int(last.argmax())
                out.append(nxt)
                if len(out) < n:
                    last = step(torch.tensor([[nxt]], device=dev), cache)[0]
    return out, len(ids), first


def _side(model, ids, tokenizer, ablation, n_new) -> dict:
    cont, read, logits = _continue(model, ids, n_new, ablation)
    if read != len(ids):                       # the continuation read only the end of the text
        logits = _forward(model, ids, ablation)
    losses = position_losses(logits, ids)
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
    """For every head alone: what the model loses without it, in nats per token,

        worth[l][h] = loss(text | head h of layer l ablated) − loss(text | intact model)

    with loss = −(1/(T−1)) Σ_t ln p(x_{t+1} | x_≤t) and the head's output replaced by zeros ("zero") or
    by its mean over the text ("mean"). ``grid[l][h]``; positive = the head helps.

    A GPT's passes are batched (:func:`_head_worth_batched`, the same numbers up to float rounding);
    any other model takes one forward pass per head (:func:`head_worth_one_at_a_time`).
    """
    ids, means = _worth_setup(model, ids, mode)
    base = float(position_losses(_forward(model, ids, None), ids).mean())
    if _batchable(model):
        grid = _head_worth_batched(model, ids, means, base)
    else:
        grid = _head_worth_each(model, ids, means, base)
    return {"mode": mode, "intact_loss": base, "grid": grid}


def head_worth_one_at_a_time(model: nn.Module, ids: Sequence[int], mode: str = "zero") -> dict:
    """:func:`head_worth` by its definition: one forward pass of the whole model per head, that head
    switched off by the pass's :class:`~scratchformer.model.ablation.Ablation`."""
    ids, means = _worth_setup(model, ids, mode)
    base = float(position_losses(_forward(model, ids, None), ids).mean())
    return {"mode": mode, "intact_loss": base, "grid": _head_worth_each(model, ids, means, base)}


def _worth_setup(model: nn.Module, ids: Sequence[int], mode: str) -> tuple[list[int], Optional[list[Tensor]]]:
    """The checked ids, and for "mean" each layer's mean head outputs [H, d_head] on the intact model."""
    ids = check_ids(ids, model)
    if len(ids) < 2:
        raise ValueError("the text needs at least two characters to measure a loss")
    if mode not in MODES:
        raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
    if mode != "mean":
        return ids, None
    tr = full_trace(model, ids)
    return ids, [r["heads"][0].mean(dim=1) for r in tr.layers]


def _head_worth_each(model: nn.Module, ids: list[int], means: Optional[list[Tensor]], base: float) -> list[list[float]]:
    cfg = model.config
    grid = []
    for l in range(cfg.n_layer):
        row = []
        for h in range(cfg.n_head):
            ab = Ablation(heads={l: (h,)}, head_values={l: means[l]} if means else {})
            row.append(float(position_losses(_forward(model, ids, ab), ids).mean()) - base)
        grid.append(row)
    return grid


def _batchable(model: nn.Module) -> bool:
    """A TransformerLM whose forward is the plain one, in eval mode (no dropout to skip)."""
    return (isinstance(model, TransformerLM) and type(model).forward is TransformerLM.forward
            and not model.training)


class _Products:
    """One :class:`~scratchformer.model.layers.EncoderLayer`'s weights for
    :func:`scratchformer.model.fast.gemm.linear` (the BLAS, or oneDNN where ``SCRATCHFORMER_GEMM=onednn``
    chooses it: 1.25-1.5x faster for these products on issue 13's AMD EPYC), ``(W, b)`` each, W [out, in]
    contiguous. A GPT-2 loaded from its folder holds
    its W as transposed views of the file's [in, out] matrices: they are copied here, once per layer
    for a whole head_worth (about 28 MB for one GPT-2 layer, freed with it)."""

    def __init__(self, layer: nn.Module):
        attn, ff = layer.self_attn, layer.ff
        self.layer = layer
        self.q, self.k, self.v, self.o, self.w1, self.w2 = (
            (lin.weight.contiguous(), lin.bias)
            for lin in (attn.q_proj, attn.k_proj, attn.v_proj, attn.out_proj, ff.linear1, ff.linear2))

    @staticmethod
    def apply(wb: tuple, x: Tensor) -> Tensor:
        """x [..., in] · Wᵀ + b → [..., out]."""
        return fast_linear(x.reshape(-1, x.size(-1)), *wb).view(*x.shape[:-1], -1)

    def heads(self, x: Tensor, causal: bool) -> Tensor:
        """The attention heads' outputs [R, H, T, d_head] for the stream x [R, T, d]: softmax(q·kᵀ/√d_k + M)·v."""
        layer, attn = self.layer, self.layer.self_attn
        y = layer.norm1(x) if layer.norm_first else x
        q, k, v = (attn.split_heads(self.apply(wb, y)) for wb in (self.q, self.k, self.v))
        return fused_attention(q, k, v, None, causal and q.size(-2) > 1, 0.0)

    def finish(self, x: Tensor, heads: Tensor) -> Tensor:
        """The rest of the layer after its heads: Concat(heads)·W^O, the residuals, the feed-forward
        FFN(y) = act(y·W₁ + b₁)·W₂ + b₂ and the LayerNorms in the layer's own order (eval: no dropout)."""
        layer = self.layer
        a = self.apply(self.o, layer.self_attn.concat_heads(heads))
        if layer.norm_first:                   # x = x + Sublayer(LayerNorm(x))
            x = x + a
            return x + self.ffn(layer.norm2(x))
        x = layer.norm1(x + a)                 # x = LayerNorm(x + Sublayer(x))
        return layer.norm2(x + self.ffn(x))

    def ffn(self, y: Tensor) -> Tensor:
        return self.apply(self.w2, self.layer.ff.act(self.apply(self.w1, y)))

    def __call__(self, x: Tensor, causal: bool) -> Tensor:
        """``layer(x, causal=causal)`` for rows x [R, T, d]: the same function as the layer's forward."""
        return self.finish(x, self.heads(x, causal))

    def each_head_off(self, x: Tensor, causal: bool, values: Optional[Tensor]) -> Tensor:
        """The layer on the intact stream x [1, T, d], once per head: row r of the result [H, T, d]
        is the layer's output with head r's output replaced —

            head_r ← values[r] (zeros when ``values`` is None),   the other heads as they are,

        the same replacement as :func:`~scratchformer.model.ablation.ablate_heads` (out · keep + fill).
        The heads' outputs are computed once: they do not depend on which head is switched off."""
        heads = self.heads(x, causal)                                                 # [1, H, T, d_head]
        H = heads.size(1)
        keep = 1.0 - torch.eye(H, dtype=heads.dtype, device=heads.device)            # row r: head r off
        out = heads * keep[:, :, None, None]                                          # [H, H, T, d_head]
        if values is not None:
            fill = torch.diag_embed(values.to(heads.dtype).t()).permute(1, 2, 0)      # [H, H, d_head]: row r, head r
            out = out + fill[:, :, None, :]
        return self.finish(x, out)                                                    # [H, T, d]


def _unembed(model: TransformerLM, x: Tensor) -> Tensor:
    """``model.unembed(x)`` = LayerNorm_f(x)·W_outᵀ [..., V], its product through
    :func:`scratchformer.model.fast.gemm.linear` (oneDNN where that is chosen: on some CPUs about 1.5×
    faster for this product)."""
    return _Products.apply((model.lm_head.weight, model.lm_head.bias), model.ln_f(x))


def _head_worth_batched(model: TransformerLM, ids: list[int], means: Optional[list[Tensor]],
                        base: float) -> list[list[float]]:
    """:func:`head_worth_one_at_a_time`'s grid with fewer and larger products.

    Switching off a head of layer l changes nothing before layer l, so the stream entering layer l is
    the intact one x_l, computed once for all heads. From there, the H heads of layer l are H rows of
    one batch (:meth:`_Products.each_head_off`), carried through layers l+1 … L−1 and the output
    head; the logits of the last position (not used by the loss) are not computed. The layers are
    walked once: at layer l every earlier layer's batch takes its step, then layer l's batch starts
    (so each layer's weights are laid out once, :class:`_Products`). The output head takes the rows
    in groups whose logits stay under :data:`WORTH_LOGITS_BUDGET` numbers.
    """
    causal = model.default_causal
    n_head, vocab = model.config.n_head, model.config.vocab_size
    group = max(1, min(n_head, WORTH_LOGITS_BUDGET // max(1, (len(ids) - 1) * vocab)))
    x = torch.tensor([ids], dtype=torch.long, device=_device(model))
    with torch.inference_mode():
        stream, _, _ = model.embed(x)                                              # x_0 [1, T, d]
        batches = []                                                               # one [H, T, d] per layer so far
        for l, layer in enumerate(model.layers):
            products = _Products(layer)
            batches = [products(rows, causal) for rows in batches]                 # a head of layer < l off
            batches.append(products.each_head_off(stream, causal, None if means is None else means[l]))
            stream = layer(stream, causal=causal)                                  # x_{l+1}, intact
            del products
        grid = []
        for rows in batches:
            row = []
            for first in range(0, n_head, group):
                logits = _unembed(model, rows[first:first + group, :-1]).float().cpu()   # [group, T−1, V]
                row += [float(_next_token_losses(z, ids).mean()) - base for z in logits]
            grid.append(row)
    return grid
