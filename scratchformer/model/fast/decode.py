"""A GPT's forward pass for decoding with a KV cache, written for speed (the readable one is
:meth:`scratchformer.model.transformer.TransformerLM.forward` with ``cache=``).

Decoding feeds one token at a time, so each of its tensors is tiny: for a small model the time goes
to calling things, for a large one (GPT-2) to reading every weight once per token from memory.
:class:`FastGPTDecoder` computes the same function as the model with less of both:

* the three projections Q, K, V are one matrix product with the weights stacked [W^Q; W^K; W^V]
  (gathered once, when the decoder is made, from the model's own ``q_proj``, ``k_proj``, ``v_proj``;
  when they already lie side by side in one matrix, as GPT-2's ``c_attn`` loaded by
  ``load_gpt2_folder`` does, that matrix is used where it lies);
* layers are walked with ``torch.nn.functional`` calls on their weights, no module calls;
* only the last position's logits are computed (generation needs no others);
* on the CPU, the products whose output is longer than their input — x·W^QKVᵀ (3d ← d), x·W₁ᵀ
  (d_ff ← d) and the head x·W_outᵀ (V ← d) — read W stored the other way round, [in, out]
  (:func:`_weight`; the layout GPT-2's own ``Conv1D`` keeps, so a GPT-2 folder's W₁ is read where it
  lies). ``F.linear`` computes the same x·Wᵀ with it, but the BLAS's kernel for one row x and a tall
  [out, in] W is slow on some processors: GPT-2's head of 50,257 rows took 11-12 ms a token that way
  and 6 ms from an [in, out] copy on an AMD EPYC (MKL, one thread). The square W^O and the wide W₂
  are read as the model holds them.

A decoder reads the model's weights and copies only what it must lay out anew: for GPT-2 (124M)
loaded from its folder, the head (154 MB; tied to the token table, which stays [V, d]); for a model
whose weights are all [out, in] (our own checkpoints), also W^QKV and W₁. :func:`fast_decoder` makes
one decoder per model, shared by its requests, and makes it again when a weight has changed (a new
tensor, or one written in place). tests/test_fast_decode.py checks that its logits are those of the
model's own forward pass (prefill and step by step, every architecture option, GPT-2's among them).
It does no tracing and no interventions: use the model itself for those.
"""
from __future__ import annotations

import threading
import weakref
from typing import Optional

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..attention import KVCache, causal_mask
from ..positional import LearnedPositionalEmbedding
from ..transformer import TransformerLM


def _norm(norm: nn.Module):
    """LayerNorm → (weight, bias, eps) for F.layer_norm; Identity → None."""
    if isinstance(norm, nn.LayerNorm):
        return norm.weight, norm.bias, norm.eps
    return None


def _weight(w: Tensor) -> Tensor:
    """W [out, in] for ``F.linear(x, W, b)``, laid out for a fast product of one row x.

    On the CPU a tall W (out > in) becomes a transposed view of [in, out] storage, a copy unless W
    already is such a view: ``F.linear`` then calls the BLAS as ``x @ Wᵀ`` with Wᵀ contiguous, the
    kernel that reads the matrix at full speed. Elsewhere W is the model's own tensor.
    """
    w = w.detach()
    if w.device.type == "cpu" and w.size(0) > w.size(1):
        return w.t().contiguous().t()
    return w


def _stacked(ws: list[Tensor]) -> Tensor:
    """[W^Q; W^K; W^V] [3d, d] as :func:`_weight` lays it out. When the three already lie side by
    side as the columns of one [d, 3d] matrix (GPT-2's ``c_attn``, which ``load_gpt2_folder`` reads
    without copying), that matrix is the stack, read where it lies; otherwise they are copied."""
    ws = [w.detach() for w in ws]
    t = [w.t() for w in ws]                    # [d, d] each, [in, out]
    d_in, width = t[0].size(0), sum(w.size(1) for w in t)
    adjacent = (ws[0].device.type == "cpu" and all(w.stride() == (width, 1) for w in t)
                and all(w.untyped_storage().data_ptr() == t[0].untyped_storage().data_ptr() for w in t)
                and all(t[i + 1].storage_offset() == t[i].storage_offset() + t[i].size(1)
                        for i in range(len(t) - 1)))
    if adjacent:
        return t[0].as_strided((d_in, width), (width, 1)).t()
    if ws[0].device.type == "cpu":
        return torch.cat(t, dim=1).t()         # the [in, out] copy, made at once
    return torch.cat(ws)


class FastGPTDecoder:
    """``decoder(ids, cache)`` = ``model(ids, cache=cache).logits[:, -1]`` for a GPT in eval mode.

    Its weights, for other passes written with ``torch.nn.functional`` (inference/batched.py):
    ``w_tok`` [V, d], ``pos_table`` [block_size, d], ``scale``, ``layers`` (one tuple per layer:
    norm1, W^QKV [3d, d], b^QKV, W^O, b^O, norm2, W₁, b₁, act, W₂, b₂; a norm is (weight, bias, eps)
    or None), ``ln_f`` and ``w_head`` [V, d]. Each W is shaped [out, in] for ``F.linear`` whatever
    its layout in memory (see :func:`_weight`).
    """

    def __init__(self, model: nn.Module):
        cfg = model.config
        self.n_head, self.d_model = cfg.n_head, cfg.n_embd
        self.norm_first = cfg.norm_first
        self.scale = model.embed.scale
        pos = model.embed.pos
        self.pos_table = pos.emb.weight if isinstance(pos, LearnedPositionalEmbedding) else pos.pe
        self.layers = []
        # plain tensors (not inference tensors) even when made under inference_mode, without autograd
        with torch.inference_mode(False), torch.no_grad():
            for layer in model.layers:
                a, ff = layer.self_attn, layer.ff
                w_qkv = _stacked([a.q_proj.weight, a.k_proj.weight, a.v_proj.weight])
                b_qkv = (None if a.q_proj.bias is None else
                         torch.cat([a.q_proj.bias, a.k_proj.bias, a.v_proj.bias]).detach())
                self.layers.append((_norm(layer.norm1), w_qkv, b_qkv, a.out_proj.weight, a.out_proj.bias,
                                    _norm(layer.norm2), _weight(ff.linear1.weight), ff.linear1.bias, ff.act,
                                    ff.linear2.weight, ff.linear2.bias))
            self.ln_f = _norm(model.ln_f)
            self.w_tok, self.w_head = model.embed.tok.weight, _weight(model.lm_head.weight)

    @staticmethod
    def supports(model: nn.Module) -> bool:
        """Whether this decoder computes ``model``'s function (a plain TransformerLM in eval mode)."""
        return type(model).forward is TransformerLM.forward and not model.training

    def __call__(self, ids: Tensor, cache: KVCache) -> Tensor:
        """ids [B, T], the new tokens after the ``cache.length`` cached ones → logits [B, V] of the
        token after the last one. The cache is extended by T positions, as the model's own pass does."""
        B, T = ids.shape
        start = cache.length
        if start + T > self.pos_table.size(0):
            raise ValueError(f"sequence of {start + T} positions is longer than block_size "
                             f"{self.pos_table.size(0)}")
        d, h = self.d_model, self.n_head
        x = F.embedding(ids, self.w_tok)
        if self.scale != 1.0:
            x = x * self.scale
        x = x + self.pos_table[start:start + T]
        # attention mask, as MultiHeadAttention builds it: none for one query, is_causal when the
        # queries are all the positions, else the causal mask of the last T of start + T positions
        mask = causal_mask(T, start + T, device=ids.device) if T > 1 and start > 0 else None
        is_causal = T > 1 and start == 0
        for layer_cache, (n1, w_qkv, b_qkv, w_o, b_o, n2, w1, b1, act, w2, b2) in zip(cache.layers, self.layers):
            y = F.layer_norm(x, (d,), *n1) if self.norm_first else x
            q, k, v = F.linear(y, w_qkv, b_qkv).view(B, T, 3, h, d // h).permute(2, 0, 3, 1, 4)
            k, v = layer_cache.append(k, v)
            att = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, is_causal=is_causal)
            att = F.linear(att.transpose(1, 2).reshape(B, T, d), w_o, b_o)
            if self.norm_first:
                x = x + att
                x = x + F.linear(act(F.linear(F.layer_norm(x, (d,), *n2), w1, b1)), w2, b2)
            else:
                x = F.layer_norm(x + att, (d,), *n1)
                x = F.layer_norm(x + F.linear(act(F.linear(x, w1, b1)), w2, b2), (d,), *n2)
        x = x[:, -1]
        if self.ln_f is not None:
            x = F.layer_norm(x, (d,), *self.ln_f)
        return F.linear(x, self.w_head)


# One decoder per model, shared by its requests (a decoder holds no per-request state: the cache is
# an argument). Keyed weakly: a model that is dropped takes its decoder with it (the decoder holds
# the model's tensors, never the model itself).
_DECODERS: "weakref.WeakKeyDictionary[nn.Module, tuple[tuple, FastGPTDecoder]]" = weakref.WeakKeyDictionary()
_LOCK = threading.Lock()


def _weights_key(model: nn.Module) -> tuple:
    """What the decoder's copies depend on: every parameter and buffer's storage, version (bumped by
    every in-place write), dtype and device."""
    return tuple((t.data_ptr(), t._version, t.dtype, t.device)
                 for t in (*model.parameters(), *model.buffers()))


def fast_decoder(model: nn.Module) -> Optional[FastGPTDecoder]:
    """The :class:`FastGPTDecoder` of ``model``, or None when it cannot stand in for the model's own
    forward pass (not a plain TransformerLM, or in training mode). Made once per model and kept
    while the model's weights are unchanged (a weight replaced or written in place makes a new one)."""
    if not FastGPTDecoder.supports(model):
        return None
    key = _weights_key(model)
    with _LOCK:
        known = _DECODERS.get(model)
    if known is not None and known[0] == key:
        return known[1]
    decoder = FastGPTDecoder(model)
    with _LOCK:
        _DECODERS[model] = (key, decoder)
    return decoder
