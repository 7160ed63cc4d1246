"""One sampling step: the distribution after temperature, and after top-k and top-p, with what each filter cut."""
from __future__ import annotations

from typing import Sequence

import numpy as np
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from .common import CHOSEN, CUT_K, CUT_P, KEPT, LAYOUT, display_token, to_numpy


def distribution_figure(step, texts: Sequence[str], title: str = "") -> go.Figure:
    """The whole vocabulary's next-token distribution for one sampling ``Step``, in two panels.

    Top: p_T = softmax(z / T) after temperature. Bottom: the distribution actually sampled from after
    top-k and top-p; tokens a filter removed are drawn at their p_T height as ghost bars (grey: cut by
    top-k, amber: cut by top-p) so a person sees what was cut; the chosen token is orange.
    """
    p_t = to_numpy(step.probs_temperature)
    p_f = to_numpy(step.probs_filtered)
    cut_k = np.asarray(step.cut_by_top_k.cpu(), dtype=bool)
    cut_p = np.asarray(step.cut_by_top_p.cpu(), dtype=bool)
    V = len(p_t)
    labels = [display_token(texts[i]) if i < len(texts) else str(i) for i in range(V)]
    x = np.arange(V)
    chosen = int(step.token_id)
    kept = ~(cut_k | cut_p)
    kept_not_chosen = kept.copy()
    kept_not_chosen[chosen] = False
    hover = "%{customdata}: %{y:.4f}<extra>%{fullData.name}</extra>"
    cd = np.array(labels, dtype=object)

    temp_label = "T = 0 (greedy; shown at T = 1)" if step.temperature == 0 else f"T = {step.temperature:g}"
    fig = make_subplots(rows=2, cols=1, shared_xaxes=True, vertical_spacing=0.12, subplot_titles=(
        f"after temperature: p = softmax(z / T), {temp_label}",
        f"after top-k = {step.top_k or 'off'} and top-p = {step.top_p:g}: the distribution sampled from"))

    def bars(mask, y, name, colour, row, pattern=None, showlegend=True):
        fig.add_trace(go.Bar(x=x[mask], y=y[mask], name=name, marker_color=colour, customdata=cd[mask], width=0.8,
                             marker_pattern_shape=pattern, hovertemplate=hover,
                             showlegend=showlegend, legendgroup=name), row=row, col=1)

    top_colour = np.where(np.arange(V) == chosen, CHOSEN, KEPT)
    fig.add_trace(go.Bar(x=x, y=p_t, marker_color=top_colour.tolist(), customdata=cd, width=0.8,
                         hovertemplate=hover, name="after temperature", showlegend=False), row=1, col=1)
    bars(kept_not_chosen, p_f, "kept", KEPT, 2)
    bars(np.arange(V) == chosen, p_f, f"chosen: {labels[chosen]!r} (p = {step.token_prob:.3f})", CHOSEN, 2)
    bars(cut_k, p_t, "cut by top-k (height: p after temperature)", CUT_K, 2, pattern="/")
    bars(cut_p, p_t, "cut by top-p (height: p after temperature)", CUT_P, 2, pattern="x")
    for mask, name, colour in ((cut_k, "cut by top-k", CUT_K), (cut_p, "cut by top-p", CUT_P)):
        # a mark on the axis under every cut token: most cut tokens are far too unlikely for a bar
        fig.add_trace(go.Scatter(x=x[mask], y=np.zeros(int(mask.sum())), mode="markers", cliponaxis=False,
                                 name="axis mark: " + name,
                                 marker=dict(symbol="x-thin", size=7, line=dict(width=2, color=colour)),
                                 customdata=cd[mask], hovertemplate="%{customdata}: cut<extra></extra>",
                                 showlegend=False, legendgroup=name + " (height: p after temperature)"),
                      row=2, col=1)
    fig.update_layout(**LAYOUT, height=480, barmode="overlay", bargap=0.15,
                      title=dict(text=title, x=0.01),
                      legend=dict(orientation="h", y=-0.12, x=0))
    fig.update_xaxes(tickmode="array", tickvals=x.tolist(), ticktext=labels, tickangle=0,
                     tickfont=dict(size=10, family="monospace"), range=[-0.7, V - 0.3])
    fig.update_yaxes(title_text="probability", rangemode="tozero")
    return fig
