"""What every figure shares: the look, labels for characters, a message figure.

The views are pure functions from tensors, Traces and sampling Steps to plotly figures (or HTML), one
module per topic. Nothing in them runs a model or touches Gradio; every function can be called in a
test or a notebook. Figures are kept light because the app sends them to a browser: attention matrices go out as float32
arrays (plotly encodes numpy arrays compactly), the small per-head heatmaps are average-pooled when
the text is long, and no figure carries per-cell text annotations except where a person reads them.
"""
from __future__ import annotations

import html
from typing import Sequence

import numpy as np
import plotly.graph_objects as go
from torch import Tensor

from ..tokenizers.base import display_token

# A minimal look shared by every figure (plotly's default template alone is ~8 KB per figure).
# ticklabeloverflow "allow": otherwise plotly measures every tick label once drawn, to hide those
# past the figure's edge (none are: the margins hold them). Our axes carry a label per character;
# that measuring was 0.15 s of the page's first drawing (2-core machine, benchmarks/live.py).
_AXIS = dict(ticklabeloverflow="allow")
LAYOUT = dict(template=dict(layout=dict(xaxis=_AXIS, yaxis=_AXIS)), font=dict(family="sans-serif", size=12),
              paper_bgcolor="white", plot_bgcolor="white", margin=dict(l=50, r=20, t=50, b=40))

KEPT, CHOSEN, CUT_K, CUT_P = "#2b6cb0", "#dd6b20", "#a0aec0", "#d69e2e"
ATTN_SCALE = "Viridis"
GRID_MAX_CELLS = 48   # the small per-head heatmaps are pooled to at most this many rows/columns


def to_numpy(x) -> np.ndarray:
    """A float32 numpy copy of a tensor / list (CPU)."""
    if isinstance(x, Tensor):
        return x.detach().float().cpu().numpy()
    return np.asarray(x, dtype=np.float32)


def figure(title: str, height: int, **layout) -> go.Figure:
    """An empty figure with the shared look, a title and a height in pixels."""
    fig = go.Figure()
    fig.update_layout(**LAYOUT, title=dict(text=title, x=0.01), height=height, **layout)
    return fig


def export_name(fig: go.Figure, name: str) -> go.Figure:
    """Name ``fig`` for downloads (``layout.meta.export``): the page saves it as ``name``.png / .svg /
    .csv / .json (e.g. ``attention_L2H3_causal``). Returns ``fig``."""
    fig.layout.meta = {"export": name}
    return fig


def message_figure(text: str, height: int = 200) -> go.Figure:
    """An empty figure that only says ``text`` (a model that is missing, nothing typed yet…)."""
    fig = figure("", height)
    fig.add_annotation(text=html.escape(text), showarrow=False, x=0.5, y=0.5, xref="paper",
                       yref="paper", font=dict(size=14, color="#555"))
    fig.update_xaxes(visible=False)
    fig.update_yaxes(visible=False)
    return fig


# ----------------------------------------------------------------------------- characters on an axis

def token_axis(chars: Sequence[str]) -> tuple[list[str], list[str]]:
    """Unique category names ("12 'e'") for hover, and short tick labels (the characters)."""
    names = [f"{i} {display_token(c)}" for i, c in enumerate(chars)]
    return names, [display_token(c) for c in chars]


def token_ticks(names: Sequence[str], ticks: Sequence[str], step: int) -> dict:
    """Axis settings showing every ``step``-th character. type="category": plotly would otherwise
    read names such as "3 9" (position 3, character 9) as the number 39."""
    return dict(type="category", tickmode="array", tickvals=list(names[::step]), ticktext=list(ticks[::step]),
                tickangle=0, tickfont=dict(family="monospace", size=10))


def char_span(c: str, colour: str, tip: str) -> str:
    """One token's text (a character, or a piece of a word) in a coloured text, with a tooltip; its
    spaces kept, line breaks shown (⏎) and kept as <br>."""
    label = html.escape(c.replace("\n", "⏎").replace("\t", "⇥"))
    br = "<br>" if c.endswith("\n") else ""
    return (f'<span title="{html.escape(tip)}" style="background:{colour};color:#111;'
            f'white-space:pre">{label}</span>{br}')
