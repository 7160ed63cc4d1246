"""Learning curves: validation loss in bits per character against characters seen, so that models
with different tokens (characters, BPE pieces of words) share one scale."""
from __future__ import annotations

import math
from typing import Mapping, Sequence

import plotly.graph_objects as go

from .common import figure, message_figure


def learning_curves_figure(curves: Mapping[str, Sequence[Mapping]], title: str = "",
                           chars_per_token: Mapping[str, float] | None = None) -> go.Figure:
    """Training and validation loss against characters seen, one colour per model.

    ``curves[name]`` is a metrics.json "curve": a list of {iter, tokens, train_loss, val_loss, lr},
    loss in nats per token. With ``c = chars_per_token[name]`` (1 for a character model; the
    validation text's characters per token for a BPE model) the figure draws

        bits per character = loss / c / ln 2,     characters seen = tokens × c
    """
    fig = figure(title, height=420)
    palette = ["#2b6cb0", "#c53030", "#2f855a", "#6b46c1", "#b7791f", "#319795"]
    for k, (name, curve) in enumerate(curves.items()):
        colour = palette[k % len(palette)]
        c = (chars_per_token or {}).get(name) or 1.0
        pts = [p for p in curve if p.get("tokens") is not None]
        for key, dash in (("train_loss", "dot"), ("val_loss", "solid")):
            xs = [p["tokens"] * c for p in pts if p.get(key) is not None]
            ys = [p[key] / c / math.log(2) for p in pts if p.get(key) is not None]
            if xs:
                fig.add_trace(go.Scatter(x=xs, y=ys, mode="lines+markers", name=f"{name} {key[:-5]}",
                                         line=dict(color=colour, dash=dash), marker=dict(size=4)))
    if not fig.data:
        return message_figure("No learning curves recorded yet.")
    fig.update_xaxes(title_text="characters seen in training", rangemode="tozero")
    fig.update_yaxes(title_text="loss (bits / character)")
    fig.update_layout(legend=dict(orientation="h", y=-0.2))
    return fig
