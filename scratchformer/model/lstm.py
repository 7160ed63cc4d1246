"""A long short-term memory network written out by hand (Hochreiter & Schmidhuber 1997).

At each step t, with input x_t and the previous hidden state h_{t-1} and cell c_{t-1}:

    i_t = σ(W_ii x_t + b_ii + W_hi h_{t-1} + b_hi)      input gate: how much new content to write
    f_t = σ(W_if x_t + b_if + W_hf h_{t-1} + b_hf)      forget gate: how much of c_{t-1} to keep
    g_t = tanh(W_ig x_t + b_ig + W_hg h_{t-1} + b_hg)   candidate content
    o_t = σ(W_io x_t + b_io + W_ho h_{t-1} + b_ho)      output gate: how much of the cell to show
    c_t = f_t ⊙ c_{t-1} + i_t ⊙ g_t
    h_t = o_t ⊙ tanh(c_t)

The four gates' weights are stacked in the order i, f, g, o (as in PyTorch's ``LSTM``) so that one matrix
product computes all of them.
"""
from __future__ import annotations

from typing import Optional

import torch
from torch import Tensor, nn

from .basics import lm_loss, num_params
from .config import LSTMConfig
from .fast import lstm_layer     # the same layer, with its backward written by hand (model/fast/)
from .probe import Probe
from .trace import ModelOutput, Trace

State = tuple[Tensor, Tensor]  # (h, c), each [layers, B, hidden]


class LSTMCell(nn.Module):
    """One step of one layer. ``ih`` holds [W_ii; W_if; W_ig; W_io] and their biases, ``hh`` the same
    for the recurrent weights."""

    def __init__(self, input_size: int, hidden_size: int):
        super().__init__()
        self.hidden_size = hidden_size
        self.ih = nn.Linear(input_size, 4 * hidden_size)
        self.hh = nn.Linear(hidden_size, 4 * hidden_size)

    def step(self, x_proj: Tensor, h: Tensor, c: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """One time step given x_proj = ih(x_t) (computed for all steps at once, as it does not depend
        on h). Returns (h_t, c_t, gates [4, B, hidden] stacked i, f, g, o)."""
        z = x_proj + self.hh(h)
        zi, zf, zg, zo = z.chunk(4, dim=-1)
        i, f, g, o = torch.sigmoid(zi), torch.sigmoid(zf), torch.tanh(zg), torch.sigmoid(zo)
        c = f * c + i * g
        h = o * torch.tanh(c)
        return h, c, torch.stack([i, f, g, o])

    def forward(self, x: Tensor, state: tuple[Tensor, Tensor]) -> tuple[Tensor, Tensor]:
        """x [B, input], (h, c) [B, hidden] → (h', c')."""
        h, c, _ = self.step(self.ih(x), *state)
        return h, c


class LSTM(nn.Module):
    """A stack of LSTM layers; layer l+1 reads the hidden states of layer l (with dropout between)."""

    def __init__(self, input_size: int, hidden_size: int, num_layers: int = 1, dropout: float = 0.0):
        super().__init__()
        self.hidden_size, self.num_layers = hidden_size, num_layers
        self.cells = nn.ModuleList(
            LSTMCell(input_size if l == 0 else hidden_size, hidden_size) for l in range(num_layers))
        self.drop = nn.Dropout(dropout)

    def zero_state(self, batch: int, device=None, dtype=torch.float32) -> State:
        z = torch.zeros(self.num_layers, batch, self.hidden_size, device=device, dtype=dtype)
        return z, z.clone()

    def forward(self, x: Tensor, state: Optional[State] = None,
                probe: Optional[Probe] = None) -> tuple[Tensor, State, Optional[dict]]:
        """x [B, T, input] → (outputs [B, T, hidden] of the top layer, final (h, c), record).

        When ``probe`` records, the third value holds every layer's gates [L, 4, B, T, hidden], cells
        [L, B, T, hidden] and hidden states (list of [B, T, hidden]); otherwise None. Its ablation:
        units silenced (h_t[u] = c_t[u] = 0) and cells emptied before each step (c_{t−1} = 0), for
        this pass only. Unrecorded, unablated layers run :func:`~scratchformer.model.fast.lstm_layer`
        (the same recurrence, its gradient written by hand); the others step through
        :meth:`LSTMCell.step` below.
        """
        probe = probe or Probe()
        ablation = probe.ablation
        B, T, _ = x.shape
        if state is None:
            state = self.zero_state(B, x.device, x.dtype)
        h0, c0 = state
        hs, cs, rec_gates, rec_cells, rec_hidden = [], [], [], [], []
        inp = x
        for l, cell in enumerate(self.cells):
            h, c = h0[l], c0[l]
            units = ablation.lstm_units.get(l, ())
            empty_cell = l in ablation.lstm_cells_off
            keep = None
            if units:  # 1 for the units that keep working, 0 for the silenced ones
                keep = torch.ones(self.hidden_size, device=x.device, dtype=x.dtype).index_fill(
                    0, torch.tensor(units, device=x.device), 0.0)
            if not probe.records and keep is None and not empty_cell:
                out, h, c = lstm_layer(cell, inp, h, c)
            else:           # step by step through LSTMCell, keeping every gate for the trace
                x_proj = cell.ih(inp)   # the input part of every gate, for all steps at once
                outs, gates, cells = [], [], []
                for t in range(T):
                    h, c, g = cell.step(x_proj[:, t], h, torch.zeros_like(c) if empty_cell else c)
                    if keep is not None:
                        h, c = h * keep, c * keep
                    outs.append(h)
                    gates.append(g)
                    cells.append(c)
                out = torch.stack(outs, dim=1)
            hs.append(h)
            cs.append(c)
            if probe.records:
                rec_gates.append(torch.stack(gates, dim=2))   # [4, B, T, hidden]
                rec_cells.append(torch.stack(cells, dim=1))   # [B, T, hidden]
                rec_hidden.append(out)
            inp = self.drop(out) if l < self.num_layers - 1 else out
        record_out = None
        if probe.records:
            record_out = {"gates": torch.stack(rec_gates), "cells": torch.stack(rec_cells),
                          "hidden": rec_hidden}
        return inp, (torch.stack(hs), torch.stack(cs)), record_out


class LSTMLM(nn.Module):
    """Next-token model: embedding → stacked LSTM → linear head over the vocabulary."""

    def __init__(self, cfg: LSTMConfig):
        super().__init__()
        self.config = cfg
        self.embed = nn.Embedding(cfg.vocab_size, cfg.n_embd)
        self.lstm = LSTM(cfg.n_embd, cfg.hidden, cfg.n_layer, cfg.dropout)
        self.drop = nn.Dropout(cfg.dropout)
        self.lm_head = nn.Linear(cfg.hidden, cfg.vocab_size)
        for cell in self.lstm.cells:  # forget-gate bias 1: remember by default early in training
            with torch.no_grad():
                cell.ih.bias[cfg.hidden:2 * cfg.hidden].fill_(1.0)

    def num_params(self) -> int:
        return num_params(self)

    def token_embedding_table(self) -> Tensor:
        """The embedding matrix [V, n_embd] (row i: the vector of token i)."""
        return self.embed.weight

    def position_table(self) -> None:
        """None: an LSTM knows order from reading step by step, it adds no position vectors."""
        return None

    @property
    def context_length(self) -> None:
        """None: the state (h, c) carries the whole text, there is no window."""
        return None

    def forward(self, ids: Tensor, targets: Optional[Tensor] = None, *, causal: Optional[bool] = None,
                state: Optional[State] = None, probe: Optional[Probe] = None,
                trace: bool = False) -> ModelOutput:
        """ids [B, T] → ModelOutput(logits [B, T, V], loss, trace, state=(h, c)).

        Pass the returned ``state`` back in to continue from where the last call stopped. ``causal`` is
        accepted for a uniform interface; a left-to-right LSTM is always causal. ``probe``: what this
        pass records (gates, cells, hidden states; ``full`` adds nothing more here) and silences
        (:class:`~scratchformer.model.probe.Probe`); ``trace=True`` is short for ``Probe(weights=True)``
        (a probe given wins).
        """
        if causal is False:
            raise ValueError("an LSTM reads left to right: causal=False is not possible")
        probe = probe or Probe(weights=bool(trace))
        probe.ablation.check(self.config.n_layer, n_units=self.config.hidden)
        x = self.embed(ids)
        out, state, rec = self.lstm(self.drop(x), state, probe)
        logits = self.lm_head(self.drop(out))
        loss = None
        if targets is not None:
            loss = lm_loss(logits, targets)
        tr = None
        if rec is not None:
            g = rec["gates"].detach()  # [L, 4, B, T, hidden]
            tr = Trace(tokens=ids, logits=logits.detach(), causal=True, token_embeddings=x.detach(),
                       hidden_states=[x.detach()] + [h.detach() for h in rec["hidden"]],
                       gates={name: g[:, k] for k, name in enumerate("ifgo")},
                       cell_states=rec["cells"].detach())
        return ModelOutput(logits, loss, tr, state)
