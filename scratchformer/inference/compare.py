"""Characters against words: one text through a character model and a word-piece (BPE) model, on one
axis of characters.

A character model predicts every character; a BPE model predicts a token that may be a whole word
(``␣king``). To put the two side by side, a token's numbers are spread evenly over the characters it
stands for (:func:`per_character`):

    bits(c) = bits(token) / len(token)          for every character c of the token

so the sum over a word is the same in both views (Σ_c bits(c) = bits(token)), and summing a whole
text gives each model's total surprise; divided by the characters predicted, its bits per character.
Attention is spread the same way (a key token's weight shared by its characters), so a row still
sums to 1 over the characters.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence


def token_spans(pieces: Sequence[str]) -> list[tuple[int, int]]:
    """[start, end) character offsets of each token's text in the text the pieces join to."""
    spans, start = [], 0
    for p in pieces:
        spans.append((start, start + len(p)))
        start += len(p)
    return spans


def per_character(values: Sequence[float], pieces: Sequence[str]) -> list[float]:
    """Each token's value shared evenly by its characters: a list as long as ``"".join(pieces)``.
    (A token with no characters of its own, the first bytes of a split character, adds nothing.)"""
    out: list[float] = []
    for v, p in zip(values, pieces):
        out += [v / len(p)] * len(p) if p else []
    return out


def token_at(pieces: Sequence[str], char_index: int) -> int:
    """The index of the token whose text holds character ``char_index``."""
    for k, (s, e) in enumerate(token_spans(pieces)):
        if s <= char_index < e:
            return k
    raise ValueError(f"character {char_index} is outside the text ({sum(map(len, pieces))} characters)")


@dataclass
class Side:
    """One model's numbers on the shared axis of characters."""

    pieces: list[str]           # its tokens' texts
    bits: list[float]           # −log₂ p per character (NaN where nothing was predicted: the first token)
    attention: list[float]      # the query's attention spread over the characters (sums to 1)
    token_attention: list[float]  # the same row per token, as the model computed it
    query_token: int            # which of its tokens asked
    bits_per_char: float        # Σ bits ÷ characters predicted

    @property
    def strongest_key(self) -> int:
        """The token the query attends to most."""
        return max(range(len(self.token_attention)), key=self.token_attention.__getitem__)


def side(pieces: Sequence[str], token_bits: Sequence[float], attn_row: Sequence[float], query_token: int) -> Side:
    """Spread one model's per-token surprise and its query's attention row (over the tokens up to
    and including the query, or all of them without the causal mask) over characters."""
    row = [float(w) for w in attn_row] + [0.0] * (len(pieces) - len(attn_row))
    bits = per_character(token_bits, pieces)
    predicted = [b for b in bits if not math.isnan(b)]
    return Side(list(pieces), bits, per_character(row, pieces), row, query_token,
                sum(predicted) / len(predicted) if predicted else float("nan"))


def word_spans(text: str) -> list[tuple[int, int]]:
    """[start, end) of every word of ``text`` (letters, digits and apostrophes)."""
    spans, i = [], 0
    while i < len(text):
        if text[i].isalnum() or text[i] == "'":
            j = i
            while j < len(text) and (text[j].isalnum() or text[j] == "'"):
                j += 1
            spans.append((i, j))
            i = j
        else:
            i += 1
    return spans


def find_word(text: str, word: str) -> int:
    """The index of the last character of the first whole-word occurrence of ``word`` in ``text``
    (case-sensitive; a word inside a longer word does not count); ValueError naming it if absent."""
    word = word.strip() if isinstance(word, str) else ""
    if not word:
        raise ValueError("word is empty: type a word of the text")
    start = 0
    while True:
        i = text.find(word, start)
        if i < 0:
            raise ValueError(f"word {word[:40]!r} is not in the text the models read")
        before = text[i - 1] if i > 0 else " "
        after = text[i + len(word)] if i + len(word) < len(text) else " "
        if not (before.isalnum() or after.isalnum()):
            return i + len(word) - 1
        start = i + 1


def biggest_disagreement(text: str, a: Side, b: Side) -> tuple[int, int, float, float] | None:
    """The word on which the two models' surprise differs most: (start, end, bits of a, bits of b),
    over the words both predicted entirely (None if there is none)."""
    best = None
    for s, e in word_spans(text):
        xa, xb = a.bits[s:e], b.bits[s:e]
        if any(math.isnan(x) for x in xa + xb) or len(xa) < e - s or len(xb) < e - s:
            continue
        gap = abs(sum(xb) - sum(xa))
        if best is None or gap > best[0]:
            best = (gap, s, e, sum(xa), sum(xb))
    return None if best is None else best[1:]
