"""Inside the LSTM: gates and cells over time, and text coloured by one unit."""
from __future__ import annotations

import html
from typing import Mapping, Sequence

import numpy as np
import plotly.graph_objects as go
import torch
from plotly.subplots import make_subplots
from torch import Tensor

from .common import LAYOUT, char_span, display_token, plotly_text, to_numpy, token_axis, token_ticks


def top_varying_units(cells: Tensor, n: int) -> list[int]:
    """Indices of the ``n`` units whose tanh(c_t) varies most over the text (largest std over t).

    ``cells`` [T, hidden] for one layer and one text. tanh(c_t) is the cell as the output gate shows
    it (h_t = o_t ⊙ tanh(c_t)); ranking by it rather than by c_t skips units that only drift
    steadily to large values and favours units that switch on and off.
    """
    shown = torch.tanh(cells.detach().float())
    std = shown.std(dim=0, unbiased=False) if cells.shape[0] > 1 else shown.abs()[0]
    n = max(1, min(int(n), cells.shape[1]))
    return torch.argsort(std, descending=True, stable=True)[:n].tolist()


def unit_text_html(chars: Sequence[str], values: Tensor, label: str) -> str:
    """``chars`` with each character's background coloured by one unit's value (e.g. its cell state
    c_t): red for positive, blue for negative, white near 0 — the way to spot a unit that tracks
    quotes or line breaks."""
    v = to_numpy(values)
    m = float(np.abs(v).max()) or 1.0
    spans = []
    for c, x in zip(chars, v):
        a = min(abs(float(x)) / m, 1.0)
        shade = int(255 - 190 * a)
        colour = f"rgb(255,{shade},{shade})" if x > 0 else f"rgb({shade},{shade},255)"
        spans.append(char_span(c, colour, f"{display_token(c)!r}: {float(x):+.3f}"))
    return (f'<div style="margin:2px 0"><b>{html.escape(label)}</b> '
            f'<span style="color:#666">(red +, blue −, max |value| {m:.2f})</span></div>'
            '<div style="font-family:ui-monospace,monospace;font-size:14px;line-height:1.6;'
            'border:1px solid #ddd;border-radius:6px;padding:4px 8px;margin-bottom:8px">'
            + "".join(spans) + "</div>")


def lstm_gates_figure(gates: Mapping[str, Tensor], cells: Tensor, chars: Sequence[str],
                      units: Sequence[int], title: str = "") -> go.Figure:
    """Input, forget and output gates and the cell state of the chosen ``units`` over time.

    ``gates[k]`` and ``cells`` are [T, hidden] for one layer; rows of each panel are units, columns
    characters. Gates lie in (0, 1); the cell state c_t is unbounded, so it is drawn as tanh(c_t) in
    (−1, 1) on a red/blue scale.
    """
    names, ticks = token_axis(chars)
    units = list(units)
    ylabels = [f"unit {u}" for u in units]
    panels = [("i", "input gate i_t (how much to write)"), ("f", "forget gate f_t (how much to keep)"),
              ("o", "output gate o_t (how much to show)")]
    fig = make_subplots(rows=4, cols=1, shared_xaxes=True, vertical_spacing=0.05,
                        subplot_titles=[p[1] for p in panels] + ["cell state, as tanh(c_t) (what o_t can show)"])
    for r, (k, _) in enumerate(panels, start=1):
        fig.add_trace(go.Heatmap(z=to_numpy(gates[k][:, units]).T, x=names, y=ylabels, coloraxis="coloraxis",
                                 name=f"gate {k}",
                                 hovertemplate=f"{k}: %{{y}}, %{{x}}: %{{z:.2f}}<extra></extra>"),
                      row=r, col=1)
    c = np.tanh(to_numpy(cells[:, units])).T
    fig.add_trace(go.Heatmap(z=c, x=names, y=ylabels, name="tanh(c_t)", colorscale="RdBu", reversescale=True, zmid=0,
                             zmin=-1, zmax=1, colorbar=dict(thickness=10, len=0.22, y=0.11, title="tanh c"),
                             hovertemplate="tanh(c): %{y}, %{x}: %{z:.2f}<extra></extra>"), row=4, col=1)
    step = max(1, len(chars) // 64)
    fig.update_xaxes(**token_ticks(names, ticks, step), showgrid=False)
    fig.update_yaxes(autorange="reversed", showgrid=False, tickfont=dict(size=9))
    fig.update_layout(**LAYOUT, title=dict(text=plotly_text(title), x=0.01), height=300 + 4 * 14 * len(units),
                      coloraxis=dict(colorscale="Greens", cmin=0, cmax=1,
                                     colorbar=dict(title="gate", thickness=10, len=0.7, y=0.64)))
    return fig
