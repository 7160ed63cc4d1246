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

from .attention import MultiHeadAttention
from .probe import LayerProbe

# GELU(x) = x Φ(x); "gelu_tanh" is its tanh approximation, ½ x (1 + tanh(√(2/π)(x + 0.044715 x³))),
# which GPT-2 was trained with (so its weights run exactly only with it)
_ACTIVATIONS = {"relu": F.relu, "gelu": F.gelu, "gelu_tanh": lambda x: F.gelu(x, approximate="tanh")}


class FeedForward(nn.Module):
    """Position-wise feed-forward network: FFN(x) = act(x·W₁ + b₁)·W₂ + b₂, act = ReLU (paper) or GELU.

    The same two linear maps are applied to every position separately; d_ff is usually 4·d_model.
    """

    def __init__(self, d_model: int, d_ff: int, dropout: float = 0.0, activation: str = "gelu",
                 bias: bool = True):
        super().__init__()
        if activation not in _ACTIVATIONS:
            raise ValueError(f"unknown activation {activation!r}; expected one of {list(_ACTIVATIONS)}")
        self.linear1 = nn.Linear(d_model, d_ff, bias=bias)
        self.linear2 = nn.Linear(d_ff, d_model, bias=bias)
        self.dropout = nn.Dropout(dropout)
        self.act = _ACTIVATIONS[activation]

    def forward(self, x: Tensor, probe: Optional[LayerProbe] = None) -> Tensor:
        """x [B, T, d_model] → [B, T, d_model]. With ``probe.full`` it keeps the pre-activation
        x·W₁ + b₁ (``ff_pre``) and the activation (``ff_act``) [B, T, d_ff]."""
        pre = self.linear1(x)
        act = self.act(pre)
        if probe is not None:
            probe.keep(ff_pre=pre, ff_act=act)
        return self.linear2(self.dropout(act))


class EncoderLayer(nn.Module):
    """Self-attention then feed-forward, each with residual + LayerNorm.

    With ``causal=True`` in ``forward`` this is also the block of a decoder-only (GPT) model: a
    "decoder" with no encoder to cross-attend to is exactly an encoder layer with the causal mask.
    The defaults (pre-norm, GELU) are :class:`~scratchformer.model.config.TransformerConfig`'s; the
    paper's layer is ``norm_first=False, activation="relu"``.
    """

    def __init__(self, d_model: int, n_head: int, d_ff: int, dropout: float = 0.0,
                 activation: str = "gelu", norm_first: bool = True, bias: bool = True):
        super().__init__()
        self.norm_first = norm_first
        self.self_attn = MultiHeadAttention(d_model, n_head, dropout, bias)
        self.ff = FeedForward(d_model, d_ff, dropout, activation, bias)
        self.norm1 = nn.LayerNorm(d_model, bias=bias)
        self.norm2 = nn.LayerNorm(d_model, bias=bias)
        self.dropout1 = nn.Dropout(dropout)
        self.dropout2 = nn.Dropout(dropout)

    def forward(self, x: Tensor, mask: Optional[Tensor] = None, causal: bool = False,
                probe: Optional[LayerProbe] = None) -> Tensor:
        """x [B, T, d_model] → x' [B, T, d_model].

        ``probe`` (this layer's :class:`~scratchformer.model.probe.LayerProbe`, for this call): its
        KV cache and ablation are applied (a switched-off feed-forward adds 0 to the residual); it
        receives the self-attention weights [B, h, T, T] (``probe.self_attn``) when asked and, with
        ``full``, every intermediate (``ln1``, q/k/v, ``heads``, ``concat``, ``attn_out``,
        ``resid_mid``, ``ln2``, ``ff_pre``, ``ff_act``, ``ff_out``).
        """
        probe = probe or LayerProbe()
        if self.norm_first:                    # x = x + Sublayer(LayerNorm(x))
            h1 = self.norm1(x)
            a, probe.self_attn = self.self_attn(h1, mask=mask, causal=causal, probe=probe)
            x = mid = x + self.dropout1(a)
            h2 = self.norm2(x)
            f = None if probe.ffn_off else self.ff(h2, probe)
            x = x if f is None else x + self.dropout2(f)
        else:                                  # x = LayerNorm(x + Sublayer(x))
            h1 = None
            a, probe.self_attn = self.self_attn(x, mask=mask, causal=causal, probe=probe)
            x = mid = h2 = self.norm1(x + self.dropout1(a))
            f = None if probe.ffn_off else self.ff(x, probe)
            x = self.norm2(x if f is None else x + self.dropout2(f))
        probe.keep(ln1=h1, attn_out=a, resid_mid=mid, ln2=h2, ff_out=torch.zeros_like(mid) if f is None else f)
        return x


class DecoderLayer(nn.Module):
    """Masked self-attention, cross-attention over the encoder output ("memory"), feed-forward.

    In cross-attention the queries come from the decoder and the keys and values from the encoder,
    so each output position can look at every input position (its weights are [B, h, T_tgt, T_src]).
    Defaults as :class:`EncoderLayer`'s (pre-norm, GELU).
    """

    def __init__(self, d_model: int, n_head: int, d_ff: int, dropout: float = 0.0,
                 activation: str = "gelu", norm_first: bool = True, bias: bool = True):
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

    def forward(self, x: Tensor, memory: Tensor, mask: Optional[Tensor] = None,
                memory_mask: Optional[Tensor] = None, causal: bool = True,
                probe: Optional[LayerProbe] = None) -> Tensor:
        """x [B, T_tgt, d], memory [B, T_src, d] → x' [B, T_tgt, d].

        ``mask``: the target's own (e.g. padding) mask, ``memory_mask``: the source's. ``probe``: as
        in :meth:`EncoderLayer.forward` (KV cache and head ablation for the self-attention, a
        switched-off feed-forward); it receives ``self_attn`` and ``cross_attn`` [B, h, T_tgt, T_src]
        weights when asked.
        """
        probe = probe or LayerProbe()
        cross = probe.cross()
        if self.norm_first:
            h = self.norm1(x)
            a, probe.self_attn = self.self_attn(h, mask=mask, causal=causal, probe=probe)
            x = x + self.dropout1(a)
            h = self.norm2(x)
            c, probe.cross_attn = self.cross_attn(h, memory, mask=memory_mask, probe=cross)
            x = x + self.dropout2(c)
            if not probe.ffn_off:
                x = x + self.dropout3(self.ff(self.norm3(x), probe))
        else:
            a, probe.self_attn = self.self_attn(x, mask=mask, causal=causal, probe=probe)
            x = self.norm1(x + self.dropout1(a))
            c, probe.cross_attn = self.cross_attn(x, memory, mask=memory_mask, probe=cross)
            x = self.norm2(x + self.dropout2(c))
            x = self.norm3(x if probe.ffn_off else x + self.dropout3(self.ff(x, probe)))
        return x
