"""Embedding tables in two dimensions (PCA), positional encodings, hidden states layer by layer."""
from __future__ import annotations

import html
from typing import Sequence

import numpy as np
import plotly.graph_objects as go
import torch
from plotly.subplots import make_subplots
from torch import Tensor

from .common import (vocab_label, LAYOUT, SMALL_VOCAB, display_token, figure, plotly_text, to_numpy, token_axis,
                     token_ticks)


def pca_2d(x: Tensor) -> tuple[Tensor, Tensor]:
    """Project rows of ``x`` [N, D] onto their first two principal components.

    X_c = X − mean(X);  X_c = U S Vᵀ (torch.linalg.svd);  coordinates = X_c · V[:, :2] = U[:, :2] S[:2].
    Returns (coords [N, 2], fraction of variance each component explains [2]).

    Many more rows than columns (a vocabulary of thousands: N > max(SMALL_VOCAB, 8·D)): the same V
    and S² from the D × D matrix X_cᵀ X_c = V S² Vᵀ (torch.linalg.eigh, float64), not from the
    N × D SVD (GPT-2's 50,257 × 768, one thread: ~0.7 s instead of ~20 s). Each component's sign
    is then chosen so that its entry of largest magnitude is positive (an SVD's sign is arbitrary too).
    """
    xc = x.detach().float().cpu() - x.detach().float().cpu().mean(0, keepdim=True)
    n, d = xc.shape
    if n > max(SMALL_VOCAB, 8 * d):
        var_all, vecs = torch.linalg.eigh((xc.T @ xc).double())      # ascending eigenvalues S²
        var_all, vecs = var_all.flip(0).clamp_min(0), vecs.flip(1)
        top = vecs[:, :2]
        top = top * torch.sign(top.gather(0, top.abs().argmax(0, keepdim=True)))
        coords = xc @ top.float()
        frac = (var_all[:2] / var_all.sum().clamp_min(1e-12)).float()
        return coords, frac
    U, S, Vh = torch.linalg.svd(xc, full_matrices=False)
    coords = xc @ Vh[:2].T
    var = S ** 2
    frac = var[:2] / var.sum().clamp_min(1e-12)
    if coords.shape[1] < 2:  # a 1-D embedding still plots
        coords = torch.cat([coords, torch.zeros(len(coords), 2 - coords.shape[1])], dim=1)
        frac = torch.cat([frac, torch.zeros(2 - len(frac))])
    return coords, frac


def _char_class(c: str) -> str:
    """The class a token is coloured by: of its first character, or of its word (``␣the``: lower case)."""
    c = c if c.isspace() else c.strip()
    if c.isspace():
        return "space / newline"
    if c.isalpha():
        return "vowel" if len(c) == 1 and c.lower() in "aeiou" else ("upper case" if c.isupper() else "lower case")
    if c.isdigit():
        return "digit"
    return "punctuation"


PALETTE = {"vowel": "#c53030", "lower case": "#2b6cb0", "upper case": "#6b46c1", "digit": "#2f855a",
           "punctuation": "#b7791f", "space / newline": "#000000", "special": "#718096"}
LABELLED = (15, 10)     # a large vocabulary: at most one text label per cell of a 15 × 10 grid (150)
WEBGL_POINTS = 5_000    # more points than this are drawn with WebGL (GPT-2's 50,257: SVG would crawl)


def embedding_pca_figure(weight: Tensor, texts: Sequence[str], title: str = "",
                         specials: Sequence[str] = ()) -> go.Figure:
    """The token-embedding table [V, D] projected to 2-D with PCA, each point labelled by its token's
    text (``texts[i]``: token i's; ``specials``: the texts of special tokens such as ``<mask>``),
    coloured by the class of its text (vowel, lower case, … special).

    A vocabulary of more than :data:`~.common.SMALL_VOCAB` tokens has every token as a point (its text
    and id on hover) but text on only a readable subset: the plot as drawn (from the smallest to the
    largest coordinate) is cut into a 15 × 10 grid (:data:`LABELLED`), and in each cell the token
    whose embedding is longest (largest ‖e_i‖, the full D-dimensional norm; ties: the lower id) is
    labelled. So at most 150 labels, at most one per cell: spread over the plot and never piled on
    each other where the points are dense. (A grid over percentiles labels more of a dense centre
    when a few points lie far out, but those labels overlap on screen: tried, and unreadable.)
    The label trace's name says how many are written. A label longer than 16
    characters is cut (:func:`~.common.short_label`); the hover shows the whole text.
    """
    coords, frac = pca_2d(weight)
    V = len(coords)
    labels = [plotly_text(display_token(texts[i]) if i < len(texts) else str(i)) for i in range(V)]
    classes = [_char_class(texts[i]) if i < len(texts) and texts[i] not in specials else "special"
               for i in range(V)]
    large = V > SMALL_VOCAB
    fig = figure(title, height=520 if large else 480)
    xy = coords.numpy()
    scatter = go.Scattergl if V > WEBGL_POINTS else go.Scatter
    for cls, colour in PALETTE.items():
        idx = [i for i, k in enumerate(classes) if k == cls]
        if not idx:
            continue
        if large:   # points only; hover tells the token
            fig.add_trace(scatter(
                x=xy[idx, 0], y=xy[idx, 1], mode="markers", name=cls, text=np.array(labels, dtype=object)[idx],
                marker=dict(color=colour, size=5, opacity=0.6), customdata=np.asarray(idx, dtype=np.int32),
                hovertemplate="%{text} (id %{customdata})<extra></extra>"))
            continue
        fig.add_trace(go.Scatter(
            x=xy[idx, 0], y=xy[idx, 1], mode="markers+text", name=cls,
            text=[labels[i] for i in idx], textposition="top center", marker=dict(color=colour, size=7),
            textfont=dict(color=colour, family="monospace", size=13),
            hovertemplate="%{text} (id %{customdata})<extra></extra>", customdata=idx))
    if large:
        shown = labelled_tokens(xy, weight)
        fig.add_trace(go.Scatter(
            x=xy[shown, 0], y=xy[shown, 1], mode="text", name=f"labels ({len(shown)} of {V:,} tokens)",
            text=[vocab_label(texts, i) for i in shown],
            hovertext=[labels[i] for i in shown], textposition="top center", customdata=shown,
            textfont=dict(color=[PALETTE[classes[i]] for i in shown], family="monospace", size=11),
            hovertemplate="%{hovertext} (id %{customdata})<extra></extra>"))
    fig.update_xaxes(title_text=f"PC 1 ({100 * float(frac[0]):.0f}% of variance)", zeroline=False)
    fig.update_yaxes(title_text=f"PC 2 ({100 * float(frac[1]):.0f}% of variance)", zeroline=False)
    return fig


def labelled_tokens(coords, weight: Tensor, grid: tuple[int, int] = LABELLED) -> list[int]:
    """The ids a large vocabulary's PCA plot writes out: in each cell of a ``grid`` (columns × rows)
    laid over the 2-D ``coords`` [V, 2] (from the smallest to the largest value of each coordinate),
    the token with the largest embedding norm ‖e_i‖ (rows of ``weight`` [V, D]; ties: the lower id).
    In id order."""
    xy = np.asarray(coords, dtype=np.float64)
    norm = weight.detach().float().cpu().norm(dim=-1).numpy()
    cells = []
    for d, n in enumerate(grid):
        lo, hi = xy[:, d].min(), xy[:, d].max()
        cells.append(np.clip(((xy[:, d] - lo) / ((hi - lo) or 1.0) * n).astype(np.int64), 0, n - 1))
    cell = cells[0] * grid[1] + cells[1]
    order = np.lexsort((np.arange(len(xy)), -norm))          # longest first, then the lower id
    _, first = np.unique(cell[order], return_index=True)     # the first token of each cell, in that order
    return sorted(order[first].tolist())


def neighbours_html(label: str, rows: Sequence[tuple[int, str, float]], note: str = "") -> str:
    """A table of a token's nearest neighbours: ``label`` (a heading, plain text) and ``note`` (a
    line under it, plain text) over one row per neighbour ``(id, the token's text, cosine
    similarity)``, as :func:`scratchformer.inference.neighbours.nearest_tokens` finds them, numbered
    from 1. Every text is escaped; a token's text is made visible first (``␣the``)."""
    body = "".join(
        f'<tr><td style="text-align:right">{n}</td><td><code style="white-space:pre">'
        f'{html.escape(display_token(text))}</code></td><td style="text-align:right">{i}</td>'
        f'<td style="text-align:right">{cos:+.3f}</td></tr>'
        for n, (i, text, cos) in enumerate(rows, start=1))
    sub = f'<div style="color:#92400e;margin:2px 0">{html.escape(note)}</div>' if note else ""
    return (f'<div class="neighbours"><div style="font-weight:bold;margin:4px 0">{html.escape(label)}</div>{sub}'
            '<table style="font-size:13px;border-collapse:collapse"><thead><tr><th></th><th>token</th>'
            f"<th>id</th><th>cosine</th></tr></thead><tbody>{body}</tbody></table></div>")


POSITIONS_SHOWN = 256   # a heatmap 360 px tall shows no more rows than this (GPT-2 has 1,024 positions)
DIMS_SHOWN = 256        # … nor columns (GPT-2: 768 dimensions; 1,024 × 768 numbers are 5.6 MB of JSON)


def positional_figure(pe: Tensor, title: str = "") -> go.Figure:
    """Positional encodings [positions, D] as a heatmap: position ↓, dimension →. A larger table is
    cropped (never averaged: pooling would blur the fast sinusoids into nothing) to its first
    :data:`POSITIONS_SHOWN` positions and :data:`DIMS_SHOWN` dimensions, and the title says so."""
    P, D = pe.shape
    z = to_numpy(pe[:POSITIONS_SHOWN, :DIMS_SHOWN])
    if P > POSITIONS_SHOWN or D > DIMS_SHOWN:
        title += (f" (shown: the first {min(P, POSITIONS_SHOWN)} of {P} positions × "
                  f"the first {min(D, DIMS_SHOWN)} of {D} dims)")
    m = float(np.abs(z).max()) or 1.0
    fig = figure(title, height=360)
    fig.add_trace(go.Heatmap(z=z, name="encoding", colorscale="RdBu", zmid=0, zmin=-m, zmax=m, reversescale=True,
                             colorbar=dict(thickness=12),
                             hovertemplate="position %{y}, dim %{x}: %{z:.3f}<extra></extra>"))
    fig.update_xaxes(title_text="dimension", showgrid=False)
    fig.update_yaxes(title_text="position", autorange="reversed", showgrid=False)
    return fig


def hidden_states_figure(hidden: Sequence[Tensor], chars: Sequence[str], title: str = "") -> go.Figure:
    """Layer by layer, for each character: the hidden state's size ‖h_l‖ and how much layer l changed
    it, ‖h_l − h_{l−1}‖ / ‖h_{l−1}‖. ``hidden`` is a list of L+1 tensors [T, D] (index 0 = input)."""
    h = torch.stack([x.detach().float().cpu() for x in hidden])           # [L+1, T, D]
    norms = h.norm(dim=-1)
    change = (h[1:] - h[:-1]).norm(dim=-1) / h[:-1].norm(dim=-1).clamp_min(1e-6)
    names, ticks = token_axis(chars)
    rows = ["input"] + [f"layer {l}" for l in range(1, len(hidden))]
    fig = make_subplots(rows=2, cols=1, vertical_spacing=0.18, subplot_titles=(
        "size of the hidden state ‖h_l‖", "relative change made by layer l: ‖h_l − h_(l−1)‖ / ‖h_(l−1)‖"))
    fig.add_trace(go.Heatmap(z=norms.numpy(), x=names, y=rows, name="size ‖h_l‖", colorscale="Blues",
                             colorbar=dict(thickness=10, y=0.79, len=0.42),
                             hovertemplate="%{y}, %{x}: ‖h‖ = %{z:.2f}<extra></extra>"), row=1, col=1)
    fig.add_trace(go.Heatmap(z=change.numpy(), x=names, y=rows[1:], name="relative change", colorscale="Oranges",
                             colorbar=dict(thickness=10, y=0.21, len=0.42),
                             hovertemplate="%{y}, %{x}: change %{z:.2f}<extra></extra>"), row=2, col=1)
    step = max(1, len(chars) // 64)
    fig.update_xaxes(**token_ticks(names, ticks, step), showgrid=False)
    fig.update_yaxes(autorange="reversed", showgrid=False)
    fig.update_layout(**LAYOUT, title=dict(text=plotly_text(title), x=0.01), height=260 + 40 * len(hidden))
    return fig
