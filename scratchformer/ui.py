"""The Gradio app: ``build_demo()`` lays out the tabs and wires widgets to plain functions.

Every callback is a plain function of plain values (text, numbers, a per-session list of Steps) and
the read-only :class:`~scratchformer.ui_models.ModelBank`; tests call them directly. Each tab is
built by one function ``build_*_tab(bank)`` listed in :data:`TABS`: adding a section to the app is
adding a function to that list (see ``ui_inspect.py`` for the others).

Concurrency: every event that runs a model joins one concurrency group (``concurrency_id="models"``)
with an explicit limit, so at most that many forward passes run at once; the queue itself is bounded
in ``app.py``. Nothing a request computes is stored on shared objects: the steps of a generation go
to a ``gr.State`` (one per browser session), randomness to a generator made from the request's seed.
"""
from __future__ import annotations

import dataclasses
import functools
import html
import inspect
import logging
import os
import time
from pathlib import Path
from typing import Callable, Optional

import gradio as gr

from . import ui_inspect as I
from . import views
from .generation import generate_stream
from .sampling import validate_sampling, validate_seed
from .ui_models import (LSTM_NAME, MAX_ANALYSIS_CHARS, MAX_PROMPT_CHARS, MODELS, NOTE_MARK, TRANSFORMER,
                        ModelBank, as_int, configure_torch, context_limit, notes_md, prepare_text, run_traced,
                        unk_char)
from .seq2seq_ui import build_gpt_bert_tab, build_seq2seq_tab

log = logging.getLogger("scratchformer.app")

MODEL_CONCURRENCY = int(os.environ.get("SCRATCHFORMER_CONCURRENCY", "2"))
MODEL_EVENT = dict(concurrency_id="models", concurrency_limit=MODEL_CONCURRENCY)
LATEX = [{"left": "$$", "right": "$$", "display": True}, {"left": "$", "right": "$", "display": False}]
UI_MAX_NEW_TOKENS = 1000   # the slider's end; the API accepts up to sampling.MAX_NEW_TOKENS
DEFAULT_PROMPT = "ROMEO:\n"

CSS = """
.gradio-container {max-width: 1280px !important}
.stats {min-height: 2.2em}
.model-out textarea {font-family: ui-monospace, monospace !important; font-size: 14px !important}
"""


def model_event(triggers: list, fn: Callable, inputs: list, outputs: list, api_name: str):
    """One event (one API endpoint, ``api_name``) fired by any of ``triggers``, in the shared
    "models" concurrency group: at most MODEL_CONCURRENCY of these run at once, the rest queue."""
    return gr.on(triggers, fn, inputs, outputs, api_name=api_name, **MODEL_EVENT)


def model_missing(bank: ModelBank, name: str) -> bool:
    """When model ``name`` could not be loaded, say why on the page and return True."""
    if bank.available(name):
        return False
    gr.Markdown(f"⚠️ **{name} is unavailable:** {html.escape(bank.slots[name].error or '')}",
                elem_classes="model-missing")
    return True


def md(text: str, **kwargs) -> gr.Markdown:
    """Markdown with LaTeX: $$…$$ on its own line, $…$ inline."""
    return gr.Markdown(text, latex_delimiters=LATEX, **kwargs)


# ------------------------------------------------------------------------------------ error policy

def friendly(fn: Callable) -> Callable:
    """Turn what a person can cause (ValueError: bad text, bad numbers, a missing model) into a
    ``gr.Error`` with the message; anything else into a short error and a log line. The server keeps
    serving either way and no traceback reaches the page."""

    def convert(e: Exception) -> gr.Error:
        if isinstance(e, gr.Error):
            return e
        if isinstance(e, ValueError):
            return gr.Error(str(e), print_exception=False)
        log.exception("unexpected error in %s", fn.__name__)
        return gr.Error(f"Something went wrong ({type(e).__name__}); the error was logged.",
                        print_exception=False)

    if inspect.isgeneratorfunction(fn):
        @functools.wraps(fn)
        def gen_wrapper(*args, **kwargs):
            try:
                yield from fn(*args, **kwargs)
            except Exception as e:
                raise convert(e) from None
        return gen_wrapper

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except Exception as e:
            raise convert(e) from None
    return wrapper


def warn(notes: list[str]) -> str:
    """Show each note as a toast (gr.Warning) and return them as Markdown for the page."""
    for n in notes:
        gr.Warning(n)
    return notes_md(notes)


def toast_notes(result):
    """A callback's result whose first item is notes Markdown: pop each note up as a warning too."""
    if isinstance(result, tuple) and result and isinstance(result[0], str):
        for line in result[0].split("\n\n"):
            if line.startswith(NOTE_MARK):
                gr.Warning(html.unescape(line[len(NOTE_MARK):]))
    return result


def bound(fn: Callable, bank: ModelBank) -> Callable:
    """``fn`` with the bank as its first argument and the error policy applied (a plain function
    with the remaining parameters, which is what Gradio inspects)."""
    if inspect.isgeneratorfunction(fn):
        def call(*args):
            yield from fn(bank, *args)
    else:
        def call(*args):
            return toast_notes(fn(bank, *args))
    functools.update_wrapper(call, fn)
    call.__signature__ = inspect.Signature(list(inspect.signature(fn).parameters.values())[1:])
    return friendly(call)


# ------------------------------------------------------------------------------ generate & compare

def _stats(name: str, n_tokens: int, seconds: float, prompt_bpc: Optional[float], done: bool) -> str:
    rate = f"{n_tokens / seconds:,.0f} tokens/s" if seconds > 0 and n_tokens else "…"
    bpc = f"{prompt_bpc:.2f} bits/char" if prompt_bpc is not None and prompt_bpc == prompt_bpc else "—"
    state = "" if done else " · generating…"
    return f"**{name}** · {n_tokens} tokens · {rate} · loss on the prompt: {bpc}{state}"


def generate(bank: ModelBank, prompt, temperature, top_k, top_p, max_new_tokens, seed):
    """Stream both models' continuations of ``prompt``, token by token, side by side.

    The two streams are interleaved: one token from the Transformer, one from the LSTM, then an
    update of the page, so both appear to write at once. Each yield is (transformer text, its stats,
    LSTM text, its stats, surprise HTML, notes, steps, why-slider, why-plot, why-caption, why-model); outputs
    that did not change are ``gr.skip()``. tokens/s counts only the time spent in each model's own
    steps. Each model gets its own generator seeded with ``seed``, so a (prompt, settings, seed)
    always gives the same text, whatever else the server is doing.
    """
    top_k = as_int(top_k, "top_k")
    max_new_tokens = as_int(max_new_tokens, "max_new_tokens")
    seed = as_int(seed, "seed")
    validate_sampling(temperature, top_k, top_p, max_new_tokens)
    validate_seed(seed)
    if prompt is None:
        prompt = ""
    if not isinstance(prompt, str):
        raise ValueError(f"prompt must be text, got {type(prompt).__name__}")

    names = list(MODELS)
    notes: list[str] = []
    if not prompt:
        notes.append("The prompt is empty: both models start from a new line.")
        prompt = "\n"
    texts = {n: "" for n in names}
    stats = {n: "" for n in names}
    streams, bits, bpc = {}, {}, {}
    # the surprise strip covers the end of the prompt that every model can read in one pass
    window_len = min([context_limit(bank.get(n), MAX_PROMPT_CHARS) for n in names if bank.available(n)]
                     or [MAX_PROMPT_CHARS])
    for name in names:
        if not bank.available(name):
            stats[name] = f"⚠️ {html.escape(bank.slots[name].error or name + ' is not loaded')}"
            continue
        loaded = bank.get(name)
        prep = prepare_text(prompt, loaded.tokenizer, MAX_PROMPT_CHARS, keep="end")
        for n in prep.notes(unk_char(loaded.tokenizer)):
            if n not in notes:
                notes.append(n)
        window = prep.ids[-window_len:]
        traced = run_traced(loaded, window)
        bits[name], bpc[name] = (traced.chars, traced.bits), traced.bits_per_char
        streams[name] = generate_stream(loaded.model, loaded.tokenizer, prep.text,
                                        max_new_tokens=max_new_tokens, temperature=temperature,
                                        top_k=top_k, top_p=top_p, seed=seed)
        stats[name] = _stats(name, 0, 0.0, bpc[name], False)
    if not streams:
        raise ValueError("no model could be loaded: " + "; ".join(s.error or "" for s in bank.slots.values()))

    chars = next(iter(bits.values()))[0]
    surprise = views.surprise_html(chars, {n: b for n, (_, b) in bits.items()})
    note_md = warn(notes)
    steps: dict[str, dict] = {n: {"steps": [], "text": "", "prompt": prompt,
                                  "itos": bank.get(n).tokenizer.itos} for n in streams}
    skip = gr.skip()
    yield (texts[names[0]], stats[names[0]], texts[names[1]], stats[names[1]], surprise, note_md,
           skip, skip, skip, skip, skip)

    seconds = {n: 0.0 for n in streams}
    for i in range(max_new_tokens):          # each stream yields exactly max_new_tokens tokens
        for name, stream in streams.items():
            t0 = time.perf_counter()
            g = next(stream)
            seconds[name] += time.perf_counter() - t0
            texts[name] += g.text
            steps[name]["steps"].append(compact(g.step))
        done = i == max_new_tokens - 1
        for name in streams:
            stats[name] = _stats(name, i + 1, seconds[name], bpc[name], done)
        if not done:
            yield (texts[names[0]], stats[names[0]], texts[names[1]], stats[names[1]], skip, skip,
                   skip, skip, skip, skip, skip)

    for name in streams:
        steps[name]["text"] = texts[name]
    first = next(iter(streams))
    n_steps = len(steps[first]["steps"])
    plot, caption = why_token(steps, first, n_steps)
    yield (texts[names[0]], stats[names[0]], texts[names[1]], stats[names[1]], surprise, note_md,
           steps, gr.update(maximum=max(1, n_steps), value=n_steps), plot, caption, first)


def compact(step):
    """A Step as kept in the session: float32 probabilities, no raw logits (~1 KB instead of ~2.5)."""
    return dataclasses.replace(step, logits=step.logits[:0], probs_temperature=step.probs_temperature.float(),
                               probs_filtered=step.probs_filtered.float())


def why_token(steps: Optional[dict], model_name: str, step_number) -> tuple:
    """Replay step ``step_number`` (1 = the first generated token) of ``model_name``'s last generation
    in this session: (distribution figure, caption). ``steps`` is what :func:`generate` stored."""
    if not steps:
        raise ValueError("generate some text first: this view replays the steps of your last generation")
    if model_name not in steps:
        raise ValueError(f"model must be one of {list(steps)}, got {model_name!r}")
    rec = steps[model_name]
    n = len(rec["steps"])
    k = as_int(step_number, "step")
    if not 1 <= k <= n:
        raise ValueError(f"step must be in 1…{n} (the tokens of the last generation), got {k}")
    step = rec["steps"][k - 1]
    itos = rec["itos"]
    before = (rec["prompt"] + rec["text"][:k - 1])[-40:]
    chosen = views.display_char(itos[step.token_id])
    n_k, n_p = int(step.cut_by_top_k.sum()), int(step.cut_by_top_p.sum())
    shown = "".join(views.display_char(c) for c in before).replace("`", "'")
    caption = (f"**{model_name}, step {k} of {n}.** After `{shown}` "
               f"it chose `{chosen.replace('`', chr(39))}` with probability {step.token_prob:.3f}. "
               f"top-k cut {n_k} of {len(itos)} tokens, top-p cut {n_p} more.")
    fig = views.distribution_figure(step, itos, title=f"{model_name}: the choice of token {k}")
    return fig, caption


GENERATE_INTRO = r"""
Both models read the prompt and give a score $z_i$ to each of the 65 characters that could come
next. Temperature $T$ turns the scores into probabilities, then top-k keeps the $k$ most likely
characters and top-p the smallest set whose probabilities add up to $p$; one character is drawn
from what is left:
$$p_i = \frac{e^{z_i/T}}{\sum_j e^{z_j/T}}$$
The *loss on the prompt* is how surprised a model is by your text on average,
$\frac{1}{n}\sum_t -\log_2 p(x_t \mid x_{<t})$ bits per character: lower means it found the text
more predictable. Same seed and settings, same text.
"""

WHY_INTRO = r"""
### Why this token
Pick a step of the last generation. The top panel is the whole vocabulary after temperature,
$\mathrm{softmax}(z/T)$; the bottom one is what the model actually sampled from after top-k and
top-p, renormalised to sum to 1. Characters a filter removed stay visible as hatched ghost bars at
their height before filtering, and with an ✕ on the axis (most are too unlikely to see as a bar):
grey for top-k, amber for top-p. $T = 0$ means greedy: the most likely character is always chosen.
"""


def build_generate_tab(bank: ModelBank) -> None:
    with gr.Tab("Generate & compare", id="generate"):
        md(GENERATE_INTRO)
        with gr.Row():
            with gr.Column(scale=3):
                prompt = gr.Textbox(DEFAULT_PROMPT, label="Prompt", lines=4, max_lines=12,
                                    elem_id="prompt")
                button = gr.Button("Generate with both models", variant="primary", elem_id="generate-btn")
                note = gr.Markdown(elem_id="generate-note")
            with gr.Column(scale=2):
                temperature = gr.Slider(0, 2, 0.8, step=0.05, label="temperature T (0 = greedy)",
                                        elem_id="temperature")
                top_k = gr.Slider(0, 65, 0, step=1, label="top-k (0 = off)", elem_id="top-k")
                top_p = gr.Slider(0, 1, 0.95, step=0.01, label="top-p (1 = off)", elem_id="top-p")
                with gr.Row():
                    max_new = gr.Slider(1, UI_MAX_NEW_TOKENS, 200, step=1, label="max new tokens",
                                        elem_id="max-new")
                    seed = gr.Number(0, label="seed", precision=0, minimum=0, elem_id="seed")
        outs = []
        with gr.Row(equal_height=True):
            for name in MODELS:
                with gr.Column():
                    stats = gr.Markdown(elem_classes="stats", elem_id=f"stats-{name.lower()}")
                    text = gr.Textbox(label=f"{name} continues", lines=12, max_lines=24,
                                      elem_classes="model-out", elem_id=f"out-{name.lower()}")
                    model_missing(bank, name)
                    outs += [text, stats]
        gr.Markdown("### Where the models are surprised by the prompt\nHover a character for its surprise "
                    "$-\\log_2 p$ in bits.", latex_delimiters=LATEX)
        surprise = gr.HTML(elem_id="surprise")
        md(WHY_INTRO)
        steps_state = gr.State(None)
        with gr.Row():
            why_model = gr.Radio(list(MODELS), value=TRANSFORMER, label="model", elem_id="why-model")
            why_step = gr.Slider(1, 200, 200, step=1, label="step (token of the last generation)",
                                 elem_id="why-step")
        why_caption = gr.Markdown(elem_id="why-caption")
        why_plot = gr.Plot(elem_id="why-plot", show_label=False)

        gen_inputs = [prompt, temperature, top_k, top_p, max_new, seed]
        gen_outputs = outs + [surprise, note, steps_state, why_step, why_plot, why_caption, why_model]
        model_event([button.click, prompt.submit], bound(generate, bank), gen_inputs, gen_outputs, "generate")
        model_event([why_step.release, why_model.input], friendly(why_token), [steps_state, why_model, why_step],
                    [why_plot, why_caption], "why_token")


# ------------------------------------------------------------------------------- look-inside tabs

def build_attention_tab(bank: ModelBank) -> None:
    with gr.Tab("Attention", id="attention"):
        md(I.ATTENTION_INTRO)
        if model_missing(bank, TRANSFORMER):
            return
        cfg = bank.get(TRANSFORMER).config
        with gr.Row():
            limit = context_limit(bank.get(TRANSFORMER), MAX_ANALYSIS_CHARS)
            text = gr.Textbox(I.DEFAULT_TEXT, label=f"Text (the first {limit} characters are read)",
                              lines=3, scale=3, elem_id="attn-text")
            with gr.Column(scale=2):
                causal = gr.Checkbox(True, label="causal mask", elem_id="attn-causal")
                hide_first = gr.Checkbox(False, label="hide attention to the first token",
                                         elem_id="attn-hide-first")
                button = gr.Button("Show attention", variant="primary", elem_id="attn-btn")
        note = gr.Markdown()
        grid = gr.Plot(show_label=False, elem_id="attn-grid")
        with gr.Row():
            layer = gr.Slider(1, cfg.n_layer, cfg.n_layer, step=1, label="layer", elem_id="attn-layer")
            head = gr.Slider(1, cfg.n_head, 1, step=1, label="head", elem_id="attn-head")
        with gr.Row():
            head_plot = gr.Plot(show_label=False, elem_id="attn-head-plot")
            avg_plot = gr.Plot(show_label=False, elem_id="attn-avg-plot")
        with gr.Row():
            diff_plot = gr.Plot(show_label=False, elem_id="attn-diff-plot")
            compare = gr.Markdown(elem_id="attn-compare")
        inputs = [text, causal, layer, head, hide_first]
        model_event([button.click, text.submit], bound(I.attention, bank), inputs,
                    [note, grid, head_plot, avg_plot, diff_plot, compare], "attention")
        # the causal toggle and the first-token option redraw the matrices only; the sliders (on
        # release, not while dragging) the chosen head and its diff only
        model_event([causal.input, hide_first.input], bound(I.attention_view, bank), inputs,
                    [grid, head_plot, avg_plot], "attention_view")
        model_event([layer.release, head.release], bound(I.attention_head, bank), inputs,
                    [head_plot, diff_plot], "attention_head")


def build_embeddings_tab(bank: ModelBank) -> None:
    with gr.Tab("Embeddings", id="embeddings") as tab:
        md(I.EMBEDDINGS_INTRO)
        with gr.Row():
            tables = [gr.Plot(show_label=False, elem_id=f"emb-{name.lower()}") for name in MODELS]
        with gr.Row():
            tables += [gr.Plot(show_label=False, elem_id=f"pos-{k}") for k in range(2)]
        # drawn when the tab is opened, not at start-up: faster start, lighter page for everyone else
        model_event([tab.select], bound(I.embedding_tables, bank), [], tables, "embedding_tables")
        text = gr.Textbox(I.DEFAULT_TEXT, label="Text", lines=2, elem_id="hidden-text")
        button = gr.Button("Show hidden states", elem_id="hidden-btn")
        note = gr.Markdown()
        plot = gr.Plot(show_label=False, elem_id="hidden-plot")
        model_event([button.click, text.submit], bound(I.hidden_states, bank), [text], [note, plot],
                    "hidden_states")


def build_lstm_tab(bank: ModelBank) -> None:
    with gr.Tab("Inside the LSTM", id="lstm"):
        md(I.LSTM_INTRO)
        if model_missing(bank, LSTM_NAME):
            return
        cfg = bank.get(LSTM_NAME).config
        text = gr.Textbox(I.DEFAULT_TEXT, label=f"Text (the first {MAX_ANALYSIS_CHARS} characters are read)",
                          lines=3, elem_id="lstm-text")
        with gr.Row():
            layer = gr.Slider(1, cfg.n_layer, cfg.n_layer, step=1, label="layer", elem_id="lstm-layer")
            n_units = gr.Slider(1, min(64, cfg.hidden), min(16, cfg.hidden), step=1,
                                label="units shown (most varying)", elem_id="lstm-units")
            button = gr.Button("Show gates", variant="primary", elem_id="lstm-btn")
        note = gr.Markdown()
        plot = gr.Plot(show_label=False, elem_id="lstm-plot")
        units_html = gr.HTML(elem_id="lstm-units-text")
        model_event([button.click, text.submit, layer.release, n_units.release], bound(I.lstm_inside, bank),
                    [text, layer, n_units], [note, plot, units_html], "lstm_gates")


def build_models_tab(bank: ModelBank) -> None:
    with gr.Tab("The models", id="models"):
        md(I.MODELS_INTRO)
        gr.Markdown(I.models_table(bank), elem_id="models-table")
        curves = {name: s.loaded.metrics.get("curve", []) for name, s in bank.slots.items()
                  if s.loaded is not None and s.loaded.metrics}
        gr.Plot(views.learning_curves_figure(curves, title="Learning curves: LSTM vs Transformer"),
                show_label=False, elem_id="curves")
        png = I.learning_curves_png(bank)
        if png:
            gr.Image(png, label="learning_curves.png (from training)", interactive=False, format="png",
                     buttons=["download"], elem_id="curves-png")
        md(I.COMPARISON)



# ----------------------------------------------------------------------------------------- the app

# One function per tab, in the order shown. A new section = a new build_*_tab(bank) appended here.
TABS: list[Callable[[ModelBank], None]] = [build_generate_tab, build_attention_tab, build_embeddings_tab,
                                           build_lstm_tab, build_seq2seq_tab, build_gpt_bert_tab,
                                           build_models_tab]


def header(bank: ModelBank) -> str:
    lines = ["# scratchformer — a Transformer and an LSTM, written from scratch, side by side",
             "Both were trained on tiny Shakespeare to predict the next character. Type, generate, "
             "and look inside."]
    for name, slot in bank.slots.items():
        if slot.loaded is None:
            lines.append(f"\n⚠️ **{name} is unavailable.** {html.escape(slot.error or '')} "
                         "The rest of the app works without it.")
    return "\n".join(lines)


def build_demo(checkpoint_dir: str | Path | None = None, bank: Optional[ModelBank] = None) -> gr.Blocks:
    """The whole app. Models are loaded once here (from ``checkpoint_dir``, default
    $SCRATCHFORMER_CHECKPOINTS or checkpoints/) and shared read-only by every request."""
    configure_torch(MODEL_CONCURRENCY)
    bank = bank or ModelBank.load(checkpoint_dir)
    with gr.Blocks(title="scratchformer") as demo:
        gr.Markdown(header(bank), elem_id="header")
        with gr.Tabs():
            for build_tab in TABS:
                build_tab(bank)
    demo.bank = bank  # for tests and benchmarks; read-only
    return demo


def launch_kwargs() -> dict:
    """What ``demo.launch`` gets besides the address (Gradio 6 takes theme and css here)."""
    # state_session_capacity: the per-session gr.State (a generation's steps, ≤ ~2 MB) of at most
    # this many sessions is kept; the oldest are dropped first.
    return dict(theme=gr.themes.Soft(), css=CSS, footer_links=["api", "gradio"], state_session_capacity=1000)
