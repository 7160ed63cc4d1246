"""Inside one forward pass: the model diagram, vectors as strips, a head's scores and softmax, the
feed-forward's units, and the formulas of every stage filled in with the model's numbers.

Pure functions of the JSON-ready numbers that ``inference.inside.walkthrough`` returns.
"""
from __future__ import annotations

import html
from typing import Sequence

import numpy as np
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from .common import CHOSEN, KEPT, LAYOUT, code_md, display_token, figure, plotly_text

STAGES = ("embedding", "attention", "feed-forward", "output")


# ------------------------------------------------------------------------------------------- diagram

def model_diagram_html(numbers: dict, layer: int, stage: str = "attention") -> str:
    """The whole model as a row of boxes (embedding → blocks → output head) with the size of what each
    outputs; the block ``layer`` (0-based) and its ``stage`` ("attention" / "feed-forward") are
    highlighted, as are the embedding and output stages when ``stage`` names them."""
    cfg, T = numbers["config"], numbers["config"]["length"]
    on = "background:#fde68a;border-color:#d97706"
    off = "background:#f1f5f9;border-color:#94a3b8"

    def box(title, sub, shape, lit):
        return (f'<div style="border:2px solid;border-radius:6px;padding:4px 8px;{on if lit else off};'
                f'min-width:92px;text-align:center;font-size:12px;line-height:1.3">'
                f'<b>{html.escape(title)}</b><br>{html.escape(sub)}<br>'
                f'<code>{html.escape(shape)}</code></div>')

    arrow = '<div style="align-self:center;font-size:16px;color:#64748b">→</div>'
    D, H, F, V = cfg["d_model"], cfg["n_head"], cfg["d_ff"], cfg["vocab_size"]
    parts = [box("embedding", "token + position", f"{T}×{D}", stage == "embedding")]
    for l in range(cfg["n_layer"]):
        lit_a = l == layer and stage == "attention"
        lit_f = l == layer and stage == "feed-forward"
        parts.append(
            f'<div style="border:1px dashed #64748b;border-radius:8px;padding:3px;display:flex;gap:3px">'
            f'{box(f"block {l + 1}: attention", f"{H} heads × {D // H}", f"{T}×{D}", lit_a)}'
            f'{box("feed-forward", f"{F} units", f"{T}×{D}", lit_f)}</div>')
    parts.append(box("output head", "LN_f → W_out → softmax", f"{T}×{V}", stage == "output"))
    return ('<div style="display:flex;flex-wrap:wrap;gap:4px;align-items:stretch" id="inside-diagram-boxes">'
            + arrow.join(parts) + "</div>")


# ------------------------------------------------------------------------------------------ figures

def vector_strips_figure(rows: Sequence[tuple[str, Sequence[float]]], title: str = "") -> go.Figure:
    """Vectors as coloured strips, one row each (red > 0, blue < 0). Each row has its own colour
    scale (divided by its largest |value|, shown in its label), so small and large vectors both show
    their pattern; hovering shows the true value."""
    width = max(len(v) for _, v in rows)
    z = np.full((len(rows), width), np.nan, dtype=np.float32)
    true = np.full((len(rows), width), np.nan, dtype=np.float32)
    labels = []
    for r, (name, v) in enumerate(rows):
        v = np.asarray(v, dtype=np.float32)
        m = float(np.abs(v).max()) if v.size else 0.0
        true[r, :v.size] = v
        z[r, :v.size] = v / m if m > 0 else v
        labels.append(f"{name}  (max |·| {m:.2g})")
    fig = figure(title, height=70 + 34 * len(rows))
    fig.add_trace(go.Heatmap(z=z, y=labels, customdata=true, name="value / row max (customdata: the value)",
                             colorscale="RdBu", reversescale=True,
                             zmid=0, zmin=-1, zmax=1, showscale=False,
                             hovertemplate="%{y}<br>dim %{x}: %{customdata:.4f}<extra></extra>"))
    fig.update_yaxes(autorange="reversed", tickfont=dict(size=11), type="category")
    fig.update_xaxes(title_text="dimension", showgrid=False)
    fig.update_layout(margin=dict(l=230, r=20, t=40, b=40))
    return fig


def attention_step_figure(chars: Sequence[str], keys: Sequence[int], scores: Sequence[float],
                          weights: Sequence[float], position: int, title: str = "") -> go.Figure:
    """One query's attention: the scores q·k_j/√d_k over the visible characters j (top) and the
    softmax of them, the weights α_j (bottom). The query's own character is orange."""
    ticks = [plotly_text(display_token(chars[j])) for j in keys]
    labels = [f"{j} {t}" for j, t in zip(keys, ticks)]
    colours = [CHOSEN if j == position else KEPT for j in keys]
    fig = make_subplots(rows=2, cols=1, shared_xaxes=True, vertical_spacing=0.14,
                        subplot_titles=("scores q·kⱼ / √d_k", "softmax → weights αⱼ (they sum to 1)"))
    fig.add_trace(go.Bar(x=labels, y=list(scores), name="score", marker_color=colours, showlegend=False,
                         hovertemplate="key %{x}: score %{y:.3f}<extra></extra>"), row=1, col=1)
    fig.add_trace(go.Bar(x=labels, y=list(weights), name="weight", marker_color=colours, showlegend=False,
                         hovertemplate="key %{x}: weight %{y:.4f}<extra></extra>"), row=2, col=1)
    step = max(1, len(keys) // 40)
    fig.update_xaxes(type="category", tickmode="array", tickvals=labels[::step],
                     ticktext=ticks[::step], tickangle=0,
                     tickfont=dict(family="monospace", size=10))
    fig.update_layout(**LAYOUT, height=380, title=dict(text=plotly_text(title), x=0.01), bargap=0.1)
    return fig


def ffn_figure(pre: Sequence[float], act: Sequence[float], firing: int, activation: str,
               title: str = "") -> go.Figure:
    """The feed-forward's d_ff units at one position: pre-activation x·W₁ + b₁ (grey) and after the
    activation (blue), in unit order; ``firing`` units have activation > 0."""
    x = np.arange(len(pre))
    fig = figure(title or f"feed-forward: {firing} of {len(pre)} units fire ({activation} > 0)", height=300)
    fig.add_trace(go.Bar(x=x, y=list(pre), name="pre-activation x·W₁ + b₁", marker_color="#cbd5e1",
                         hovertemplate="unit %{x}: %{y:.3f}<extra>pre</extra>"))
    fig.add_trace(go.Bar(x=x, y=list(act), name=f"{activation}(pre)", marker_color=KEPT,
                         hovertemplate="unit %{x}: %{y:.3f}<extra>after</extra>"))
    fig.update_layout(barmode="overlay", bargap=0, legend=dict(orientation="h", y=1.02, x=0.4))
    fig.update_xaxes(title_text="unit")
    return fig


# ---------------------------------------------------------------------------------------- the text

def _f(x: float) -> str:
    return f"{x:.3f}"


def _vec(v: Sequence[float], n: int = 4) -> str:
    """The first n numbers of a vector, for a formula: [0.120, −0.400, …]."""
    head = ", ".join(f"{x:.2f}" for x in v[:n])
    return f"[{head}{', …' if len(v) > n else ''}]"


def stage_markdown(numbers: dict, layer: int, head: int) -> str:
    """Every stage's formula with this position's numbers, for block ``layer`` and ``head`` (0-based)."""
    t, c = numbers["position"], code_md(numbers["char"])
    cfg = numbers["config"]
    e, L = numbers["embedding"], numbers["layers"][layer]
    hd = L["heads"][head]
    ln1, ln2, fin = L["ln1"], L["ln2"], numbers["final"]
    j_max = int(np.argmax(hd["weights"]))
    j_key = hd["keys"][j_max]
    nxt = numbers["next_char"]
    samp = fin["sampling"]
    mask = (f"the causal mask lets position {t} see positions 0…{t} ({len(hd['keys'])} keys); "
            "later ones get $-\\infty$ before the softmax" if numbers["causal"]
            else "no mask: every position is visible")
    lines = [
        f"#### Position {t}: {c}" + (f" → the model should predict {code_md(nxt)}" if nxt else ""),
        f"**1. Embedding.** $x_0$ = the embedding row of {c} + the position row {t} "
        f"= {_vec(e['token'])} + {_vec(e['position'])} = {_vec(e['x0'])} ({cfg['d_model']} numbers).",
        f"**2. Block {layer + 1}, LayerNorm.** $\\hat x = (x - \\mu)/\\sqrt{{\\sigma^2 + \\epsilon}}$, "
        f"$\\mathrm{{LN}}(x) = \\gamma \\odot \\hat x + \\beta$ with $\\mu$ = {_f(ln1['mean'])}, "
        f"$\\sqrt{{\\sigma^2+\\epsilon}}$ = {_f(ln1['spread'])}.",
        f"**3. Head {head + 1}: query, keys, values.** $q = \\mathrm{{LN}}(x) W^Q_{head + 1}$ = {_vec(hd['q'])}, "
        f"$k$ = {_vec(hd['k'])}, $v$ = {_vec(hd['v'])} ({cfg['d_head']} numbers each).",
        f"**4. Scores and mask.** $s_j = q \\cdot k_j / \\sqrt{{d_k}}$, $\\sqrt{{{cfg['d_head']}}}$ = "
        f"{cfg['d_head'] ** 0.5:.2f}; {mask}.",
        f"**5. Softmax.** $\\alpha_j = e^{{s_j}} / \\sum_i e^{{s_i}}$: the largest weight is "
        f"{hd['weights'][j_max]:.1%} on position {j_key} ({code_md(numbers['text'][j_key])}).",
        f"**6. Weighted sum of values.** $\\mathrm{{head}}_{head + 1} = \\sum_j \\alpha_j v_j$ = {_vec(hd['output'])}.",
        f"**7. Concatenate the {cfg['n_head']} heads and mix them.** $\\mathrm{{Concat}}(\\mathrm{{head}}_1, …)"
        f" W^O + b^O$ = {_vec(L['attn_out'])}; **residual:** $x \\leftarrow x + $ that = {_vec(L['resid_mid'])}.",
        f"**8. Feed-forward.** $\\mathrm{{LN}}$ ($\\mu$ = {_f(ln2['mean'])}, spread {_f(ln2['spread'])}), then "
        f"$\\mathrm{{{cfg['activation']}}}(\\mathrm{{LN}}(x) W_1 + b_1) W_2 + b_2$: **{L['firing']} of "
        f"{cfg['d_ff']} units fire**; output {_vec(L['ff_out'])}; **residual:** $x \\leftarrow x + $ that "
        f"= {_vec(L['resid_post'])}.",
        f"**9. Output.** After block {cfg['n_layer']}: final LayerNorm ($\\mu$ = {_f(fin['ln']['mean'])}, "
        f"spread {_f(fin['ln']['spread'])}), logits $z = \\mathrm{{LN}}_f(x) W_{{out}}^\\top$ ({cfg['vocab_size']}), "
        f"$p = \\mathrm{{softmax}}(z)$: "
        + ", ".join(f"{code_md(ch)} {p:.1%}" for ch, p in fin["top"][:3])
        + (f"; the true next {numbers.get('unit', 'token')} {code_md(nxt)} gets loss $-\\ln p$ = {fin['loss']:.3f} nats."
           if nxt else "."),
        f"**10. Sampling** (as in *Why this token* on the Generate tab): temperature {samp['temperature']:g}, "
        f"top-k {samp['top_k'] or 'off'}, top-p {samp['top_p']:g} keep {samp['kept']} of {cfg['vocab_size']} "
        f"{numbers.get('unit', 'token')}s; {'greedy picks' if samp['temperature'] == 0 else 'a draw (seed 0) picks'} "
        f"{code_md(samp['chosen'])}.",
    ]
    return "\n\n".join(lines)
