"""Characters against words on one axis of characters: surprise per character and where one query
looks, for a character model and a word-piece model (numbers from :mod:`scratchformer.inference.compare`)."""
from __future__ import annotations

import html
import math
from typing import Sequence

import plotly.graph_objects as go
from plotly.subplots import make_subplots

from .common import LAYOUT, display_token, plotly_text

COLOURS = ("#2b6cb0", "#c53030")   # the character model, the word model


def _token_hover(pieces: Sequence[str]) -> list[str]:
    """For every character: the token it belongs to (so a hover says which token's bits it shares)."""
    out = []
    for p in pieces:
        out += [plotly_text(display_token(p))] * len(p)
    return out


def characters_vs_words_figure(text: str, sides: dict, query_char: int, title: str = "") -> go.Figure:
    """Two panels over the characters of ``text``. Top: −log₂ p per character for each model (a
    token's bits shared evenly by its characters). Bottom: the chosen query's attention per character
    (a key token's weight shared by its characters; each model's row sums to 1). ``sides``: model
    name → :class:`~scratchformer.inference.compare.Side`."""
    labels = [plotly_text(display_token(c)) for c in text]
    x = list(range(len(text)))
    fig = make_subplots(rows=2, cols=1, shared_xaxes=True, vertical_spacing=0.14, subplot_titles=(
        "surprise per character, −log₂ p (a token's bits shared by its characters)",
        plotly_text(f"attention of the query at {display_token(text[query_char])!r} (position {query_char}), "
                    "per character of the keys")))
    for (name, sd), colour in zip(sides.items(), COLOURS):
        hover = _token_hover(sd.pieces)
        n = len(sd.bits)
        fig.add_trace(go.Bar(x=x[:n], y=[None if math.isnan(b) else b for b in sd.bits], name=plotly_text(name),
                             marker_color=colour, opacity=0.75, customdata=hover[:n], legendgroup=name,
                             hovertemplate="token %{customdata}: %{y:.2f} bits per character<extra>"
                                           + plotly_text(name) + "</extra>"), row=1, col=1)
        fig.add_trace(go.Bar(x=x[:n], y=sd.attention, name=plotly_text(name), marker_color=colour, opacity=0.75,
                             customdata=hover[:n], legendgroup=name, showlegend=False,
                             hovertemplate="key token %{customdata}: %{y:.3f} per character<extra>"
                                           + plotly_text(name) + "</extra>"), row=2, col=1)
    fig.add_vline(x=query_char, line=dict(color="#dd6b20", dash="dot"), row=2, col=1)
    step = max(1, len(text) // 64)
    fig.update_xaxes(tickmode="array", tickvals=x[::step], ticktext=labels[::step], tickangle=0, row=2, col=1)
    fig.update_yaxes(title_text="bits", row=1, col=1)
    fig.update_yaxes(title_text="attention", row=2, col=1)
    fig.update_layout(**LAYOUT, height=520, barmode="group", bargap=0.1,
                      title=dict(text=plotly_text(title), x=0.01),
                      legend=dict(orientation="h", y=1.12, x=1, xanchor="right"))
    return fig


def characters_vs_words_caption(text: str, sides: dict, query_char: int, disagreement) -> str:
    """HTML sentences read off the numbers (every piece of the text escaped): each model's bits per
    character and token count, the word where they disagree most, and which key token each query
    attends to most."""
    (a, sa), (b, sb) = list(sides.items())[:2]
    e = html.escape
    out = [f"On this text the <b>{e(a)}</b> spends <b>{sa.bits_per_char:.2f}</b> bits per character "
           f"({len(sa.pieces)} tokens) and the <b>{e(b)}</b> <b>{sb.bits_per_char:.2f}</b> ({len(sb.pieces)} tokens)."]
    if disagreement:
        s, t, bits_a, bits_b = disagreement
        easier = a if bits_a < bits_b else b
        out.append(f"They disagree most on the word <code>{e(text[s:t])}</code>: {bits_a:.1f} bits for the "
                   f"{e(a)}, {bits_b:.1f} for the {e(b)} (easier for the {e(easier)}).")
    for name, sd in ((a, sa), (b, sb)):
        k = sd.strongest_key
        out.append(f"The {e(name)}'s query token <code>{e(display_token(sd.pieces[sd.query_token]))}</code> "
                   f"attends most to <code>{e(display_token(sd.pieces[k]))}</code> "
                   f"(token {k}: {100 * sd.token_attention[k]:.0f}% of its attention).")
    return "<p>" + "</p><p>".join(out) + "</p>"
