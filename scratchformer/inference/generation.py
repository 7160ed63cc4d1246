"""Streaming text generation for the GPT and the LSTM, one token at a time, with its sampling record.

    text ──tokenizer──▶ ids ──model──▶ logits of the next token ──sample_step──▶ token ──▶ yield
                          ▲                                                        │
                          └────────────────── append the token ◀───────────────────┘

How each model gets the logits of the next token:

* **GPT with a KV cache** (``use_cache=True``, the default). The prompt is read once (the "prefill"),
  each layer keeping its keys and values in a :class:`~scratchformer.model.attention.KVCache`; afterwards
  only the newest token is fed, at the next position, and attends over the cached keys and values.
  Learned positions only go up to ``block_size - 1``, and sliding the window by one token would
  shift every cached position, so the cache cannot just drop its oldest entry. Policy: when the cache
  is full (``block_size`` positions) it is rebuilt by a fresh prefill on the last
  ``block_size // 2`` tokens (:func:`refill_keep`), and decoding goes on from there. The model so
  sees between ``block_size // 2`` and ``block_size`` tokens of context, and its logits are exactly
  those of a full forward pass on that same window (tested, atol 1e-5).
* **GPT without a cache** (``use_cache=False``, as nanoGPT's ``generate``): every step runs the
  model on the whole context cropped to its last ``block_size`` tokens. Each step costs a full
  forward pass, but the model always sees as much context as it can. Until the text first passes
  ``block_size`` tokens the two paths see the same window and give the same logits; after that the
  cache path sees a shorter window and greedy texts can differ.
* **LSTM**: the prompt is read once and the state (h, c) carried forward; each step feeds one
  token. It has no block size and sees the whole text. (``use_cache=False`` re-reads the whole text
  every step: the same logits, only slower; it exists for comparison.)

An empty prompt starts from :data:`START_TEXT` (a newline, the separator that starts every speech
in the corpus). Characters outside the vocabulary follow the tokenizer's policy (``tokenizer.encode``).

Per-request settings are arguments: the model is only read (under ``torch.no_grad``), never changed,
never switched between train and eval mode — put it in eval mode once, when loading it. Randomness
comes from a generator made from ``seed`` for this request only.
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Iterator, Optional

import torch
from torch import Tensor, nn

from ..model.attention import KVCache
from ..model.fast import fast_decoder
from ..model.lstm import LSTMLM
from ..model.registry import family
from ..model.transformer import TransformerLM
from .sampling import SamplingSettings, Step, make_generator, sample_step, validate_max_new_tokens

START_TEXT = "\n"   # what an empty prompt becomes


def refill_keep(block_size: int) -> int:
    """How many tokens the KV cache keeps when it is rebuilt after filling up: block_size // 2 (≥ 1)."""
    return max(1, block_size // 2)


@dataclass
class GenStep:
    """One generated token.

    index          0 for the first generated token, 1 for the next …
    token_id       the token chosen
    text           its text (``tokenizer.decode([token_id])``)
    step           the sampling record (:class:`~scratchformer.inference.sampling.Step`)
    elapsed_s      seconds spent computing this and the earlier tokens of the stream, prefill included
                   (time the consumer spends between tokens is not counted)
    prompt_ids     the ids of the prompt as the model read it (the same list object in every GenStep)
    context_start  the model saw ``sequence[context_start : context_start + context_len]`` to predict
    context_len    this token, where ``sequence = prompt_ids + the ids generated before it``
    """

    index: int
    token_id: int
    text: str
    step: Step
    elapsed_s: float
    prompt_ids: list[int]
    context_start: int
    context_len: int


# ------------------------------------------------- next-token logits, one small class per strategy

class _GPTRecompute:
    """Full forward pass on the last ``block_size`` tokens every step (nanoGPT's ``generate``)."""

    def __init__(self, model: TransformerLM, device: torch.device):
        self.model, self.device = model, device
        self.block_size = model.config.block_size

    def next_logits(self, seq: list[int]) -> tuple[Tensor, int]:
        """Logits [V] for the token after ``seq``, and the index in ``seq`` where the model's view starts."""
        start = max(0, len(seq) - self.block_size)
        ids = torch.tensor([seq[start:]], device=self.device)
        return self.model(ids).logits[0, -1], start


class _GPTCached:
    """Prefill once, then one token per step through the KV cache; rebuilt when full (see module doc).

    The passes go through :class:`~scratchformer.model.fast.decode.FastGPTDecoder` (the same function
    as the model's own forward pass with fewer calls, tested against it) when the model allows, and
    the cache is allocated once for ``block_size`` positions.
    """

    def __init__(self, model: TransformerLM, device: torch.device):
        self.model, self.device = model, device
        self.block_size = model.config.block_size
        self.cache: Optional[KVCache] = None
        self.start = 0  # index in seq of the first cached token
        fast = fast_decoder(model)
        self.last_logits = fast if fast is not None else (
            lambda ids, cache: model(ids, cache=cache).logits[:, -1])

    def _prefill(self, seq: list[int], keep: int) -> Tensor:
        self.start = max(0, len(seq) - keep)
        self.cache = KVCache(len(self.model.layers), capacity=self.block_size)
        ids = torch.tensor([seq[self.start:]], device=self.device)
        return self.last_logits(ids, self.cache)[0]

    def next_logits(self, seq: list[int]) -> tuple[Tensor, int]:
        if self.cache is None:                        # the prompt, cropped to the last block_size
            return self._prefill(seq, self.block_size), self.start
        if self.cache.length >= self.block_size:      # no position left for the new token
            return self._prefill(seq, refill_keep(self.block_size)), self.start
        ids = torch.tensor([seq[-1:]], device=self.device)  # the newest token only
        return self.last_logits(ids, self.cache)[0], self.start


class _LSTMState:
    """Feed whatever part of ``seq`` the LSTM has not read yet, carrying (h, c) between calls."""

    def __init__(self, model: LSTMLM, device: torch.device, reread: bool = False):
        self.model, self.device, self.reread = model, device, reread
        self.state = None
        self.consumed = 0  # how many tokens of seq (h, c) already summarise

    def next_logits(self, seq: list[int]) -> tuple[Tensor, int]:
        if self.reread:
            self.state, self.consumed = None, 0
        ids = torch.tensor([seq[self.consumed:]], device=self.device)
        out = self.model(ids, state=self.state)
        self.state, self.consumed = out.state, len(seq)
        return out.logits[0, -1], 0


def _next_logits_source(model: nn.Module, use_cache: bool, device: torch.device):
    """How this model gets its next-token logits: by its family's ``decoding`` (model/registry.py)."""
    kind = family(model.config.model_type)
    if kind.decoding == "state":
        return _LSTMState(model, device, reread=not use_cache)
    if kind.decoding == "kv_cache":
        return _GPTCached(model, device) if use_cache else _GPTRecompute(model, device)
    if kind.decoding == "recompute":
        return _GPTRecompute(model, device)
    raise ValueError(f"cannot generate with a {kind.model_type!r} model ({kind.description}); "
                     "generation needs a model that writes left to right, such as a GPT or an LSTM")


# ----------------------------------------------------------------------------------- the stream

def generate_stream(model: nn.Module, tokenizer, prompt: str, *,
                    settings: SamplingSettings = SamplingSettings(), max_new_tokens: int = 200,
                    seed: int = 0, use_cache: bool = True, device=None) -> Iterator[GenStep]:
    """Yield ``max_new_tokens`` :class:`GenStep` records, one per generated token.

    ``model`` is a GPT (``TransformerLM`` with causal attention) or an ``LSTMLM``, already in eval
    mode. ``settings`` were checked when they were made; ``max_new_tokens`` and ``seed`` are checked
    here, before anything runs (``ValueError`` naming the parameter). ``device``: where the
    input ids are put; default the model's own device (the model is never moved).
    Context cropping and the KV-cache policy are described in the module docstring.
    """
    validate_max_new_tokens(max_new_tokens)
    generator = make_generator(seed)   # checks the seed
    if not isinstance(prompt, str):
        raise ValueError(f"prompt must be text (a str), got {type(prompt).__name__}")
    if device is None:
        device = next(model.parameters()).device
    source = _next_logits_source(model, use_cache, torch.device(device))
    prompt_ids = tokenizer.encode(prompt) or tokenizer.encode(START_TEXT)
    return _stream(source, tokenizer, prompt_ids, max_new_tokens, settings, generator)


def _stream(source, tokenizer, prompt_ids: list[int], max_new_tokens: int, settings: SamplingSettings,
            generator: torch.Generator) -> Iterator[GenStep]:
    seq = list(prompt_ids)
    elapsed = 0.0
    for index in range(max_new_tokens):
        t0 = time.perf_counter()
        with torch.no_grad():   # per call, not around the yield: the caller's grad mode is untouched
            logits, start = source.next_logits(seq)
        step = sample_step(logits, settings, generator)
        elapsed += time.perf_counter() - t0
        context_len = len(seq) - start
        seq.append(step.token_id)
        yield GenStep(index=index, token_id=step.token_id, text=tokenizer.decode([step.token_id]),
                      step=step, elapsed_s=elapsed, prompt_ids=prompt_ids, context_start=start,
                      context_len=context_len)


def generate(model: nn.Module, tokenizer, prompt: str, **kwargs) -> str:
    """The generated text (without the prompt): :func:`generate_stream`'s tokens joined."""
    return "".join(s.text for s in generate_stream(model, tokenizer, prompt, **kwargs))
