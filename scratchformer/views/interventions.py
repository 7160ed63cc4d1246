"""The logit lens grid, intact-vs-ablated comparisons, "what each head is worth", the per-head
description table, and one LSTM unit over the text.

Pure functions of the JSON-ready numbers from ``inference.inside`` / ``interventions`` / ``head_stats``
/ ``lstm_inside``.
"""
from __future__ import annotations

import html
import math
from typing import Sequence

import numpy as np
import plotly.graph_objects as go

from .common import (ATTN_SCALE, CHOSEN, KEPT, code_md, display_token, figure, plotly_text, short_label,
                     token_axis, token_ticks)


def logit_lens_figure(lens: dict, title: str = "") -> go.Figure:
    """Rows: the residual stream after the embedding and after each layer; columns: positions.
    Colour: the probability of the true next character; text: the top prediction."""
    chars = lens["text"]
    names, ticks = token_axis(chars)
    z = np.array([[np.nan if p is None else p for p in row] for row in lens["p_next"]], dtype=np.float32)
    # a cell holds about (plot width / positions) / 6.5 px of monospace text: longer tokens are cut
    # in the cell (short_label) and shown whole on hover
    fits = max(2, int(900 / max(1, len(chars)) / 6.5))
    full = [[display_token(c) for c in row] for row in lens["top"]]
    top = [[plotly_text(short_label(c, fits)) for c in row] for row in full]
    hover = [[[f"{q:.3f}", plotly_text(c)] for q, c in zip(qs, row)] for qs, row in zip(lens["top_prob"], full)]
    fig = figure(title, height=130 + 46 * len(lens["rows"]))
    fig.add_trace(go.Heatmap(
        z=z, x=names, y=lens["rows"], text=top, name="p(true next); text: top prediction", texttemplate="%{text}",
        textfont=dict(size=10, family="monospace"), customdata=hover, colorscale=ATTN_SCALE, zmin=0, zmax=1,
        colorbar=dict(title="p(true next)", thickness=12),
        hovertemplate="%{y}, position %{x}<br>top prediction %{customdata[1]} (p %{customdata[0]})<br>"
                      "p(true next) %{z:.3f}<extra></extra>"))
    step = max(1, math.ceil(len(chars) / 64))
    fig.update_xaxes(title_text="position (the token read)", **token_ticks(names, ticks, step))
    fig.update_yaxes(autorange="reversed", type="category")
    fig.update_layout(margin=dict(l=110, r=20, t=50, b=50))
    return fig


def ablation_figure(cmp: dict, title: str = "") -> go.Figure:
    """Per position: how much more (red, up) or less (blue, down) surprised the ablated model is by
    the next character than the intact one, in bits."""
    chars = cmp["text"]
    names, ticks = token_axis(chars[1:])     # the character predicted
    d = (np.array(cmp["ablated"]["position_loss"]) - np.array(cmp["intact"]["position_loss"])) / math.log(2)
    fig = figure(title or "loss change per character: ablated − intact (bits)", height=300)
    fig.add_trace(go.Bar(x=names, y=d, name="loss change (bits)", marker_color=np.where(d > 0, "#c53030", "#2b6cb0").tolist(),
                         hovertemplate="predicting %{x}: %{y:+.2f} bits<extra></extra>"))
    step = max(1, math.ceil(len(names) / 64))
    fig.update_xaxes(title_text="the token being predicted", **token_ticks(names, ticks, step))
    fig.update_yaxes(title_text="Δ bits", zeroline=True)
    return fig


def head_worth_figure(worth: dict, title: str = "") -> go.Figure:
    """Layers × heads: the loss increase (nats per character) when that head alone is removed."""
    g = np.array(worth["grid"], dtype=np.float32)
    L, H = g.shape
    m = float(np.abs(g).max()) or 1.0
    fig = figure(title or f"what each head is worth: loss increase without it ({worth['mode']} ablation), "
                          f"intact loss {worth['intact_loss']:.3f} nats/char", height=110 + 60 * L)
    fig.add_trace(go.Heatmap(z=g, x=[f"head {h + 1}" for h in range(H)], y=[f"layer {l + 1}" for l in range(L)],
                             name="loss increase (nats/char)",
                             text=[[f"{v:+.3f}" for v in row] for row in g], texttemplate="%{text}",
                             colorscale="RdBu", reversescale=True, zmid=0, zmin=-m, zmax=m,
                             colorbar=dict(title="Δ nats", thickness=12),
                             hovertemplate="%{y} %{x}: %{z:+.4f} nats/char<extra></extra>"))
    fig.update_yaxes(autorange="reversed")
    fig.update_layout(margin=dict(l=70, r=20, t=50, b=30))
    return fig


def comparison_markdown(cmp: dict) -> str:
    """Loss, predictions and continuations of the intact and the ablated model, side by side."""
    a, b = cmp["intact"], cmp["ablated"]
    text = "".join(display_token(c) for c in cmp["text"])
    top_a = "".join(display_token(c) for c in a["top"][:-1])
    top_b = "".join(display_token(c) for c in b["top"][:-1])
    n = len(cmp["text"]) - 1
    cont = lambda s: s.replace("\n", "⏎")   # noqa: E731
    return (f"**Switched off:** {html.escape(cmp['ablated_parts'])}\n\n"
            f"| | intact | ablated |\n|---|---|---|\n"
            f"| loss on the text | {a['loss']:.3f} nats ({a['bits_per_char']:.2f} bits/char) "
            f"| {b['loss']:.3f} nats ({b['bits_per_char']:.2f} bits/char), **{cmp['loss_increase']:+.3f}** |\n"
            f"| top predictions that change | | **{cmp['changed']} of {n}** |\n\n"
            f"Greedy continuation ({len(a['continuation'])} characters after the last {a['context_read']} "
            f"of the text):\n\n```\nintact    {cont(a['continuation'])}\nablated   {cont(b['continuation'])}\n```\n\n"
            f"Most likely next character at each position (under the character it predicts):\n\n"
            f"```\ntext      {text}\nintact     {top_a}\nablated    {top_b}\n```")


def head_table_html(rows: Sequence[dict]) -> str:
    """One row per head: the description and the numbers it came from."""
    pct = lambda v: "—" if v is None or v != v else f"{100 * v:.0f}%"   # noqa: E731
    head = ("<tr><th>head</th><th>what it does</th><th>previous</th><th>first (sink)</th><th>same char earlier</th>"
            "<th>itself</th><th>last 3</th><th>top key char</th><th>mean distance</th><th>entropy</th></tr>")
    body = "".join(
        f"<tr><td style='white-space:nowrap'>L{r['layer']} H{r['head']}</td><td>{html.escape(r['description'])}</td>"
        f"<td>{pct(r['previous'])}</td><td>{pct(r['first'])}</td><td>{pct(r['same'])}</td><td>{pct(r['self'])}</td>"
        f"<td>{pct(r['local'])}</td><td><code>{html.escape(display_token(r['key_char']))}</code> "
        f"{pct(r['key_char_share'])}</td><td>{r['distance']:.1f}</td><td>{r['entropy']:.2f} bits</td></tr>"
        for r in rows)
    return (f'<table class="head-table" style="font-size:13px;border-collapse:collapse">{head}{body}</table>')


def lstm_unit_figure(step: dict, title: str = "") -> go.Figure:
    """One unit over the text: its gates i, f, o, candidate g, cell c_t and output h_t; the chosen
    step is marked."""
    chars = step["text"]
    names, ticks = token_axis(chars)
    fig = figure(title or f"layer {step['layer']}, unit {step['unit']} over the text", height=340)
    styles = {"i": ("#38a169", "dot"), "f": ("#805ad5", "dot"), "o": ("#d69e2e", "dot"), "g": ("#a0aec0", "dash"),
              "c": ("#c53030", "solid"), "h": (KEPT, "solid")}
    for k, (colour, dash) in styles.items():   # c_t is unbounded: its own axis on the right
        fig.add_trace(go.Scatter(x=names, y=step["over_text"][k], name={"c": "c_t (right axis)", "h": "h_t"}.get(k, k),
                                 line=dict(color=colour, dash=dash, width=2 if k in "ch" else 1.3),
                                 yaxis="y2" if k == "c" else "y",
                                 hovertemplate=f"{k} at %{{x}}: %{{y:.3f}}<extra></extra>"))
    fig.update_layout(yaxis=dict(range=[-1.05, 1.05], title_text="gates, g, h_t"),
                      yaxis2=dict(overlaying="y", side="right", title_text="c_t", showgrid=False,
                                  zeroline=False, tickfont=dict(color="#c53030")),
                      margin=dict(l=60, r=60, t=50, b=40))
    fig.add_vline(x=names[step["position"]], line_color=CHOSEN, line_width=2)
    step_n = max(1, math.ceil(len(chars) / 64))
    fig.update_xaxes(**token_ticks(names, ticks, step_n))
    fig.update_layout(legend=dict(orientation="h", y=1.08, x=0.3))
    return fig


def _p(x: float) -> str:
    """A factor in a product: negative numbers in parentheses."""
    return f"({x:.3f})" if x < 0 else f"{x:.3f}"


def lstm_step_markdown(s: dict) -> str:
    """f ⊙ c_{t−1} + i ⊙ g = c_t and o ⊙ tanh(c_t) = h_t with this unit's numbers."""
    c = code_md(s["char"])
    z = s["z"]
    return (f"#### Layer {s['layer']}, unit {s['unit']}, step {s['position']} (reading {c})\n\n"
            f"Gates from $z = W_{{ih}} x_t + b_{{ih}} + W_{{hh}} h_{{t-1}} + b_{{hh}}$ (row {s['unit']}): "
            f"$i = \\sigma({z['i']:.3f}) = {s['i']:.3f}$, $f = \\sigma({z['f']:.3f}) = {s['f']:.3f}$, "
            f"$g = \\tanh({z['g']:.3f}) = {s['g']:.3f}$, $o = \\sigma({z['o']:.3f}) = {s['o']:.3f}$\n\n"
            f"$$c_t = f \\odot c_{{t-1}} + i \\odot g = {_p(s['f'])} \\times {_p(s['c_prev'])} + {_p(s['i'])} "
            f"\\times {_p(s['g'])} = {_p(s['f_c_prev'])} + {_p(s['i_g'])} = {s['c']:.3f}$$\n\n"
            f"$$h_t = o \\odot \\tanh(c_t) = {_p(s['o'])} \\times \\tanh({s['c']:.3f}) = {_p(s['o'])} \\times "
            f"{_p(s['tanh_c'])} = {s['h']:.3f}$$")
