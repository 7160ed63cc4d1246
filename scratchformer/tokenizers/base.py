"""What every tokenizer is: text → ids → text, and how one token is shown.

A model reads ids; a person reads text. A tokenizer is the only place that knows how the two relate
(one character per token, or a piece of a word, or a byte): everything above it asks it, and never
assumes that token i is a character. :class:`Tokenizer` is that interface:

* ``encode_with_report(text) -> (ids, replaced)``: the ids, and the distinct pieces of the text (as
  typed) that the vocabulary could not represent and were replaced; ``encode(text)`` the ids alone;
* ``decode(ids)``: the text the ids stand for (special tokens left out unless asked for);
* ``vocab_size``; ``token_text(i)``: the text token i stands for (a special token's name, ``<pad>``);
  ``label(i)``: that text made visible;
  ``texts``: the text of every id for a figure (``␣the``, ``⏎``);
* ``unit``: what one token is, in words for a caption ("character" or "token");
* ``replacement``: what text outside the vocabulary becomes (``?`` for the character models);
* ``to_dict()`` / ``from_dict(d)``: the JSON a checkpoint stores, with a ``"type"`` naming the class.

:func:`tokenizer_from_dict` reads any registered type; :func:`register_tokenizer` adds one.
"""
from __future__ import annotations

from functools import cached_property
from typing import Iterable, Sequence


def display_token(text: str) -> str:
    """A token's text made visible: space → ␣, newline → ⏎, tab → ⇥, other control characters as
    ``\\x07``, direction controls (which would reorder the text around them) as ``U+202E``.

    (␣, the usual visible-space sign, rather than ␠: common fonts such as DejaVu lack ␠ and draw a box.)
    """
    return "".join(_VISIBLE.get(c) or _visible_control(c) for c in text)


_VISIBLE = {" ": "␣", "\n": "⏎", "\t": "⇥"}
_DIRECTION = set(map(chr, [*range(0x202A, 0x202F), *range(0x2066, 0x206A), 0x200E, 0x200F, 0x061C]))


def _visible_control(c: str) -> str:
    if ord(c) < 32 or ord(c) == 127:
        return f"\\x{ord(c):02x}"
    if c in _DIRECTION:
        return f"U+{ord(c):04X}"
    return c


class Tokenizer:
    """The interface every tokenizer meets (see the module docstring). Subclasses set ``type`` (the
    name stored in JSON) and implement the methods that raise NotImplementedError."""

    type: str = ""
    unit: str = "token"             # what one token is, for captions: "3 tokens", "65 characters"
    specials: list[str]             # names of the special tokens (<pad>, <bos>, …), never made by encode
    replacement: str = "<unk>"      # what text outside the vocabulary becomes (named in the app's notes)

    # ---- to implement
    @property
    def vocab_size(self) -> int:
        raise NotImplementedError

    def encode_with_report(self, text: str) -> tuple[list[int], list[str]]:
        raise NotImplementedError

    def decode(self, ids: Iterable[int], skip_specials: bool = True) -> str:
        raise NotImplementedError

    def token_text(self, i: int) -> str:
        """The text token ``i`` stands for (a special token's name); ValueError outside the vocabulary."""
        raise NotImplementedError

    def special_id(self, name: str) -> int:
        """Id of the special token ``name`` (e.g. ``"<pad>"``); KeyError naming it if absent."""
        raise NotImplementedError

    def to_dict(self) -> dict:
        raise NotImplementedError

    @classmethod
    def from_dict(cls, d: dict) -> "Tokenizer":
        raise NotImplementedError

    # ---- shared
    def encode(self, text: str) -> list[int]:
        """The ids of ``text`` (what cannot be represented is replaced, see ``encode_with_report``)."""
        return self.encode_with_report(text)[0]

    @property
    def text_vocab_size(self) -> int:
        """How many ids stand for text: ids 0 … text_vocab_size−1; the special tokens are numbered
        after them (every tokenizer here numbers them so)."""
        return self.vocab_size - len(self.specials)

    def is_special(self, i: int) -> bool:
        """Whether token ``i`` is a special token (<pad>, <bos>, …) rather than text."""
        return self.token_text(i) in self.specials

    def label(self, i: int) -> str:
        """Token ``i`` as a figure shows it: its text with spaces and controls made visible."""
        return self.token_text(i) if self.is_special(i) else display_token(self.token_text(i))

    @cached_property
    def texts(self) -> tuple[str, ...]:
        """:meth:`token_text` of every id, in id order (computed once per tokenizer): what a figure
        over the whole vocabulary (a next-token distribution, the embedding table) labels."""
        return tuple(self.token_text(i) for i in range(self.vocab_size))

    @cached_property
    def longest_token(self) -> int:
        """The most characters one (non-special) token stands for: 1 for a character model. A text
        of n tokens has at most n × longest_token characters (the app crops text by it before encoding)."""
        return max((len(t) for i, t in enumerate(self.texts) if not self.is_special(i)), default=1) or 1

    def pieces(self, ids: Sequence[int]) -> list[str]:
        """The text of each token of ``ids`` (what a model read, token by token)."""
        return [self.token_text(int(i)) for i in ids]

    def count(self, n: int) -> str:
        """``n`` tokens in words, by this tokenizer's unit: "1 character", "65 characters", "3 tokens"."""
        return f"{n:,} {self.unit}{'' if n == 1 else 's'}"


TOKENIZER_TYPES: dict[str, type[Tokenizer]] = {}


def register_tokenizer(cls: type[Tokenizer]) -> type[Tokenizer]:
    """Make ``tokenizer_from_dict`` read ``{"type": cls.type, …}`` with ``cls.from_dict`` (a decorator)."""
    if not cls.type:
        raise ValueError(f"{cls.__name__} has no type name")
    TOKENIZER_TYPES[cls.type] = cls
    return cls


def tokenizer_from_dict(d: dict) -> Tokenizer:
    """The tokenizer a checkpoint's JSON describes, by its ``"type"`` (a missing type is "char", as the
    first checkpoints wrote none); ValueError naming an unknown type and the known ones."""
    if not isinstance(d, dict):
        raise ValueError(f"tokenizer must be a JSON object, got {type(d).__name__}")
    kind = d.get("type", "char")
    cls = TOKENIZER_TYPES.get(kind) if isinstance(kind, str) else None
    if cls is None:
        raise ValueError(f"unknown tokenizer type {kind!r}; known types: {sorted(TOKENIZER_TYPES)}")
    return cls.from_dict(d)
