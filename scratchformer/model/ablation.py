"""Switching parts of a model off for one forward pass (an *ablation*), as an argument of the call.

An :class:`Ablation` travels in a probe, ``model(ids, probe=Probe(ablation=…))``
(:mod:`~scratchformer.model.probe`); the model's weights are never touched, so one loaded model
serves intact and ablated requests at the same time.

Transformer
  heads       {layer: (head, …)}: the output of each listed head, head_i = softmax(q·kᵀ/√d_k)·v,
              is replaced before the heads are concatenated and multiplied by W^O —
  head_values {layer: tensor [H, d_head]}: … by these vectors (e.g. the head's mean output over a
              text, "mean ablation"); a layer missing here gets zeros ("zero ablation")
  ffn_off     {layer, …}: the feed-forward sublayer adds nothing, x = x + 0

LSTM
  lstm_units     {layer: (unit, …)}: those units are silenced, h_t[u] = c_t[u] = 0 at every step
  lstm_cells_off {layer, …}: the layer's cell memory is emptied before every step (c_{t−1} = 0, so
                 c_t = i_t ⊙ g_t): it keeps only what h_{t−1} carries

Layers, heads and units are 0-based here; :meth:`Ablation.check` says what exists.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Mapping, Optional

import torch
from torch import Tensor


@dataclass(frozen=True)
class Ablation:
    """What to switch off in one forward pass (empty: nothing; the pass is the intact model's)."""

    heads: Mapping[int, tuple[int, ...]] = field(default_factory=dict)
    head_values: Mapping[int, Tensor] = field(default_factory=dict)
    ffn_off: frozenset[int] = frozenset()
    lstm_units: Mapping[int, tuple[int, ...]] = field(default_factory=dict)
    lstm_cells_off: frozenset[int] = frozenset()

    def is_empty(self) -> bool:
        return not (any(self.heads.values()) or self.ffn_off or any(self.lstm_units.values())
                    or self.lstm_cells_off)

    def check(self, n_layer: int, n_head: int = 0, n_units: int = 0) -> None:
        """ValueError naming a layer, head or unit that does not exist (all 0-based here)."""
        if n_head == 0 and (any(self.heads.values()) or self.ffn_off):
            raise ValueError("this model has no attention heads or feed-forward blocks to switch off")
        if n_units == 0 and (any(self.lstm_units.values()) or self.lstm_cells_off):
            raise ValueError("this model has no LSTM units or cells to silence")

        def layer_ok(l, what):
            if not 0 <= l < n_layer:
                raise ValueError(f"{what}: layer {l + 1} does not exist; layers are 1…{n_layer}")
        for l, hs in self.heads.items():
            layer_ok(l, "heads")
            for h in hs:
                if not 0 <= h < n_head:
                    raise ValueError(f"head {h + 1} of layer {l + 1} does not exist; heads are 1…{n_head}")
        for l in self.ffn_off:
            layer_ok(l, "feed-forward")
        for l, us in self.lstm_units.items():
            layer_ok(l, "LSTM units")
            for u in us:
                if not 0 <= u < n_units:
                    raise ValueError(f"unit {u} of layer {l + 1} does not exist; units are 0…{n_units - 1}")
        for l in self.lstm_cells_off:
            layer_ok(l, "LSTM cell")

    def layer_heads(self, layer: int) -> tuple[tuple[int, ...], Optional[Tensor]]:
        """(heads switched off in ``layer``, their replacement values [H, d_head] or None for zeros)."""
        return tuple(self.heads.get(layer, ())), self.head_values.get(layer)


def ablate_heads(out: Tensor, heads: tuple[int, ...], values: Optional[Tensor] = None) -> Tensor:
    """Per-head attention outputs ``out`` [B, H, T, d_head] with the listed heads replaced by
    ``values[h]`` (broadcast over batch and positions), or by zeros when ``values`` is None."""
    if not heads:
        return out
    idx = torch.tensor(heads, device=out.device)
    keep = torch.ones(out.size(1), device=out.device, dtype=out.dtype).index_fill(0, idx, 0.0)
    out = out * keep[:, None, None]
    if values is not None:
        fill = torch.zeros_like(values).index_copy(0, idx, values.index_select(0, idx).to(out.dtype))
        out = out + fill[:, None, :]
    return out
