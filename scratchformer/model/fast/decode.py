"""A GPT's forward pass for decoding with a KV cache, written for speed (the readable one is
:meth:`scratchformer.model.transformer.TransformerLM.forward` with ``cache=``).

Decoding feeds one token at a time, so each of its tensors is tiny and the time goes to calling
things, not to arithmetic: every ``nn.Module`` call, every view and every extra matrix product costs
microseconds while the sums themselves cost less. :class:`FastGPTDecoder` computes the same
function as the model with less of that:

* the three projections Q, K, V are one matrix product with the weights stacked [W^Q; W^K; W^V]
  (gathered once, when the decoder is made, from the model's own ``q_proj``, ``k_proj``, ``v_proj``);
* layers are walked with ``torch.nn.functional`` calls on their weights, no module calls;
* only the last position's logits are computed (generation needs no others).

It reads the model's weights, it does not copy them (except the stacked QKV): make a new decoder
after the weights change. tests/test_fast_decode.py checks that its logits are those of the model's
own forward pass (prefill and step by step, every architecture option). It does no tracing and no
interventions: use the model itself for those.
"""
from __future__ import annotations

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


class FastGPTDecoder:
    """``decoder(ids, cache)`` = ``model(ids, cache=cache).logits[:, -1]`` for a GPT in eval mode."""

    def __init__(self, model: nn.Module):
        cfg = model.config
        self.model = model
        self.n_head, self.d_model = cfg.n_head, cfg.n_embd
        self.norm_first = cfg.norm_first
        self.scale = model.embed.scale
        pos = model.embed.pos
        self.pos_table = pos.emb.weight if isinstance(pos, LearnedPositionalEmbedding) else pos.pe
        self.layers = []
        for layer in model.layers:
            a, ff = layer.self_attn, layer.ff
            w_qkv = torch.cat([a.q_proj.weight, a.k_proj.weight, a.v_proj.weight]).detach()
            b_qkv = (None if a.q_proj.bias is None else
                     torch.cat([a.q_proj.bias, a.k_proj.bias, a.v_proj.bias]).detach())
            self.layers.append((_norm(layer.norm1), w_qkv, b_qkv, a.out_proj.weight, a.out_proj.bias,
                                _norm(layer.norm2), ff.linear1.weight, ff.linear1.bias, ff.act,
                                ff.linear2.weight, ff.linear2.bias))
        self.ln_f = _norm(model.ln_f)
        self.w_tok, self.w_head = model.embed.tok.weight, model.lm_head.weight

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


def fast_decoder(model: nn.Module) -> Optional[FastGPTDecoder]:
    """A :class:`FastGPTDecoder` for ``model``, or None when it cannot stand in for the model's own
    forward pass (not a plain TransformerLM, or in training mode)."""
    return FastGPTDecoder(model) if FastGPTDecoder.supports(model) else None
