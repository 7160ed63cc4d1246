"""The Transformer's building blocks (Vaswani et al. 2017, §3.1 and §3.3).

Every sublayer is wrapped in a residual connection and a LayerNorm, in one of two orders:

* post-norm (the paper):  x = LayerNorm(x + Sublayer(x))
* pre-norm (GPT-2 on):    x = x + Sublayer(LayerNorm(x))   — trains more stably when deep

Attribute names (``self_attn``, ``linear1``, ``norm1`` …) follow PyTorch's ``TransformerEncoderLayer`` so
the tests can copy PyTorch's weights into ours.
"""
from __future__ import annotations

from typing import Optional

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .attention import LayerCache, MultiHeadAttention
from .gemm import Linear   # nn.Linear; its training products through oneDNN

_ACTIVATIONS = {"relu": F.relu, "gelu": F.gelu}


class FeedForward(nn.Module):
    """Position-wise feed-forward network: FFN(x) = act(x·W₁ + b₁)·W₂ + b₂, act = ReLU (paper) or GELU.

    The same two linear maps are applied to every position separately; d_ff is usually 4·d_model.
    """

    def __init__(self, d_model: int, d_ff: int, dropout: float = 0.0, activation: str = "relu",
                 bias: bool = True):
        super().__init__()
        if activation not in _ACTIVATIONS:
            raise ValueError(f"unknown activation {activation!r}; expected one of {list(_ACTIVATIONS)}")
        self.linear1 = Linear(d_model, d_ff, bias=bias)
        self.linear2 = Linear(d_ff, d_model, bias=bias)
        self.dropout = nn.Dropout(dropout)
        self.act = _ACTIVATIONS[activation]

    def forward(self, x: Tensor, record: Optional[dict] = None) -> Tensor:
        """``record``: a dict that receives the pre-activation x·W₁ + b₁ and the activation [B, T, d_ff]."""
        if record is None:
            return self.linear2(self.dropout(self.act(self.linear1(x))))
        pre = self.linear1(x)
        act = self.act(pre)
        record.update(ff_pre=pre.detach(), ff_act=act.detach())
        return self.linear2(self.dropout(act))


class EncoderLayer(nn.Module):
    """Self-attention then feed-forward, each with residual + LayerNorm.

    With ``causal=True`` in ``forward`` this is also the block of a decoder-only (GPT) model: a
    "decoder" with no encoder to cross-attend to is exactly an encoder layer with the causal mask.
    """

    def __init__(self, d_model: int, n_head: int, d_ff: int, dropout: float = 0.0,
                 activation: str = "relu", norm_first: bool = False, bias: bool = True):
        super().__init__()
        self.norm_first = norm_first
        self.self_attn = MultiHeadAttention(d_model, n_head, dropout, bias)
        self.ff = FeedForward(d_model, d_ff, dropout, activation, bias)
        self.norm1 = nn.LayerNorm(d_model, bias=bias)
        self.norm2 = nn.LayerNorm(d_model, bias=bias)
        self.dropout1 = nn.Dropout(dropout)
        self.dropout2 = nn.Dropout(dropout)

    def forward(self, x: Tensor, mask: Optional[Tensor] = None, causal: bool = False,
                need_weights: bool = False, cache: Optional[LayerCache] = None,
                heads_off: tuple[int, ...] = (), head_values: Optional[Tensor] = None,
                ffn_off: bool = False, record: Optional[dict] = None) -> tuple[Tensor, Optional[Tensor]]:
        """x [B, T, d_model] → (x' [B, T, d_model], self-attention weights [B, h, T, T] or None).

        ``cache``: this layer's keys and values of earlier positions (incremental decoding).
        ``heads_off`` / ``head_values`` / ``ffn_off``: an ablation (see
        :mod:`~scratchformer.model.ablation`); a switched-off feed-forward adds 0 to the residual.
        ``record``: a dict that receives every intermediate of this layer (``ln1``, q/k/v, ``heads``,
        ``concat``, ``attn_out``, ``resid_mid``, ``ln2``, ``ff_pre``, ``ff_act``, ``ff_out``).
        """
        att = dict(mask=mask, causal=causal, need_weights=need_weights, cache=cache, heads_off=heads_off,
                   head_values=head_values, record=record)
        if self.norm_first:
            h1 = self.norm1(x)
            a, w = self.self_attn(h1, h1, h1, **att)
            x = mid = x + self.dropout1(a)
            h2 = self.norm2(x)
            f = None if ffn_off else self.ff(h2, record)
            x = x if ffn_off else x + self.dropout2(f)
        else:
            h1 = None
            a, w = self.self_attn(x, x, x, **att)
            x = mid = h2 = self.norm1(x + self.dropout1(a))
            f = None if ffn_off else self.ff(x, record)
            x = self.norm2(x if ffn_off else x + self.dropout2(f))
        if record is not None:
            record.update(ln1=h1, attn_out=a, resid_mid=mid, ln2=h2,
                          ff_out=torch.zeros_like(mid) if f is None else f)
        return x, w


class DecoderLayer(nn.Module):
    """Masked self-attention, cross-attention over the encoder output ("memory"), feed-forward.

    In cross-attention the queries come from the decoder and the keys and values from the encoder,
    so each output position can look at every input position (its weights are [B, h, T_tgt, T_src]).
    """

    def __init__(self, d_model: int, n_head: int, d_ff: int, dropout: float = 0.0,
                 activation: str = "relu", norm_first: bool = False, bias: bool = True):
        super().__init__()
        self.norm_first = norm_first
        self.self_attn = MultiHeadAttention(d_model, n_head, dropout, bias)
        self.cross_attn = MultiHeadAttention(d_model, n_head, dropout, bias)
        self.ff = FeedForward(d_model, d_ff, dropout, activation, bias)
        self.norm1 = nn.LayerNorm(d_model, bias=bias)
        self.norm2 = nn.LayerNorm(d_model, bias=bias)
        self.norm3 = nn.LayerNorm(d_model, bias=bias)
        self.dropout1 = nn.Dropout(dropout)
        self.dropout2 = nn.Dropout(dropout)
        self.dropout3 = nn.Dropout(dropout)

    def forward(self, x: Tensor, memory: Tensor, self_mask: Optional[Tensor] = None,
                memory_mask: Optional[Tensor] = None, causal: bool = True,
                need_weights: bool = False) -> tuple[Tensor, Optional[Tensor], Optional[Tensor]]:
        """x [B, T_tgt, d], memory [B, T_src, d] → (x', self weights, cross weights)."""
        if self.norm_first:
            h = self.norm1(x)
            a, sw = self.self_attn(h, h, h, mask=self_mask, causal=causal, need_weights=need_weights)
            x = x + self.dropout1(a)
            h = self.norm2(x)
            c, cw = self.cross_attn(h, memory, memory, mask=memory_mask, need_weights=need_weights)
            x = x + self.dropout2(c)
            x = x + self.dropout3(self.ff(self.norm3(x)))
        else:
            a, sw = self.self_attn(x, x, x, mask=self_mask, causal=causal, need_weights=need_weights)
            x = self.norm1(x + self.dropout1(a))
            c, cw = self.cross_attn(x, memory, memory, mask=memory_mask, need_weights=need_weights)
            x = self.norm2(x + self.dropout2(c))
            x = self.norm3(x + self.dropout3(self.ff(x)))
        return x, sw, cw
