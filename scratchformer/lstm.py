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

from dataclasses import asdict, dataclass, fields
from typing import Optional

import torch
import torch.nn.functional as F
from torch import Tensor, nn

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


class LSTMLayerFunction(torch.autograd.Function):
    """One LSTM layer over a whole sequence, with backpropagation through time written by hand.

    Autograd could differentiate the step loop itself, but it records ~10 tiny operations per step
    and computes the recurrent weight's gradient in T small products; on a CPU that is ~7× slower
    than this. Forward is the same recurrence as :meth:`LSTMCell.step`. Backward walks the steps in
    reverse (σ' = σ(1-σ), tanh' = 1-tanh²):

        dh_t  += dL/dh_t (from the layer above) ;   dc_t += dh_t ⊙ o_t ⊙ (1 - tanh²(c_t))
        dz_i = dc_t ⊙ g_t ⊙ i_t(1-i_t)      dz_f = dc_t ⊙ c_{t-1} ⊙ f_t(1-f_t)
        dz_g = dc_t ⊙ i_t ⊙ (1-g_t²)        dz_o = dh_t ⊙ tanh(c_t) ⊙ o_t(1-o_t)
        dc_{t-1} = dc_t ⊙ f_t               dh_{t-1} = dz_t · W_hh

    and then, in one matrix product over all steps, dW_hh = Σ_t dz_tᵀ h_{t-1} and db_hh = Σ_t dz_t.
    The gradient for the input part x_proj is dz itself (autograd carries it on to W_ih and x).
    tests/test_lstm.py checks it against autograd on the step loop and against PyTorch's ``LSTM``.
    """

    @staticmethod
    def forward(ctx, x_proj: Tensor, w_hh: Tensor, b_hh: Tensor, h0: Tensor, c0: Tensor):
        """x_proj [B, T, 4H] = x·W_ihᵀ + b_ih; h0, c0 [B, H] → (outputs [B, T, H], h_T, c_T)."""
        B, T, H4 = x_proj.shape
        H = H4 // 4
        zx = x_proj.transpose(0, 1) + b_hh                  # [T, B, 4H]
        hs = x_proj.new_empty(T + 1, B, H)                  # h_0 … h_T
        cs = x_proj.new_empty(T + 1, B, H)                  # c_0 … c_T
        acts = x_proj.new_empty(T, B, H4)                   # gates i, f, g, o per step
        hs[0], cs[0] = h0, c0
        w_t = w_hh.t()
        for t in range(T):
            z = torch.addmm(zx[t], hs[t], w_t)              # z = x_proj + h_{t-1}·W_hhᵀ + b_hh
            a = acts[t]
            torch.sigmoid(z, out=a)                         # i, f, o (g is overwritten next)
            torch.tanh(z[:, 2 * H:3 * H], out=a[:, 2 * H:3 * H])
            i, f, g, o = a[:, :H], a[:, H:2 * H], a[:, 2 * H:3 * H], a[:, 3 * H:]
            torch.addcmul(f * cs[t], i, g, out=cs[t + 1])   # c_t = f ⊙ c_{t-1} + i ⊙ g
            torch.mul(o, torch.tanh(cs[t + 1]), out=hs[t + 1])  # h_t = o ⊙ tanh(c_t)
        ctx.save_for_backward(w_hh, hs, cs, acts)
        return hs[1:].transpose(0, 1), hs[T].clone(), cs[T].clone()

    @staticmethod
    def backward(ctx, d_out: Tensor, d_hT: Tensor, d_cT: Tensor):
        w_hh, hs, cs, acts = ctx.saved_tensors
        T, B, H4 = acts.shape
        H = H4 // 4
        d_out = d_out.transpose(0, 1) if d_out is not None else torch.zeros_like(hs[1:])
        dz_all = acts.new_empty(T, B, H4)
        dh = d_hT.clone() if d_hT is not None else torch.zeros_like(hs[0])
        dc = d_cT.clone() if d_cT is not None else torch.zeros_like(cs[0])
        for t in range(T - 1, -1, -1):
            a = acts[t]
            i, f, g, o = a[:, :H], a[:, H:2 * H], a[:, 2 * H:3 * H], a[:, 3 * H:]
            dh = dh + d_out[t]
            tanh_c = torch.tanh(cs[t + 1])
            dc = dc + dh * o * (1 - tanh_c * tanh_c)
            dz = dz_all[t]
            torch.mul(dc * g, i * (1 - i), out=dz[:, :H])
            torch.mul(dc * cs[t], f * (1 - f), out=dz[:, H:2 * H])
            torch.mul(dc * i, 1 - g * g, out=dz[:, 2 * H:3 * H])
            torch.mul(dh * tanh_c, o * (1 - o), out=dz[:, 3 * H:])
            dc = dc * f
            dh = dz @ w_hh
        dz_flat = dz_all.reshape(T * B, H4)
        d_w_hh = dz_flat.t() @ hs[:-1].reshape(T * B, H)
        return dz_all.transpose(0, 1), d_w_hh, dz_flat.sum(0), dh, dc


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
                record: bool = False) -> tuple[Tensor, State, Optional[dict]]:
        """x [B, T, input] → (outputs [B, T, hidden] of the top layer, final (h, c), record).

        With ``record`` the third value holds every layer's gates [L, 4, B, T, hidden], cells
        [L, B, T, hidden] and hidden states (list of [B, T, hidden]); otherwise None.
        """
        B, T, _ = x.shape
        if state is None:
            state = self.zero_state(B, x.device, x.dtype)
        h0, c0 = state
        hs, cs, rec_gates, rec_cells, rec_hidden = [], [], [], [], []
        inp = x
        for l, cell in enumerate(self.cells):
            h, c = h0[l], c0[l]
            x_proj = cell.ih(inp)  # [B, T, 4·hidden]: the input part of every gate, all steps at once
            if not record:  # the fast path: same recurrence, hand-written backward
                out, h, c = LSTMLayerFunction.apply(x_proj, cell.hh.weight, cell.hh.bias, h, c)
            else:           # step by step through LSTMCell, keeping every gate for the trace
                outs, gates, cells = [], [], []
                for t in range(T):
                    h, c, g = cell.step(x_proj[:, t], h, c)
                    outs.append(h)
                    gates.append(g)
                    cells.append(c)
                out = torch.stack(outs, dim=1)
            hs.append(h)
            cs.append(c)
            if record:
                rec_gates.append(torch.stack(gates, dim=2))   # [4, B, T, hidden]
                rec_cells.append(torch.stack(cells, dim=1))   # [B, T, hidden]
                rec_hidden.append(out)
            inp = self.drop(out) if l < self.num_layers - 1 else out
        record_out = None
        if record:
            record_out = {"gates": torch.stack(rec_gates), "cells": torch.stack(rec_cells),
                          "hidden": rec_hidden}
        return inp, (torch.stack(hs), torch.stack(cs)), record_out


@dataclass
class LSTMConfig:
    """Architecture of the LSTM language model."""

    model_type: str = "lstm"
    vocab_size: int = 65
    n_embd: int = 64        # embedding width
    hidden: int = 256       # hidden (and cell) units per layer
    n_layer: int = 2
    dropout: float = 0.0
    block_size: int = 256   # training window; generation carries (h, c) and has no limit

    def __post_init__(self):
        if self.model_type != "lstm":
            raise ValueError(f"LSTMConfig model_type must be 'lstm', got {self.model_type!r}")

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "LSTMConfig":
        known = {f.name for f in fields(cls)}
        unknown = set(d) - known
        if unknown:
            raise ValueError(f"unknown LSTM config keys: {sorted(unknown)}")
        return cls(**d)


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
        return sum(p.numel() for p in self.parameters())

    def forward(self, ids: Tensor, targets: Optional[Tensor] = None, *, state: Optional[State] = None,
                trace: bool = False, causal: Optional[bool] = None) -> ModelOutput:
        """ids [B, T] → ModelOutput(logits [B, T, V], loss, trace, state=(h, c)).

        Pass the returned ``state`` back in to continue from where the last call stopped. ``causal`` is
        accepted for a uniform interface; a left-to-right LSTM is always causal.
        """
        if causal is False:
            raise ValueError("an LSTM reads left to right: causal=False is not possible")
        x = self.embed(ids)
        out, state, rec = self.lstm(self.drop(x), state, record=trace)
        logits = self.lm_head(self.drop(out))
        loss = None
        if targets is not None:
            loss = F.cross_entropy(logits.reshape(-1, logits.size(-1)), targets.reshape(-1),
                                   ignore_index=-100)
        tr = None
        if trace:
            g = rec["gates"].detach()  # [L, 4, B, T, hidden]
            tr = Trace(tokens=ids, logits=logits.detach(), causal=True, token_embeddings=x.detach(),
                       hidden_states=[x.detach()] + [h.detach() for h in rec["hidden"]],
                       gates={name: g[:, k] for k, name in enumerate("ifgo")},
                       cell_states=rec["cells"].detach())
        return ModelOutput(logits, loss, tr, state)
