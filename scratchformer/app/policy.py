"""The app's input policy: what a person may type or send, and what is said when something is changed.

* Numbers from sliders and the API: :func:`as_int`, :func:`check_index` raise ``ValueError`` naming
  the setting and its allowed range.
* Text: :func:`prepare_text` applies the app's length limits and the tokenizer's policy for unknown
  characters, and says what it changed (:meth:`PreparedText.notes`), so the page can tell the person.
  Text is cropped *before* it is tokenized, so the work a request causes is bounded by the limits,
  whatever was sent.
* Escaping: a person's text never becomes markup. :func:`md_text` makes text safe for Markdown (every
  ASCII punctuation backslash-escaped, HTML escaped, ``$`` kept from KaTeX, direction overrides made
  visible), :func:`html_text` for HTML; :func:`shown_value` crops a value a message echoes.
"""
from __future__ import annotations

import html
import math
import re
from dataclasses import dataclass
from numbers import Real

MAX_PROMPT_CHARS = 2000      # generation prompts keep their last 2,000 characters
MAX_ANALYSIS_CHARS = 256     # attention / embeddings / LSTM views read at most this many characters
MAX_TEXT_BOX_CHARS = MAX_PROMPT_CHARS   # every text box's max_length; the server crops to its own limit
MAX_MESSAGE_CHARS = 400      # an error message is cut here (it never echoes a whole paste back)

# Characters that change how the text around them is drawn (Unicode's bidirectional controls: a
# right-to-left override makes "gpj.exe" read "exe.jpg") and other invisible controls: shown as
# their code point, never passed on to the page.
_INVISIBLE = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u061c\u200b-\u200f\u202a-\u202e"
                        "\u2060-\u2069\ufeff\ufff9-\ufffb]")
# What Markdown (GitHub's flavour, as Gradio renders it) reads as markup: code, emphasis, links and
# images, headings, lists, tables, strike-through, and the ":" of "http://" and the "." of "www." (bare
# addresses become links). A backslash makes each plain; & < > " ' are left to html.escape.
_MD_PUNCT = re.compile(r"""([\\`*_{}\[\]()#+\-.!|~:@])""")


def visible_controls(text: str) -> str:
    """Invisible and direction-changing characters as visible codes (U+202E → ⟨U+202E⟩)."""
    return _INVISIBLE.sub(lambda m: f"⟨U+{ord(m.group()):04X}⟩", text)


def html_text(text) -> str:
    """A person's text for HTML: only ever text (``<b>`` shows as ``<b>``)."""
    return html.escape(visible_controls(str(text)))


def md_text(text) -> str:
    """A person's text for Markdown, shown exactly as typed and never as markup: no headings, links,
    images, code fences, tables or HTML come out of it, and no LaTeX (Gradio renders ``$…$`` with
    KaTeX after the Markdown: each ``$`` goes in a span of its own, where no formula can start).
    Line breaks stay line breaks."""
    text = _MD_PUNCT.sub(r"\\\1", visible_controls(str(text)))
    text = html.escape(text, quote=True).replace("$", "<span>$</span>")
    return text.replace("\n", "<br>")


def shown_value(value, limit: int = 40) -> str:
    """``repr(value)`` cropped to ``limit`` characters, as a message echoes what it was given."""
    text = repr(value)
    return text[:limit] + "…" if len(text) > limit else text


def _shown(value) -> str:
    """A value as a message shows it: short, and saying what it is when it is not a number."""
    if value is None:
        return "nothing (the value was empty)"
    if isinstance(value, (bool, str)) or not isinstance(value, Real):
        return f"{shown_value(value)} ({type(value).__name__})"
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


def check_text(value, name: str, limit: int | None = MAX_TEXT_BOX_CHARS, strip: bool = False) -> str:
    """A text setting, checked before any work is done on it: ValueError naming ``name`` for anything
    but text, for empty text (after ``strip``) and for text over ``limit`` characters (None: text
    that :func:`prepare_text` will crop)."""
    if not isinstance(value, str):
        shown = "nothing" if value is None else f"{shown_value(value)} ({type(value).__name__})"
        raise ValueError(f"{name} must be text, got {shown}")
    if limit is not None and len(value) > limit:
        raise ValueError(f"{name} must be at most {limit:,} characters, got {len(value):,}")
    if not (value.strip() if strip else value):
        raise ValueError(f"{name} is empty: write at least one character")
    return value


def generation_prompt(prompt) -> tuple[str, list[str]]:
    """A prompt for generation, checked: (the prompt, notes). None counts as empty; an empty prompt
    starts from a new line (said in a note); anything but text raises ValueError."""
    if prompt is None:
        prompt = ""
    if not isinstance(prompt, str):
        raise ValueError(f"prompt must be text, got {shown_value(prompt)} ({type(prompt).__name__})")
    if not prompt:
        return "\n", ["The prompt is empty: both models start from a new line."]
    return prompt, []


NOTE_MARK = "⚠️ "


class NotesMd(str):
    """Notes as the page's Markdown (a plain ``str`` to Gradio) that still knows the notes as typed,
    so each can also pop up as a toast (:func:`~scratchformer.app.events.toast_notes`)."""

    notes: list[str]

    def __new__(cls, notes: list[str]):
        md = super().__new__(cls, "\n\n".join(NOTE_MARK + md_text(n) for n in notes))
        md.notes = list(notes)
        return md


def notes_md(notes: list[str]) -> NotesMd:
    """Notes about the input (cropped, characters replaced) as Markdown lines the page shows, each
    escaped (:func:`md_text`); the UI also pops each line up as a warning."""
    return NotesMd(notes)


@dataclass
class PreparedText:
    """Text as the model will read it, and what was changed on the way."""

    text: str                 # the characters the model reads (after cropping and replacement)
    ids: list[int]
    replaced: list[str]       # distinct characters outside the vocabulary
    cropped_from: int = 0     # the original length when the text was cropped, else 0
    replacement: str = "?"    # what the tokenizer put in place of each of them (Tokenizer.replacement)

    def notes(self) -> list[str]:
        """Plain sentences saying what happened to the text (empty when nothing did)."""
        out = []
        if self.cropped_from:
            out.append(f"The text had {self.cropped_from:,} characters; the model reads "
                       f"{len(self.text):,} of them.")
        if self.replaced:
            shown = " ".join(repr(c) for c in self.replaced[:12]) + (" …" if len(self.replaced) > 12 else "")
            out.append(f"Characters outside the vocabulary were replaced by {self.replacement!r}: {shown}.")
        return out


def prepare_text(text, tokenizer, max_tokens: int, keep: str = "start") -> PreparedText:
    """Check, crop and encode ``text`` into at most ``max_tokens`` tokens.

    ValueError for text that is not a string or is empty. The text is cropped *before* it is encoded,
    to its first (``keep="start"``) or last (``keep="end"``) ``max_tokens × the longest token``
    characters (for a character model: ``max_tokens`` characters), so a 2 MB paste costs no more than
    that; then its ids to ``max_tokens``. Unknown characters follow the tokenizer's policy (normalise,
    then replace) and are listed.
    """
    if text is None:
        text = ""
    if not isinstance(text, str):
        raise ValueError(f"text must be a string, got {type(text).__name__}")
    if not text:
        raise ValueError("the text is empty: type at least one character")
    cropped_from = 0
    max_chars = max_tokens * tokenizer.longest_token
    if len(text) > max_chars:
        cropped_from = len(text)
        text = text[:max_chars] if keep == "start" else text[-max_chars:]
    ids, replaced = tokenizer.encode_with_report(text)  # may change the length (… → ...)
    if len(ids) > max_tokens:
        cropped_from = cropped_from or len(text)
        ids = ids[:max_tokens] if keep == "start" else ids[-max_tokens:]
    return PreparedText(tokenizer.decode(ids), ids, replaced, cropped_from, tokenizer.replacement)




def context_limit(model, cap: int) -> int:
    """How many tokens a view may feed ``model``: ``cap``, and no more than its context length
    when it has one (a Transformer has no positions beyond its block size; an LSTM has no limit)."""
    n = model.context_length
    return cap if n is None else min(cap, n)
