"""Fill in the blanks: the BERT-style masked-character model, and the GPT, asked about the same text.

A person writes text with blanks (``_``): ``"To be, or not to b_, that is the qu_stion"``. Each blank
becomes ``<mask>`` and the BERT-style model, which reads the whole text in both directions, gives a
distribution over characters for every blank at once (one forward pass; the blanks are guessed
independently of each other).

* ``causal=True`` runs the same model with the causal mask: each blank then sees only the text to its
  left — what BERT would know if it were a GPT, although it was never trained that way.
* :func:`gpt_fill_blanks` asks the GPT, which *was* trained to read left to right: the guess for a
  blank is its next-character distribution after the text before it (earlier blanks filled with the
  GPT's own best guess). A blank at the very start has no left context and gets no GPT guess.

Probabilities are over the characters only: p(c) = softmax(z)[c] over the character ids (special
tokens such as ``<mask>`` are never a guess), so the top-k probabilities of a blank sum to ≤ 1.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional

import torch
from torch import Tensor, nn

from ..model.trace import Trace
from ..tokenizers import Tokenizer
from .choices import BLANK

MAX_TOP_K = 20


@dataclass
class BlankGuess:
    """The guesses for one blank: ``position`` in the text, top (token text, probability) pairs, and
    the ids of those tokens (``ids[0]``: the best guess)."""

    position: int
    guesses: list[tuple[str, float]]
    ids: list[int] = field(default_factory=list)

    @property
    def best(self) -> str:
        return self.guesses[0][0]


@dataclass
class FillResult:
    """What :func:`fill_blanks` returns. ``filled`` is the text with each blank's best guess."""

    text: str
    filled: str
    blanks: list[BlankGuess]
    causal: bool
    tokens: list[str]                 # what the model read, "<mask>" at the blanks
    trace: Optional[Trace] = None
    unknown_chars: list[str] = field(default_factory=list)


def _text_probs(logits: Tensor, tokenizer: Tokenizer) -> Tensor:
    """softmax over the tokens that stand for text only (special tokens get probability 0).

    Every tokenizer numbers its special tokens after the text ones (``Tokenizer.text_vocab_size``),
    so the specials are the ids text_vocab_size … vocab_size−1: one slice, no scan of the vocabulary.
    """
    n_text = tokenizer.text_vocab_size
    logits = logits[..., :tokenizer.vocab_size].float()
    if n_text < logits.shape[-1]:
        logits = logits.clone()
        logits[..., n_text:] = float("-inf")
    return torch.softmax(logits, dim=-1)


def _guess(position: int, probs: Tensor, tokenizer: Tokenizer, k: int) -> BlankGuess:
    p, i = probs.topk(min(k, probs.numel()))
    ids = i.tolist()
    return BlankGuess(position, [(tokenizer.token_text(j), float(q)) for q, j in zip(p.tolist(), ids)], ids)


def _check(text: str, top_k: int, blank: str) -> None:
    if not isinstance(text, str) or blank not in text:
        raise ValueError(f"text must contain at least one blank {blank!r}")
    if not isinstance(top_k, int) or not 1 <= top_k <= MAX_TOP_K:
        raise ValueError(f"top_k must be an integer in [1, {MAX_TOP_K}], got {top_k!r}")


def encode_with_blanks(tokenizer: Tokenizer, text: str, mask_id: int, blank: str = BLANK
                       ) -> tuple[list[int], list[int], list[str]]:
    """(ids with ``mask_id`` at every blank, the blanks' positions, characters that were replaced)."""
    ids: list[int] = []
    positions: list[int] = []
    unknown: dict[str, None] = {}   # an ordered set
    for n, piece in enumerate(text.split(blank)):
        if n > 0:
            positions.append(len(ids))
            ids.append(mask_id)
        piece_ids, piece_unknown = tokenizer.encode_with_report(piece)
        ids += piece_ids
        unknown.update(dict.fromkeys(piece_unknown))
    return ids, positions, list(unknown)


@torch.no_grad()
def fill_blanks(model: nn.Module, tokenizer: Tokenizer, text: str, *, top_k: int = 5,
                causal: bool = False, blank: str = BLANK, trace: bool = True) -> FillResult:
    """The BERT-style model's top-k guesses for every ``blank`` in ``text`` (one forward pass)."""
    _check(text, top_k, blank)
    cfg = model.config
    if cfg.mask_id is None:
        raise ValueError("this model has no <mask> token (config.mask_id is None); use a BERT-style checkpoint")
    ids, positions, unknown = encode_with_blanks(tokenizer, text, cfg.mask_id, blank)
    if len(ids) > cfg.block_size:
        raise ValueError(f"text must be at most {tokenizer.count(cfg.block_size)} (the model's block_size), "
                         f"got {len(ids)}")
    device = next(model.parameters()).device
    out = model(torch.tensor([ids], device=device), causal=causal, trace=trace)
    probs = _text_probs(out.logits[0], tokenizer)
    blanks = [_guess(p, probs[p], tokenizer, top_k) for p in positions]
    filled_ids = list(ids)
    for b in blanks:
        filled_ids[b.position] = b.ids[0]
    return FillResult(text=text, filled=tokenizer.decode(filled_ids), blanks=blanks, causal=causal,
                      tokens=tokenizer.pieces(ids),
                      trace=out.trace.to("cpu") if out.trace is not None else None, unknown_chars=unknown)


@torch.no_grad()
def gpt_fill_blanks(model: nn.Module, tokenizer: Tokenizer, text: str, *, top_k: int = 5,
                    blank: str = BLANK) -> list[Optional[BlankGuess]]:
    """A causal language model's guesses for each blank: its next-character distribution after the
    text to the blank's left (at most ``block_size`` characters of it; earlier blanks filled with its
    own best guess). None for a blank with nothing to its left."""
    _check(text, top_k, blank)
    device = next(model.parameters()).device
    block = model.config.block_size
    context: list[int] = []
    guesses: list[Optional[BlankGuess]] = []
    for n, piece in enumerate(text.split(blank)):
        if n > 0 and not context:
            guesses.append(None)
            context += tokenizer.encode(" ")[-1:] or [0]   # a neutral stand-in for the unknown text
        elif n > 0:
            logits = model(torch.tensor([context[-block:]], device=device)).logits[0, -1]
            g = _guess(len(context), _text_probs(logits, tokenizer), tokenizer, top_k)
            guesses.append(g)
            context.append(g.ids[0])
        context += tokenizer.encode(piece)
    return guesses
