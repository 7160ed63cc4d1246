"""The app's input policy: what a person may type or send, and what is said when something is changed.

* Numbers from sliders and the API: :func:`as_int`, :func:`check_index` raise ``ValueError`` naming
  the setting and its allowed range.
* Text: :func:`prepare_text` applies the app's length limits and the tokenizer's policy for unknown
  characters, and says what it changed (:meth:`PreparedText.notes`), so the page can tell the person.
"""
from __future__ import annotations

import html
import math
from dataclasses import dataclass
from numbers import Real

MAX_PROMPT_CHARS = 2000      # generation prompts keep their last 2,000 characters
MAX_ANALYSIS_CHARS = 256     # attention / embeddings / LSTM views read at most this many characters


def _shown(value) -> str:
    """A value as a message shows it: short, and saying what it is when it is not a number."""
    if value is None:
        return "nothing (the value was empty)"
    if isinstance(value, (bool, str)) or not isinstance(value, Real):
        text = repr(value)
        return f"{text[:40] + '…' if len(text) > 40 else text} ({type(value).__name__})"
    return repr(value) if abs(value) < 1e15 or not math.isfinite(value) else f"{value:.3g}"


def range_text(lo=None, hi=None, whole: bool = True) -> str:
    """"in 1…8 (a whole number)", "a number ≥ 0", …: the allowed range as the messages say it."""
    kind = "a whole number" if whole else "a number"
    if lo is not None and hi is not None:
        return f"in {lo}…{hi}" + (" (a whole number)" if whole else "")
    if lo is not None:
        return f"{kind} ≥ {lo}"
    if hi is not None:
        return f"{kind} ≤ {hi}"
    return kind


def as_number(value, name: str, lo=None, hi=None, whole: bool = False, hint: str = ""):
    """A number from a slider, a number box or the API, checked: ValueError naming ``name`` and its
    range for anything else (empty, NaN, ±inf, text, a boolean, out of range). ``whole``: also a
    whole number (40.0 → 40). ``hint`` follows the range in the message ("0 = off")."""
    ok = not isinstance(value, bool) and isinstance(value, Real) and math.isfinite(value)
    if ok and whole:
        ok = value == int(value)
    if ok:
        value = int(value) if whole else float(value)
        ok = (lo is None or value >= lo) and (hi is None or value <= hi)
    if not ok:
        extra = f" ({hint})" if hint else ""
        raise ValueError(f"{name} must be {range_text(lo, hi, whole)}{extra}, got {_shown(value)}")
    return value


def as_int(value, name: str, lo=None, hi=None, hint: str = "") -> int:
    """A whole number from a slider (40.0 → 40); ValueError naming ``name`` (and its range) otherwise."""
    return as_number(value, name, lo, hi, whole=True, hint=hint)


def check_index(value, name: str, n: int) -> int:
    """A 1-based choice from a slider (layer 1…n) as a 0-based index; ValueError naming the range."""
    return as_int(value, name, 1, n) - 1


def generation_prompt(prompt) -> tuple[str, list[str]]:
    """A prompt for generation, checked: (the prompt, notes). None counts as empty; an empty prompt
    starts from a new line (said in a note); anything but text raises ValueError."""
    if prompt is None:
        prompt = ""
    if not isinstance(prompt, str):
        raise ValueError(f"prompt must be text, got {prompt!r} ({type(prompt).__name__})")
    if not prompt:
        return "\n", ["The prompt is empty: both models start from a new line."]
    return prompt, []


NOTE_MARK = "⚠️ "


def notes_md(notes: list[str]) -> str:
    """Notes about the input (cropped, characters replaced) as Markdown lines the page shows; the UI
    also pops each line up as a warning."""
    return "\n\n".join(NOTE_MARK + html.escape(n) for n in notes)


@dataclass
class PreparedText:
    """Text as the model will read it, and what was changed on the way."""

    text: str                 # the characters the model reads (after cropping and replacement)
    ids: list[int]
    replaced: list[str]       # distinct characters outside the vocabulary
    cropped_from: int = 0     # the original length when the text was cropped, else 0

    def notes(self, unk: str = "?") -> list[str]:
        """Plain sentences saying what happened to the text (empty when nothing did)."""
        out = []
        if self.cropped_from:
            out.append(f"The text had {self.cropped_from:,} characters; the model reads "
                       f"{len(self.text):,} of them.")
        if self.replaced:
            shown = " ".join(repr(c) for c in self.replaced[:12]) + (" …" if len(self.replaced) > 12 else "")
            out.append(f"Characters outside the vocabulary were replaced by {unk!r}: {shown}.")
        return out


def prepare_text(text, tokenizer, max_chars: int, keep: str = "start") -> PreparedText:
    """Check, crop and encode ``text``.

    ValueError for text that is not a string or is empty. Text longer than ``max_chars`` is cropped
    to its first (``keep="start"``) or last (``keep="end"``) ``max_chars`` characters. Unknown
    characters follow the tokenizer's policy (normalise, then replace) and are listed.
    """
    if text is None:
        text = ""
    if not isinstance(text, str):
        raise ValueError(f"text must be a string, got {type(text).__name__}")
    if not text:
        raise ValueError("the text is empty: type at least one character")
    ids, replaced = tokenizer.encode_with_report(text)  # may change the length (… → ...)
    cropped_from = 0
    if len(ids) > max_chars:
        cropped_from = len(ids)
        ids = ids[:max_chars] if keep == "start" else ids[-max_chars:]
    return PreparedText(tokenizer.decode(ids), ids, replaced, cropped_from)


def unk_char(tokenizer) -> str:
    return tokenizer.itos[tokenizer.unk_id]


def context_limit(model, cap: int) -> int:
    """How many characters a view may feed ``model``: ``cap``, and no more than its context length
    when it has one (a Transformer has no positions beyond its block size; an LSTM has no limit)."""
    n = model.context_length
    return cap if n is None else min(cap, n)
