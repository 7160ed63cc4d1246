"""The app's encoder-decoder tab and its GPT-vs-BERT tab: plain callbacks, and the two tab builders.

Callbacks (:func:`decode_dates`, :func:`fill_in`) are plain functions of the read-only model bank and
plain values, returning Markdown, HTML and figures; tests call them directly. The models are the
bank's ``Encoder-decoder`` (seq2seq-dates) and ``BERT`` (bert-shakespeare); the GPT for the
comparison is the bank's Transformer.

The inference code (torch) is imported inside the callbacks that use it: the page is laid out and
served before torch is imported (see :mod:`.blocks`).
"""
from __future__ import annotations

from typing import NamedTuple

import gradio as gr

from .. import views
from ..inference.choices import BLANK, MAX_BEAM_SIZE, MAX_SEED, METHODS
from .bank import BERT, ENCDEC, TRANSFORMER, ModelBank
from .events import bound, live_triggers, md, model_event, model_missing
from .links import link_row
from . import settings as check
from .view import Control, View, declare
from .policy import (MAX_TEXT_BOX_CHARS, as_int, as_number, check_index, check_text, notes_md, shown_value,
                     visible_controls)

DEFAULT_SOURCE = "3rd of March 1999"
DEFAULT_BLANKS = "To be, or not to b_, that is the qu_stion:\nWhether 'tis nobler in the m_nd to suffer"


# -------------------------------------------------------------------------------- encoder-decoder

def _code(text: str) -> str:
    """Text safe inside a Markdown code span."""
    return "".join(views.display_token(c) for c in text).replace("`", "'")


def _steps_md(result, t: int) -> str:
    step = result.steps[t]
    shown = "".join(views.token_label(c) for c in result.out_tokens[:t])
    top = " · ".join(f"`{views.token_label(c)}` {p:.3f}" for c, p in step.top)
    sampled = ""
    if step.sampled is not None:
        sampled = (f" Sampled from the filtered distribution with probability "
                   f"{step.sampled.token_prob:.3f}.")
    return (f"**Step {t + 1} of {len(result.steps)}.** Having written `{shown or '(nothing yet)'}`, the decoder "
            f"wrote `{views.token_label(step.text)}` (probability {step.prob:.3f}).{sampled} "
            f"Most likely at this step: {top}.\n\nWhere it looked in the source (last layer, average "
            "over heads; hover for weights):")


def _summary_md(result, tokenizer) -> str:
    lines = [f"**Output:** `{_code(result.output)}` · method: {result.method} · "
             f"log-probability {result.logprob:.3f}"]
    if result.beams:
        lines.append("\n| beam | output | finished | log P | score |\n|---|---|---|---|---|")
        for k, h in enumerate(result.beams[:8]):
            text = tokenizer.decode(h.ids)
            lines.append(f"| {k + 1} | `{_code(text)}` | {'yes' if h.finished else 'no'} | "
                         f"{h.logprob:.3f} | {h.score:.3f} |")
    return "\n".join(lines)


class DecodeViews(NamedTuple):
    """The encoder-decoder tab's views, in the order of its outputs, plus the step count and step shown."""

    summary: str
    cross_grid: object
    encoder_self: object
    decoder_self: object
    cross_head: object
    step_md: str
    step_html: str
    n_steps: int
    step: int


def decode_dates(enc: ModelBank, source, method, beam_size, alpha, temperature, top_k, top_p, seed,
                 layer, head, step):
    """Decode ``source`` and lay it open → (summary Markdown, cross-attention grid, encoder
    self-attention, decoder self-attention, cross-attention of the chosen head, step Markdown,
    step HTML, number of steps, the step shown) as :class:`DecodeViews`.

    ``layer`` / ``head`` (1-based) pick the single-head heatmaps; ``step`` (1-based, clipped to the
    number of output steps) the decoding step whose attention over the source is shown.
    """
    from ..inference.seq2seq import decode_with_trace
    loaded = enc.get(ENCDEC)
    model, tok = loaded.model, loaded.tokenizer
    if not isinstance(source, str) or not source.strip():
        raise ValueError("source must be a date written out, e.g. '3rd of March 1999'")
    source = check_text(source, "source", strip=True)
    if method not in METHODS:
        raise ValueError(f"method must be one of {list(METHODS)}, got {shown_value(method)}")
    beam_size = as_int(beam_size, "beam_size", 1, MAX_BEAM_SIZE)
    alpha = as_number(alpha, "alpha (length penalty)", 0, 2)
    settings, seed = check.sampling(temperature, top_k, top_p), check.seed(seed)
    cfg = model.config
    l = check_index(layer, "layer", cfg.n_dec_layer or cfg.n_layer)
    le = min(l, cfg.n_layer - 1)
    h = check_index(head, "head", cfg.n_head)
    result = decode_with_trace(model, tok, source.strip(), method, beam_size=beam_size, alpha=float(alpha),
                               settings=settings, seed=seed)
    tr = result.trace
    src, out = result.src_tokens, result.out_tokens
    dec_in = [views.token_label(c) for c in ["<bos>"] + out[:-1]]
    n = len(out)
    t = min(max(as_int(step, "step", 1, None), 1), n) - 1
    cross = [a[0] for a in tr.cross_attn]                     # L × [H, T_out, T_src]
    grid = views.attention_grid(cross, title="cross-attention, every layer × head (rows: output, columns: source)")
    views.export_name(grid, "seq2seq_cross_attention_grid")
    enc_fig = views.attention_heatmap(tr.encoder_self_attn[le][0, h], src,
                                      title=f"encoder self-attention, layer {le + 1}, head {h + 1}")
    dec_fig = views.attention_heatmap(tr.self_attn[l][0, h], dec_in,
                                      title=f"decoder masked self-attention, layer {l + 1}, head {h + 1}")
    cross_fig = views.cross_attention_heatmap(cross[l][h], out, src, highlight=t,
                                          title=f"cross-attention, layer {l + 1}, head {h + 1}")
    views.export_name(enc_fig, f"seq2seq_encoder_L{le + 1}H{h + 1}")
    views.export_name(dec_fig, f"seq2seq_decoder_L{l + 1}H{h + 1}")
    views.export_name(cross_fig, f"seq2seq_cross_L{l + 1}H{h + 1}")
    focus = views.source_focus_html(src, cross[-1][:, t].mean(0).tolist())
    return DecodeViews(_summary_md(result, tok), grid, enc_fig, dec_fig, cross_fig, _steps_md(result, t),
                       focus, n, t + 1)


SEQ2SEQ_INTRO = r"""
### The encoder-decoder: dates written any way → ISO dates
The paper's original shape. The **encoder** reads your date with self-attention in both directions;
the **decoder** writes `YYYY-MM-DD` one character at a time, with *masked* self-attention over what
it has written and **cross-attention** over the encoder's output:
$$\mathrm{CrossAttn}(Y, X) = \mathrm{softmax}\!\left(\frac{(Y W^Q)(X W^K)^\top}{\sqrt{d_k}}\right) X W^V$$
queries from the output, keys and values from the source. Row $t$ of a cross-attention map is where
output step $t$ looked: the year digits look at the year, the month at the month name or number.

Conventions the model was trained on: dates 1900–2099; dots are day.month.year (`03.04.1999` is
3 April), slashes with the year last are month/day/year (`03/04/1999` is 4 March); two-digit years
follow Python's `%y` (69–99 → 19xx, 00–68 → 20xx). A tenth of all calendar days was never shown in
training, in any format; on 2,000 examples of those the shipped model writes every date exactly.
Beam search keeps the `beam size` most likely prefixes; hypotheses are ranked by
$\log P(Y\mid X) / \left(\frac{5+|Y|}{6}\right)^{\alpha}$ (α = 0: raw log-probability).
"""


def _index_slider(n: int, label: str, elem_id: str):
    """A 1…n slider for a layer or head; locked at 1 when there is only one."""
    return gr.Slider(1, max(n, 2), 1, step=1, label=label, interactive=n > 1, elem_id=elem_id)


def build_seq2seq_tab(bank: ModelBank, pair=None) -> None:
    enc = bank
    with gr.Tab("Encoder-decoder", id="seq2seq") as tab:
        md(SEQ2SEQ_INTRO)
        share = link_row("seq2seq", tab)
        if model_missing(enc, ENCDEC):
            return
        cfg = enc.config(ENCDEC)
        with gr.Row():
            with gr.Column(scale=3):
                source = gr.Textbox(DEFAULT_SOURCE, label="A date, written any way", elem_id="s2s-source", max_length=MAX_TEXT_BOX_CHARS)
                button = gr.Button("Decode", variant="primary", elem_id="s2s-btn")
            with gr.Column(scale=2):
                method = gr.Radio(list(METHODS), value="greedy", label="decoding", elem_id="s2s-method")
                with gr.Row():
                    beam_size = gr.Slider(1, MAX_BEAM_SIZE // 4, 4, step=1, label="beam size",
                                          elem_id="s2s-beam")
                    alpha = gr.Slider(0, 2, 0.6, step=0.1, label="length penalty α", elem_id="s2s-alpha")
                with gr.Accordion("sampling settings", open=False):
                    temperature = gr.Slider(0, 2, 1.0, step=0.05, label="temperature", elem_id="s2s-temp")
                    top_k = gr.Slider(0, cfg.vocab_size, 0, step=1, label="top-k (0 = off)", elem_id="s2s-topk")
                    top_p = gr.Slider(0, 1, 1.0, step=0.01, label="top-p (1 = off)", elem_id="s2s-topp")
                    seed = gr.Number(0, label="seed", precision=0, minimum=0, elem_id="s2s-seed")
        summary = gr.Markdown(elem_id="s2s-summary")
        gr.Markdown("#### Decoding step by step")
        step = gr.Slider(1, 11, 1, step=1, label="decoding step", elem_id="s2s-step")
        step_md = gr.Markdown(elem_id="s2s-step-md")
        step_html = gr.HTML(elem_id="s2s-step-html")
        grid = gr.Plot(show_label=False, elem_id="s2s-grid")
        with gr.Row():
            layer = _index_slider(cfg.n_dec_layer or cfg.n_layer, "layer", "s2s-layer")
            head = _index_slider(cfg.n_head, "head", "s2s-head")
        cross_plot = gr.Plot(show_label=False, elem_id="s2s-cross")
        with gr.Row():
            enc_plot = gr.Plot(show_label=False, elem_id="s2s-enc")
            dec_plot = gr.Plot(show_label=False, elem_id="s2s-dec")

        def decode(bank, source, method, beam_size, alpha, temperature, top_k, top_p, seed, layer, head, step):
            *shown, n, t = decode_dates(bank, source, method, beam_size, alpha, temperature, top_k, top_p,
                                        seed, layer, head, step)
            return (*shown, gr.update(maximum=max(n, 2), value=t))

        view = View("seq2seq_decode", decode,
                    [Control("text", source), Control("method", method), Control("beam", beam_size),
                     Control("alpha", alpha), Control("temperature", temperature), Control("top_k", top_k),
                     Control("top_p", top_p), Control("seed", seed, dict(hi=MAX_SEED)), Control("layer", layer),
                     Control("head", head), Control("step", step, dict(hi=64))],
                    [summary, grid, enc_plot, dec_plot, cross_plot, step_md, step_html, step],
                    live_triggers(source) + [button.click])
        declare(view, enc, share)
        model_event(live_triggers(step, layer, head, method, beam_size, alpha, temperature, top_k, top_p, seed),
                    bound(decode, enc), view.components, view.outputs, "seq2seq_view")


# ------------------------------------------------------------------------------------ GPT vs BERT

class FillInViews(NamedTuple):
    """The GPT-vs-BERT tab's views, in the order of its outputs."""

    notes: str
    table: str
    filled: str
    bars: object
    bert_attention: object
    gpt_attention: object


def fill_in(bank: ModelBank, text, top_k, causal, layer, head) -> FillInViews:
    """The blanks of ``text`` through BERT (both ways and with the causal mask) and the GPT →
    (notes Markdown, table HTML, the filled-in texts (plain text), figure of blank 1's guesses,
    BERT attention heatmap (as ``causal`` says), GPT attention heatmap on the same text)."""
    from ..inference.blanks import fill_blanks, gpt_fill_blanks
    from ..inference.traced import run_traced
    loaded = bank.get(BERT)
    model, tok = loaded.model, loaded.tokenizer
    top_k = check.guesses(top_k)
    if not isinstance(text, str) or BLANK not in text:
        raise ValueError(f"text must contain at least one blank written {BLANK!r}, e.g. 'To be, or not to b_'")
    text = check_text(text, "text")
    cfg = model.config
    l, h = check_index(layer, "layer", cfg.n_layer), check_index(head, "head", cfg.n_head)
    both = fill_blanks(model, tok, text, top_k=top_k, causal=False)
    left = fill_blanks(model, tok, text, top_k=top_k, causal=True)
    shown = left if causal else both
    columns = {"BERT (reads both sides)": [b.guesses for b in both.blanks],
               "BERT with the causal mask (left only)": [b.guesses for b in left.blanks]}
    notes = []
    if both.unknown_chars:
        notes.append("Characters outside the vocabulary were replaced: "
                     + " ".join(repr(c) for c in both.unknown_chars))
    gpt_fig = views.message_figure("the GPT checkpoint is not loaded")
    filled = [f"BERT, both sides:   {both.filled}", f"BERT, causal mask:  {left.filled}"]
    if bank.available(TRANSFORMER):
        gpt = bank.get(TRANSFORMER)
        guesses = gpt_fill_blanks(gpt.model, gpt.tokenizer, text, top_k=top_k)
        columns["GPT (left only, trained so)"] = [g.guesses if g else None for g in guesses]
        chars = list(text)
        for pos, g in zip([b.position for b in both.blanks], guesses):
            chars[pos] = g.best if g else " "
        gpt_text = "".join(chars)[: gpt.config.block_size]
        filled.append(f"GPT:                {gpt_text}")
        traced = run_traced(gpt.model, gpt.tokenizer, gpt.tokenizer.encode(gpt_text))
        gl = min(l, gpt.config.n_layer - 1)
        gh = min(h, gpt.config.n_head - 1)
        gpt_fig = views.attention_heatmap(traced.trace.self_attn[gl][0, gh], traced.pieces,
                                          title=f"GPT, layer {gl + 1}, head {gh + 1} (blanks filled by its guesses)")
        views.export_name(gpt_fig, f"gpt_L{gl + 1}H{gh + 1}_blanks_filled")
    else:
        notes.append("The GPT checkpoint is not loaded: only BERT's guesses are shown.")
    table = views.blanks_table_html(text, columns, top_k, BLANK)
    bars = views.export_name(views.blank_bars_figure(columns, 0, title="blank 1: each model's top guesses"),
                             "blank1_guesses")
    mask = "causal mask ON: each character sees only its left" if causal else "no mask: both sides"
    bert_fig = views.attention_heatmap(shown.trace.self_attn[l][0, h], [views.token_label(c) for c in shown.tokens],
                                       title=f"BERT, layer {l + 1}, head {h + 1} ({mask})")
    views.export_name(bert_fig, f"bert_L{l + 1}H{h + 1}_{'causal' if causal else 'both_sides'}")
    return FillInViews(notes_md(notes), table, visible_controls("\n".join(filled)), bars, bert_fig, gpt_fig)


GPT_BERT_INTRO = r"""
### GPT vs BERT: reading left to right, or both ways
The GPT was trained to predict the **next** character, so its attention is causal: position $i$
sees positions $\le i$. The BERT-style model was trained to fill in **masked** characters (15% of
them, hidden as `<mask>`) and sees the whole text. Write text with blanks `_`: each blank becomes
`<mask>` and both models guess it — BERT from both sides at once, the GPT from the text to its left.
Turn on the **causal mask** on BERT to see what a blank loses when the model cannot look right
(it was never trained that way, so this is the same network deprived of half its view).
"""


def build_gpt_bert_tab(bank: ModelBank, pair=None) -> None:
    enc = bank
    with gr.Tab("GPT vs BERT", id="gpt-vs-bert") as tab:
        md(GPT_BERT_INTRO)
        share = link_row("gpt-vs-bert", tab)
        if model_missing(enc, BERT):
            return
        cfg = enc.config(BERT)
        text = gr.Textbox(DEFAULT_BLANKS, label=f"Text with blanks _ (up to {cfg.block_size} characters)",
                          lines=3, elem_id="bert-text", max_length=MAX_TEXT_BOX_CHARS)
        with gr.Row():
            top_k = gr.Slider(1, check.MAX_GUESSES, 5, step=1, label="guesses per blank", elem_id="bert-topk")
            causal = gr.Checkbox(False, label="causal mask on the BERT-style model", elem_id="bert-causal")
            button = gr.Button("Fill in the blanks", variant="primary", elem_id="bert-btn")
        note = gr.Markdown()
        table = gr.HTML(elem_id="bert-table")
        # the filled-in texts hold the person's own characters: a text box, never Markdown
        filled = gr.Textbox(label="filled in", lines=3, interactive=False, elem_id="bert-filled",
                            elem_classes="mono")
        bars = gr.Plot(show_label=False, elem_id="bert-bars")
        with gr.Row():
            layer = _index_slider(cfg.n_layer, "layer", "bert-layer")
            head = _index_slider(cfg.n_head, "head", "bert-head")
        with gr.Row():
            bert_plot = gr.Plot(show_label=False, elem_id="bert-attn")
            gpt_plot = gr.Plot(show_label=False, elem_id="gpt-attn")

        declare(View("fill_in", fill_in, [Control("text", text), Control("guesses", top_k), Control("causal", causal),
                                           Control("layer", layer), Control("head", head)],
                     [note, table, filled, bars, bert_plot, gpt_plot],
                     live_triggers(text, top_k, causal, layer, head) + [button.click]), bank, share)
