"""The "Generate" tab: both models write from one prompt, side by side, while the
Transformer's attention of its newest character and its next-character distribution update beside
the text; "why this token" replays any step of the last generation over the whole vocabulary, with
that step's attention and exactly the context the model saw. The page opens on a finished example.

The inference code (torch) is imported inside the callbacks that use it: the page is laid out and
served before torch is imported (see :mod:`.blocks`)."""
from __future__ import annotations

import collections
import functools
import threading
import time
import weakref
from typing import TYPE_CHECKING, NamedTuple, Optional

import gradio as gr

from .. import views
from ..inference.choices import MAX_SEED
from .bank import LANGUAGE_MODELS, SMALL_PAIR, TRANSFORMER, ModelBank
from .events import LATEX, friendly, live_triggers, md, model_event, model_missing, warn
from .links import link_row
from . import settings as check
from .view import Control, View, declare, pair_controls, pair_triggers
from .policy import (MAX_PROMPT_CHARS, MAX_TEXT_BOX_CHARS, md_text, as_int, check_index, context_limit, generation_prompt, prepare_text,
)
from .watch import attention_views, watch_views

if TYPE_CHECKING:
    from ..inference.replay import GenerationRecord

UI_MAX_NEW_TOKENS = 1000   # the slider's end; the API accepts up to sampling.MAX_NEW_TOKENS
STREAM_INTERVAL_S = 0.04   # at most one page update per 40 ms (25 a second); every token still arrives
FULL_RATE_STREAMS = 1      # up to this many streams at once update every STREAM_INTERVAL_S (see Streaming)
WATCH_SHARE = 0.25          # the watch panels take at most this share of the server's time (a few streams)
WATCH_SHARE_BUSY = 0.08     # … and at least this much when many stream at once (Streaming.watch_share)
DEFAULT_PROMPT = "ROMEO:\n"
DEFAULT_SETTINGS = (0.8, 0, 0.95, 200, 0)   # temperature, top_k, top_p, max_new_tokens, seed
STATE_TTL_S = 3600         # a session's last generation is dropped an hour after it was made
CAPTION_CHARS = 40         # "why this token" quotes this many characters before the token


class GenerateUpdate(NamedTuple):
    """One update of the generate tab, in the order of its outputs (Gradio reads it as a tuple).
    A field that did not change is ``gr.skip()`` or, in the stream's updates, its value sent again."""

    transformer_text: object
    transformer_stats: object
    lstm_text: object
    lstm_stats: object
    surprise: object
    notes: object
    steps: object
    why_step: object
    why_plot: object
    why_caption: object
    why_model: object
    watch_attention: object
    watch_distribution: object
    watch_context: object
    why_attention: object
    why_context: object


class Kept(NamedTuple):
    """What a session keeps of one model's last generation: ids and a few numbers (~12 bytes a
    token, no tensors, no figures); "why this token" recomputes any step from them
    (:func:`~scratchformer.inference.replay.replay_step`)."""

    record: GenerationRecord   # ids, each step's context, the settings and seed
    prompt_tail: str           # the prompt's last CAPTION_CHARS characters, as typed (for the caption)
    pair: str                  # the pair of models that wrote it (:data:`~.bank.PAIRS`)


class WhyToken(NamedTuple):
    """The why-this-token view: the distribution figure and its caption."""

    plot: object
    caption: str


class Streaming:
    """How many generations this server is streaming to pages now, and so how often each may update.

    An update costs the server a few milliseconds of Python (Gradio serialises and diffs every
    output), more than a token; one stream alone updates every ``STREAM_INTERVAL_S``. With many
    visitors writing at once, updating each every 40 ms would cost more than the machine has (32
    streams: 800 updates a second) and everyone's text would come late. So the streams share the
    budget of ``FULL_RATE_STREAMS`` stream (25 updates a second): with n > FULL_RATE_STREAMS streams,
    each updates every STREAM_INTERVAL_S · n / FULL_RATE_STREAMS seconds (32 streams: every 1.28 s),
    and each watch panel is redrawn n times less often. Every token still arrives, in fewer and
    larger pieces."""

    def __init__(self):
        self._lock = threading.Lock()
        self.count = 0

    def __enter__(self) -> "Streaming":
        with self._lock:
            self.count += 1
        return self

    def __exit__(self, *exc) -> None:
        with self._lock:
            self.count -= 1

    def interval_s(self) -> float:
        """Seconds between one stream's page updates now."""
        return STREAM_INTERVAL_S * max(1.0, self.count / FULL_RATE_STREAMS)

    def watch_share(self) -> float:
        """The share of the server's time all the streams' watch panels may take together:
        ``WATCH_SHARE`` while up to 4 stream, then less, down to ``WATCH_SHARE_BUSY`` from 13 on (8
        streams: 12.5%). With many visitors the text comes first: at 32 streams a panel that costs 11 ms
        is redrawn every 4.4 s instead of every 1.4 s, and the 32 generations take about 9% less CPU
        (benchmarks/serving.py --server, 2026-12-07)."""
        return max(WATCH_SHARE_BUSY, min(WATCH_SHARE, WATCH_SHARE * 4 / max(1, self.count)))


STREAMING = Streaming()

# The page work of the streams (the traced passes, the watch and why-this-token panels) is done by one
# stream at a time. Python runs one thread at a time anyway (the GIL), so this costs the streams
# nothing in sum; but with 32 streams drawing at once, the thread that decodes every stream's next
# token (inference/batching.py) waited behind all of them each time it gave the GIL up (every torch
# call does), and their switching slowed everything: 32 visitors' 200 tokens took ~15% longer.
DRAWING = threading.Lock()


def _stats(name: str, n_tokens: int, seconds: float, prompt_bpc: Optional[float], done: bool) -> str:
    rate = f"{n_tokens / seconds:,.0f} tokens/s" if seconds > 0 and n_tokens else "…"
    bpc = f"{prompt_bpc:.2f} bits/char" if prompt_bpc is not None and prompt_bpc == prompt_bpc else "—"
    state = "" if done else " · generating…"
    return f"**{name}** · {n_tokens} tokens · {rate} · loss on the prompt: {bpc}{state}"


def generate(bank: ModelBank, prompt, temperature, top_k, top_p, max_new_tokens, seed, watch_layer=None,
             pair=SMALL_PAIR):
    """Stream both models' continuations of ``prompt``, token by token, side by side.

    The two streams are interleaved: one token from the Transformer, one from the LSTM, so both
    appear to write at once. The page is updated after a token pair when ``STREAM_INTERVAL_S`` has
    passed since the last update (each update costs the server a few milliseconds, more than a
    token does; with many visitors writing at once, less often: :class:`Streaming`), and always at
    the end. With each update the watch panel shows the Transformer's
    newest character: its attention per head of layer ``watch_layer`` (1-based; default the last)
    and their average, and the distribution it was drawn from (:mod:`.watch`). Each yield is a
    :class:`GenerateUpdate`; outputs that did not change are sent again as the same values (see
    below: cheaper than ``gr.skip()``). A model's tokens/s is its tokens over the seconds its stream
    was computed (``GenStep.elapsed_s``: in a batch with other visitors' rows, the batch's steps;
    time spent waiting for this loop to read, or drawing the watch panel, is left out). Each model
    gets its own generator seeded with ``seed``, so a (prompt, settings, seed) always gives the same text, whatever else
    the server is doing. ``pair``: which models write (:data:`~.bank.PAIRS`: the small CPU-trained pair,
    or the larger GPU-trained one when its checkpoints are there), chosen per request.
    """
    bank = bank.for_pair(pair)
    yield from _generate(bank, prompt, temperature, top_k, top_p, max_new_tokens, seed, watch_layer, live=True,
                         pair=pair)


def check_generate(bank, temperature, top_k, top_p, max_new_tokens, seed, watch_layer):
    """The generation settings checked by :func:`.settings.generation` (ValueError naming the setting
    and its range) → (SamplingSettings, max_new_tokens, seed, the watched layer 0-based or None)."""
    n_layer = bank.get(TRANSFORMER).config.n_layer if bank.available(TRANSFORMER) else None
    r = check.generation(temperature, top_k, top_p, max_new_tokens, seed, watch_layer, n_layer,
                         bank.largest_model(LANGUAGE_MODELS))
    return r.sampling, r.max_new_tokens, r.seed, r.watch_layer


def _generate(bank: ModelBank, prompt, temperature, top_k, top_p, max_new_tokens, seed, watch_layer, live: bool,
              pair=SMALL_PAIR):
    """:func:`generate`; ``live=False`` draws the watch panel only for the last step (the page's
    default example)."""
    from ..inference.replay import GenerationRecord
    settings, max_new_tokens, seed, layer = check_generate(bank, temperature, top_k, top_p, max_new_tokens,
                                                           seed, watch_layer)
    prompt, notes = generation_prompt(prompt)
    names = list(LANGUAGE_MODELS)
    texts = {n: "" for n in names}
    stats = {n: "" for n in names}
    shown = {n: bank.slots[n].title or n if n in bank.slots else n for n in names}   # "GPT-2" in its role
    streams, bits, bpc = {}, {}, {}
    try:                 # the streams are closed however this ends (a client that left: at once)
        # the surprise strip covers the end of the prompt that every model can read in one pass
        window_len = min([context_limit(bank.get(n).model, MAX_PROMPT_CHARS) for n in names if bank.available(n)]
                         or [MAX_PROMPT_CHARS])
        for name in names:
            if not bank.available(name):
                stats[name] = f"⚠️ {md_text(bank.slots[name].error or name + ' is not loaded')}"
                continue
            loaded = bank.get(name)
            prep = prepare_text(prompt, loaded.tokenizer, MAX_PROMPT_CHARS, keep="end")
            context = loaded.model.context_length        # a Transformer's block size (an LSTM: None)
            if context is not None and len(prep.ids) > context:
                notes.append(f"the {name} reads the last {context:,} of the prompt's {len(prep.ids):,} tokens "
                             "(its context length)")
            for n in prep.notes():
                if n not in notes:
                    notes.append(n)
            pieces, prompt_bits, bpc[name] = prompt_surprise(loaded, prep.ids[-window_len:])
            bits[name] = (pieces, prompt_bits)
            streams[name] = bank.stream(name, prep.text, settings, max_new_tokens, seed)
            stats[name] = _stats(shown[name], 0, 0.0, bpc[name], False)
        if not streams:
            raise ValueError("no model could be loaded: " + "; ".join(s.error or "" for s in bank.slots.values()))

        chars = next(iter(bits.values()))[0]
        surprise = views.surprise_html(chars, {n: b for n, (_, b) in bits.items()})
        note_md = warn(notes)
        steps = {n: Kept(GenerationRecord(settings, seed), prompt[-CAPTION_CHARS:], pair) for n in streams}
        latest = {}          # each model's newest Step, for the watch panel (the session keeps none)
        first = next(iter(streams))
        # While the text streams, the other outputs are sent again as the very same values, not as
        # gr.skip(): Gradio answers a gr.skip() by building a new component for the session (about
        # 1 ms of Python, holding the GIL), 12 ms an update for these 11 outputs against 1 ms for the
        # texts (30% of a core for one stream at 25 updates a second, and the session grew by the
        # copies). A value sent again costs nothing: a figure is serialised once (_sent), and the
        # stream sends only what changed. So the why-this-token panel waits, cleared, for the end
        # (it would explain the last generation's tokens), and the watch panel shows its last drawing.
        waiting = _message_plot("drawn as the models write")
        why_waiting = _message_plot("why this token: shown when the text is written")
        watch = (waiting, waiting, "")
        yield GenerateUpdate(texts[names[0]], stats[names[0]], texts[names[1]], stats[names[1]], surprise, note_md,
                             gr.skip(), step_slider(1, 1, interactive=False), why_waiting, WHY_WAITING, first,
                             *watch, why_waiting, "")

        seconds = {n: 0.0 for n in streams}
        last_update = next_watch = time.perf_counter()
        with STREAMING:
            _pace(streams)
            for i in range(max_new_tokens):          # each stream yields exactly max_new_tokens tokens
                for name, stream in streams.items():
                    g = next(stream)
                    seconds[name] = g.elapsed_s    # the stream's own time (not this loop's wait for it)
                    texts[name] += g.text
                    steps[name].record.add(g)
                    latest[name] = g.step
                done = i == max_new_tokens - 1
                for name in streams:
                    stats[name] = _stats(shown[name], i + 1, seconds[name], bpc[name], done)
                now = time.perf_counter()
                if not done and (i == 0 or now - last_update >= STREAMING.interval_s()):   # the first at once
                    if live and i > 0 and now >= next_watch:     # the first text goes out at once, alone
                        with DRAWING:
                            drawn = time.perf_counter()
                            attn, dist, context = _watch(bank, steps, latest, layer, i + 1)
                            watch = (_sent(attn), _sent(dist), context)
                            cost = time.perf_counter() - drawn
                        # the watch panel re-reads the whole context: for a large model (GPT-2) that costs
                        # more than a token, so all streams' panels together take at most a share of
                        # the time (Streaming.watch_share); the text is sent with every update
                        next_watch = now + cost * STREAMING.count / STREAMING.watch_share()
                    yield GenerateUpdate(texts[names[0]], stats[names[0]], texts[names[1]], stats[names[1]],
                                         surprise, note_md, gr.skip(), 1, why_waiting, WHY_WAITING, first,
                                         *watch, why_waiting, "")     # (a State's gr.skip() costs nothing)
                    last_update = time.perf_counter()
                    _pace(streams)

        n_steps = steps[first].record.n_steps
        # the last step is at hand: shown from its Step, not replayed
        with DRAWING:
            plot, caption = _why_token(steps[first], bank.get(first), first, n_steps, latest[first])
            watch = _watch(bank, steps, latest, layer, n_steps)
            if _watched(steps) == first and layer is not None:     # the same step, model and layer: the same views
                why_attn, why_ctx = watch[0], watch[2]
            else:
                why_attn, why_ctx = _why_attention(steps[first], bank.get(first), first, n_steps,
                                                   None if layer is None else layer + 1)
        yield GenerateUpdate(texts[names[0]], stats[names[0]], texts[names[1]], stats[names[1]], surprise, note_md,
                             steps, step_slider(n_steps, n_steps), plot, caption, first, *watch, why_attn, why_ctx)
    finally:
        for stream in streams.values():
            close = getattr(stream, "close", None)
            if close is not None:
                close()


def _pace(streams: dict) -> None:
    """Tell each batched stream how long its tokens may wait before they are handed to this loop: half
    the time between two page updates (:class:`Streaming`; 20 ms for one stream alone, 0.64 s for each
    of 32). The loop then wakes a few times between updates instead of at every decoding step, and
    leaves the GIL to the thread that decodes everyone's next token."""
    for stream in streams.values():
        pace = getattr(stream, "pace", None)    # a stream decoded alone (batching off) has none
        if pace is not None:
            pace(STREAMING.interval_s() / 2)


SURPRISE_PROMPTS = 16       # prompts whose surprise strip is remembered, per model
_SURPRISE: "weakref.WeakKeyDictionary" = weakref.WeakKeyDictionary()   # model → {token ids: surprise}
_SURPRISE_LOCK = threading.Lock()


def prompt_surprise(loaded, window: list[int]) -> tuple:
    """(the tokens' texts, each token's surprise −log₂ p in bits, bits per character) of ``window``
    under ``loaded``'s model: a traced pass, made once per model and prompt and then remembered (the
    ``SURPRISE_PROMPTS`` most recent per model). Visitors who generate from the same prompt (the
    page's default, a shared link) share it: 32 at once made 64 traced passes, a tenth of the server's
    time. A model's weights never change once it is in the bank; a model that leaves it takes its
    entries with it (weak keys)."""
    key = tuple(window)
    with _SURPRISE_LOCK:
        known = _SURPRISE.setdefault(loaded.model, collections.OrderedDict())
        if key in known:
            known.move_to_end(key)
            return known[key]
    from ..inference.traced import run_traced
    with DRAWING:
        traced = run_traced(loaded.model, loaded.tokenizer, list(window))
    value = (traced.pieces, traced.bits, traced.bits_per_char)
    with _SURPRISE_LOCK:
        known[key] = value
        while len(known) > SURPRISE_PROMPTS:
            known.popitem(last=False)
    return value


def step_slider(n_steps: int, k: int, interactive: bool = True):
    """The why-this-token slider for a generation of ``n_steps`` tokens, at step ``k``. A slider needs
    minimum < maximum: a 1-token generation gets 1…2, held still at 1 (as it is while a text is
    written: ``interactive=False``)."""
    return gr.update(maximum=max(2, n_steps), value=k, interactive=interactive and n_steps > 1)


WHY_WAITING = "*Why this token* is shown here when the text is written."


@functools.lru_cache(maxsize=8)
def _message_plot(text: str):
    """A figure that only says ``text``, serialised once (:func:`_sent`)."""
    return _sent(views.message_figure(text, height=160))


def _sent(fig):
    """``fig`` serialised as Gradio sends a plot (its PlotData, which Gradio passes through as it is),
    so that sending it again in a stream's later updates costs nothing."""
    from gradio.components.plot import PlotData
    return PlotData(type="plotly", plot=fig.to_json())


def linked_generation(bank: ModelBank, prompt, temperature, top_k, top_p, max_new_tokens, seed, layer, model, step,
                      pair=SMALL_PAIR):
    """What a link to the generate tab shows: the generation its settings give (the same text: same
    prompt, settings and seed), then "why this token" at the link's ``model`` and ``step`` (the
    last step when the generation is shorter)."""
    last = None
    for last in generate(bank, prompt, temperature, top_k, top_p, max_new_tokens, seed, layer, pair):
        yield last
    steps = last.steps
    name = model if model in steps else next(iter(steps))
    n = steps[name].record.n_steps
    k = min(max(1, step), n)
    plot, caption = why_token(bank, steps, name, k)
    attn, ctx = why_attention(bank, steps, name, k, layer)
    yield GenerateUpdate(*[gr.skip()] * len(GenerateUpdate._fields))._replace(
        why_step=step_slider(n, k), why_plot=plot, why_caption=caption, why_model=name,
        why_attention=attn, why_context=ctx)


def _watched(steps: dict) -> str:
    """The model the watch panel shows: the Transformer, else the first model."""
    return TRANSFORMER if TRANSFORMER in steps else next(iter(steps))


def _watch(bank: ModelBank, steps: dict, latest: dict, layer, k: int) -> tuple:
    """The watch panel for step ``k`` (1-based), the newest: :func:`_watched`'s."""
    name = _watched(steps)
    rec = steps[name].record
    return watch_views(bank.get(name), rec.ids, rec.starts[k - 1], rec.lens[k - 1], latest[name], layer or 0, k)


def _kept(bank: ModelBank, steps: Optional[dict], model_name, step_number):
    """(what the session kept of ``model_name``'s generation, the step checked, the model that wrote it)."""
    if not steps:
        raise ValueError("generate some text first: this view replays the steps of your last generation")
    if model_name not in steps:
        raise ValueError(f"model must be one of {list(steps)}, got {model_name!r}")
    kept = steps[model_name]
    try:
        k = as_int(step_number, "step", 1, kept.record.n_steps)
    except ValueError as e:
        raise ValueError(f"{e} (the tokens of the last generation)") from None
    loaded = bank.for_pair(kept.pair).get(model_name)       # the pair that wrote these steps
    return kept, k, loaded


def why_token(bank: ModelBank, steps: Optional[dict], model_name: str, step_number) -> WhyToken:
    """Replay step ``step_number`` (1 = the first generated token) of ``model_name``'s last generation
    in this session: (distribution figure, caption). ``steps`` is what :func:`generate` stored; the
    step's distributions are recomputed by the model over the context it saw then."""
    from ..inference.replay import replay_step
    kept, k, loaded = _kept(bank, steps, model_name, step_number)
    return _why_token(kept, loaded, model_name, k, replay_step(loaded.model, kept.record, k))


def _why_token(kept: Kept, loaded, model_name: str, k: int, step) -> WhyToken:
    """:func:`why_token` for a step at hand."""
    rec = kept.record
    n = rec.n_steps
    tok = loaded.tokenizer
    before = (kept.prompt_tail + tok.decode(rec.generated[:k - 1]))[-CAPTION_CHARS:]
    chosen = tok.label(step.token_id)
    n_k, n_p = int(step.cut_by_top_k.sum()), int(step.cut_by_top_p.sum())
    shown = "".join(views.display_token(c) for c in before).replace("`", "'")
    caption = (f"**{model_name}, step {k} of {n}.** After `{shown}` "
               f"it chose `{chosen.replace('`', chr(39))}` with probability {step.token_prob:.3f}. "
               f"top-k cut {n_k} of {tok.vocab_size} tokens, top-p cut {n_p} more.")
    fig = views.export_name(views.distribution_figure(step, tok.texts, title=f"{model_name}: the choice of token {k}",
                                                      plain=True),
                            f"distribution_{model_name.lower()}_step{k}")
    return WhyToken(fig, caption)


def why_attention(bank: ModelBank, steps: Optional[dict], model_name, step_number, layer) -> tuple:
    """Step ``step_number`` of the last generation: (the newest character's attention per head of
    ``layer`` (1-based; None = the last) from a traced pass over exactly the context the model saw,
    that context as HTML)."""
    kept, k, loaded = _kept(bank, steps, model_name, step_number)
    return _why_attention(kept, loaded, model_name, k, layer)


def _why_attention(kept: Kept, loaded, model_name: str, k: int, layer) -> tuple:
    n_layer = getattr(loaded.config, "n_layer", 1)
    l = n_layer - 1 if layer is None or model_name != TRANSFORMER else check_index(layer, "watch layer", n_layer)
    rec = kept.record
    return attention_views(loaded, rec.ids, rec.starts[k - 1], rec.lens[k - 1], rec.token_id(k), l, k)


GENERATE_INTRO = r"""
Both models read the prompt and give a score $z_i$ to each of the %(vocabulary)s that could come
next. Temperature $T$ turns the scores into probabilities, then top-k keeps the $k$ most likely
%(unit)ss and top-p the smallest set whose probabilities add up to $p$; one %(unit)s is drawn
from what is left:
$$p_i = \frac{e^{z_i/T}}{\sum_j e^{z_j/T}}$$
The *loss on the prompt* is how surprised a model is by your text on average,
$\sum_t -\log_2 p(x_t \mid x_{<t})$ divided by the characters it predicted: bits per character, so
that a model of characters and a model of words compare on the same scale. Lower means it found
the text more predictable. Same seed and settings, same text.
"""

WHY_INTRO = r"""
### Why this token
Pick a step of the last generation. The top panel is the vocabulary after temperature,
$\mathrm{softmax}(z/T)$ (with the word pair's 2,048 tokens: the 30 most likely and one bar for all
the others); the bottom one is what the model actually sampled from after top-k and top-p,
renormalised to sum to 1. Tokens a filter removed stay visible as hatched ghost bars at their height
before filtering, and with an ✕ on the axis (most are too unlikely to see as a bar): grey for top-k,
amber for top-p. $T = 0$ means greedy: the most likely token is always chosen.
"""


WATCH_INTRO = """
#### Watch it attend while it writes
With each new token (a character, or with the word pair a piece of a word): where the Transformer's
newest token looks (each head of the chosen layer, and their average) and the distribution the next
token was drawn from. Below the heatmap, exactly the text it saw (after the KV cache refills, a window
that starts mid-text).
"""


def intro_words(bank: ModelBank) -> dict:
    """What the intro says the models choose from: "65 characters" (the vocabulary of the writers, in
    their tokenizer's unit; "tokens" when they do not share one)."""
    toks = [bank.tokenizer(n) for n in bank.language_models()]
    units = {t.unit for t in toks}
    unit = units.pop() if len(units) == 1 else "token"
    sizes = sorted({t.vocab_size for t in toks})
    size = " or ".join(f"{n:,}" for n in sizes) or "possible"
    return {"vocabulary": f"{size} {unit}s", "unit": unit}


def build_generate_tab(bank: ModelBank, pair=None) -> None:
    n_layer = bank.config(TRANSFORMER).n_layer if bank.offered(TRANSFORMER) else 1
    with gr.Tab("Generate", id="generate") as tab:
        md(GENERATE_INTRO % intro_words(bank))
        share = link_row("generate", tab)
        with gr.Row():
            with gr.Column(scale=3):
                prompt = gr.Textbox(DEFAULT_PROMPT, label="Prompt", lines=4, max_lines=12,
                                    elem_id="prompt", max_length=MAX_TEXT_BOX_CHARS)
                button = gr.Button("Generate with both models", variant="primary", elem_id="generate-btn")
                note = gr.Markdown(elem_id="generate-note")
            with gr.Column(scale=2):
                temperature = gr.Slider(0, 2, DEFAULT_SETTINGS[0], step=0.05, label="temperature T (0 = greedy)",
                                        elem_id="temperature")
                top_k = gr.Slider(0, bank.vocab_size(bank.language_models()), DEFAULT_SETTINGS[1], step=1,
                                  label="top-k (0 = off)", elem_id="top-k")
                top_p = gr.Slider(0, 1, DEFAULT_SETTINGS[2], step=0.01, label="top-p (1 = off)", elem_id="top-p")
                with gr.Row():
                    max_new = gr.Slider(1, UI_MAX_NEW_TOKENS, DEFAULT_SETTINGS[3], step=1, label="max new tokens",
                                        elem_id="max-new")
                    seed = gr.Number(DEFAULT_SETTINGS[4], label="seed", precision=0, minimum=0, elem_id="seed")
        outs = []
        with gr.Row(equal_height=False):
            for name in LANGUAGE_MODELS:
                with gr.Column(scale=2):
                    stats = gr.Markdown(elem_classes="stats", elem_id=f"stats-{name.lower()}")
                    text = gr.Textbox(label=f"{name} continues", lines=12, max_lines=24,
                                      elem_classes="model-out", elem_id=f"out-{name.lower()}")
                    model_missing(bank, name)
                    outs += [text, stats]
            with gr.Column(scale=3, elem_id="watch"):
                md(WATCH_INTRO)
                most = bank.largest_shape().get("layer", 1)     # the page fits it to the chosen pair
                watch_layer = gr.Slider(1, max(2, most), n_layer, step=1, label="layer watched",
                                        interactive=n_layer > 1, elem_id="watch-layer")
                watch_attn = gr.Plot(show_label=False, elem_id="watch-attn")
                watch_context = gr.HTML(elem_id="watch-context")
                watch_dist = gr.Plot(show_label=False, elem_id="watch-dist")
        gr.Markdown("### Where the models are surprised by the prompt\nHover a token for its surprise "
                    "$-\\log_2 p$ in bits.", latex_delimiters=LATEX)
        surprise = gr.HTML(elem_id="surprise")
        md(WHY_INTRO)
        steps_state = gr.State(None, time_to_live=STATE_TTL_S)
        with gr.Row():
            why_model = gr.Radio(list(LANGUAGE_MODELS), value=TRANSFORMER, label="model", elem_id="why-model")
            why_step = gr.Slider(1, DEFAULT_SETTINGS[3], DEFAULT_SETTINGS[3], step=1,
                                 label="step (token of the last generation)", elem_id="why-step")
        why_caption = gr.Markdown(elem_id="why-caption")
        with gr.Row():
            why_plot = gr.Plot(show_label=False, elem_id="why-plot")
            with gr.Column():
                why_attn = gr.Plot(show_label=False, elem_id="why-attn")
                why_context = gr.HTML(elem_id="why-context")

        # the page's example: one finished generation, computed once (its steps serve every
        # visitor's "why this token" until they generate their own)
        example: dict = {}

        def default_generation():
            *_, last = _generate(bank, DEFAULT_PROMPT, *DEFAULT_SETTINGS, None, live=False)
            example["steps"] = last.steps
            return last

        def why(steps, model_name, step_number):
            return why_token(bank, steps or example.get("steps"), model_name, step_number)

        def why_attn_view(steps, model_name, step_number, layer):
            return why_attention(bank, steps or example.get("steps"), model_name, step_number, layer)

        outputs = GenerateUpdate(*outs, surprise, note, steps_state, why_step, why_plot, why_caption, why_model,
                                 watch_attn, watch_dist, watch_context, why_attn, why_context)
        writers = any(bank.offered(n) for n in LANGUAGE_MODELS)
        declare(View("generate", generate,
                     [Control("prompt", prompt, dict(max_chars=MAX_PROMPT_CHARS, keep="end")),
                      Control("temperature", temperature), Control("top_k", top_k), Control("top_p", top_p),
                      Control("max_new_tokens", max_new), Control("seed", seed, dict(hi=MAX_SEED)),
                      Control("layer", watch_layer, shape="layer"), *pair_controls(pair)],
                     list(outputs), [button.click, prompt.submit, *pair_triggers(pair)], group="generate",
                     arrival=writers and default_generation,
                     link=lambda **v: linked_generation(bank, **v),
                     linked_only=[Control("model", why_model),
                                  Control("step", why_step, dict(lo=1, hi=UI_MAX_NEW_TOKENS))]),
                bank, share)
        model_event(live_triggers(why_step, why_model), friendly(why), [steps_state, why_model, why_step],
                    [why_plot, why_caption], "why_token")
        model_event(live_triggers(why_step, why_model, watch_layer), friendly(why_attn_view),
                    [steps_state, why_model, why_step, watch_layer], [why_attn, why_context], "why_attention")
