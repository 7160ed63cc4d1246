"""Scaled dot-product attention, masks and multi-head attention (Vaswani et al. 2017, §3.2).

Mask convention everywhere in scratchformer: a boolean tensor, **True = may attend**, broadcastable
to ``[batch, heads, query, key]``. (torch's ``scaled_dot_product_attention`` uses the same; the
opposite convention of PyTorch's ``MultiheadAttention`` is converted only in the tests.)
"""
from __future__ import annotations

import math
from typing import Optional

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .ablation import ablate_heads
from .probe import LayerProbe


# --------------------------------------------------------------------------------------------- masks

def subsequent_mask(size: int, device=None) -> Tensor:
    """The causal mask ``[size, size]``: position i may attend to j iff j ≤ i (lower triangle)."""
    return torch.ones(size, size, dtype=torch.bool, device=device).tril()


def causal_mask(q_len: int, k_len: int, device=None) -> Tensor:
    """Causal mask ``[q_len, k_len]`` when the queries are the *last* ``q_len`` of ``k_len`` positions.

    With a KV cache the keys hold ``k_len - q_len`` earlier positions, so query i sits at absolute
    position ``k_len - q_len + i`` and may attend to key j iff ``j ≤ k_len - q_len + i``.
    """
    offset = k_len - q_len
    return torch.ones(q_len, k_len, dtype=torch.bool, device=device).tril(diagonal=offset)


def padding_mask(ids: Tensor, pad_id: int) -> Tensor:
    """Key-padding mask ``[B, 1, 1, T]``: True where ``ids`` is a real token, False at padding."""
    return (ids != pad_id)[:, None, None, :]


def combine_masks(*masks: Optional[Tensor]) -> Optional[Tensor]:
    """Logical AND of the given masks (broadcasting); None entries are ignored; all None → None."""
    out = None
    for m in masks:
        if m is None:
            continue
        out = m if out is None else (out & m)
    return out


# ------------------------------------------------------------------------------ scaled dot-product

def scaled_dot_product_attention(q: Tensor, k: Tensor, v: Tensor, mask: Optional[Tensor] = None,
                                 dropout_p: float = 0.0, training: bool = False) -> tuple[Tensor, Tensor]:
    """Attention(Q, K, V) = softmax(Q·Kᵀ / √d_k + M) · V, returning ``(output, weights)``.

    q: [..., T_q, d_k], k: [..., T_k, d_k], v: [..., T_k, d_v]; mask broadcastable to [..., T_q, T_k]
    with True = may attend. M is 0 where the mask is True and −∞ where it is False, so masked keys get
    probability 0. A query whose keys are *all* masked has nothing to attend to: its weights and output
    are zeros (not NaN, which a plain softmax over −∞ would give).
    """
    d_k = q.size(-1)
    scores = q @ k.transpose(-2, -1) / math.sqrt(d_k)  # [..., T_q, T_k]
    if mask is not None:
        # the dtype's most negative number rather than -inf keeps a fully masked row finite
        scores = scores.masked_fill(~mask, torch.finfo(scores.dtype).min)
    weights = torch.softmax(scores, dim=-1)
    if mask is not None:
        weights = weights.masked_fill(~mask, 0.0)  # fully masked rows: uniform → zeros
    if dropout_p > 0.0 and training:
        weights = F.dropout(weights, p=dropout_p)
    return weights @ v, weights


# ------------------------------------------------------------------------------------ the KV cache

class LayerCache:
    """The keys and values one attention layer has already computed, each ``[B, h, T, d_head]``.

    Incremental decoding feeds only the new token; the layer appends its new key and value here and
    attends over everything stored. ``length`` is the number of cached positions.

    With a ``capacity`` (the most positions it will ever hold, e.g. block_size) the storage is
    allocated once, on the first append, and each append copies into it: ``k`` and ``v`` are then
    views of its first ``length`` positions, and no step re-copies the whole cache (as ``torch.cat``
    would). Without one, each append concatenates.
    """

    def __init__(self, capacity: Optional[int] = None):
        self.capacity = capacity
        self.k: Optional[Tensor] = None
        self.v: Optional[Tensor] = None
        self._store: Optional[tuple[Tensor, Tensor]] = None   # [B, h, capacity, d_head] each

    @property
    def length(self) -> int:
        return 0 if self.k is None else self.k.size(-2)

    def append(self, k: Tensor, v: Tensor) -> tuple[Tensor, Tensor]:
        """Store the new ``k, v`` after the cached ones; return all keys and values."""
        if self.capacity is None:
            if self.k is not None:
                k = torch.cat([self.k, k], dim=-2)
                v = torch.cat([self.v, v], dim=-2)
            self.k, self.v = k, v
            return k, v
        start, end = self.length, self.length + k.size(-2)
        if end > self.capacity:
            raise ValueError(f"the KV cache holds at most {self.capacity} positions; {end} were asked for")
        if self._store is None:
            shape = (*k.shape[:-2], self.capacity, k.size(-1))
            self._store = (k.new_empty(shape), v.new_empty(v.shape[:-2] + (self.capacity, v.size(-1))))
        store_k, store_v = self._store
        store_k[..., start:end, :] = k
        store_v[..., start:end, :] = v
        self.k, self.v = store_k[..., :end, :], store_v[..., :end, :]
        return self.k, self.v


class KVCache:
    """One :class:`LayerCache` per layer: ``cache.layers[i]`` belongs to layer i's self-attention.
    ``capacity``: see :class:`LayerCache` (None: grow by concatenation)."""

    def __init__(self, n_layer: int, capacity: Optional[int] = None):
        self.layers = [LayerCache(capacity) for _ in range(n_layer)]

    @property
    def length(self) -> int:
        """Positions cached so far (the same in every layer)."""
        return self.layers[0].length


# ------------------------------------------------------------------------- the same maths, faster

def fused_attention(q: Tensor, k: Tensor, v: Tensor, mask: Optional[Tensor], causal: bool,
                    dropout_p: float) -> Tensor:
    """:func:`scaled_dot_product_attention`'s output without its weights, through PyTorch's fused
    kernel (``F.scaled_dot_product_attention``): the same maths, faster, and the weights are never
    stored. ``causal`` is the square causal mask (queries and keys are the same positions).
    Fully masked query rows come out as zeros, as in the manual path (tests check the two agree).
    """
    out = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, dropout_p=dropout_p, is_causal=causal)
    if mask is not None:
        out = out.masked_fill(~mask.any(dim=-1, keepdim=True), 0.0)
    return out


# --------------------------------------------------------------------------------- multi-head

class MultiHeadAttention(nn.Module):
    """MultiHead(Q, K, V) = Concat(head_1, …, head_h)·W^O,  head_i = Attention(Q·W_i^Q, K·W_i^K, V·W_i^V).

    One module serves self-attention (query = key = value = x) and cross-attention (query from the
    decoder, key = value = encoder output; the lengths may differ). The h heads' projections are
    stored together as one ``d_model × d_model`` linear layer each for Q, K and V (``q_proj``,
    ``k_proj``, ``v_proj``; ``out_proj`` is W^O); head i owns columns ``i·d_head … (i+1)·d_head``,
    with ``d_head = d_k = d_v = d_model / h``.
    """

    def __init__(self, d_model: int, n_head: int, dropout: float = 0.0, bias: bool = True):
        super().__init__()
        if d_model % n_head != 0:
            raise ValueError(f"d_model ({d_model}) must be divisible by n_head ({n_head})")
        self.d_model, self.n_head, self.d_head = d_model, n_head, d_model // n_head
        self.dropout = dropout
        self.q_proj = nn.Linear(d_model, d_model, bias=bias)
        self.k_proj = nn.Linear(d_model, d_model, bias=bias)
        self.v_proj = nn.Linear(d_model, d_model, bias=bias)
        self.out_proj = nn.Linear(d_model, d_model, bias=bias)

    def split_heads(self, x: Tensor) -> Tensor:
        """[B, T, d_model] → [B, h, T, d_head]"""
        B, T, _ = x.shape
        return x.view(B, T, self.n_head, self.d_head).transpose(1, 2)

    def concat_heads(self, x: Tensor) -> Tensor:
        """[B, h, T, d_head] → [B, T, d_model]: Concat(head_1, …, head_h)"""
        B, _, T, _ = x.shape
        return x.transpose(1, 2).reshape(B, T, self.d_model)

    def forward(self, x: Tensor, memory: Optional[Tensor] = None, mask: Optional[Tensor] = None,
                causal: bool = False, probe: Optional[LayerProbe] = None) -> tuple[Tensor, Optional[Tensor]]:
        """x [B, T_q, d_model] → (output [B, T_q, d_model], weights [B, h, T_q, T_k] or None).

        The queries come from ``x``; the keys and values from ``memory`` [B, T_k, d_model] — the
        encoder's output in cross-attention — or, when it is None, from ``x`` itself (self-attention).
        ``causal=True`` adds the causal mask to ``mask``.

        ``probe`` (this layer's :class:`~scratchformer.model.probe.LayerProbe`, for this call only):
        ``weights`` asks for the weights (otherwise the fused kernel computes the same output faster
        and they are None); ``cache`` (self-attention only) holds the keys and values of earlier
        positions: the new ones are appended and the queries attend over all of them; ``heads_off``
        are replaced (by ``head_values`` [h, d_head], else zeros) before W^O, an ablation; with
        ``full`` it keeps q, k, v, the per-head outputs [B, h, T, d_head] and their concatenation.
        """
        probe = probe or LayerProbe()
        kv = x if memory is None else memory
        # 1. project: Q·W^Q, K·W^K, V·W^V, and split d_model into h heads of d_head
        q = self.split_heads(self.q_proj(x))
        k = self.split_heads(self.k_proj(kv))
        v = self.split_heads(self.v_proj(kv))
        if probe.cache is not None and memory is None:
            k, v = probe.cache.append(k, v)
        # 2. attend: every head at once, softmax(q·kᵀ/√d_k + M)·v
        p = self.dropout if self.training else 0.0
        T_q, T_k = q.size(-2), k.size(-2)
        causal = causal and T_q > 1   # one newest query (incremental decoding) may see every key
        if probe.weights or (causal and (mask is not None or T_q != T_k)):
            mask = combine_masks(causal_mask(T_q, T_k, device=q.device) if causal else None, mask)
            causal = False
        if probe.weights:
            out, weights = scaled_dot_product_attention(q, k, v, mask, p, self.training)
        else:
            out, weights = fused_attention(q, k, v, mask, causal, p), None
        if probe.heads_off:
            out = ablate_heads(out, probe.heads_off, probe.head_values)
        # 3. concatenate the heads and mix them: Concat(head_1, …, head_h)·W^O
        concat = self.concat_heads(out)
        probe.keep(q=q, k=k, v=v, heads=out, concat=concat)
        return self.out_proj(concat), weights
