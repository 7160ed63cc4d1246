"""Figures for the encoder-decoder and the fill-in-the-blanks views: pure functions, no model, no Gradio.

Square attention (encoder self-attention, decoder self-attention, BERT, GPT) reuses
:func:`scratchformer.views.attention_heatmap` and :func:`~scratchformer.views.attention_grid`; this
module adds what is rectangular or specific: cross-attention (output characters × source characters),
one decoding step's attention over the source as shaded text, and the table of guesses per blank.
"""
from __future__ import annotations

import html
from typing import Mapping, Optional, Sequence

import numpy as np
import plotly.graph_objects as go
from torch import Tensor

from .common import ATTN_SCALE, display_token, figure, plotly_text

Guesses = Optional[Sequence[tuple[str, float]]]


def token_label(c: str) -> str:
    """A character as a label; special tokens as ⟨eos⟩ (plotly would read "<eos>" as an HTML tag)."""
    if len(c) > 1 and c.startswith("<") and c.endswith(">"):
        return f"⟨{c[1:-1]}⟩"
    return display_token(c)


def _labels(chars: Sequence[str]) -> tuple[list[str], list[str]]:
    """Unique category names ("3 M") for hover, and the characters as tick labels (escaped for plotly)."""
    ticks = [plotly_text(token_label(c)) for c in chars]
    return [f"{i} {t}" for i, t in enumerate(ticks)], ticks


def cross_attention_heatmap(weights: Tensor, out_chars: Sequence[str], src_chars: Sequence[str],
                            title: str = "", highlight: Optional[int] = None) -> go.Figure:
    """Cross-attention [T_out, T_src]: row t is where output step t looked in the source.

    ``highlight`` outlines one row (a decoding step).
    """
    z = weights.detach().float().cpu().numpy().astype(np.float32)
    rows, row_ticks = _labels(out_chars)
    cols, col_ticks = _labels(src_chars)
    fig = figure(title, height=max(300, 22 * len(out_chars) + 160))
    fig.add_trace(go.Heatmap(z=z, x=cols, y=rows, name="cross-attention weight", colorscale=ATTN_SCALE, zmin=0,
                             colorbar=dict(thickness=12),
                             hovertemplate="output %{y} looked at source %{x}: %{z:.3f}<extra></extra>"))
    # type="category": plotly would otherwise read names such as "3 9" as the number 39
    tick = dict(type="category", tickmode="array", tickangle=0, tickfont=dict(family="monospace", size=12),
                showgrid=False)
    fig.update_xaxes(title_text="source character (key)", tickvals=cols, ticktext=col_ticks, **tick)
    fig.update_yaxes(title_text="output step (query)", tickvals=rows, ticktext=row_ticks,
                     autorange="reversed", **tick)
    if highlight is not None and 0 <= highlight < len(out_chars):
        fig.add_shape(type="rect", xref="paper", x0=0, x1=1, yref="y", y0=highlight - 0.5, y1=highlight + 0.5,
                      line=dict(color="#dd6b20", width=3))
    fig.update_layout(margin=dict(l=70, r=20, t=50, b=50))
    return fig


def source_focus_html(src_chars: Sequence[str], weights: Sequence[float]) -> str:
    """The source text with each character shaded by how much attention it got (darker = more);
    the weight shows on hover. Shading is relative to the largest weight."""
    w = [float(x) for x in weights]
    top = max(w) if w and max(w) > 0 else 1.0
    spans = []
    for c, x in zip(src_chars, w):
        alpha = x / top
        fg = "white" if alpha > 0.55 else "black"
        spans.append(f'<span title="{x:.3f}" style="background: rgba(43,108,176,{alpha:.2f}); color: {fg}; '
                     f'padding: 2px 1px; border-radius: 2px">{html.escape(token_label(c))}</span>')
    return ('<div style="font-family: ui-monospace, monospace; font-size: 20px; line-height: 1.8">'
            + "".join(spans) + "</div>")


def _cell(guesses: Guesses, n: int) -> str:
    if guesses is None:
        return "<td><i>no left context</i></td>"
    items = [f"<code>{html.escape(token_label(c))}</code>&nbsp;{p:.2f}" for c, p in list(guesses)[:n]]
    return "<td>" + " · ".join(items) + "</td>"


def blanks_table_html(text: str, columns: Mapping[str, Sequence[Guesses]], n: int = 5, blank: str = "_",
                      around: int = 8) -> str:
    """One row per blank of ``text`` (its number and up to ``around`` characters each side of it), one
    column per model: the model's top guesses with their probabilities."""
    head = "".join(f"<th>{html.escape(name)}</th>" for name in columns)
    rows = []
    positions = [i for i, c in enumerate(text) if c == blank]
    for k, pos in enumerate(positions):
        left = "".join(display_token(c) for c in text[max(0, pos - around):pos])
        right = "".join(display_token(c) for c in text[pos + 1:pos + 1 + around])
        where = f"<code>{html.escape(left)}<b>{html.escape(blank)}</b>{html.escape(right)}</code>"
        cells = "".join(_cell(guesses[k], n) for guesses in columns.values())
        rows.append(f"<tr><td>blank {k + 1}: {where}</td>{cells}</tr>")
    return (f'<table class="blanks" style="font-size: 14px"><thead><tr><th></th>{head}</tr></thead>'
            f"<tbody>{''.join(rows)}</tbody></table>")


def blank_bars_figure(columns: Mapping[str, Sequence[Guesses]], blank: int, title: str = "") -> go.Figure:
    """For one blank: each model's top guesses as horizontal bars, side by side."""
    fig = figure(title, height=300)
    for name, guesses in columns.items():
        g = guesses[blank]
        if g is None:
            continue
        chars = [plotly_text(token_label(c)) for c, _ in g][::-1]
        fig.add_trace(go.Bar(x=[p for _, p in g][::-1], y=[f"{c}" for c in chars], orientation="h",
                             name=plotly_text(name), hovertemplate="%{y}: %{x:.3f}<extra>" + plotly_text(name) + "</extra>"))
    fig.update_layout(barmode="group", xaxis=dict(title_text="probability", range=[0, 1]),
                      yaxis=dict(type="category", tickfont=dict(family="monospace", size=13)),
                      legend=dict(orientation="h", x=0, y=1.0, yanchor="bottom"),
                      margin=dict(l=50, r=20, t=80, b=40))
    return fig
