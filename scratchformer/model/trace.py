"""What a model saw and computed in one forward pass.

Models fill a :class:`Trace` only when asked (``model(ids, probe=Probe(weights=True))``, or
``model(ids, trace=True)`` for short); views turn it into
figures. It is plain data: tensors, detached, on the CPU-or-GPU device of the model. Nothing in it is
shared between requests.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import NamedTuple, Optional

import torch
from torch import Tensor


@dataclass
class Trace:
    """One forward pass laid open.

    Shapes use B = batch, T = sequence length, D = model width, H = heads, L = layers.

    Transformer fields
      tokens                 [B, T]        the input ids
      logits                 [B, T, V]     next-token (or masked-token) scores
      causal                 whether the causal mask was on for this pass
      token_embeddings       [B, T, D]     rows of the embedding table for the tokens (after any scaling)
      positional_embeddings  [T, D]        what was added for each position
      hidden_states          list of L+1 tensors [B, T, D]: index 0 is the input to layer 1
                             (token + position), index l the output of layer l
      self_attn              list of L tensors [B, H, T_query, T_key] (decoder / GPT self-attention)
      cross_attn             list of L tensors [B, H, T_target, T_source] (encoder-decoder only)
      encoder_self_attn      list of tensors [B, H, T_src, T_src] (encoder-decoder only)
      encoder_hidden_states  list of tensors [B, T_src, D] (encoder-decoder only)
      src_tokens             [B, T_src] source ids (encoder-decoder only)

    Only with ``Probe(full=True)`` (GPT / BERT): everything each layer computed
      layers                 list of L dicts: ln1 (pre-norm only) [B, T, D], q/k/v and heads (the per-head
                             outputs softmax(q·kᵀ/√d_k)·v after any ablation) [B, H, T, d_head],
                             concat [B, T, D], attn_out (concat·W^O + b) [B, T, D], resid_mid (the
                             residual stream after attention) [B, T, D], ln2 (the feed-forward's input)
                             [B, T, D], ff_pre / ff_act [B, T, d_ff] (absent when the block is off),
                             ff_out [B, T, D]
      final_norm             [B, T, D]     the final LayerNorm's output, the input of the output head

    LSTM fields
      gates                  {"i","f","g","o"}: tensors [L, B, T, hidden] — the gate activations
      cell_states            [L, B, T, hidden]  c_t for every layer and step
      hidden_states          list of L+1 tensors [B, T, *]: index 0 the embeddings, l the h_t of layer l
    """

    tokens: Tensor
    logits: Optional[Tensor] = None
    causal: Optional[bool] = None
    token_embeddings: Optional[Tensor] = None
    positional_embeddings: Optional[Tensor] = None
    hidden_states: list[Tensor] = field(default_factory=list)
    self_attn: list[Tensor] = field(default_factory=list)
    cross_attn: list[Tensor] = field(default_factory=list)
    encoder_self_attn: list[Tensor] = field(default_factory=list)
    encoder_hidden_states: list[Tensor] = field(default_factory=list)
    src_tokens: Optional[Tensor] = None
    gates: dict[str, Tensor] = field(default_factory=dict)
    cell_states: Optional[Tensor] = None
    layers: list[dict[str, Tensor]] = field(default_factory=list)
    final_norm: Optional[Tensor] = None

    def to(self, device: torch.device | str) -> "Trace":
        """A copy with every tensor moved to ``device`` (e.g. "cpu" before plotting)."""

        def move(x):
            if isinstance(x, Tensor):
                return x.to(device)
            if isinstance(x, list):
                return [move(t) for t in x]
            if isinstance(x, dict):
                return {k: move(t) for k, t in x.items()}
            return x

        return Trace(**{name: move(getattr(self, name)) for name in self.__dataclass_fields__})


class ModelOutput(NamedTuple):
    """What every model's ``forward`` returns.

    logits  [B, T, V]; loss: mean cross-entropy (nats) when targets were given, else None;
    trace: a :class:`Trace` when the probe records (``trace=True``), else None; state: the LSTM's
    (h, c) after the last step (None for Transformers, whose state lives in a KV cache).
    """

    logits: Tensor
    loss: Optional[Tensor] = None
    trace: Optional[Trace] = None
    state: Optional[tuple[Tensor, Tensor]] = None
