"""Watching a model write: the newest position's attention, its next-character distribution, and
exactly which characters it saw.

Pure functions of numbers: ``weights`` is one attention row per head, [H, T] (row h = how head h
of one layer spread the newest query's attention over the T characters of the context), already
computed by the caller from the model's own traced pass.
"""
from __future__ import annotations

import html
import math
from typing import Optional, Sequence

import numpy as np
import plotly.graph_objects as go
from torch import Tensor

from .common import ATTN_SCALE, CHOSEN, KEPT, LAYOUT, display_token, to_numpy, token_axis, token_ticks


def _fig(title: str, height: int, data: list, margin: dict, **layout) -> go.Figure:
    """A figure built in one go from plain dicts (plotly's update_* calls cost ~10 ms each; this
    panel is redrawn with every generated character)."""
    lay = {**LAYOUT, "title": dict(text=title, x=0.01), "height": height, "margin": margin, **layout}
    return go.Figure(dict(data=data, layout=lay))


def newest_attention_figure(weights: Tensor, chars: Sequence[str], title: str = "") -> go.Figure:
    """Rows: each head, then their average (1/H Σ_h α_h); columns: the context characters; cell
    (h, j) = how much the newest character's query attends to key j. Every row sums to 1."""
    w = to_numpy(weights)
    z = np.concatenate([w, w.mean(0, keepdims=True)], 0).astype(np.float32)
    rows = [f"head {h + 1}" for h in range(w.shape[0])] + ["average"]
    names, ticks = token_axis(chars)
    step = max(1, math.ceil(len(chars) / 40))
    heat = dict(type="heatmap", z=z, x=names, y=rows, colorscale=ATTN_SCALE, zmin=0, colorbar=dict(thickness=10),
                hovertemplate="%{y} → key %{x}: %{z:.3f}<extra></extra>")
    return _fig(title, 150 + 26 * len(rows), [heat], dict(l=70, r=20, t=45, b=45),
                xaxis=dict(title=dict(text="context the model saw (keys)"), showgrid=False,
                           **token_ticks(names, ticks, step)),
                yaxis=dict(autorange="reversed", showgrid=False, type="category"))


def next_char_figure(probs: Tensor, texts: Sequence[str], chosen: Optional[int], title: str = "",
                     top: int = 12) -> go.Figure:
    """The ``top`` most likely next characters (probabilities of the distribution sampled from), the
    chosen one in orange."""
    p = to_numpy(probs).astype(np.float64)
    order = np.argsort(-p, kind="stable")[:top]
    labels = [f"{display_token(texts[i])} " for i in order]
    colours = [CHOSEN if i == chosen else KEPT for i in order]
    bars = dict(type="bar", x=p[order].tolist(), y=labels, orientation="h", marker=dict(color=colours),
                hovertemplate="%{y}: %{x:.3f}<extra></extra>")
    return _fig(title, 120 + 20 * len(order), [bars], dict(l=50, r=20, t=45, b=40),
                yaxis=dict(autorange="reversed", type="category", tickfont=dict(family="monospace")),
                xaxis=dict(title=dict(text="probability"), range=[0, 1]))


def context_html(text: str, start: int, length: int, next_char: Optional[str] = None) -> str:
    """``text`` with ``text[start:start+length]`` (what the model saw) highlighted, the characters
    before it struck through in grey (not seen), then the character it produced."""
    seen = text[start:start + length]
    lead = text[max(0, start - 60):start]

    def esc(s: str) -> str:
        return html.escape("".join(display_token(c) if c == "\n" else c for c in s))

    parts = ['<div class="context-seen" style="font-family:ui-monospace,monospace;font-size:13px;'
             'white-space:pre-wrap;word-break:break-all;line-height:1.5">']
    if start:
        parts.append(f'<span title="not seen" style="color:#999;text-decoration:line-through">…{esc(lead)}</span>')
    parts.append(f'<span title="what the model saw" style="background:#e6f0ff">{esc(seen)}</span>')
    if next_char is not None:
        parts.append(f'<span title="what it wrote" style="background:#fbd38d;font-weight:bold">{esc(next_char)}</span>')
    parts.append("</div>")
    return "".join(parts)
