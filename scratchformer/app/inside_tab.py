"""The "Forward pass" tab: step through the GPT for one character, the logit lens, switch
heads and feed-forward blocks off, what each head does, and one LSTM unit through one step.

Callbacks are plain functions of the read-only bank and plain values; each returns its figures and,
last, its numbers as a JSON-ready dict (for scripts: every event has an ``api_name``). Ablations are
arguments of the forward call; the shared models are only read.

The inference code (torch) is imported inside the callbacks that use it: the page is laid out and
served before torch is imported (see :mod:`.blocks`).
"""
from __future__ import annotations

import re

import gradio as gr

from .. import views
from ..inference.choices import MODES
from .bank import LSTM_NAME, TRANSFORMER, ModelBank
from .events import bound, live_triggers, md, model_event, model_missing
from .links import link_row
from . import settings as check
from .view import Control, View, block_choices, declare, head_choices, paired, pair_controls, pair_triggers
from .policy import (MAX_ANALYSIS_CHARS, MAX_TEXT_BOX_CHARS, as_int, check_index, check_text, context_limit, notes_md,
                     prepare_text, shown_value)

DEFAULT_TEXT = "JULIET:\nO Romeo, Romeo! wherefore art thou Romeo?\nDeny thy father and refuse thy name;"
DEFAULT_POSITION = 12
CONTINUATION = 40
MAX_CONTINUATION = 100  # the ablation views write at most this many characters with and without the parts
MAX_UNITS_CHARS = 200   # "3, 17, …": the units box holds at most this many characters
MAX_CHOICES = 256       # heads or feed-forward blocks switched off in one request


def _prepared(bank: ModelBank, name: str, text):
    loaded = bank.get(name)
    prep = prepare_text(text, loaded.tokenizer, context_limit(loaded.model, MAX_ANALYSIS_CHARS))
    return loaded, prep, notes_md(prep.notes())


def _position(position, n: int, tokenizer) -> int:
    t = as_int(position, "position")
    if not 0 <= t < n:
        raise ValueError(f"position {t} is outside the text: it has {tokenizer.count(n)}, positions 0…{n - 1}")
    return t


# ----------------------------------------------------------------------------------------- step through

def inside_walkthrough(bank: ModelBank, text, position, layer, head, temperature, top_k, top_p):
    """(notes, diagram HTML, formulas with numbers, vectors, attention of the head, feed-forward,
    output distribution, numbers) for the character at ``position``; layer and head are 1-based."""
    from ..inference.inside import walkthrough
    loaded, prep, note = _prepared(bank, TRANSFORMER, text)
    cfg = loaded.config
    t = _position(position, len(prep.ids), loaded.tokenizer)
    l, h = check.layer(layer, cfg.n_layer), check.head(head, cfg.n_head)
    settings = check.sampling(temperature, top_k, top_p)
    w = walkthrough(loaded.model, prep.ids, t, loaded.tokenizer, settings)
    n, L, hd = w.numbers, w.numbers["layers"][l], w.numbers["layers"][l]["heads"][h]
    e = n["embedding"]
    c = views.display_token(n["char"])
    vectors = views.vector_strips_figure(
        [("token row", e["token"]), (f"position row {t}", e["position"]), ("x₀ = token + position", e["x0"]),
         (f"block {l + 1} input x", L["ln1"]["input"]), ("LN₁(x)", L["ln1"]["output"]),
         (f"q (head {h + 1})", hd["q"]), (f"k (head {h + 1})", hd["k"]), (f"v (head {h + 1})", hd["v"]),
         (f"head {h + 1} = Σ αⱼ vⱼ", hd["output"]), ("concat of heads", L["concat"]),
         ("·W^O + b", L["attn_out"]), ("x + attention", L["resid_mid"]), ("LN₂(x)", L["ln2"]["output"]),
         ("FFN output", L["ff_out"]), ("x + FFN", L["resid_post"]),
         ("final LN_f(x)", n["final"]["ln"]["output"])],
        title=f"position {t} '{c}': the vectors, block {l + 1} (each row on its own colour scale)")
    views.export_name(vectors, f"inside_vectors_pos{t}_B{l + 1}H{h + 1}")
    attn = views.attention_step_figure(n["text"], hd["keys"], hd["scores"], hd["weights"], t,
                                       title=f"block {l + 1}, head {h + 1}: query at position {t} '{c}'")
    ffn = views.ffn_figure(L["ff_pre"], L["ff_act"], L["firing"], cfg.activation,
                           title=f"block {l + 1} feed-forward at position {t}: {L['firing']} of {cfg.d_ff} "
                                 f"units fire ({cfg.activation} > 0)")
    out = views.distribution_figure(w.step, loaded.tokenizer.texts, title=f"next {loaded.tokenizer.unit} after position {t} '{c}'")
    views.export_name(attn, f"inside_attention_pos{t}_B{l + 1}H{h + 1}")
    views.export_name(ffn, f"inside_ffn_pos{t}_B{l + 1}")
    views.export_name(out, f"inside_output_pos{t}")
    return (note, views.model_diagram_html(n, l), views.stage_markdown(n, l, h), vectors, attn, ffn, out, n)


# ------------------------------------------------------------------------------------------ logit lens

LENS_CAPTION = ("**Logit lens.** The output head read off the residual stream after the embedding and after "
                "each layer: $p = \\mathrm{softmax}(\\mathrm{LN}_f(x_l)\\,W_{out}^\\top)$. **The final LayerNorm "
                "is applied** to every row, as the model applies it to its last one (skipping it, a common "
                "mistake, reads the stream at the wrong scale). Letters: the top prediction; colour: the "
                "probability of the true next character. The last row is the model's own output.")


def inside_logit_lens(bank: ModelBank, text):
    """(notes, the layers × positions grid, numbers)."""
    from ..inference.inside import logit_lens
    loaded, prep, note = _prepared(bank, TRANSFORMER, text)
    lens = logit_lens(loaded.model, prep.ids, loaded.tokenizer)
    fig = views.logit_lens_figure(lens, title="logit lens: top prediction per layer and position")
    return note, views.export_name(fig, "logit_lens"), lens


# ------------------------------------------------------------------------------------- switch parts off

def _parse(items, pattern: str, what: str) -> list[tuple[int, ...]]:
    items = items or []
    if not isinstance(items, (list, tuple)) or len(items) > MAX_CHOICES:
        raise ValueError(f"the {what}s must be a list of at most {MAX_CHOICES} choices, got {shown_value(items)}")
    out = []
    for s in items:
        m = re.fullmatch(pattern, str(s).strip()[:20])
        if not m:
            raise ValueError(f"{what} {shown_value(s)} is not understood; write it like the choices shown")
        out.append(tuple(int(g) - 1 for g in m.groups()))
    return out


def inside_ablation(bank: ModelBank, text, heads, ffn, mode, n_new):
    """(notes, side-by-side comparison, per-position loss change, numbers). ``heads``: "L1 H2" …,
    ``ffn``: "FFN 3" …, ``mode``: "zero" or "mean"."""
    from ..inference.interventions import compare, make_ablation
    loaded, prep, note = _prepared(bank, TRANSFORMER, text)
    pairs = _parse(heads, r"L(\d+)\s*H(\d+)", "head")
    blocks = [b for (b,) in _parse(ffn, r"FFN\s*(\d+)", "feed-forward block")]
    n_new = as_int(n_new, "continuation length", 1, MAX_CONTINUATION)
    ab = make_ablation(loaded.model, prep.ids, heads=pairs, ffn=blocks, mode=str(mode))
    cmp = compare(loaded.model, prep.ids, loaded.tokenizer, ab, n_new, str(mode))
    return note, views.comparison_markdown(cmp), views.export_name(views.ablation_figure(cmp), "ablation_loss_change"), cmp


def inside_head_worth(bank: ModelBank, text, mode):
    """(the layers × heads grid of loss increases, numbers)."""
    from ..inference.interventions import head_worth
    loaded, prep, _ = _prepared(bank, TRANSFORMER, text)
    worth = head_worth(loaded.model, prep.ids, str(mode))
    return views.export_name(views.head_worth_figure(worth), f"head_worth_{mode}"), worth


# ------------------------------------------------------------------------------------- what heads do

def inside_heads(bank: ModelBank, text):
    """(the attention grid, the per-head table with descriptions, numbers)."""
    from ..inference.head_stats import head_table
    from ..inference.traced import run_traced
    loaded, prep, _ = _prepared(bank, TRANSFORMER, text)
    traced = run_traced(loaded.model, loaded.tokenizer, prep.ids)
    attn = [a[0] for a in traced.trace.self_attn]
    rows = head_table(attn, prep.ids, loaded.tokenizer)
    grid = views.export_name(views.attention_grid(attn, title="every layer × head on this text (query ↓, key →)"),
                             "head_roles_attention_grid")
    return grid, views.head_table_html(rows), rows


# ------------------------------------------------------------------------------------------------ LSTM

def inside_lstm_step(bank: ModelBank, text, position, layer, unit):
    """(notes, the step's equations with numbers, the unit over the text, numbers); layer 1-based."""
    from ..inference.lstm_inside import lstm_step
    loaded, prep, note = _prepared(bank, LSTM_NAME, text)
    t = _position(position, len(prep.ids), loaded.tokenizer)
    l = check_index(layer, "layer", loaded.config.n_layer)
    u = as_int(unit, "unit", 0, loaded.config.hidden - 1)
    s = lstm_step(loaded.model, prep.ids, t, l, u, loaded.tokenizer)
    fig = views.export_name(views.lstm_unit_figure(s), f"lstm_step_pos{t}_L{l + 1}_unit{u}")
    return note, views.lstm_step_markdown(s), fig, s


def inside_lstm_ablation(bank: ModelBank, text, layer, units, empty_cell, n_new):
    """(comparison, per-position loss change, numbers): silence ``units`` ("17, 42") of ``layer``
    (1-based) and/or empty that layer's cell before every step."""
    from ..inference.interventions import compare, make_ablation
    loaded, prep, _ = _prepared(bank, LSTM_NAME, text)
    l = check_index(layer, "layer", loaded.config.n_layer)
    units = "" if units in (None, "") else check_text(units, "units", limit=MAX_UNITS_CHARS)
    found = re.findall(r"-?\d{1,6}", units)
    if units.strip() and not found:
        raise ValueError(f"units must be numbers separated by commas (0…{loaded.config.hidden - 1}), "
                         f"got {shown_value(units)}")
    ab = make_ablation(loaded.model, prep.ids, lstm_units=[(l, int(u)) for u in found],
                       lstm_cells=[l] if empty_cell else [])
    n_new = as_int(n_new, "continuation length", 1, MAX_CONTINUATION)
    cmp = compare(loaded.model, prep.ids, loaded.tokenizer, ab, n_new)
    return views.comparison_markdown(cmp), views.export_name(views.ablation_figure(cmp), f"lstm_ablation_L{l + 1}"), cmp


INTRO = r"""
How the GPT turns one character into a prediction, with **its own numbers** (the final logits here are
the forward pass's, and a test recomputes every stage with PyTorch's modules). Pick a character and a
block and head; each stage shows its formula from the paper filled in with this model's values.
"""

ABLATION_INTRO = r"""
Switch heads or whole feed-forward blocks off **for this request only** (the shared model is never
changed) and compare with the intact model. *zero*: the head's output becomes 0; *mean*: it becomes
the head's mean output over this text (measured on the intact model), which keeps its average
contribution and removes what depends on the position. The continuation is greedy (argmax).
"""

LSTM_STEP_INTRO = r"""
One LSTM unit through one step: $c_t = f \odot c_{t-1} + i \odot g$, $h_t = o \odot \tanh(c_t)$ with
the numbers the model computed. Below, silence units (their $h_t$ and $c_t$ are 0 at every step) or
empty a layer's cell before every step ($c_{t-1} = 0$, so $c_t = i \odot g$: no long memory).
"""


def build_inside_tab(bank: ModelBank, pair=None) -> None:
    with gr.Tab("Forward pass", id="inside") as tab:
        md(INTRO)
        share = link_row("inside", tab)
        if model_missing(bank, TRANSFORMER):
            return
        cfg, tok = bank.config(TRANSFORMER), bank.tokenizer(TRANSFORMER)
        limit = min(MAX_ANALYSIS_CHARS, cfg.block_size)       # the Transformer's context_length
        text = gr.Textbox(DEFAULT_TEXT, label=f"Text (the Transformer reads the first {tok.count(limit)})",
                          lines=2, elem_id="inside-text", max_length=MAX_TEXT_BOX_CHARS)
        with gr.Tabs():
            with gr.Tab("Step through", id="inside-step") as step_tab:
                with gr.Row():
                    position = gr.Slider(0, limit - 1, DEFAULT_POSITION, step=1, label=f"position ({tok.unit})",
                                         elem_id="inside-position", scale=3)
                    big = bank.largest_shape()     # what any pair allows; the page fits it to the chosen pair
                    layer = gr.Slider(1, big["layer"], 1, step=1, label="block", elem_id="inside-layer")
                    head = gr.Slider(1, big["head"], 1, step=1, label="head", elem_id="inside-head")
                with gr.Row():
                    temperature = gr.Slider(0, 2, 1, step=0.05, label="temperature", elem_id="inside-temperature")
                    top_k = gr.Slider(0, bank.vocab_size(bank.language_models()), 0, step=1, label="top-k (0 = off)", elem_id="inside-top-k")
                    top_p = gr.Slider(0, 1, 1, step=0.01, label="top-p (1 = off)", elem_id="inside-top-p")
                step_note = gr.Markdown()
                diagram = gr.HTML(elem_id="inside-diagram")
                formulas = md("", elem_id="inside-formulas")
                vectors = gr.Plot(show_label=False, elem_id="inside-vectors")
                with gr.Row():
                    attn_plot = gr.Plot(show_label=False, elem_id="inside-attn")
                    ffn_plot = gr.Plot(show_label=False, elem_id="inside-ffn")
                out_plot = gr.Plot(show_label=False, elem_id="inside-output")
                with gr.Accordion("the numbers (JSON)", open=False):
                    step_json = gr.JSON(elem_id="inside-step-json")
            with gr.Tab("Logit lens", id="inside-lens") as lens_tab:
                md(LENS_CAPTION, elem_id="inside-lens-caption")
                lens_note = gr.Markdown()
                lens_plot = gr.Plot(show_label=False, elem_id="inside-lens-plot")
                with gr.Accordion("the numbers (JSON)", open=False):
                    lens_json = gr.JSON()
            with gr.Tab("Switch parts off", id="inside-ablate") as ablate_tab:
                md(ABLATION_INTRO)
                heads = gr.CheckboxGroup(head_choices(big["layer"], big["head"]), label="heads to switch off",
                                         elem_id="inside-heads-off")
                with gr.Row():
                    ffn = gr.CheckboxGroup(block_choices(big["layer"]),
                                           label="feed-forward blocks to switch off", elem_id="inside-ffn-off")
                    mode = gr.Radio(list(MODES), value="zero", label="ablation", elem_id="inside-mode")
                    n_new = gr.Slider(1, min(MAX_CONTINUATION, limit - 1), CONTINUATION, step=1, label="continuation length",
                                      elem_id="inside-n-new")
                ablate_note = gr.Markdown()
                comparison = md("", elem_id="inside-comparison")
                ablate_plot = gr.Plot(show_label=False, elem_id="inside-ablate-plot")
                worth_btn = gr.Button("What is each head worth? (remove each head alone)", elem_id="inside-worth-btn")
                worth_plot = gr.Plot(show_label=False, elem_id="inside-worth-plot")
                with gr.Accordion("the numbers (JSON)", open=False):
                    ablate_json = gr.JSON()
                    worth_json = gr.JSON()
            with gr.Tab("What each head does", id="inside-heads") as heads_tab:
                md("Measured on the text above: each head's share of attention on the previous token (a "
                   "character, or with the word pair a piece of a word), the first token (a *sink*), earlier "
                   "copies of the same token, itself and the last 3 tokens; the key token it looks at most; "
                   "the mean distance it looks back; the "
                   "entropy of its weights. The description is read off these numbers.")
                heads_grid = gr.Plot(show_label=False, elem_id="inside-heads-grid")
                heads_table = gr.HTML(elem_id="inside-heads-table")
                with gr.Accordion("the numbers (JSON)", open=False):
                    heads_json = gr.JSON()
            with gr.Tab("LSTM step", id="inside-lstm") as lstm_tab:
                md(LSTM_STEP_INTRO)
                if not model_missing(bank, LSTM_NAME):
                    lcfg = bank.config(LSTM_NAME)
                    with gr.Row():
                        l_pos = gr.Slider(0, MAX_ANALYSIS_CHARS - 1, DEFAULT_POSITION, step=1, label="position",
                                          elem_id="inside-lstm-position", scale=2)
                        l_layer = gr.Slider(1, big["lstm_layer"], lcfg.n_layer, step=1, label="layer",
                                            elem_id="inside-lstm-layer")
                        l_unit = gr.Slider(0, big["lstm_unit"] - 1, 0, step=1, label="unit",
                                           elem_id="inside-lstm-unit")
                    l_note = gr.Markdown()
                    l_md = md("", elem_id="inside-lstm-step")
                    l_plot = gr.Plot(show_label=False, elem_id="inside-lstm-plot")
                    with gr.Row():
                        l_units = gr.Textbox("", label="units of this layer to silence (e.g. 3, 17)",
                                             elem_id="inside-lstm-units", max_length=MAX_UNITS_CHARS)
                        l_cell = gr.Checkbox(False, label="empty this layer's cell every step",
                                             elem_id="inside-lstm-cell")
                        l_btn = gr.Button("Silence and compare", elem_id="inside-lstm-btn")
                    l_cmp = md("", elem_id="inside-lstm-comparison")
                    l_cmp_plot = gr.Plot(show_label=False, elem_id="inside-lstm-cmp-plot")
                    with gr.Accordion("the numbers (JSON)", open=False):
                        l_json = gr.JSON()
                        l_cmp_json = gr.JSON()
        # The walkthrough (the first sub-tab) follows every edit of the text and every control; the
        # other sub-tabs recompute when opened, on Enter, and when their own controls move (a keystroke
        # does not run five views at once). Every sub-tab's default example is computed once, at start.
        # Every view follows the page's choice of models (``pair``, its last input).
        paired_in, redraw = pair_controls(pair), pair_triggers(pair)
        walk = View("inside_walkthrough", paired(inside_walkthrough, pair),
                    [Control("text", text), Control("position", position), Control("block", layer, shape="layer"),
                     Control("head", head, shape="head"), Control("temperature", temperature), Control("top_k", top_k),
                     Control("top_p", top_p), *paired_in],
                    [step_note, diagram, formulas, vectors, attn_plot, ffn_plot, out_plot, step_json],
                    [tab.select, step_tab.select, *live_triggers(text, position, layer, head, temperature, top_k,
                                                                 top_p), *redraw])
        declare(walk, bank, share)
        declare(View("inside_logit_lens", paired(inside_logit_lens, pair), [Control("text", text), *paired_in],
                     [lens_note, lens_plot, lens_json], [lens_tab.select, text.submit, *redraw], link=False), bank)
        declare(View("inside_ablation", paired(inside_ablation, pair),
                     [Control("text", text), Control("heads", heads, shape="heads"),
                      Control("ffn", ffn, shape="blocks"), Control("mode", mode),
                      Control("n_new", n_new), *paired_in], [ablate_note, comparison, ablate_plot, ablate_json],
                     [ablate_tab.select, text.submit, *live_triggers(heads, ffn, mode, n_new), *redraw], link=False),
                bank)
        model_event([worth_btn.click], bound(paired(inside_head_worth, pair), bank),
                    [text, mode, *(c.component for c in paired_in)], [worth_plot, worth_json], "inside_head_worth")
        declare(View("inside_heads", paired(inside_heads, pair), [Control("text", text), *paired_in],
                     [heads_grid, heads_table, heads_json], [heads_tab.select, text.submit, *redraw], link=False), bank)
        if bank.offered(LSTM_NAME):
            declare(View("inside_lstm_step", paired(inside_lstm_step, pair),
                         [Control("text", text), Control("position", l_pos), Control("layer", l_layer, shape="lstm_layer"),
                          Control("unit", l_unit, shape="lstm_unit"), *paired_in], [l_note, l_md, l_plot, l_json],
                         [lstm_tab.select, text.submit, *live_triggers(l_pos, l_layer, l_unit), *redraw], link=False),
                    bank)
            model_event([l_btn.click], bound(paired(inside_lstm_ablation, pair), bank),
                        [text, l_layer, l_units, l_cell, n_new, *(c.component for c in paired_in)],
                        [l_cmp, l_cmp_plot, l_cmp_json], "inside_lstm_ablation")
