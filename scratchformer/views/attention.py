"""Attention matrices: every layer × head as a grid, one head large, with characters on the axes."""
from __future__ import annotations

import math
import warnings
from typing import Sequence

import numpy as np
import plotly.graph_objects as go
import torch
from torch import Tensor

from .common import ATTN_SCALE, GRID_MAX_CELLS, LAYOUT, plotly_text, token_axis, token_ticks


def hide_first_key(weights: Tensor) -> Tensor:
    """Attention with the column of the first token blanked out (NaN), *not* renormalised.

    The first token often collects most of the weight (an "attention sink"); blanking it lets the
    colour scale stretch over the remaining weights, which keep their true values.
    """
    w = weights.detach().float().clone()
    w[..., 0] = float("nan")
    return w


def _pool(w: np.ndarray, size: int) -> np.ndarray:
    """Average-pool the last two dims of ``w`` so neither exceeds ``size`` (NaN-aware)."""
    T_q, T_k = w.shape[-2:]
    f = max(math.ceil(T_q / size), math.ceil(T_k / size))
    if f <= 1:
        return w
    pad_q, pad_k = (-T_q) % f, (-T_k) % f
    w = np.pad(w, [(0, 0)] * (w.ndim - 2) + [(0, pad_q), (0, pad_k)], constant_values=np.nan)
    shape = w.shape[:-2] + (w.shape[-2] // f, f, w.shape[-1] // f, f)
    with warnings.catch_warnings():  # an all-NaN block (a hidden first column) is NaN, not a warning
        warnings.simplefilter("ignore", RuntimeWarning)
        return np.nanmean(w.reshape(shape), axis=(-3, -1))


def _grid_layout(rows: int, cols: int, col_titles: Sequence[str], row_titles: Sequence[str],
                 gap: float = 0.012) -> dict:
    """A layout with rows × cols small square-ish panels (axes x1/y1 … in row-major order) and their
    titles. Written by hand because ``make_subplots`` takes ~0.3 s for a 6 × 6 grid."""
    layout: dict = {"annotations": []}
    w, h = (1 - gap * (cols - 1)) / cols, (1 - gap * (rows - 1)) / rows
    for r in range(rows):
        for c in range(cols):
            k = r * cols + c + 1
            x0, y1 = c * (w + gap), 1 - r * (h + gap)
            axis = dict(showticklabels=False, showgrid=False, zeroline=False)
            # square panels: y is scaled like x and each panel shrinks inside its cell to fit
            layout[f"xaxis{k}"] = dict(domain=[x0, x0 + w], anchor=f"y{k}", constrain="domain", **axis)
            layout[f"yaxis{k}"] = dict(domain=[y1 - h, y1], anchor=f"x{k}", autorange="reversed",
                                       scaleanchor=f"x{k}", constrain="domain", **axis)
    for c, text in enumerate(col_titles):
        layout["annotations"].append(dict(text=text, x=c * (w + gap) + w / 2, y=1, xref="paper",
                                          yref="paper", yanchor="bottom", showarrow=False))
    for r, text in enumerate(row_titles):
        layout["annotations"].append(dict(text=text, x=-0.005, y=1 - r * (h + gap) - h / 2, xref="paper",
                                          yref="paper", xanchor="right", textangle=-90, showarrow=False))
    return layout


GRID_LAYERS = 6   # a deeper model's grid shows one page of this many layers (GPT-2: 1–6, 7–12)


def grid_page(n_layer: int, layer: int) -> range:
    """The layers (0-based) the grid shows when ``layer`` is chosen: all of them up to GRID_LAYERS,
    else the page of GRID_LAYERS that holds ``layer`` (12 layers: 0–5 or 6–11), so that a 12 × 12
    grid stays readable and quick to draw."""
    if n_layer <= GRID_LAYERS:
        return range(n_layer)
    start = (layer // GRID_LAYERS) * GRID_LAYERS
    return range(start, min(start + GRID_LAYERS, n_layer))


def attention_grid(attn: Sequence[Tensor], hide_first: bool = False, title: str = "",
                   first_layer: int = 0) -> go.Figure:
    """Every layer × head as a small heatmap: row = layer, column = head; query ↓, key →.

    ``attn`` is a list of L tensors [H, T, T] (one text): layers ``first_layer`` … ``first_layer + L − 1``
    of the model (a page of a deep model's layers, see :func:`grid_page`). Long texts are
    average-pooled to at most GRID_MAX_CELLS rows and columns per head (each panel is ~100 px wide anyway).
    """
    L, H = len(attn), attn[0].shape[0]
    f = first_layer
    w = torch.stack([a.detach().float().cpu() for a in attn])        # [L, H, T, T]
    if hide_first:
        w = hide_first_key(w)
    z_all = _pool(w.numpy(), GRID_MAX_CELLS).astype(np.float32)
    zmax = float(np.nanmax(z_all)) if np.isfinite(z_all).any() else 1.0
    layout = _grid_layout(L, H, [f"head {h + 1}" for h in range(H)], [f"layer {f + l + 1}" for l in range(L)])
    layout.update(**{**LAYOUT, "margin": dict(l=20, r=70, t=60, b=10)},   # one layout, built once
                  title=dict(text=plotly_text(title), x=0.01), height=max(260, 130 * L + 70),
                  coloraxis=dict(colorscale=ATTN_SCALE, cmin=0, cmax=zmax,
                                 colorbar=dict(title=dict(text="weight"), thickness=12)))
    return go.Figure([go.Heatmap(z=z_all[l, h], name=f"layer {f + l + 1} head {h + 1}", coloraxis="coloraxis",
                                 xaxis=f"x{l * H + h + 1}",
                                 yaxis=f"y{l * H + h + 1}",
                                 hovertemplate=f"layer {f + l + 1} head {h + 1}<br>query %{{y}}, key %{{x}}: "
                                               "%{z:.3f}<extra></extra>")
                      for l in range(L) for h in range(H)], layout=layout)


def attention_heatmap(weights: Tensor, chars: Sequence[str], title: str = "",
                      hide_first: bool = False, diverging: bool = False) -> go.Figure:
    """One attention matrix [T_query, T_key] with the characters on both axes and hover values.

    Row i is the distribution softmax(q_i·kⱼ/√d_k) over keys j. ``diverging`` draws a difference
    (e.g. mask off − mask on) with a red/blue scale centred on 0.
    """
    w = weights.detach().float().cpu()
    if hide_first:
        w = hide_first_key(w)
    names, ticks = token_axis(chars)
    z = w.numpy().astype(np.float32)
    if diverging:
        m = float(np.nanmax(np.abs(z))) if np.isfinite(z).any() else 1.0
        color = dict(colorscale="RdBu", zmid=0, zmin=-m, zmax=m, reversescale=True)
    else:
        color = dict(colorscale=ATTN_SCALE, zmin=0)
    step = max(1, math.ceil(len(chars) / 45))   # ~45 labels at most: denser ones overlap
    tick = dict(token_ticks(names, ticks, step), showgrid=False)
    # the whole layout in one go: each plotly update pass costs milliseconds on a 128 × 128 heatmap
    # word tokens (␣Romeo) would overlap side by side on the key axis: written slanted there
    words = max((len(c) for c in chars), default=1) > 2
    layout = {**LAYOUT, "margin": dict(l=70, r=20, t=50, b=90 if words else 50)}
    layout.update(title=dict(text=plotly_text(title), x=0.01), height=min(760, max(360, 9 * len(chars) + 140)),
                  xaxis=dict(title=dict(text="key (attended to)"),
                             **(tick | ({"tickangle": -60} if words else {}))),
                  yaxis=dict(title=dict(text="query (attending)"), autorange="reversed", **tick))
    return go.Figure(go.Heatmap(z=z, x=names, y=names, name="difference" if diverging else "attention weight",
                                **color, colorbar=dict(thickness=12),
                                hovertemplate="query %{y} → key %{x}: %{z:.3f}<extra></extra>"),
                     layout=layout)
