"""The app's "look inside" tabs: attention, the LSTM's gates, the models (embeddings: embeddings_tab.py).

Callbacks are plain functions: each takes the read-only ModelBank and plain values (text, numbers,
booleans) and returns figures and Markdown; the ``build_*_tab`` functions at the end wire them to
widgets. A person's mistakes
raise ValueError naming the setting; notes about the input (cropped, characters replaced) come back
as the first output.

The inference code (torch) is imported inside the callbacks that use it: the page is laid out and
served before torch is imported (see :mod:`.blocks`).
"""
from __future__ import annotations

import html
import math
from pathlib import Path

from typing import NamedTuple

import gradio as gr

from .. import views
from .bank import LANGUAGE_MODELS, LSTM_NAME, TRANSFORMER, ModelBank, describe_model
from .arrival import on_arrival
from .events import bound, live_triggers, md, model_event, model_missing, model_then
from .links import link_row
from .view import Control, View, declare, paired, pair_controls, pair_triggers
from .policy import MAX_ANALYSIS_CHARS, MAX_TEXT_BOX_CHARS, as_int, check_index, context_limit, md_text, notes_md, prepare_text

DEFAULT_TEXT = "JULIET:\nO Romeo, Romeo! wherefore art thou Romeo?\nDeny thy father and refuse thy name;"


def _prepared(bank: ModelBank, name: str, text):
    loaded = bank.get(name)
    prep = prepare_text(text, loaded.tokenizer, context_limit(loaded.model, MAX_ANALYSIS_CHARS))
    return loaded, prep, notes_md(prep.notes())


def _traced(loaded, ids, causal=None):
    from ..inference.traced import run_traced
    return run_traced(loaded.model, loaded.tokenizer, ids, causal)


def top1_text(logits, tokenizer) -> list[str]:
    """The most likely next token at every position (``logits`` [T, V]), each as its visible label."""
    return [tokenizer.label(i) for i in logits.argmax(-1).tolist()]


# ------------------------------------------------------------------------------------------ attention

def _attention_figures(traced, chars, layer: int, head: int, hide_first: bool, causal: bool):
    attn = [a[0] for a in traced.trace.self_attn]          # L × [H, T, T]
    mask = "causal mask on" if causal else "causal mask OFF"
    tag = _mask_tag(causal, hide_first)
    grid = _grid_figure(attn, layer, hide_first, mask, tag)
    head_fig = _head_figure(traced, layer, head, hide_first, causal)
    avg = views.attention_heatmap(attn[layer].mean(0), chars, hide_first=hide_first,
                                  title=f"layer {layer + 1}, average over heads ({mask})")
    return grid, head_fig, views.export_name(avg, f"attention_L{layer + 1}_average_{tag}")


def _grid_figure(attn, layer: int, hide_first: bool, mask: str, tag: str):
    """The grid of every head, of every layer, or of the page of layers that holds ``layer`` (a deep
    model: :func:`~scratchformer.views.attention.grid_page`)."""
    page = views.grid_page(len(attn), layer)
    if len(page) == len(attn):
        title, name = f"every layer × head ({mask})", f"attention_grid_{tag}"
    else:
        title = (f"layers {page.start + 1}–{page.stop} of {len(attn)} × every head ({mask}; "
                 f"the layer slider turns the page)")
        name = f"attention_grid_L{page.start + 1}-{page.stop}_{tag}"
    return views.export_name(views.attention_grid(attn[page.start:page.stop], hide_first, title=title,
                                                  first_layer=page.start), name)


def _mask_tag(causal: bool, hide_first: bool) -> str:
    """"causal" / "nomask", and "_nofirst" when the first token's column is hidden: for file names."""
    return ("causal" if causal else "nomask") + ("_nofirst" if hide_first else "")


def _head_figure(traced, layer: int, head: int, hide_first: bool, causal: bool):
    mask = "causal mask on" if causal else "causal mask OFF"
    fig = views.attention_heatmap(traced.trace.self_attn[layer][0, head], traced.pieces, hide_first=hide_first,
                                  title=f"layer {layer + 1}, head {head + 1} ({mask})")
    return views.export_name(fig, f"attention_L{layer + 1}H{head + 1}_{_mask_tag(causal, hide_first)}")


def _diff_figure(on, off, chars, layer: int, head: int):
    d = off.trace.self_attn[layer][0, head] - on.trace.self_attn[layer][0, head]
    fig = views.attention_heatmap(d, chars, diverging=True,
                                  title=f"layer {layer + 1}, head {head + 1}: mask off − mask on "
                                        "(red: more attention without the mask)")
    return views.export_name(fig, f"attention_L{layer + 1}H{head + 1}_nomask_minus_causal")


def _attention_inputs(bank, text, layer, head):
    loaded, prep, note = _prepared(bank, TRANSFORMER, text)
    cfg = loaded.config
    return loaded, prep, note, check_index(layer, "layer", cfg.n_layer), check_index(head, "head", cfg.n_head)


def _comparison(loaded, prep, on, off) -> str:
    """The loss with the mask on and off, and the top prediction at each position both ways: a table
    whose cells are escaped HTML (a text holding ``` or <img> stays text)."""
    tok = loaded.tokenizer
    pieces = on.pieces
    p_on, p_off = top1_text(on.trace.logits[0], tok), top1_text(off.trace.logits[0], tok)
    changed = sum(a != b for a, b in zip(p_on, p_off))
    unit = tok.unit

    def row(name: str, cells, mark=None) -> str:
        tds = "".join(f'<td style="{"background:#fed7d7;" if mark and mark[k] else ""}padding:0 3px">'
                      f"{html.escape(c).replace('`', '&#96;')}</td>" for k, c in enumerate(cells))
        return f'<tr><th style="text-align:left;padding-right:6px">{name}</th>{tds}</tr>'
    differs = [a != b for a, b in zip(p_on, p_off)]
    # the prediction made at position t is for position t+1: shifted one place right, under it
    table = (f'<div style="overflow-x:auto"><table style="font-family:ui-monospace,monospace;font-size:12px;'
             f'border-collapse:collapse">{row("text", [views.display_token(p) for p in pieces])}'
             f'{row("mask on", ["", *p_on[:-1]], [False, *differs[:-1]])}'
             f'{row("mask off", ["", *p_off[:-1]], [False, *differs[:-1]])}</table></div>')
    return (f"**Loss on this text:** mask on {on.bits_per_char:.2f} bits/char, mask off "
            f"{off.bits_per_char:.2f} bits/char. With the mask off every position also sees the "
            f"{unit}s after it, which this model never saw in training. "
            f"**{changed} of {len(p_on)}** top predictions change (red).\n\n"
            f"Most likely next {unit} at each position (shifted one place right, under the {unit} "
            f"it predicts):\n\n{table}")


class AttentionViews(NamedTuple):
    """Everything in the attention tab, in the order of its outputs."""

    notes: str
    grid: object
    head: object
    average: object
    diff: object
    comparison: str


class AttentionMatrices(NamedTuple):
    grid: object
    head: object
    average: object


class AttentionHead(NamedTuple):
    head: object
    diff: object


def attention(bank: ModelBank, text, causal, layer, head, hide_first) -> AttentionViews:
    """Everything in the attention tab for ``text`` (:class:`AttentionViews`).

    Runs the Transformer twice, with the causal mask on and off, so the diff and the comparison
    of predictions and loss are always at hand; the matrices shown follow ``causal``.
    """
    loaded, prep, note, l, h = _attention_inputs(bank, text, layer, head)
    on = _traced(loaded, prep.ids, causal=True)
    off = _traced(loaded, prep.ids, causal=False)
    chars = on.pieces
    grid, head_fig, avg = _attention_figures(on if causal else off, chars, l, h, bool(hide_first), bool(causal))
    return AttentionViews(note, grid, head_fig, avg, _diff_figure(on, off, chars, l, h),
                          _comparison(loaded, prep, on, off))


class AttentionTyped(NamedTuple):
    """What typing redraws first: the notes and the chosen head (the rest: :class:`AttentionRest`)."""

    notes: str
    head: object


class AttentionRest(NamedTuple):
    grid: object
    average: object
    diff: object
    comparison: str


def attention_typed(bank: ModelBank, text, causal, layer, head, hide_first) -> AttentionTyped:
    """While typing, first: the notes and the chosen head only (one pass, one small figure), so the
    heatmap follows the keys; :func:`attention_rest` draws the other views right after."""
    loaded, prep, note, l, h = _attention_inputs(bank, text, layer, head)
    traced = _traced(loaded, prep.ids, causal=bool(causal))
    return AttentionTyped(note, _head_figure(traced, l, h, bool(hide_first), bool(causal)))


def attention_rest(bank: ModelBank, text, causal, layer, head, hide_first) -> AttentionRest:
    """After :func:`attention_typed`, once typing pauses: the grid, the average, the diff and the
    comparison. ``text`` None: typing went on (see :data:`WHEN_TYPING_PAUSES`), nothing to redraw."""
    if text is None:
        return AttentionRest(*[gr.skip()] * len(AttentionRest._fields))
    v = attention(bank, text, causal, layer, head, hide_first)
    return AttentionRest(v.grid, v.average, v.diff, v.comparison)


# Runs in the page before attention_rest: wait until the text has stayed the same for a moment;
# when it has changed meanwhile, send None (a newer keystroke's views are on their way). While a
# person types, the page only redraws the chosen head (one small plot), and the four other plots,
# the costly ones in the browser, once typing pauses.
WHEN_TYPING_PAUSES = """async (text, ...rest) => {
    await new Promise(done => setTimeout(done, 400));
    const box = document.querySelector('#attn-text textarea');
    return [box && box.value !== text ? null : text, ...rest];
}"""


def attention_view(bank: ModelBank, text, causal, layer, head, hide_first) -> AttentionMatrices:
    """After the causal toggle or the first-token option: (grid, head, average) only."""
    loaded, prep, _, l, h = _attention_inputs(bank, text, layer, head)
    traced = _traced(loaded, prep.ids, causal=bool(causal))
    return AttentionMatrices(*_attention_figures(traced, traced.pieces, l, h, bool(hide_first), bool(causal)))


class AttentionLayer(NamedTuple):
    grid: object
    average: object


def attention_layer(bank: ModelBank, text, causal, layer, head, hide_first) -> AttentionLayer:
    """After moving the layer slider: the layer's average over heads, and the grid's page of layers
    for a model deeper than one page (:func:`~scratchformer.views.attention.grid_page`; the grid is
    left as it is otherwise)."""
    loaded, prep, _, l, h = _attention_inputs(bank, text, layer, head)
    traced = _traced(loaded, prep.ids, causal=bool(causal))
    grid, _, avg = _attention_figures(traced, traced.pieces, l, h, bool(hide_first), bool(causal))
    return AttentionLayer(grid if loaded.config.n_layer > views.GRID_LAYERS else gr.skip(), avg)


def attention_head(bank: ModelBank, text, causal, layer, head, hide_first) -> AttentionHead:
    """After moving the layer or head slider: (the big head, its mask-off − mask-on diff) only."""
    loaded, prep, _, l, h = _attention_inputs(bank, text, layer, head)
    on = _traced(loaded, prep.ids, causal=True)
    off = _traced(loaded, prep.ids, causal=False)
    head_fig = _head_figure(on if causal else off, l, h, bool(hide_first), bool(causal))
    return AttentionHead(head_fig, _diff_figure(on, off, on.pieces, l, h))


ATTENTION_INTRO = r"""
Each head compares every character's query $q_i$ with the keys $k_j$ of the characters it may see
and spreads one unit of attention over them; row $i$ of a heatmap is that distribution:
$$\alpha_{ij} = \mathrm{softmax}_j\!\left(\frac{q_i \cdot k_j}{\sqrt{d_k}} + M_{ij}\right)$$
The causal mask $M_{ij} = -\infty$ for $j > i$ hides the future, so each heatmap is lower-triangular.
Turn it off to see what the model does when it can also look ahead (the predictions and the loss
change below). *Hide the first token* blanks its column (not renormalised) so the colour scale
stretches over the other weights: the first character often soaks up attention heads have nowhere
else to put.
"""


# ----------------------------------------------------------------------------------------- embeddings

# ------------------------------------------------------------------------------------------------ LSTM

def lstm_inside(bank: ModelBank, text, layer, n_units):
    """The LSTM's gates and cells for ``text``: (notes, heatmaps, the top units' text colouring)."""
    import torch
    loaded, prep, note = _prepared(bank, LSTM_NAME, text)
    l = check_index(layer, "layer", loaded.config.n_layer)
    n = as_int(n_units, "units", 1, loaded.config.hidden)
    traced = _traced(loaded, prep.ids)
    gates = {k: v[l, 0] for k, v in traced.trace.gates.items()}       # [T, hidden]
    cells = traced.trace.cell_states[l, 0]
    units = views.top_varying_units(cells, n)
    fig = views.lstm_gates_figure(gates, cells, traced.pieces, units,
                                  title=f"LSTM layer {l + 1}: the {n} units whose tanh(c_t) varies most")
    views.export_name(fig, f"lstm_gates_L{l + 1}_top{n}")
    units_html = "".join(views.unit_text_html(traced.pieces, torch.tanh(cells[:, u]), f"unit {u}: tanh(c_t)")
                         for u in units[:6])
    return note, fig, units_html


LSTM_INTRO = r"""
At each character the LSTM decides, per unit, what to forget, what to write and what to show:
$$c_t = f_t \odot c_{t-1} + i_t \odot g_t, \qquad h_t = o_t \odot \tanh(c_t)$$
with gates $i_t, f_t, o_t = \sigma(W x_t + U h_{t-1} + b)$ between 0 (closed) and 1 (open). The
heatmaps show the gates and the cell state of the units whose $\tanh(c_t)$ varies most over your
text (units that only drift steadily are skipped); below, your text coloured by single units'
$\tanh(c_t)$. Try text with quotes, line breaks or names and look for a unit that switches on and
off with them.
"""


# ---------------------------------------------------------------------------------------------- models

def _fmt(x, spec: str, unit: str = "") -> str:
    if x is None or (isinstance(x, float) and not math.isfinite(x)):
        return "—"
    return f"{x:{spec}}{unit}"


def models_table(bank: ModelBank) -> str:
    """One Markdown row per model: size, shape, validation loss, training budget and hardware."""
    rows = ["| model | tokens | parameters | shape | validation loss | bits / char | trained for | hardware |",
            "|---|---|---|---|---|---|---|---|"]
    for name in [*LANGUAGE_MODELS, *(n for n in bank.language_models() if n not in LANGUAGE_MODELS)]:
        slot = bank.slots[name]
        if not bank.available(name):
            rows.append(f"| {name} | | ⚠️ not loaded: {md_text(slot.error or '')} | | | | | |")
            continue
        m = slot.loaded.metrics or {}
        tok = slot.loaded.tokenizer
        tokens = "characters" if tok.unit == "character" else f"BPE, {tok.vocab_size:,}"
        params = slot.loaded.model.num_params()
        trained = (f"{_fmt(m.get('iters'), ',')} steps, {_fmt((m.get('tokens_seen') or 0) / 1e6, ',.1f')} M "
                   f"{tok.unit}s, {_fmt(m.get('wall_time_s'), ',.0f', ' s')}")
        rows.append(f"| {name} | {tokens} | {params / 1e6:.2f} M | {describe_model(slot.loaded)} "
                    f"| {_fmt(m.get('val_loss'), '.3f')} nats/{tok.unit} | {_fmt(m.get('bits_per_char'), '.3f')} "
                    f"| {trained} | {md_text(m.get('hardware', '—'))} |")
    return "\n".join(rows)


COMPARISON = r"""
**What each does that the other doesn't.** The Transformer looks straight back at any of the last
`block_size` characters through attention, so it can copy a name it saw 100 characters ago in one
step, and it trains on all positions of a text in parallel; but it sees nothing beyond its window,
and each new token costs more as the context grows (the KV cache keeps the keys and values so that
cost stays one row per layer). The LSTM squeezes everything it has read into a fixed state
$(h_t, c_t)$: each token costs the same however long the text, and there is no window, but whatever
it remembers must survive many multiplications by the forget gate, and it trains one step at a time.
Loss is cross-entropy in nats per token; models with different tokens (a character, or a BPE piece
of a word) compare in bits per character of the same validation text: total nats ÷ characters ÷ ln 2,
the lower the better (nanoGPT's CPU-sized character Transformer reaches about 1.88 nats per character,
its 10 M-parameter GPU one 1.47).
"""

MODELS_INTRO = r"""
Both models were trained to minimise the same loss, the average $-\ln p(x_{t+1} \mid x_{\le t})$
over the first 90% of tiny Shakespeare, and evaluated on the last 10% they never trained on.
"""


def chars_per_token(metrics: dict) -> float:
    """Characters per token of the validation text, read off a model's metrics.json:
    val_loss (nats per token) ÷ (bits_per_char × ln 2); 1 for a character model."""
    try:
        c = float(metrics["val_loss"]) / (float(metrics["bits_per_char"]) * math.log(2))
    except (KeyError, TypeError, ValueError, ZeroDivisionError):
        return 1.0
    return c if math.isfinite(c) and c > 0 else 1.0


def learning_curves(bank: ModelBank):
    """Every language model's learning curves, from their metrics.json, in bits per character."""
    names = [n for n in bank.language_models() if bank.slots[n].metrics]
    curves = {name: bank.slots[name].metrics.get("curve", []) for name in names}
    scale = {name: chars_per_token(bank.slots[name].metrics) for name in names}
    return views.export_name(views.learning_curves_figure(curves, title="Learning curves: LSTM vs Transformer",
                                                          chars_per_token=scale), "learning_curves")


def learning_curves_png(bank: ModelBank) -> str | None:
    png = Path(bank.checkpoint_dir) / "learning_curves.png"
    return str(png) if png.is_file() else None


# ------------------------------------------------------------------------------------------ the tabs

def build_attention_tab(bank: ModelBank, pair=None) -> None:
    with gr.Tab("Attention", id="attention") as tab:
        md(ATTENTION_INTRO)
        share = link_row("attention", tab)
        if model_missing(bank, TRANSFORMER):
            return
        cfg = bank.config(TRANSFORMER)
        with gr.Row():
            limit = min(MAX_ANALYSIS_CHARS, cfg.block_size)   # the Transformer's context_length
            text = gr.Textbox(DEFAULT_TEXT, label=f"Text (the first {bank.tokenizer(TRANSFORMER).count(limit)} are read)",
                              lines=3, scale=3, elem_id="attn-text", max_length=MAX_TEXT_BOX_CHARS)
            with gr.Column(scale=2):
                causal = gr.Checkbox(True, label="causal mask", elem_id="attn-causal")
                hide_first = gr.Checkbox(False, label="hide attention to the first token",
                                         elem_id="attn-hide-first")
                button = gr.Button("Show attention", variant="primary", elem_id="attn-btn")
        note = gr.Markdown()
        grid = gr.Plot(show_label=False, elem_id="attn-grid")
        with gr.Row():
            big = bank.largest_shape()     # what any pair allows; the page fits it to the chosen pair
            layer = gr.Slider(1, big["layer"], cfg.n_layer, step=1, label="layer", elem_id="attn-layer")
            head = gr.Slider(1, big["head"], 1, step=1, label="head", elem_id="attn-head")
        with gr.Row():
            head_plot = gr.Plot(show_label=False, elem_id="attn-head-plot")
            avg_plot = gr.Plot(show_label=False, elem_id="attn-avg-plot")
        with gr.Row():
            diff_plot = gr.Plot(show_label=False, elem_id="attn-diff-plot")
            compare = gr.Markdown(elem_id="attn-compare")
        view = View("attention", paired(attention, pair),
                    [Control("text", text), Control("causal", causal), Control("layer", layer, shape="layer"),
                     Control("head", head, shape="head"), Control("hide_first", hide_first), *pair_controls(pair)],
                    [note, grid, head_plot, avg_plot, diff_plot, compare],
                    triggers=[button.click, *pair_triggers(pair)])
        declare(view, bank, share)
        inputs = view.components
        # typing redraws the chosen head at once, the other views when typing pauses (only the
        # latest text is computed, no progress overlays); the button and the pair of models everything;
        # the causal toggle and the first-token option the matrices only; the sliders the chosen head
        # and its diff only
        typed = model_event(live_triggers(text), bound(paired(attention_typed, pair), bank), inputs,
                            [note, head_plot], "attention_typed", show_progress="hidden", api_visibility="private")
        model_then(typed, bound(paired(attention_rest, pair), bank), inputs, [grid, avg_plot, diff_plot, compare],
                   "attention_rest", show_progress="hidden", api_visibility="private", js=WHEN_TYPING_PAUSES)
        model_event(live_triggers(causal, hide_first), bound(paired(attention_view, pair), bank), inputs,
                    [grid, head_plot, avg_plot], "attention_view")
        model_event(live_triggers(layer, head), bound(paired(attention_head, pair), bank), inputs,
                    [head_plot, diff_plot], "attention_head")
        model_event(live_triggers(layer), bound(paired(attention_layer, pair), bank), inputs, [grid, avg_plot],
                    "attention_layer", show_progress="hidden", api_visibility="private")


def build_lstm_tab(bank: ModelBank, pair=None) -> None:
    with gr.Tab("Inside the LSTM", id="lstm") as tab:
        md(LSTM_INTRO)
        share = link_row("lstm", tab)
        if model_missing(bank, LSTM_NAME):
            return
        cfg = bank.config(LSTM_NAME)
        text = gr.Textbox(DEFAULT_TEXT, label=f"Text (the first {bank.tokenizer(LSTM_NAME).count(MAX_ANALYSIS_CHARS)} are read)",
                          lines=3, elem_id="lstm-text", max_length=MAX_TEXT_BOX_CHARS)
        with gr.Row():
            layer = gr.Slider(1, bank.largest_shape()["lstm_layer"], cfg.n_layer, step=1, label="layer",
                              elem_id="lstm-layer")
            n_units = gr.Slider(1, min(64, cfg.hidden), min(16, cfg.hidden), step=1,
                                label="units shown (most varying)", elem_id="lstm-units")
            button = gr.Button("Show gates", variant="primary", elem_id="lstm-btn")
        note = gr.Markdown()
        plot = gr.Plot(show_label=False, elem_id="lstm-plot")
        units_html = gr.HTML(elem_id="lstm-units-text")
        declare(View("lstm_gates", paired(lstm_inside, pair),
                     [Control("text", text), Control("layer", layer, shape="lstm_layer"), Control("units", n_units),
                      *pair_controls(pair)],
                     [note, plot, units_html], live_triggers(text, layer, n_units) + [button.click, *pair_triggers(pair)]),
                bank, share)


def build_models_tab(bank: ModelBank, pair=None) -> None:
    with gr.Tab("Models", id="models") as tab:
        md(MODELS_INTRO)
        link_row("models", tab)
        # the table counts the loaded models' parameters: it comes with the other default views
        table = gr.Markdown(elem_id="models-table")
        curves = gr.Plot(show_label=False, elem_id="curves")
        on_arrival([table, curves], lambda: (models_table(bank), learning_curves(bank)))
        png = learning_curves_png(bank)
        if png:
            gr.Image(png, label="learning_curves.png (from training)", interactive=False, format="png",
                     buttons=["download"], elem_id="curves-png")
        md(COMPARISON)
