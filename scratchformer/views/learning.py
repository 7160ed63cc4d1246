"""Watching a model learn: the learning curves with the chosen step marked, and each attention head's
numbers over training with the step marked (numbers from scratchformer/inference/learning.py)."""
from __future__ import annotations

import math
from typing import Mapping, Sequence

import plotly.graph_objects as go
from plotly.subplots import make_subplots

from .common import LAYOUT, message_figure
from .curves import learning_curves_figure

MARK = "#dd6b20"
# the numbers of a head drawn over training: (key in head_numbers, panel title, y range)
HEAD_PANELS = (("previous", "share on the token just before", [0, 1]),
               ("first", "share on the first token", [0, 1]),
               ("entropy", "entropy of its attention (bits)", None))


def curves_at_step_figure(curves: Mapping[str, Sequence[Mapping]], tokens: float, step: int) -> go.Figure:
    """:func:`~.curves.learning_curves_figure` of the models' training (character models: bits per
    character against characters seen) with a vertical line at ``tokens`` seen, labelled ``step``."""
    fig = learning_curves_figure(curves, title="Loss while training: the step shown is marked")
    if fig.data:
        fig.add_vline(x=tokens, line=dict(color=MARK, width=2, dash="dash"))
        fig.add_annotation(x=tokens, y=1, yref="paper", text=f"step {step:,}", showarrow=False,
                           xanchor="left", yanchor="top", font=dict(color=MARK))
        fig.update_layout(height=340)
    return fig


def head_history_figure(steps: Sequence[int], numbers: Sequence, current: int) -> go.Figure:
    """Each head's previous-token share, first-token share and attention entropy at every snapshot:
    one line per head (``numbers[k][layer][head]``: head_numbers at ``steps[k]``); the x axis is the
    snapshot (log-spaced steps, labelled with the step), the snapshot ``current`` is marked."""
    if not numbers or numbers[0] is None:
        return message_figure("This model has no attention heads.")
    n_layer, n_head = len(numbers[0]), len(numbers[0][0])
    fig = make_subplots(rows=1, cols=len(HEAD_PANELS), subplot_titles=[t for _, t, _ in HEAD_PANELS],
                        horizontal_spacing=0.07)
    palette = ["#2b6cb0", "#c53030", "#2f855a", "#6b46c1", "#b7791f", "#319795", "#d53f8c", "#4a5568"]
    xs = list(range(len(steps)))
    for c, (key, _, yrange) in enumerate(HEAD_PANELS, start=1):
        for l in range(n_layer):
            for h in range(n_head):
                ys = [_finite(numbers[k][l][h].get(key)) for k in xs]
                fig.add_trace(go.Scatter(x=xs, y=ys, mode="lines", name=f"L{l + 1} H{h + 1}",
                                         legendgroup=f"L{l + 1} H{h + 1}", showlegend=c == 1,
                                         line=dict(color=palette[l % len(palette)], width=1.5,
                                                   dash=["solid", "dot", "dash", "dashdot"][h % 4]),
                                         hovertemplate=f"L{l + 1} H{h + 1}, step %{{customdata:,}}: %{{y:.3f}}<extra></extra>",
                                         customdata=list(steps)), row=1, col=c)
        fig.add_vline(x=current, line=dict(color=MARK, width=2, dash="dash"), row=1, col=c)
        if yrange:
            fig.update_yaxes(range=yrange, row=1, col=c)
    ticks = dict(tickmode="array", tickvals=xs, ticktext=[f"{s:,}" for s in steps], tickangle=-60,
                 title_text="training step")
    fig.update_xaxes(**ticks)
    fig.update_layout(**LAYOUT, height=360, legend=dict(font=dict(size=10)),
                      title="What each head does, over training (colour: layer; dash: head)")
    return fig


def _finite(v):
    return v if isinstance(v, (int, float)) and math.isfinite(v) else None
