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


def curves_at_step_figure(curves: Mapping[str, Sequence[Mapping]], marks: Sequence[tuple[float, str]],
                          chars_per_token: Mapping[str, float] | None = None) -> go.Figure:
    """:func:`~.curves.learning_curves_figure` of the models' training (bits per character against
    characters seen; ``chars_per_token`` converts a word model's, as there) with a vertical line at
    each of ``marks``: (characters seen, its label), the step or steps shown."""
    fig = learning_curves_figure(curves, title="Loss while training: the step shown is marked",
                                 chars_per_token=chars_per_token)
    if fig.data:
        for i, (x, label) in enumerate(marks):
            fig.add_vline(x=x, line=dict(color=MARK, width=2, dash="dash"))
            fig.add_annotation(x=x, y=1 - 0.08 * i, yref="paper", text=label, showarrow=False,
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


def live_curves_figure(curves: Mapping[str, Sequence[Mapping]], budget_s: float, unit: str = "character") -> go.Figure:
    """A live race's validation loss (nats per token, on the same batches at every report) against
    seconds of each model's own training: both models got the same time, so the curves race.
    ``curves[name]``: [{"seconds", "step", "tokens", "loss"}]."""
    fig = go.Figure()
    palette = {"Transformer": "#2b6cb0", "LSTM": "#c53030"}
    for name, curve in curves.items():
        if not curve:
            continue
        fig.add_trace(go.Scatter(x=[p["seconds"] for p in curve], y=[p["loss"] for p in curve], mode="lines+markers",
                                 name=name, line=dict(color=palette.get(name, "#4a5568")), marker=dict(size=4),
                                 customdata=[[p["step"], p["tokens"]] for p in curve],
                                 hovertemplate=f"{name}: %{{y:.3f}} nats per {unit} after %{{x:.1f}} s "
                                               "(step %{customdata[0]:,}, %{customdata[1]:,} tokens)<extra></extra>"))
    if not fig.data:
        return message_figure("No loss measured yet.")
    fig.update_layout(**LAYOUT, height=320, title=f"Validation loss while they train (each model's own seconds)",
                      legend=dict(orientation="h", y=-0.25))
    fig.update_xaxes(title_text="seconds of its own training", range=[0, max(1.0, budget_s / 2)])
    fig.update_yaxes(title_text=f"loss (nats per {unit})", rangemode="tozero")
    return fig


LIVE_HEAD_PANELS = (("previous", "share on the token just before", [0, 1]),
                    ("entropy", "entropy of its attention (bits)", None))
INDUCTION_PANEL = ("induction", "induction score (repeated − not repeated)", [-0.25, 1])


def live_heads_figure(history: Sequence[Mapping]) -> go.Figure:
    """Each head's numbers at every report of a live race, against the Transformer's seconds of
    training: previous-token share and entropy, and the induction score when the race reports it
    (the repeat task). ``history``: [{"seconds", "step", "heads": per layer, per head: {key: value}}]."""
    if not history or not history[0]["heads"]:
        return message_figure("No attention heads measured yet.")
    first = history[0]["heads"][0][0]
    panels = ((INDUCTION_PANEL,) if "induction" in first else ()) + LIVE_HEAD_PANELS
    n_layer, n_head = len(history[0]["heads"]), len(history[0]["heads"][0])
    fig = make_subplots(rows=1, cols=len(panels), subplot_titles=[t for _, t, _ in panels], horizontal_spacing=0.08)
    palette = ["#2b6cb0", "#c53030", "#2f855a", "#6b46c1", "#b7791f", "#319795", "#d53f8c", "#4a5568"]
    xs = [h["seconds"] for h in history]
    for c, (key, _, yrange) in enumerate(panels, start=1):
        for l in range(n_layer):
            for h in range(n_head):
                ys = [_finite(r["heads"][l][h].get(key)) for r in history]
                fig.add_trace(go.Scatter(x=xs, y=ys, mode="lines", name=f"L{l + 1} H{h + 1}",
                                         legendgroup=f"L{l + 1} H{h + 1}", showlegend=c == 1,
                                         line=dict(color=palette[l % len(palette)], width=1.5,
                                                   dash=["solid", "dot", "dash", "dashdot"][h % 4]),
                                         hovertemplate=f"L{l + 1} H{h + 1} after %{{x:.1f}} s: %{{y:.3f}}<extra></extra>"),
                              row=1, col=c)
        if yrange:
            fig.update_yaxes(range=yrange, row=1, col=c)
    fig.update_xaxes(title_text="seconds of training")
    fig.update_layout(**LAYOUT, height=330, legend=dict(font=dict(size=10)),
                      title="The Transformer's heads while it trains")
    return fig
