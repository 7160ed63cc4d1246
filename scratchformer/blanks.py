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

import math
from dataclasses import dataclass, field
from typing import Optional

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from . import data as D
from .tasks import mask_tokens
from .tokenizer import CharTokenizer
from .trace import Trace

BLANK = "_"
MAX_TOP_K = 20


@dataclass
class BlankGuess:
    """The guesses for one blank: ``position`` in the text, top (character, probability) pairs."""

    position: int
    guesses: list[tuple[str, float]]

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


def _char_probs(logits: Tensor, n_chars: int) -> Tensor:
    """softmax over the character ids 0 … n_chars−1 only (specials excluded)."""
    return torch.softmax(logits[..., :n_chars].float(), dim=-1)


def _top(probs: Tensor, tokenizer: CharTokenizer, k: int) -> list[tuple[str, float]]:
    p, i = probs.topk(min(k, probs.numel()))
    return [(tokenizer.itos[j], float(q)) for q, j in zip(p.tolist(), i.tolist())]


def _check(text: str, top_k: int, blank: str) -> None:
    if not isinstance(text, str) or blank not in text:
        raise ValueError(f"text must contain at least one blank {blank!r}")
    if not isinstance(top_k, int) or not 1 <= top_k <= MAX_TOP_K:
        raise ValueError(f"top_k must be an integer in [1, {MAX_TOP_K}], got {top_k!r}")


def encode_with_blanks(tokenizer: CharTokenizer, text: str, mask_id: int, blank: str = BLANK
                       ) -> tuple[list[int], list[int], list[str]]:
    """(ids with ``mask_id`` at every blank, the blanks' positions, characters that were replaced)."""
    ids: list[int] = []
    positions: list[int] = []
    unknown: list[str] = []
    for n, piece in enumerate(text.split(blank)):
        if n > 0:
            positions.append(len(ids))
            ids.append(mask_id)
        piece_ids, piece_unknown = tokenizer.encode_with_report(piece)
        ids += piece_ids
        unknown += [c for c in piece_unknown if c not in unknown]
    return ids, positions, unknown


@torch.no_grad()
def fill_blanks(model: nn.Module, tokenizer: CharTokenizer, text: str, *, top_k: int = 5,
                causal: bool = False, blank: str = BLANK, trace: bool = True) -> FillResult:
    """The BERT-style model's top-k guesses for every ``blank`` in ``text`` (one forward pass)."""
    _check(text, top_k, blank)
    cfg = model.config
    if cfg.mask_id is None:
        raise ValueError("this model has no <mask> token (config.mask_id is None); use a BERT-style checkpoint")
    ids, positions, unknown = encode_with_blanks(tokenizer, text, cfg.mask_id, blank)
    if len(ids) > cfg.block_size:
        raise ValueError(f"text must be at most {cfg.block_size} characters (the model's block_size), "
                         f"got {len(ids)}")
    device = next(model.parameters()).device
    out = model(torch.tensor([ids], device=device), causal=causal, trace=trace)
    probs = _char_probs(out.logits[0], len(tokenizer.chars))
    blanks = [BlankGuess(p, _top(probs[p], tokenizer, top_k)) for p in positions]
    filled_ids = list(ids)
    for b in blanks:
        filled_ids[b.position] = tokenizer.stoi[b.best]
    return FillResult(text=text, filled=tokenizer.decode(filled_ids), blanks=blanks, causal=causal,
                      tokens=[tokenizer.itos[i] for i in ids],
                      trace=out.trace.to("cpu") if out.trace is not None else None, unknown_chars=unknown)


@torch.no_grad()
def gpt_fill_blanks(model: nn.Module, tokenizer: CharTokenizer, text: str, *, top_k: int = 5,
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
            context.append(tokenizer.stoi.get(" ", 0))   # a neutral stand-in for the unknown character
        elif n > 0:
            logits = model(torch.tensor([context[-block:]], device=device)).logits[0, -1]
            g = BlankGuess(len(context), _top(_char_probs(logits, len(tokenizer.chars)), tokenizer, top_k))
            guesses.append(g)
            context.append(tokenizer.stoi[g.best])
        context += tokenizer.encode(piece)
    return guesses


@torch.no_grad()
def masked_char_metrics(model: nn.Module, ids: Tensor, block_size: int, mask_id: int, n_chars: int, *,
                        batch_size: int = 32, seed: int = 0, causal: bool = False,
                        max_batches: Optional[int] = None) -> dict:
    """Loss and accuracy at masked characters over non-overlapping windows of ``ids``.

    In each window 15% of the characters, chosen with a generator seeded by ``seed`` (so every run
    masks the same ones), are replaced by ``<mask>`` — all of them, as blanks in the app are (no
    80/10/10 rule). loss = mean −log p(true char) at those positions (nats, softmax over the whole
    vocabulary as in training); accuracy = share where the most likely character is the true one.
    """
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    gen = torch.Generator().manual_seed(seed)
    n_windows = len(ids) // block_size
    windows = ids[: n_windows * block_size].view(n_windows, block_size)
    total_loss, correct, count = 0.0, 0, 0
    for b, start in enumerate(range(0, n_windows, batch_size)):
        if max_batches is not None and b >= max_batches:
            break
        x = windows[start:start + batch_size]
        inputs, targets = mask_tokens(x, mask_id, n_chars, gen, rule_80_10_10=False)
        inputs, targets = inputs.to(device), targets.to(device)
        logits = model(inputs, causal=causal).logits.float()
        chosen = targets != -100
        total_loss += F.cross_entropy(logits[chosen], targets[chosen], reduction="sum").item()
        correct += (logits[chosen][:, :n_chars].argmax(-1) == targets[chosen]).sum().item()
        count += int(chosen.sum())
    model.train(was_training)
    loss = total_loss / max(count, 1)
    return {"masked_loss": loss, "masked_bits_per_char": loss / math.log(2),
            "masked_char_accuracy": correct / max(count, 1), "masked_chars": count, "causal": causal}


def evaluate_masked(model: nn.Module, tokenizer: CharTokenizer, data=None, *, batch_size: int = 32,
                    max_batches: Optional[int] = None) -> dict:
    """The BERT-style model on the validation split (last 10% of the corpus): masked-character loss
    and accuracy (see :func:`masked_char_metrics`), bidirectional and, for contrast, with the causal mask.
    """
    ids = torch.tensor(tokenizer.encode(D.load_corpus(data)), dtype=torch.long)
    _, val = D.split(ids)
    args = (model, val, model.config.block_size, model.config.mask_id, len(tokenizer.chars))
    both = masked_char_metrics(*args, batch_size=batch_size, max_batches=max_batches)
    causal = masked_char_metrics(*args, batch_size=batch_size, max_batches=max_batches, causal=True)
    return {"masked_char_accuracy": both["masked_char_accuracy"], "val_loss": both["masked_loss"],
            "bits_per_char": both["masked_bits_per_char"], "masked_chars": both["masked_chars"],
            "masked_char_accuracy_causal": causal["masked_char_accuracy"],
            "val_loss_causal": causal["masked_loss"],
            "val_loss_method": (f"loss at masked characters: 15% of each non-overlapping {args[2]}-character "
                                f"window of the validation split replaced by <mask> (seed 0), "
                                f"{both['masked_chars']:,} characters scored")}
