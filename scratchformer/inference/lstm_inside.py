"""One LSTM unit through one step, with the numbers the model computed.

For layer l, unit u and step t (input x_t: the embedding for layer 1, the hidden state of the layer
below otherwise; h_{t−1}, c_{t−1} = 0 at t = 0):

    z_gate = W_i,gate · x_t + b_i,gate + W_h,gate · h_{t−1} + b_h,gate     (row u of each gate's block)
    i = σ(z_i),  f = σ(z_f),  g = tanh(z_g),  o = σ(z_o)
    c_t = f ⊙ c_{t−1} + i ⊙ g
    h_t = o ⊙ tanh(c_t)

The gates, cells and hidden states come from the model's own traced pass; the pre-activations z are
recomputed here from the weights so that a person sees what went into each gate (a test checks
σ(z) against the traced gates).
"""
from __future__ import annotations

from typing import Sequence

import torch
from torch import nn

from .inside import check_ids, check_position


def lstm_step(model: nn.Module, ids: Sequence[int], position: int, layer: int, unit: int,
              tokenizer) -> dict:
    """JSON-ready numbers of unit ``unit`` of layer ``layer`` (0-based) at step ``position``, and the
    unit's gates and cell over the whole text (``over_text``)."""
    ids = check_ids(ids, model)
    t = check_position(position, len(ids))
    cfg = model.config
    if isinstance(layer, bool) or not isinstance(layer, int) or not 0 <= layer < cfg.n_layer:
        raise ValueError(f"layer must be in 1…{cfg.n_layer}, got {layer + 1 if isinstance(layer, int) else layer!r}")
    if isinstance(unit, bool) or not isinstance(unit, int) or not 0 <= unit < cfg.hidden:
        raise ValueError(f"unit must be in 0…{cfg.hidden - 1}, got {unit!r}")
    x = torch.tensor([ids], dtype=torch.long, device=next(model.parameters()).device)
    with torch.inference_mode():
        tr = model(x, trace=True).trace
        gates = {k: v[layer, 0, :, unit].double().cpu() for k, v in tr.gates.items()}     # [T]
        cells = tr.cell_states[layer, 0, :, unit].double().cpu()
        hidden = tr.hidden_states[layer + 1][0, :, unit].double().cpu()
        x_t = tr.hidden_states[layer][0, t]
        h_prev = tr.hidden_states[layer + 1][0, t - 1] if t > 0 else torch.zeros_like(tr.hidden_states[layer + 1][0, 0])
        cell = model.lstm.cells[layer]
        H = cfg.hidden
        rows = torch.arange(4) * H + unit                         # row u of the i, f, g, o blocks
        z = (cell.ih.weight[rows] @ x_t + cell.ih.bias[rows] + cell.hh.weight[rows] @ h_prev
             + cell.hh.bias[rows]).double().cpu()
    c_prev = float(cells[t - 1]) if t > 0 else 0.0
    i, f, g, o = (float(gates[k][t]) for k in "ifgo")
    return {
        "text": tokenizer.pieces(ids), "position": t, "char": tokenizer.token_text(ids[t]), "layer": layer + 1, "unit": unit,
        "z": dict(zip("ifgo", z.tolist())), "i": i, "f": f, "g": g, "o": o,
        "c_prev": c_prev, "f_c_prev": f * c_prev, "i_g": i * g, "c": float(cells[t]),
        "tanh_c": float(torch.tanh(cells[t])), "h": float(hidden[t]),
        "over_text": {"i": gates["i"].tolist(), "f": gates["f"].tolist(), "g": gates["g"].tolist(),
                      "o": gates["o"].tolist(), "c": cells.tolist(), "h": hidden.tolist()},
    }
