"""What one forward pass records and switches off: a :class:`Probe`, an argument of the call.

``model(ids, probe=Probe(weights=True))`` returns a :class:`~scratchformer.model.trace.Trace` of the
attention weights and hidden states; ``Probe(full=True)`` also every intermediate of every layer;
``Probe(ablation=…)`` switches heads, feed-forward blocks or LSTM units off for this pass only. The
model is never changed by a probe, so one loaded model serves many different requests at once.

Inside the pass the model hands each layer its own :class:`LayerProbe` (``probe.layer(i, cache)``):
this layer's part of the ablation, this layer's KV cache, and a place to put what it computed.
Layers and attention read and fill only that view; it lives for one pass.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional

from torch import Tensor

from .ablation import Ablation


@dataclass(frozen=True)
class Probe:
    """What to record and what to switch off in one forward pass (the default: nothing, the intact model).

    weights   record a Trace: attention weights [B, H, T_q, T_k], embeddings, hidden states
    full      also every intermediate of every layer (``Trace.layers``, ``Trace.final_norm``); implies weights
    ablation  parts switched off for this pass (:class:`~scratchformer.model.ablation.Ablation`)
    """

    weights: bool = False
    full: bool = False
    ablation: Ablation = Ablation()

    @property
    def records(self) -> bool:
        """Whether the pass returns a Trace."""
        return self.weights or self.full

    def layer(self, i: int, cache=None) -> "LayerProbe":
        """Layer ``i``'s view of this probe for one pass (with that layer's KV cache, if any)."""
        heads, values = self.ablation.layer_heads(i)
        return LayerProbe(weights=self.records, full=self.full, heads_off=heads, head_values=values,
                          ffn_off=i in self.ablation.ffn_off, cache=cache)


@dataclass
class LayerProbe:
    """One layer's part of a :class:`Probe`, for one pass.

    Read by the layer: ``weights`` (return attention weights), ``full`` (keep every intermediate),
    ``heads_off`` / ``head_values`` / ``ffn_off`` (this layer's ablation), ``cache`` (its self-attention's
    keys and values of earlier positions). Filled by the layer: ``self_attn`` / ``cross_attn`` (the
    weights, when asked) and ``record`` (the intermediates, with ``full``).
    """

    weights: bool = False
    full: bool = False
    heads_off: tuple[int, ...] = ()
    head_values: Optional[Tensor] = None
    ffn_off: bool = False
    cache: object = None        # an attention.LayerCache (not imported here: attention imports this file)
    self_attn: Optional[Tensor] = None
    cross_attn: Optional[Tensor] = None
    record: dict[str, Tensor] = field(default_factory=dict)

    def keep(self, **tensors: Optional[Tensor]) -> None:
        """With ``full``: record these intermediates (detached; None entries skipped)."""
        if self.full:
            self.record.update({k: v.detach() for k, v in tensors.items() if v is not None})

    def cross(self) -> "LayerProbe":
        """The view for a decoder's cross-attention: weights only (its keys come from the encoder,
        complete from the first step: nothing to cache, nothing switched off)."""
        return LayerProbe(weights=self.weights)
