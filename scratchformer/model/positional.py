"""Positional encodings: attention alone is blind to order, so each position adds a vector (§3.5)."""
from __future__ import annotations

import math

import torch
from torch import Tensor, nn


def sinusoidal_table(max_len: int, d_model: int) -> Tensor:
    """The paper's fixed encodings, ``[max_len, d_model]``:

        PE(pos, 2i)   = sin(pos / 10000^(2i/d_model))
        PE(pos, 2i+1) = cos(pos / 10000^(2i/d_model))

    Each pair of dimensions is a sine/cosine of one frequency, from 1 down to 1/10000, so any fixed
    offset k is a linear function (a rotation) of PE(pos).
    """
    pos = torch.arange(max_len, dtype=torch.float32)[:, None]                   # [max_len, 1]
    two_i = torch.arange(0, d_model, 2, dtype=torch.float32)                     # 2i
    inv_freq = torch.exp(-math.log(10000.0) * two_i / d_model)                   # 1 / 10000^(2i/d)
    pe = torch.zeros(max_len, d_model)
    pe[:, 0::2] = torch.sin(pos * inv_freq)
    pe[:, 1::2] = torch.cos(pos * inv_freq[: d_model // 2])
    return pe


class SinusoidalPositionalEncoding(nn.Module):
    """Fixed sinusoidal encodings (no parameters); works for any position below ``max_len``."""

    def __init__(self, max_len: int, d_model: int):
        super().__init__()
        self.max_len = max_len
        self.register_buffer("pe", sinusoidal_table(max_len, d_model), persistent=False)

    def forward(self, positions: Tensor) -> Tensor:
        """positions [T] (ints) → [T, d_model]"""
        return self.pe[positions]


class LearnedPositionalEmbedding(nn.Module):
    """One trained vector per position (GPT, BERT); positions ≥ ``max_len`` have none."""

    def __init__(self, max_len: int, d_model: int):
        super().__init__()
        self.max_len = max_len
        self.emb = nn.Embedding(max_len, d_model)

    def forward(self, positions: Tensor) -> Tensor:
        """positions [T] (ints) → [T, d_model]"""
        return self.emb(positions)


def make_positional(kind: str, max_len: int, d_model: int) -> nn.Module:
    """"sinusoidal" or "learned"."""
    if kind == "sinusoidal":
        return SinusoidalPositionalEncoding(max_len, d_model)
    if kind == "learned":
        return LearnedPositionalEmbedding(max_len, d_model)
    raise ValueError(f"unknown positional encoding {kind!r}; expected 'sinusoidal' or 'learned'")
