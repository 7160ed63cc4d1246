"""One forward pass laid open over a text: the trace, and how surprised the model was by each token.

Every per-request setting (the text, the causal mask) is an argument; the model is only read, under
``torch.inference_mode``, so one loaded model serves many requests at once.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Optional, Sequence

import torch
from torch import Tensor, nn

from ..model.trace import Trace


def surprise_bits(logits: Tensor, ids: Sequence[int]) -> list[float]:
    """Per-token surprise in bits: s_t = −log₂ p(x_t | x_<t) for t ≥ 1 (NaN for t = 0).

    ``logits`` [T, V] are the model's scores at each position (position t predicts x_{t+1}).
    """
    ids = torch.as_tensor(list(ids), dtype=torch.long)
    logp = torch.log_softmax(logits.detach().float().cpu(), dim=-1)       # natural log
    bits = [float("nan")]
    if len(ids) > 1:
        nats = -logp[:-1].gather(1, ids[1:, None]).squeeze(1)
        bits += (nats / math.log(2)).tolist()
    return bits


@dataclass
class TracedText:
    """One traced forward pass over a text, on the CPU."""

    pieces: list[str]         # the text of each token the model read (``tokenizer.pieces``)
    trace: Trace
    bits: list[float]         # per-token surprise −log₂ p(x_t | x_<t), NaN for the first
    bits_per_token: float     # their mean over t ≥ 1 (NaN for a one-token text)

    @property
    def bits_per_char(self) -> float:
        """Bits per character of the text predicted (positions 1…T−1): Σ bits ÷ their characters.
        Models with different tokenizers compare in this unit, never per token."""
        n = sum(len(p) for p in self.pieces[1:])
        return sum(self.bits[1:]) / n if n else float("nan")


def run_traced(model: nn.Module, tokenizer, ids: list[int],
               causal: Optional[bool] = None) -> TracedText:
    """``model(ids, trace=True)`` with the mask as asked (None: the model's own), moved to the CPU."""
    x = torch.tensor([ids], dtype=torch.long, device=next(model.parameters()).device)
    kwargs = {} if causal is None else {"causal": bool(causal)}
    with torch.inference_mode():
        out = model(x, trace=True, **kwargs)
    trace = out.trace.to("cpu")
    bits = surprise_bits(trace.logits[0], ids)
    per_token = sum(bits[1:]) / (len(bits) - 1) if len(bits) > 1 else float("nan")
    return TracedText(tokenizer.pieces(ids), trace, bits, per_token)
