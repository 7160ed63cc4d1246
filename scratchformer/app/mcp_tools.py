"""The app's tools for language-model agents: plain functions of (bank, typed values) → a JSON-ready
dict, served as one JSON text per call (:func:`bind`).

``build_app`` registers each function of :data:`TOOLS` with ``gr.api`` (:func:`~.blocks.register_tools`), which makes
it two things at once: an API endpoint (``/tool_<name>`` for ``gradio_client``) and, when the app is
launched with ``mcp_server=True``, a Model Context Protocol tool called ``<name>``. Gradio builds the
tool's schema from the function itself: the type hints give each argument's JSON type, the defaults
its default, the docstring's first paragraph the tool's description, and each ``name: …`` line of its
``Args:`` section that argument's description (one line per argument: Gradio reads only that line).

The tools compute nothing their own way: they call the same library functions as the app's tabs
(``generate_stream``, ``run_traced``, ``decode_with_trace``, ``fill_blanks``) after the same checks
(:mod:`.policy` for texts, :mod:`.settings` for every other setting), so ``generate`` here writes exactly the
texts the app's ``/generate`` writes for the same prompt, settings and seed. A bad value raises
``ValueError`` naming the argument and its allowed range; :func:`bind` turns it into a
``gr.Error`` (the same :func:`~.events.friendly` policy as every event), which an MCP client receives
as an error result with that message. The server keeps serving.

torch and the library are imported inside the tools, on their first call: the app lays out its page
(and registers these tools) before it imports torch (see :mod:`.bank`).

Numbers are rounded for compactness (probabilities to 6 decimals, attention weights to 4): an agent
reads them, and a 128 × 128 attention matrix stays near 100 KB.
"""
import functools
import inspect
import json
import time
from typing import Callable

from ..inference.choices import BLANK, MAX_BEAM_SIZE
from .bank import (BERT, ENCDEC, GPT2, GPT2_PAIR, LANGUAGE_MODELS, LARGE_LSTM, LARGE_PAIR, LARGE_TRANSFORMER, LSTM_NAME,
                   PAIRS, SMALL_PAIR, TRANSFORMER, WORD_LSTM, WORD_PAIR, WORD_TRANSFORMER, ModelBank)
from .events import friendly
from .policy import (MAX_ANALYSIS_CHARS, MAX_PROMPT_CHARS, as_int, as_number, check_index, check_text,
                     context_limit, generation_prompt, prepare_text, shown_value)
from . import settings as check
from .settings import TOOL_SECONDS

KEYS = {TRANSFORMER: "transformer", "LSTM": "lstm"}   # the JSON key of each language model
MAX_TOP_N = 100              # next_char_distribution lists at most this many characters (the vocabulary: 65)
DECODE_METHODS = ("greedy", "beam")


# The ``models`` argument of the language-model tools: which pair of the app (:data:`~.bank.PAIRS`).
MODEL_PAIRS = {"characters": SMALL_PAIR, "words": WORD_PAIR, "large": LARGE_PAIR, "gpt2": GPT2_PAIR}


# The ``model`` argument: one language model of the app by itself, by a short id (or its name in the page).
MODEL_IDS = {"gpt": TRANSFORMER, "lstm": LSTM_NAME, "word-gpt": WORD_TRANSFORMER, "word-lstm": WORD_LSTM,
             "large-gpt": LARGE_TRANSFORMER, "large-lstm": LARGE_LSTM, "gpt2": GPT2}


def _pair_bank(bank: ModelBank, models) -> ModelBank:
    """The bank with the pair ``models`` names in the Transformer and LSTM roles; ValueError naming
    the pairs this app offers."""
    offered = [key for key, pair in MODEL_PAIRS.items() if pair in bank.pairs()]
    if not isinstance(models, str) or models not in offered:
        raise ValueError(f"models must be one of {', '.join(map(repr, offered))}; got {shown_value(models)}")
    return bank.for_pair(MODEL_PAIRS[models])


def _chosen(bank: ModelBank, models, model) -> tuple[ModelBank, tuple[str, ...]]:
    """What a language-model tool runs: (a bank with the right models in the Transformer and LSTM
    roles, the roles to run). ``model`` ("" = not given) names one model the app offers, by its id in
    :data:`MODEL_IDS` or its name in the page ("Transformer (words)", "GPT-2"), and runs it alone in
    its role; otherwise the pair ``models`` names runs in both. ValueError naming the models offered."""
    if model == "" or model is None:
        return _pair_bank(bank, models), LANGUAGE_MODELS
    offered = {key: name for key, name in MODEL_IDS.items() if bank.offered(name)}
    name = offered.get(model) if isinstance(model, str) else None
    if name is None and isinstance(model, str):
        name = next((n for n in offered.values() if n.casefold() == model.strip().casefold()), None)
    if name is None:
        raise ValueError(f"model must be one of {', '.join(map(repr, offered))} (or \"\" for the pair "
                         f"given by models); got {shown_value(model)}")
    pair, role = next((p, r) for p, roles in PAIRS.items() for r, n in roles.items() if n == name)
    return bank.for_pair(pair), (role,)


def _round(values, digits: int):
    """A tensor (or nested list) as nested lists of floats rounded to ``digits`` decimals."""
    if hasattr(values, "tolist"):        # a tensor
        values = values.tolist()
    if isinstance(values, list):
        return [_round(v, digits) for v in values]
    return round(float(values), digits)


def _check_bool(value, name: str) -> bool:
    if not isinstance(value, bool):
        raise ValueError(f"{name} must be true or false, got {shown_value(value)} ({type(value).__name__})")
    return value


def _language_models(bank: ModelBank, notes: list[str], roles=LANGUAGE_MODELS) -> dict:
    """{JSON key: loaded model} of the language models in ``roles`` that loaded; a note for each that did not."""
    loaded = {}
    for name in roles:
        if bank.available(name):
            loaded[KEYS[name]] = bank.get(name)
        else:
            notes.append(bank.slots[name].error or f"{name} is not loaded")
    if not loaded:
        raise ValueError("no language model could be loaded: " + "; ".join(notes))
    return loaded


def _names(bank: ModelBank, roles) -> dict:
    """{JSON key: the name of the model in that role} ("Transformer (words)", "GPT-2"), for the roles run."""
    return {KEYS[r]: bank.slots[r].title or r for r in roles}


def _prepared_prompt(loaded, prompt: str, notes: list[str]):
    """The prompt as the generate tab prepares it: its last 2,000 characters, unknown ones replaced."""
    prep = prepare_text(prompt, loaded.tokenizer, MAX_PROMPT_CHARS, keep="end")
    notes += [n for n in prep.notes() if n not in notes]
    return prep


# ------------------------------------------------------------------------------------------ the tools

def generate(bank: ModelBank, prompt: str = "ROMEO:\n", temperature: float = 0.8, top_k: int = 0,
             top_p: float = 0.95, max_new_tokens: int = 200, seed: int = 0, models: str = "characters",
             model: str = "") -> dict:
    """Continue a prompt with both language models trained on tiny Shakespeare, the Transformer (GPT) and the LSTM, side by side: the character-level pair, or the word-level (BPE) pair. Sampling applies temperature, then top-k, then top-p; the same prompt, settings and seed always give the same texts (exactly what the app's Generate button writes; a call that would take over 1.5 s on a busy server stops early with the beginning of those texts and a note).

    Args:
        prompt: the text to continue; only its last 2000 characters are read, characters outside the 65-character vocabulary are replaced (listed in notes); empty means start from a new line
        temperature: softmax temperature, a number >= 0 (0 = greedy: always the most likely character)
        top_k: keep only the k most likely characters, a whole number >= 0 (0 = off)
        top_p: keep the smallest set of most likely characters whose probabilities add up to p, a number in 0..1 (1 = off)
        max_new_tokens: how many tokens each model writes, 1..200 (for more, call again with the prompt plus what was written); a call stops sooner, with a note, after 1.5 s on a busy server
        seed: random seed, a whole number >= 0; each model gets its own generator seeded with it
        models: which pair writes: "characters" (one token per character, 65 of them), "words" (byte-level BPE tokens) or "gpt2" (GPT-2 with the word LSTM), when the app has that pair
        model: one model by itself instead of the pair: "gpt" or "lstm" (characters), "word-gpt" or "word-lstm" (BPE words), "large-gpt" or "large-lstm", "gpt2" (GPT-2), when the app has it; "" = the pair given by models; the other role's text is then null

    Returns:
        {"transformer": text, "lstm": text, "names": {"transformer": the model's name, "lstm": ...}, "prompt": the prompt as read, "settings": {...}, "notes": [...]}
    """
    deadline = time.perf_counter() + TOOL_SECONDS
    bank, roles = _chosen(bank, models, model)
    request = check.generation(temperature, top_k, top_p, max_new_tokens, seed,
                               n_params=bank.largest_model(roles), tool=True)
    settings, max_new_tokens, seed = request.sampling, request.max_new_tokens, request.seed
    prompt, notes = generation_prompt(prompt)
    models = _language_models(bank, notes, roles)
    out = {key: None for key in KEYS.values()}
    read = prompt
    names = {KEYS[name]: name for name in LANGUAGE_MODELS}
    streams = {}
    try:
        for key, loaded in models.items():
            prep = _prepared_prompt(loaded, prompt, notes)
            read = prep.text
            streams[key] = bank.stream(names[key], prep.text, settings, max_new_tokens, seed)  # batched with others
        # both rows run in the same decode steps: read them in turn, a token of each, as the page does
        # (one after the other, the call would take the two models' times added up)
        texts = {key: [] for key in streams}
        written = 0
        for _ in range(max_new_tokens):          # each stream yields exactly max_new_tokens tokens
            if written and time.perf_counter() > deadline:
                notes.append(f"stopped at {written} of {max_new_tokens} tokens per model: a tool call may take "
                             f"at most {TOOL_SECONDS:g} s and the server was busy; the text is the beginning of "
                             "what a call on a quiet server writes; call again with the prompt plus it for more")
                break
            for key, stream in streams.items():
                texts[key].append(next(stream).text)
            written += 1
        out.update({key: "".join(parts) for key, parts in texts.items()})
    finally:
        for stream in streams.values():
            stream.close()                # a call cut short frees its rows at once
    return {**out, "names": _names(bank, roles), "prompt": read,
            "settings": {"temperature": settings.temperature, "top_k": settings.top_k, "top_p": settings.top_p,
                         "max_new_tokens": max_new_tokens, "seed": seed},
            "notes": notes}


def next_char_distribution(bank: ModelBank, text: str = "ROMEO:\n", temperature: float = 1.0, top_k: int = 0,
                           top_p: float = 1.0, top_n: int = 10, seed: int = 0, models: str = "characters",
                           model: str = "") -> dict:
    """Each model's distribution over the next character after a text, after temperature and after the top-k and top-p filters: the most likely characters with both probabilities, and how many characters each filter cut. It is the distribution the first character of generate is drawn from (same text, settings and seed give the same sampled character).

    Args:
        text: the text so far; the Transformer reads its last 128 characters (its context), the LSTM its last 2000
        temperature: softmax temperature, a number >= 0 (0 = greedy; the temperature probabilities are then shown at T = 1)
        top_k: keep only the k most likely characters, a whole number >= 0 (0 = off)
        top_p: keep the smallest set of most likely characters whose probabilities add up to p, a number in 0..1 (1 = off)
        top_n: how many characters to list, most likely first, 1..100 (the vocabulary has 65)
        seed: random seed of the draw reported as "sampled", a whole number >= 0
        models: which pair: "characters" (one token per character), "words" (byte-level BPE tokens: "char" is then a token's text) or "gpt2" (GPT-2 with the word LSTM), when the app has that pair
        model: one model by itself instead of the pair: "gpt" or "lstm" (characters), "word-gpt" or "word-lstm" (BPE words), "large-gpt" or "large-lstm", "gpt2" (GPT-2), when the app has it; "" = the pair given by models; the other role is then null

    Returns:
        {"transformer": {...}, "lstm": {...}, "names": {"transformer": the model's name, "lstm": ...}, "settings": {...}, "notes": [...]}; per model: "context" (the characters read), "top" (char, p_temperature, p_filtered, cut_by: null, "top_k" or "top_p"), "kept", "cut_by_top_k", "cut_by_top_p", "greedy", "sampled"
    """
    import torch
    from ..inference.generation import generate_stream
    settings, seed = check.sampling(temperature, top_k, top_p), check.seed(seed)
    top_n = as_int(top_n, "top_n", 1, MAX_TOP_N)
    bank, roles = _chosen(bank, models, model)
    text = check_text(text, "text", limit=None)      # cropped to what the models read, then encoded
    notes: list[str] = []
    out = {key: None for key in KEYS.values()}
    for key, loaded in _language_models(bank, notes, roles).items():
        prep = _prepared_prompt(loaded, text, notes)
        # one step of the app's own generation: the model's next-character logits, then sample_step
        g = next(generate_stream(loaded.model, loaded.tokenizer, prep.text, settings=settings, max_new_tokens=1,
                                 seed=seed))
        step, tok = g.step, loaded.tokenizer
        order = torch.sort(step.probs_temperature, descending=True, stable=True).indices[:top_n].tolist()
        top = [{"char": tok.token_text(i), "p_temperature": round(float(step.probs_temperature[i]), 6),
                "p_filtered": round(float(step.probs_filtered[i]), 6),
                "cut_by": "top_k" if step.cut_by_top_k[i] else "top_p" if step.cut_by_top_p[i] else None}
               for i in order]
        out[key] = {"context": loaded.tokenizer.decode(g.prompt_ids[g.context_start:]),
                    "top": top,
                    "kept": 1 if step.greedy else int((~step.cut_by_top_k & ~step.cut_by_top_p).sum()),
                    "cut_by_top_k": int(step.cut_by_top_k.sum()), "cut_by_top_p": int(step.cut_by_top_p.sum()),
                    "vocabulary": tok.vocab_size,
                    "greedy": tok.token_text(int(torch.argmax(step.logits))),
                    "sampled": {"char": tok.token_text(step.token_id), "p": round(step.token_prob, 6)}}
    return {**out, "names": _names(bank, roles),
            "settings": {"temperature": settings.temperature, "top_k": settings.top_k,
                         "top_p": settings.top_p, "seed": seed},
            "notes": notes}


def attention(bank: ModelBank, text: str = "JULIET:\nO Romeo, Romeo!", layer: int = 1, head: int = 1,
              causal: bool = True, models: str = "characters", model: str = "") -> dict:
    """The Transformer's self-attention matrix of one layer and head over a text, as in the app's Attention tab: row i is how character i spreads its attention over the characters it may see (each row sums to 1). With the causal mask off every character also sees the ones after it, which the model never saw in training.

    Args:
        text: the text to read; the first 128 characters are read (the model's context), unknown characters replaced
        layer: which layer, 1-based (1..number of layers, 4 in the shipped model)
        head: which head, 1-based (1..number of heads, 4 in the shipped model)
        causal: true = with the causal mask the model was trained with, false = without it
        models: whose Transformer: "characters" (one token per character), "words" (byte-level BPE tokens) or "gpt2" (GPT-2 with the word LSTM), when the app has that pair
        model: one Transformer by itself instead of the pair's: "gpt", "word-gpt", "large-gpt" or "gpt2" (when the app has it); "" = the Transformer of the pair given by models

    Returns:
        {"chars": [...], "weights": [[...]] (query rows x key columns, 4 decimals), "model": its name, "layer", "head", "causal", "n_layer", "n_head", "bits_per_char", "notes"}
    """
    from ..inference.traced import run_traced
    bank, roles = _chosen(bank, models, model)
    if roles != LANGUAGE_MODELS and TRANSFORMER not in roles:
        raise ValueError(f"model must name a Transformer for attention (an LSTM has none); got {shown_value(model)}")
    loaded = bank.get(TRANSFORMER)
    cfg = loaded.config
    text = check_text(text, "text", limit=None)      # cropped to the model's context, then encoded
    l, h = check_index(layer, "layer", cfg.n_layer), check_index(head, "head", cfg.n_head)
    causal = _check_bool(causal, "causal")
    prep = prepare_text(text, loaded.tokenizer, context_limit(loaded.model, MAX_ANALYSIS_CHARS))
    traced = run_traced(loaded.model, loaded.tokenizer, prep.ids, causal=causal)
    bpc = traced.bits_per_char
    return {"chars": traced.pieces, "weights": _round(traced.trace.self_attn[l][0, h], 4),
            "model": _names(bank, (TRANSFORMER,))["transformer"],
            "layer": l + 1, "head": h + 1, "causal": causal, "n_layer": cfg.n_layer, "n_head": cfg.n_head,
            "bits_per_char": None if bpc != bpc else round(bpc, 4),
            "notes": prep.notes()}


def normalize_date(bank: ModelBank, source: str = "3rd of March 1999", method: str = "greedy",
                   beam_size: int = 4, alpha: float = 0.6, layer: int = 0, head: int = 0) -> dict:
    """Rewrite a date written any way (e.g. '3rd of March 1999', '03.04.1999', 'MAR. 3, 1999') as an ISO date YYYY-MM-DD with the encoder-decoder Transformer, and show where each output character looked in the source (cross-attention). Conventions it was trained on: dates 1900-2099; dots are day.month.year; slashes with the year last are month/day/year.

    Args:
        source: the date as written (at most 40 characters are read)
        method: "greedy" (the most likely character at each step) or "beam" (beam search)
        beam_size: beams kept by beam search, 1..32 (ignored by greedy)
        alpha: beam search's length penalty, a number in 0..2 (0 = raw log-probability; ignored by greedy)
        layer: decoder layer of the cross-attention returned, 1-based; 0 = the average over all layers
        head: head of the cross-attention returned, 1-based; 0 = the average over all heads

    Returns:
        {"output": "YYYY-MM-DD", "logprob", "steps": [{"char", "p", "looked_at": the source character with the most attention}], "source_tokens", "output_tokens", "cross_attention": {"layer", "head", "weights": output rows x source columns}, "beams" (beam search only)}
    """
    import torch
    from ..inference.seq2seq import decode_with_trace
    loaded = bank.get(ENCDEC)
    model, tok = loaded.model, loaded.tokenizer
    source = check_text(source, "source", strip=True)
    if method not in DECODE_METHODS:
        raise ValueError(f"method must be one of {list(DECODE_METHODS)}, got {shown_value(method)}")
    beam_size = as_int(beam_size, "beam_size", 1, MAX_BEAM_SIZE)
    alpha = as_number(alpha, "alpha (length penalty)", 0, 2)
    cfg = model.config
    n_dec = cfg.n_dec_layer or cfg.n_layer
    layer = as_int(layer, "layer", 0, n_dec, hint="0 = the average over layers")
    head = as_int(head, "head", 0, cfg.n_head, hint="0 = the average over heads")
    result = decode_with_trace(model, tok, source, method, beam_size=beam_size, alpha=float(alpha))
    cross = torch.stack([a[0] for a in result.trace.cross_attn])     # [L, H, T_out, T_src]
    cross = cross.mean(0) if layer == 0 else cross[layer - 1]
    cross = cross.mean(0) if head == 0 else cross[head - 1]          # [T_out, T_src]
    src = result.src_tokens
    steps = [{"char": s.text, "p": round(s.prob, 6), "looked_at": src[int(cross[t].argmax())]}
             for t, s in enumerate(result.steps)]
    out = {"source": result.source, "output": result.output, "method": method, "logprob": round(result.logprob, 6),
           "steps": steps, "source_tokens": src, "output_tokens": result.out_tokens,
           "cross_attention": {"layer": layer or "average", "head": head or "average",
                               "weights": _round(cross, 4)}}
    if method == "beam":
        out["beams"] = [{"output": tok.decode(b.ids),
                         "logprob": round(b.logprob, 6), "score": round(b.score, 6), "finished": b.finished}
                        for b in result.beams]
    return out


def fill_blanks(bank: ModelBank, text: str = "To be, or not to b_, that is the qu_stion", top_k: int = 5) -> dict:
    """Fill in the blanks written _ in a text, three ways: the BERT-style encoder reading both sides of each blank, the same model with the causal mask (left side only), and the GPT (left side only, as it was trained; earlier blanks filled with its own best guess). Each blank gets its top guesses with probabilities.

    Args:
        text: text with at least one blank written _ (at most 128 characters, the BERT model's context)
        top_k: guesses per blank, 1..10

    Returns:
        {"text", "positions": [index of each blank], "bert": {"filled", "guesses": [[{"char", "p"}] per blank]}, "bert_causal": {...}, "gpt": {...} or null (no guess for a blank at the very start), "notes"}
    """
    from ..inference import blanks as blank_filling
    loaded = bank.get(BERT)
    model, tok = loaded.model, loaded.tokenizer
    top_k = check.guesses(top_k)
    text = check_text(text, "text")
    if BLANK not in text:
        raise ValueError(f"text must contain at least one blank written {BLANK!r}, "
                         "e.g. 'To be, or not to b_'")

    def guesses(g):
        return [{"char": c, "p": round(p, 6)} for c, p in g.guesses] if g is not None else None

    results = {}
    for key, causal in (("bert", False), ("bert_causal", True)):
        r = blank_filling.fill_blanks(model, tok, text, top_k=top_k, causal=causal, trace=False)
        results[key] = {"filled": r.filled, "guesses": [guesses(b) for b in r.blanks]}
    positions = [b.position for b in r.blanks]
    notes = []
    if r.unknown_chars:
        notes.append("Characters outside the vocabulary were replaced: " + " ".join(repr(c) for c in r.unknown_chars[:12])
                     + (" …" if len(r.unknown_chars) > 12 else ""))
    results["gpt"] = None
    if bank.available(TRANSFORMER):
        gpt = bank.get(TRANSFORMER)
        gpt_guesses = blank_filling.gpt_fill_blanks(gpt.model, gpt.tokenizer, text, top_k=top_k)
        chars = list(text)
        for pos, g in zip(positions, gpt_guesses):   # as the GPT-vs-BERT tab fills the text
            chars[pos] = g.best if g else " "
        results["gpt"] = {"filled": "".join(chars), "guesses": [guesses(g) for g in gpt_guesses]}
    else:
        notes.append("The GPT checkpoint is not loaded: only BERT's guesses are given.")
    return {"text": text, "positions": positions, **results, "notes": notes}


MAX_TOOL_TRAIN_S = 30      # the longest training train_pair runs


def train_pair(bank: ModelBank, text: str = "", seconds: float = 10, seed: int = 0) -> dict:
    """Train a tiny Transformer and a tiny LSTM of about the same size from random weights on a text, side by side (they take turns, so each gets the same seconds), and return both learning curves: validation loss in nats per character against each model's own seconds of training, with what each writes at the end. Trainings wait in one line shared with the app's Train live tab; when it is full the call fails with a "busy" message.

    Args:
        text: the text to learn, 200 to 100,000 characters; "" for tiny Shakespeare
        seconds: seconds of training, 1..30
        seed: seed of the initial weights and the batches, 0..2**31-1

    Returns:
        {"corpus", "seconds", "params": {"transformer", "lstm"}, "steps": {...}, "curves": {"transformer": [{"seconds", "step", "tokens", "loss"}], "lstm": [...]}, "final_loss": {...}, "prompt", "samples": {...}, "notes"}
    """
    from ..training.live_plan import check_plan
    from .live_tab import Run, race
    seconds = as_number(seconds, "seconds", 1, MAX_TOOL_TRAIN_S)
    if not isinstance(text, str):
        raise ValueError(f"text must be a string, got {type(text).__name__}")
    plan = check_plan("text" if text else "shakespeare", text, "tiny", seconds, seed)
    last = None
    for kind, value in race(plan, Run()):
        if kind == "update":
            last = value
    keys = {TRANSFORMER: "transformer", LSTM_NAME: "lstm"}
    return {"corpus": "pasted text" if text else "tiny Shakespeare", "seconds": round(last.elapsed_s, 2),
            "params": {keys[n]: v for n, v in last.params.items()},
            "steps": {keys[n]: v for n, v in last.steps.items()},
            "curves": {keys[n]: c for n, c in last.curves.items()},
            "final_loss": {keys[n]: c[-1]["loss"] for n, c in last.curves.items()},
            "prompt": last.prompt, "samples": {keys[n]: v for n, v in last.samples.items()},
            "notes": ["loss: nats per character on the same validation batches at every report"]}


# The tools, in the order an MCP client lists them. Each is served as the MCP tool ``<name>`` and the
# API endpoint ``/tool_<name>``.
TOOLS: list[Callable] = [generate, next_char_distribution, attention, normalize_date, fill_blanks, train_pair]


def api_name(tool: Callable) -> str:
    """``tool_<name>``: the app's own events already use ``/generate`` and ``/attention``."""
    return "tool_" + tool.__name__


def bind(tool: Callable, bank: ModelBank) -> Callable:
    """``tool`` with the bank as its first argument, keeping what Gradio reads (name, docstring, the
    typed parameters after ``bank`` with their defaults), returning its dict as one JSON text, under
    the app's error policy (:func:`~.events.friendly`: ValueError → gr.Error with its message).

    JSON text rather than the dict: Gradio 6.31's MCP server writes a tool's result into the MCP
    text content with ``str()``, which for a dict is a Python literal (``True``, ``None``, single
    quotes), not JSON. A string passes through as it is, so agents and ``gradio_client``
    (``json.loads(client.predict(..., api_name="/tool_attention"))``) read the same JSON."""

    def call(*args, **kwargs):
        return json.dumps(tool(bank, *args, **kwargs), ensure_ascii=False, allow_nan=False)

    functools.update_wrapper(call, tool)
    sig = inspect.signature(tool)
    call.__signature__ = sig.replace(parameters=list(sig.parameters.values())[1:], return_annotation=str)
    call.__annotations__ = {**getattr(tool, "__annotations__", {}), "return": str}
    call.__annotations__.pop("bank", None)
    return friendly(call)
