"""Figures: pure functions from tensors, Traces and sampling Steps to plotly figures (or HTML).

Nothing here runs a model or touches Gradio; every function can be called in a test or a notebook.
Figures are kept light because the app sends them to a browser: attention matrices go out as float32
arrays (plotly encodes numpy arrays compactly), the small per-head heatmaps are average-pooled when
the text is long, and no figure carries per-cell text annotations except where a person reads them.
"""
from __future__ import annotations

import html
import math
import warnings
from typing import Mapping, Sequence

import numpy as np
import plotly.graph_objects as go
import torch
from plotly.subplots import make_subplots
from torch import Tensor

# A minimal look shared by every figure (plotly's default template alone is ~8 KB per figure).
_LAYOUT = dict(template="none", font=dict(family="sans-serif", size=12),
               paper_bgcolor="white", plot_bgcolor="white", margin=dict(l=50, r=20, t=50, b=40))

KEPT, CHOSEN, CUT_K, CUT_P = "#2b6cb0", "#dd6b20", "#a0aec0", "#d69e2e"
ATTN_SCALE = "Viridis"
GRID_MAX_CELLS = 48   # the small per-head heatmaps are pooled to at most this many rows/columns


def display_char(c: str) -> str:
    """A visible label for a character: newline → ⏎, space → ␣, tab → ⇥, other controls → their code.

    (␣, the usual visible-space sign, rather than ␠: common fonts such as DejaVu lack ␠ and draw a box.)
    """
    if c == "\n":
        return "⏎"
    if c == " ":
        return "␣"
    if c == "\t":
        return "⇥"
    if len(c) == 1 and (ord(c) < 32 or ord(c) == 127):
        return f"\\x{ord(c):02x}"
    return c


def _np(x) -> np.ndarray:
    """A float32 numpy copy of a tensor / list (CPU)."""
    if isinstance(x, Tensor):
        return x.detach().float().cpu().numpy()
    return np.asarray(x, dtype=np.float32)


def _figure(title: str, height: int, **layout) -> go.Figure:
    fig = go.Figure()
    fig.update_layout(**_LAYOUT, title=dict(text=title, x=0.01), height=height, **layout)
    return fig


def message_figure(text: str, height: int = 200) -> go.Figure:
    """An empty figure that only says ``text`` (a model that is missing, nothing typed yet…)."""
    fig = _figure("", height)
    fig.add_annotation(text=html.escape(text), showarrow=False, x=0.5, y=0.5, xref="paper",
                       yref="paper", font=dict(size=14, color="#555"))
    fig.update_xaxes(visible=False)
    fig.update_yaxes(visible=False)
    return fig


# ------------------------------------------------------------------------------------ surprise strip

def surprise_bits(logits: Tensor, ids: Sequence[int]) -> list[float]:
    """Per-character surprise in bits: s_t = −log₂ p(x_t | x_<t) for t ≥ 1 (NaN for t = 0).

    ``logits`` [T, V] are the model's scores at each position (position t predicts x_{t+1}).
    """
    ids = torch.as_tensor(list(ids), dtype=torch.long)
    logp = torch.log_softmax(logits.detach().float().cpu(), dim=-1)       # natural log
    bits = [float("nan")]
    if len(ids) > 1:
        nats = -logp[:-1].gather(1, ids[1:, None]).squeeze(1)
        bits += (nats / math.log(2)).tolist()
    return bits


def _surprise_colour(bits: float, max_bits: float = 8.0) -> str:
    """white (0 bits: certain) → red (≥ max_bits)."""
    if bits != bits:  # NaN: the first character has no prediction
        return "#eeeeee"
    a = min(max(bits / max_bits, 0.0), 1.0)
    g = int(255 - 200 * a)
    return f"rgb(255,{g},{g})"


def _diff_colour(d: float, max_bits: float = 4.0) -> str:
    """blue (first model more surprised) ← white → green (second model more surprised)."""
    if d != d:
        return "#eeeeee"
    a = min(abs(d) / max_bits, 1.0)
    shade = int(255 - 170 * a)
    return f"rgb({shade},{shade},255)" if d > 0 else f"rgb({shade},255,{shade})"


def _span(c: str, colour: str, tip: str) -> str:
    label = html.escape(display_char(c) if c in "\n\t" else c)
    br = "<br>" if c == "\n" else ""
    return (f'<span title="{html.escape(tip)}" style="background:{colour};color:#111;'
            f'white-space:pre">{label}</span>{br}')


def surprise_html(chars: Sequence[str], bits: Mapping[str, Sequence[float]]) -> str:
    """The text coloured by each model's surprise, one block per model, then where they disagree.

    Hovering a character shows its surprise in bits. The last block colours
    d_t = s_t(first model) − s_t(second model): blue where the first model was more surprised, green
    where the second was. Returned as HTML (it wraps like text, which a plot would not).
    """
    names = list(bits)
    style = ("font-family:ui-monospace,monospace;font-size:15px;line-height:1.7;"
             "border:1px solid #ddd;border-radius:6px;padding:6px 8px;margin:4px 0 10px 0")
    parts = ['<div class="surprise-strip">']
    for name in names:
        b = list(bits[name])
        finite = [x for x in b if x == x]
        mean = sum(finite) / len(finite) if finite else float("nan")
        parts.append(f"<div><b>{html.escape(name)}</b> — mean {mean:.2f} bits/char "
                     f"(white = expected, red = surprised)</div><div style=\"{style}\">")
        for c, s in zip(chars, b):
            tip = f"{display_char(c)!r}: {s:.2f} bits" if s == s else f"{display_char(c)!r}: first character"
            parts.append(_span(c, _surprise_colour(s), tip))
        parts.append("</div>")
    if len(names) == 2:
        a, b2 = (list(bits[n]) for n in names)
        parts.append(f"<div><b>Disagreement</b> — blue: {html.escape(names[0])} more surprised, "
                     f"green: {html.escape(names[1])} more surprised</div><div style=\"{style}\">")
        for c, x, y in zip(chars, a, b2):
            d = x - y
            tip = (f"{display_char(c)!r}: {names[0]} {x:.2f} − {names[1]} {y:.2f} = {d:+.2f} bits"
                   if d == d else f"{display_char(c)!r}: first character")
            parts.append(_span(c, _diff_colour(d), tip))
        parts.append("</div>")
    parts.append("</div>")
    return "".join(parts)


# ------------------------------------------------------------------------------- next-token choice

def distribution_figure(step, itos: Sequence[str], title: str = "") -> go.Figure:
    """The whole vocabulary's next-token distribution for one sampling ``Step``, in two panels.

    Top: p_T = softmax(z / T) after temperature. Bottom: the distribution actually sampled from after
    top-k and top-p; tokens a filter removed are drawn at their p_T height as ghost bars (grey: cut by
    top-k, amber: cut by top-p) so a person sees what was cut; the chosen token is orange.
    """
    p_t = _np(step.probs_temperature)
    p_f = _np(step.probs_filtered)
    cut_k = np.asarray(step.cut_by_top_k.cpu(), dtype=bool)
    cut_p = np.asarray(step.cut_by_top_p.cpu(), dtype=bool)
    V = len(p_t)
    labels = [display_char(itos[i]) if i < len(itos) else str(i) for i in range(V)]
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
                                 marker=dict(symbol="x-thin", size=7, line=dict(width=2, color=colour)),
                                 customdata=cd[mask], hovertemplate="%{customdata}: cut<extra></extra>",
                                 showlegend=False, legendgroup=name + " (height: p after temperature)"),
                      row=2, col=1)
    fig.update_layout(**_LAYOUT, height=480, barmode="overlay", bargap=0.15,
                      title=dict(text=title, x=0.01),
                      legend=dict(orientation="h", y=-0.12, x=0))
    fig.update_xaxes(tickmode="array", tickvals=x.tolist(), ticktext=labels, tickangle=0,
                     tickfont=dict(size=10, family="monospace"), range=[-0.7, V - 0.3])
    fig.update_yaxes(title_text="probability", rangemode="tozero")
    return fig


# ------------------------------------------------------------------------------------------- attention

def hide_first_key(weights: Tensor) -> Tensor:
    """Attention with the column of the first token blanked out (NaN), *not* renormalised.

    The first token often collects most of the weight (an "attention sink"); blanking it lets the
    colour scale stretch over the remaining weights, which keep their true values.
    """
    w = weights.detach().float().clone()
    w[..., 0] = float("nan")
    return w


def _pool(w: np.ndarray, size: int) -> np.ndarray:
    """Average-pool the last two dims of ``w`` so neither exceeds ``size`` (NaN-aware)."""
    T_q, T_k = w.shape[-2:]
    f = max(math.ceil(T_q / size), math.ceil(T_k / size))
    if f <= 1:
        return w
    pad_q, pad_k = (-T_q) % f, (-T_k) % f
    w = np.pad(w, [(0, 0)] * (w.ndim - 2) + [(0, pad_q), (0, pad_k)], constant_values=np.nan)
    shape = w.shape[:-2] + (w.shape[-2] // f, f, w.shape[-1] // f, f)
    with warnings.catch_warnings():  # an all-NaN block (a hidden first column) is NaN, not a warning
        warnings.simplefilter("ignore", RuntimeWarning)
        return np.nanmean(w.reshape(shape), axis=(-3, -1))


def _token_axis(chars: Sequence[str]) -> tuple[list[str], list[str]]:
    """Unique category names ("12 'e'") for hover, and short tick labels (the characters)."""
    names = [f"{i} {display_char(c)}" for i, c in enumerate(chars)]
    return names, [display_char(c) for c in chars]


def _grid_layout(rows: int, cols: int, col_titles: Sequence[str], row_titles: Sequence[str],
                 gap: float = 0.012) -> dict:
    """A layout with rows × cols small square-ish panels (axes x1/y1 … in row-major order) and their
    titles. Written by hand because ``make_subplots`` takes ~0.3 s for a 6 × 6 grid."""
    layout: dict = {"annotations": []}
    w, h = (1 - gap * (cols - 1)) / cols, (1 - gap * (rows - 1)) / rows
    for r in range(rows):
        for c in range(cols):
            k = r * cols + c + 1
            x0, y1 = c * (w + gap), 1 - r * (h + gap)
            axis = dict(showticklabels=False, showgrid=False, zeroline=False)
            # square panels: y is scaled like x and each panel shrinks inside its cell to fit
            layout[f"xaxis{k}"] = dict(domain=[x0, x0 + w], anchor=f"y{k}", constrain="domain", **axis)
            layout[f"yaxis{k}"] = dict(domain=[y1 - h, y1], anchor=f"x{k}", autorange="reversed",
                                       scaleanchor=f"x{k}", constrain="domain", **axis)
    for c, text in enumerate(col_titles):
        layout["annotations"].append(dict(text=text, x=c * (w + gap) + w / 2, y=1, xref="paper",
                                          yref="paper", yanchor="bottom", showarrow=False))
    for r, text in enumerate(row_titles):
        layout["annotations"].append(dict(text=text, x=-0.005, y=1 - r * (h + gap) - h / 2, xref="paper",
                                          yref="paper", xanchor="right", textangle=-90, showarrow=False))
    return layout


def _token_ticks(names: Sequence[str], ticks: Sequence[str], step: int) -> dict:
    """Axis settings showing every ``step``-th character. type="category": plotly would otherwise
    read names such as "3 9" (position 3, character 9) as the number 39."""
    return dict(type="category", tickmode="array", tickvals=list(names[::step]), ticktext=list(ticks[::step]),
                tickangle=0, tickfont=dict(family="monospace", size=10))


def attention_grid(attn: Sequence[Tensor], hide_first: bool = False, title: str = "") -> go.Figure:
    """Every layer × head as a small heatmap: row = layer, column = head; query ↓, key →.

    ``attn`` is a list of L tensors [H, T, T] (one text). Long texts are average-pooled to at most
    GRID_MAX_CELLS rows and columns per head (each panel is ~100 px wide anyway).
    """
    L, H = len(attn), attn[0].shape[0]
    w = torch.stack([a.detach().float().cpu() for a in attn])        # [L, H, T, T]
    if hide_first:
        w = hide_first_key(w)
    z_all = _pool(w.numpy(), GRID_MAX_CELLS).astype(np.float32)
    zmax = float(np.nanmax(z_all)) if np.isfinite(z_all).any() else 1.0
    fig = go.Figure(layout=_grid_layout(L, H, [f"head {h + 1}" for h in range(H)],
                                        [f"layer {l + 1}" for l in range(L)]))
    fig.add_traces([go.Heatmap(z=z_all[l, h], coloraxis="coloraxis", xaxis=f"x{l * H + h + 1}",
                               yaxis=f"y{l * H + h + 1}",
                               hovertemplate=f"layer {l + 1} head {h + 1}<br>query %{{y}}, key %{{x}}: "
                                             "%{z:.3f}<extra></extra>")
                    for l in range(L) for h in range(H)])
    fig.update_layout(**{**_LAYOUT, "margin": dict(l=20, r=70, t=60, b=10)},
                      title=dict(text=title, x=0.01), height=max(260, 130 * L + 70),
                      coloraxis=dict(colorscale=ATTN_SCALE, cmin=0, cmax=zmax,
                                     colorbar=dict(title="weight", thickness=12)))
    return fig


def attention_heatmap(weights: Tensor, chars: Sequence[str], title: str = "",
                      hide_first: bool = False, diverging: bool = False) -> go.Figure:
    """One attention matrix [T_query, T_key] with the characters on both axes and hover values.

    Row i is the distribution softmax(q_i·kⱼ/√d_k) over keys j. ``diverging`` draws a difference
    (e.g. mask off − mask on) with a red/blue scale centred on 0.
    """
    w = weights.detach().float().cpu()
    if hide_first:
        w = hide_first_key(w)
    names, ticks = _token_axis(chars)
    z = w.numpy().astype(np.float32)
    if diverging:
        m = float(np.nanmax(np.abs(z))) if np.isfinite(z).any() else 1.0
        color = dict(colorscale="RdBu", zmid=0, zmin=-m, zmax=m, reversescale=True)
    else:
        color = dict(colorscale=ATTN_SCALE, zmin=0)
    fig = _figure(title, height=min(760, max(360, 9 * len(chars) + 140)))
    fig.add_trace(go.Heatmap(z=z, x=names, y=names, **color, colorbar=dict(thickness=12),
                             hovertemplate="query %{y} → key %{x}: %{z:.3f}<extra></extra>"))
    step = max(1, math.ceil(len(chars) / 45))   # ~45 labels at most: denser ones overlap
    tick = dict(_token_ticks(names, ticks, step), showgrid=False)
    fig.update_xaxes(title_text="key (attended to)", **tick)
    fig.update_yaxes(title_text="query (attending)", autorange="reversed", **tick)
    fig.update_layout(margin=dict(l=70, r=20, t=50, b=50))
    return fig


# ----------------------------------------------------------------------------------------- embeddings

def pca_2d(x: Tensor) -> tuple[Tensor, Tensor]:
    """Project rows of ``x`` [N, D] onto their first two principal components.

    X_c = X − mean(X);  X_c = U S Vᵀ (torch.linalg.svd);  coordinates = X_c · V[:, :2] = U[:, :2] S[:2].
    Returns (coords [N, 2], fraction of variance each component explains [2]).
    """
    xc = x.detach().float().cpu() - x.detach().float().cpu().mean(0, keepdim=True)
    U, S, Vh = torch.linalg.svd(xc, full_matrices=False)
    coords = xc @ Vh[:2].T
    var = S ** 2
    frac = var[:2] / var.sum().clamp_min(1e-12)
    if coords.shape[1] < 2:  # a 1-D embedding still plots
        coords = torch.cat([coords, torch.zeros(len(coords), 2 - coords.shape[1])], dim=1)
        frac = torch.cat([frac, torch.zeros(2 - len(frac))])
    return coords, frac


def _char_class(c: str) -> str:
    if c.isspace():
        return "space / newline"
    if c.isalpha():
        return "vowel" if c.lower() in "aeiou" else ("upper case" if c.isupper() else "lower case")
    if c.isdigit():
        return "digit"
    return "punctuation"


def embedding_pca_figure(weight: Tensor, itos: Sequence[str], title: str = "") -> go.Figure:
    """The token-embedding table [V, D] projected to 2-D with PCA, each point labelled by its character."""
    coords, frac = pca_2d(weight)
    labels = [display_char(itos[i]) if i < len(itos) else str(i) for i in range(len(coords))]
    classes = [_char_class(itos[i]) if i < len(itos) else "special" for i in range(len(coords))]
    fig = _figure(title, height=480)
    palette = {"vowel": "#c53030", "lower case": "#2b6cb0", "upper case": "#6b46c1", "digit": "#2f855a",
               "punctuation": "#b7791f", "space / newline": "#000000", "special": "#718096"}
    for cls, colour in palette.items():
        idx = [i for i, k in enumerate(classes) if k == cls]
        if not idx:
            continue
        fig.add_trace(go.Scatter(
            x=coords[idx, 0].numpy(), y=coords[idx, 1].numpy(), mode="markers+text", name=cls,
            text=[labels[i] for i in idx], textposition="top center", marker=dict(color=colour, size=7),
            textfont=dict(color=colour, family="monospace", size=13),
            hovertemplate="%{text} (id %{customdata})<extra></extra>", customdata=idx))
    fig.update_xaxes(title_text=f"PC 1 ({100 * float(frac[0]):.0f}% of variance)", zeroline=False)
    fig.update_yaxes(title_text=f"PC 2 ({100 * float(frac[1]):.0f}% of variance)", zeroline=False)
    return fig


def positional_figure(pe: Tensor, title: str = "") -> go.Figure:
    """Positional encodings [positions, D] as a heatmap: position ↓, dimension →."""
    z = _np(pe)
    m = float(np.abs(z).max()) or 1.0
    fig = _figure(title, height=360)
    fig.add_trace(go.Heatmap(z=z, colorscale="RdBu", zmid=0, zmin=-m, zmax=m, reversescale=True,
                             colorbar=dict(thickness=12),
                             hovertemplate="position %{y}, dim %{x}: %{z:.3f}<extra></extra>"))
    fig.update_xaxes(title_text="dimension", showgrid=False)
    fig.update_yaxes(title_text="position", autorange="reversed", showgrid=False)
    return fig


def hidden_states_figure(hidden: Sequence[Tensor], chars: Sequence[str], title: str = "") -> go.Figure:
    """Layer by layer, for each character: the hidden state's size ‖h_l‖ and how much layer l changed
    it, ‖h_l − h_{l−1}‖ / ‖h_{l−1}‖. ``hidden`` is a list of L+1 tensors [T, D] (index 0 = input)."""
    h = torch.stack([x.detach().float().cpu() for x in hidden])           # [L+1, T, D]
    norms = h.norm(dim=-1)
    change = (h[1:] - h[:-1]).norm(dim=-1) / h[:-1].norm(dim=-1).clamp_min(1e-6)
    names, ticks = _token_axis(chars)
    rows = ["input"] + [f"layer {l}" for l in range(1, len(hidden))]
    fig = make_subplots(rows=2, cols=1, vertical_spacing=0.18, subplot_titles=(
        "size of the hidden state ‖h_l‖", "relative change made by layer l: ‖h_l − h_(l−1)‖ / ‖h_(l−1)‖"))
    fig.add_trace(go.Heatmap(z=norms.numpy(), x=names, y=rows, colorscale="Blues",
                             colorbar=dict(thickness=10, y=0.79, len=0.42),
                             hovertemplate="%{y}, %{x}: ‖h‖ = %{z:.2f}<extra></extra>"), row=1, col=1)
    fig.add_trace(go.Heatmap(z=change.numpy(), x=names, y=rows[1:], colorscale="Oranges",
                             colorbar=dict(thickness=10, y=0.21, len=0.42),
                             hovertemplate="%{y}, %{x}: change %{z:.2f}<extra></extra>"), row=2, col=1)
    step = max(1, len(chars) // 64)
    fig.update_xaxes(**_token_ticks(names, ticks, step), showgrid=False)
    fig.update_yaxes(autorange="reversed", showgrid=False)
    fig.update_layout(**_LAYOUT, title=dict(text=title, x=0.01), height=260 + 40 * len(hidden))
    return fig


# ------------------------------------------------------------------------------------------------ LSTM

def top_varying_units(cells: Tensor, n: int) -> list[int]:
    """Indices of the ``n`` units whose tanh(c_t) varies most over the text (largest std over t).

    ``cells`` [T, hidden] for one layer and one text. tanh(c_t) is the cell as the output gate shows
    it (h_t = o_t ⊙ tanh(c_t)); ranking by it rather than by c_t skips units that only drift
    steadily to large values and favours units that switch on and off.
    """
    shown = torch.tanh(cells.detach().float())
    std = shown.std(dim=0, unbiased=False) if cells.shape[0] > 1 else shown.abs()[0]
    n = max(1, min(int(n), cells.shape[1]))
    return torch.argsort(std, descending=True, stable=True)[:n].tolist()


def unit_text_html(chars: Sequence[str], values: Tensor, label: str) -> str:
    """``chars`` with each character's background coloured by one unit's value (e.g. its cell state
    c_t): red for positive, blue for negative, white near 0 — the way to spot a unit that tracks
    quotes or line breaks."""
    v = _np(values)
    m = float(np.abs(v).max()) or 1.0
    spans = []
    for c, x in zip(chars, v):
        a = min(abs(float(x)) / m, 1.0)
        shade = int(255 - 190 * a)
        colour = f"rgb(255,{shade},{shade})" if x > 0 else f"rgb({shade},{shade},255)"
        spans.append(_span(c, colour, f"{display_char(c)!r}: {float(x):+.3f}"))
    return (f'<div style="margin:2px 0"><b>{html.escape(label)}</b> '
            f'<span style="color:#666">(red +, blue −, max |value| {m:.2f})</span></div>'
            '<div style="font-family:ui-monospace,monospace;font-size:14px;line-height:1.6;'
            'border:1px solid #ddd;border-radius:6px;padding:4px 8px;margin-bottom:8px">'
            + "".join(spans) + "</div>")


def lstm_gates_figure(gates: Mapping[str, Tensor], cells: Tensor, chars: Sequence[str],
                      units: Sequence[int], title: str = "") -> go.Figure:
    """Input, forget and output gates and the cell state of the chosen ``units`` over time.

    ``gates[k]`` and ``cells`` are [T, hidden] for one layer; rows of each panel are units, columns
    characters. Gates lie in (0, 1); the cell state c_t is unbounded, so it is drawn as tanh(c_t) in
    (−1, 1) on a red/blue scale.
    """
    names, ticks = _token_axis(chars)
    units = list(units)
    ylabels = [f"unit {u}" for u in units]
    panels = [("i", "input gate i_t (how much to write)"), ("f", "forget gate f_t (how much to keep)"),
              ("o", "output gate o_t (how much to show)")]
    fig = make_subplots(rows=4, cols=1, shared_xaxes=True, vertical_spacing=0.05,
                        subplot_titles=[p[1] for p in panels] + ["cell state, as tanh(c_t) (what o_t can show)"])
    for r, (k, _) in enumerate(panels, start=1):
        fig.add_trace(go.Heatmap(z=_np(gates[k][:, units]).T, x=names, y=ylabels, coloraxis="coloraxis",
                                 hovertemplate=f"{k}: %{{y}}, %{{x}}: %{{z:.2f}}<extra></extra>"),
                      row=r, col=1)
    c = np.tanh(_np(cells[:, units])).T
    fig.add_trace(go.Heatmap(z=c, x=names, y=ylabels, colorscale="RdBu", reversescale=True, zmid=0,
                             zmin=-1, zmax=1, colorbar=dict(thickness=10, len=0.22, y=0.11, title="tanh c"),
                             hovertemplate="tanh(c): %{y}, %{x}: %{z:.2f}<extra></extra>"), row=4, col=1)
    step = max(1, len(chars) // 64)
    fig.update_xaxes(**_token_ticks(names, ticks, step), showgrid=False)
    fig.update_yaxes(autorange="reversed", showgrid=False, tickfont=dict(size=9))
    fig.update_layout(**_LAYOUT, title=dict(text=title, x=0.01), height=300 + 4 * 14 * len(units),
                      coloraxis=dict(colorscale="Greens", cmin=0, cmax=1,
                                     colorbar=dict(title="gate", thickness=10, len=0.7, y=0.64)))
    return fig


# ------------------------------------------------------------------------------------------- models

def learning_curves_figure(curves: Mapping[str, Sequence[Mapping]], title: str = "") -> go.Figure:
    """Training and validation loss against characters seen, one colour per model.

    ``curves[name]`` is a metrics.json "curve": a list of {iter, tokens, train_loss, val_loss, lr}.
    Loss is cross-entropy in nats per character; bits/char = loss / ln 2.
    """
    fig = _figure(title, height=420)
    palette = ["#2b6cb0", "#c53030", "#2f855a", "#6b46c1"]
    for k, (name, curve) in enumerate(curves.items()):
        colour = palette[k % len(palette)]
        pts = [p for p in curve if p.get("tokens") is not None]
        for key, dash in (("train_loss", "dot"), ("val_loss", "solid")):
            xs = [p["tokens"] for p in pts if p.get(key) is not None]
            ys = [p[key] for p in pts if p.get(key) is not None]
            if xs:
                fig.add_trace(go.Scatter(x=xs, y=ys, mode="lines+markers", name=f"{name} {key[:-5]}",
                                         line=dict(color=colour, dash=dash), marker=dict(size=4)))
    if not fig.data:
        return message_figure("No learning curves recorded yet.")
    fig.update_xaxes(title_text="characters seen in training", rangemode="tozero")
    fig.update_yaxes(title_text="loss (nats / char)")
    fig.update_layout(legend=dict(orientation="h", y=-0.2))
    return fig
