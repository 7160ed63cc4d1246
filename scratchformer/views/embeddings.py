"""Embedding tables in two dimensions (PCA), positional encodings, hidden states layer by layer."""
from __future__ import annotations

from typing import Sequence

import numpy as np
import plotly.graph_objects as go
import torch
from plotly.subplots import make_subplots
from torch import Tensor

from .common import LAYOUT, display_token, figure, to_numpy, token_axis, token_ticks


def pca_2d(x: Tensor) -> tuple[Tensor, Tensor]:
    """Project rows of ``x`` [N, D] onto their first two principal components.

    X_c = X − mean(X);  X_c = U S Vᵀ (torch.linalg.svd);  coordinates = X_c · V[:, :2] = U[:, :2] S[:2].
    Returns (coords [N, 2], fraction of variance each component explains [2]).
    """
    xc = x.detach().float().cpu() - x.detach().float().cpu().mean(0, keepdim=True)
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


def embedding_pca_figure(weight: Tensor, texts: Sequence[str], title: str = "",
                         specials: Sequence[str] = ()) -> go.Figure:
    """The token-embedding table [V, D] projected to 2-D with PCA, each point labelled by its token's
    text (``texts[i]``: token i's; ``specials``: the texts of special tokens such as ``<mask>``)."""
    coords, frac = pca_2d(weight)
    labels = [display_token(texts[i]) if i < len(texts) else str(i) for i in range(len(coords))]
    classes = [_char_class(texts[i]) if i < len(texts) and texts[i] not in specials else "special"
               for i in range(len(coords))]
    fig = figure(title, height=480)
    palette = {"vowel": "#c53030", "lower case": "#2b6cb0", "upper case": "#6b46c1", "digit": "#2f855a",
               "punctuation": "#b7791f", "space / newline": "#000000", "special": "#718096"}
    for cls, colour in palette.items():
        idx = [i for i, k in enumerate(classes) if k == cls]
        if not idx:
            continue
        fig.add_trace(go.Scatter(
            x=coords[idx, 0].numpy(), y=coords[idx, 1].numpy(), mode="markers+text", name=cls,
            text=[labels[i] for i in idx], textposition="top center", marker=dict(color=colour, size=7),
            textfont=dict(color=colour, family="monospace", size=13),
            hovertemplate="%{text} (id %{customdata})<extra></extra>", customdata=idx))
    fig.update_xaxes(title_text=f"PC 1 ({100 * float(frac[0]):.0f}% of variance)", zeroline=False)
    fig.update_yaxes(title_text=f"PC 2 ({100 * float(frac[1]):.0f}% of variance)", zeroline=False)
    return fig


def positional_figure(pe: Tensor, title: str = "") -> go.Figure:
    """Positional encodings [positions, D] as a heatmap: position ↓, dimension →."""
    z = to_numpy(pe)
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
    fig.update_layout(**LAYOUT, title=dict(text=title, x=0.01), height=260 + 40 * len(hidden))
    return fig
