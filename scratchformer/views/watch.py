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

from .common import (vocab_label, ATTN_SCALE_STOPS, CHOSEN, KEPT, LAYOUT, SMALL_VOCAB, PlainFigure, display_token,
                     figure_of, plotly_text, to_numpy, token_axis, token_ticks)
from .sampling import OTHERS, others


def _fig(title: str, height: int, data: list, margin: dict, plain: bool = False, **layout):
    """A figure built in one go from plain dicts (plotly's update_* calls cost ~10 ms each; this
    panel is redrawn with every generated character). ``title``: plain text, shown as written.
    ``plain``: a :class:`~.common.PlainFigure` (not checked by plotly.py: 7–20× cheaper), else a ``go.Figure``."""
    lay = {**LAYOUT, "title": dict(text=plotly_text(title), x=0.01), "height": height, "margin": margin, **layout}
    return figure_of(dict(data=data, layout=lay), plain)


def newest_attention_figure(weights: Tensor, chars: Sequence[str], title: str = "",
                            plain: bool = False) -> "go.Figure | PlainFigure":
    """Rows: each head, then their average (1/H Σ_h α_h); columns: the context characters; cell
    (h, j) = how much the newest character's query attends to key j. Every row sums to 1.
    ``plain``: as a :class:`~.common.PlainFigure` (the generate tab's watch panel)."""
    w = to_numpy(weights)
    z = np.concatenate([w, w.mean(0, keepdims=True)], 0).astype(np.float32)
    rows = [f"head {h + 1}" for h in range(w.shape[0])] + ["average"]
    names, ticks = token_axis(chars)
    step = max(1, math.ceil(len(chars) / 40))
    heat = dict(type="heatmap", z=z, x=names, y=rows, colorscale=ATTN_SCALE_STOPS, zmin=0, colorbar=dict(thickness=10),
                hovertemplate="%{y} → key %{x}: %{z:.3f}<extra></extra>")
    return _fig(title, 150 + 26 * len(rows), [heat], dict(l=70, r=20, t=45, b=45), plain,
                xaxis=dict(title=dict(text="context the model saw (keys)"), showgrid=False,
                           **token_ticks(names, ticks, step)),
                yaxis=dict(autorange="reversed", showgrid=False, type="category"))


def next_char_figure(probs: Tensor, texts: Sequence[str], chosen: Optional[int], title: str = "",
                     top: int = 12, step=None, plain: bool = False) -> "go.Figure | PlainFigure":
    """The ``top`` most likely next characters (probabilities of the distribution sampled from), the
    chosen one in orange.

    A vocabulary of more than :data:`~.common.SMALL_VOCAB` tokens also gets the chosen token when it
    is not among the ``top`` (after them) and one bar, "the other k tokens", of height 1 − Σ(shown):
    the bars then sum to 1. With ``step`` (the sampling ``Step`` behind ``probs``, which must be its
    ``probs_filtered``) that bar's hover also says how many of those tokens top-k and top-p cut and
    the probability after temperature they carried. ``plain``: as a :class:`~.common.PlainFigure`.
    """
    if len(probs) > SMALL_VOCAB:   # in float64 (a Step's own precision): the bars sum to 1 within 1e-12
        p64 = probs.detach().cpu().double().numpy() if isinstance(probs, Tensor) else np.asarray(probs, np.float64)
        return _next_token_top_figure(p64, texts, chosen, title, top, step, plain)
    p = to_numpy(probs).astype(np.float64)
    order = np.argsort(-p, kind="stable")[:top]
    labels = [f"{plotly_text(display_token(texts[i]))} " for i in order]
    colours = [CHOSEN if i == chosen else KEPT for i in order]
    bars = dict(type="bar", x=p[order].tolist(), y=labels, orientation="h", marker=dict(color=colours),
                hovertemplate="%{y}: %{x:.3f}<extra></extra>")
    return _fig(title, 120 + 20 * len(order), [bars], dict(l=50, r=20, t=45, b=40), plain,
                yaxis=dict(autorange="reversed", type="category", tickfont=dict(family="monospace")),
                xaxis=dict(title=dict(text="probability"), range=[0, 1]))


def _next_token_top_figure(p: np.ndarray, texts: Sequence[str], chosen: Optional[int], title: str, top: int,
                           step, plain: bool) -> "go.Figure | PlainFigure":
    """:func:`next_char_figure` for a large vocabulary: the top tokens, the chosen one, the others."""
    ids = np.argsort(-p, kind="stable")[:top].tolist()
    if chosen is not None and int(chosen) not in ids:
        ids.append(int(chosen))
    labels = [plotly_text(display_token(texts[i]) if i < len(texts) else str(i)) for i in ids]
    k = len(p) - len(ids)
    rest = max(0.0, 1.0 - float(p[ids].sum()))
    name = f"the other {k:,} tokens"
    tip = f"{name}: p = {rest:.4f} in all"
    if step is not None:
        tip += "<br>" + others(step, ids).cuts
    # categories by id (two tokens may look alike), labelled with the tokens' texts
    cats = [f"id {i}" for i in ids] + ["others"]
    bars = dict(type="bar", x=[*p[ids].tolist(), rest], y=cats, orientation="h",
                marker=dict(color=[CHOSEN if i == chosen else KEPT for i in ids] + [OTHERS]),
                customdata=[f"{lab} (id {i})" for lab, i in zip(labels, ids)] + [tip],
                hovertemplate="%{customdata}: %{x:.3f}<extra></extra>")
    return _fig(title, 120 + 20 * len(cats), [bars], dict(l=90, r=20, t=45, b=40), plain,
                yaxis=dict(autorange="reversed", type="category", tickmode="array", tickvals=cats,
                           ticktext=[f"{vocab_label(texts, i)} "
                                     for i in ids] + [f"other {k:,} "],
                           tickfont=dict(family="monospace")),
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
