"""The character tokenizer: one id per character.

Policy for characters outside the vocabulary (never an exception):

1. Windows line ends become ``\\n``; then each character *not* in the vocabulary is normalised:
   Unicode NFKD, combining marks dropped (``é`` → ``e``), typographic quotes and dashes mapped to
   ASCII (``’`` → ``'``, ``—`` → ``-``), tabs to spaces. Vocabulary characters are kept as they are.
2. Any character still unknown (an emoji, ``ß``, a Chinese character…) becomes the tokenizer's
   ``unk_char`` — by default ``?`` when the vocabulary has it, else a space, else its first character —
   unless the vocabulary has a dedicated ``<unk>`` special token, which is then used.
3. ``encode_with_report`` returns the ids *and* the characters (as typed) that had to be replaced
   by ``unk``, so an app can tell the person what happened.

Special tokens (``<pad>``, ``<bos>``, ``<eos>``, ``<mask>``) get ids after the characters; they are
never produced by encoding plain text.
"""
from __future__ import annotations

import unicodedata
from typing import Iterable, Sequence

from .base import Tokenizer, register_tokenizer

_ASCII_FOLD = {
    "\u2018": "'", "\u2019": "'", "\u201a": "'", "\u201b": "'", "\u2032": "'",
    "\u201c": '"', "\u201d": '"', "\u201e": '"', "\u2033": '"', "\u00ab": '"', "\u00bb": '"',
    "\u2013": "-", "\u2014": "-", "\u2212": "-", "\u2026": "...", "\t": " ", "\r\n": "\n", "\r": "\n",
    "\u00a0": " ",
}


def normalize(text: str) -> str:
    """Step 1 of the policy: fold text towards plain ASCII where a clear equivalent exists."""
    for src, dst in _ASCII_FOLD.items():
        text = text.replace(src, dst)
    decomposed = unicodedata.normalize("NFKD", text)
    return "".join(ch for ch in decomposed if not unicodedata.combining(ch))


@register_tokenizer
class CharTokenizer(Tokenizer):
    """Maps characters to ids and back. ``chars`` fixes the vocabulary and its order."""

    type = "char"
    unit = "character"

    def __init__(self, chars: Sequence[str], specials: Sequence[str] = (), unk_char: str | None = None):
        chars = list(chars)
        if len(set(chars)) != len(chars):
            raise ValueError("tokenizer vocabulary has repeated characters")
        if any(len(c) != 1 for c in chars):
            raise ValueError("tokenizer characters must be single characters")
        self.chars: list[str] = chars
        self.specials: list[str] = list(specials)
        self.itos: list[str] = chars + self.specials
        self.stoi: dict[str, int] = {s: i for i, s in enumerate(self.itos)}
        if "<unk>" in self.stoi:
            self.unk_id = self.stoi["<unk>"]
        else:
            if unk_char is None:
                unk_char = next((c for c in ("?", " ") if c in self.stoi), chars[0] if chars else None)
            if unk_char is None or unk_char not in self.stoi:
                raise ValueError(f"unk_char {unk_char!r} is not in the vocabulary")
            self.unk_id = self.stoi[unk_char]

    @classmethod
    def from_text(cls, text: str, specials: Sequence[str] = ()) -> "CharTokenizer":
        """The vocabulary is the sorted set of characters in ``text``."""
        return cls(sorted(set(text)), specials=specials)

    @property
    def vocab_size(self) -> int:
        return len(self.itos)

    def token_text(self, i: int) -> str:
        """The character of token ``i`` (a special token's name, e.g. ``<pad>``)."""
        i = int(i)
        if not 0 <= i < len(self.itos):
            raise ValueError(f"token id {i} is outside the vocabulary (0..{len(self.itos) - 1})")
        return self.itos[i]

    def is_special(self, i: int) -> bool:
        return int(i) >= len(self.chars)

    @property
    def replacement(self) -> str:
        """The character (or ``<unk>``) that an unknown character becomes."""
        return self.itos[self.unk_id]

    def special_id(self, name: str) -> int:
        """Id of a special token such as ``"<pad>"``; KeyError naming it if absent."""
        if name not in self.specials:
            raise KeyError(f"special token {name!r} is not in this tokenizer (has {self.specials})")
        return self.stoi[name]

    def _char_id(self, ch: str) -> int | None:
        """Id of a vocabulary character (never of a special token), else None."""
        i = self.stoi.get(ch)
        return i if i is not None and i < len(self.chars) else None

    def encode_with_report(self, text: str) -> tuple[list[int], list[str]]:
        """Ids for ``text`` and the list of distinct characters (as typed) that had to be replaced.

        Characters of the vocabulary are kept as they are; only the others are folded (step 1 of the
        policy), so a vocabulary with ``é`` or a tab still encodes them.
        """
        if "\r" not in self.stoi:
            text = text.replace("\r\n", "\n")
        ids: list[int] = []
        unknown: dict[str, None] = {}   # an ordered set: linear time however many distinct characters
        for ch in text:
            i = self._char_id(ch)
            if i is not None:
                ids.append(i)
                continue
            for folded in normalize(ch):  # "’" → "'", "é" → "e", a combining mark → nothing
                j = self._char_id(folded)
                ids.append(self.unk_id if j is None else j)
                if j is None:
                    unknown[ch] = None
        return ids, list(unknown)

    def decode(self, ids: Iterable[int], skip_specials: bool = True) -> str:
        out = []
        for i in ids:
            i = int(i)
            if i < 0 or i >= len(self.itos):
                raise ValueError(f"token id {i} is outside the vocabulary (0..{len(self.itos) - 1})")
            if i >= len(self.chars) and skip_specials:
                continue
            out.append(self.itos[i])
        return "".join(out)

    def to_dict(self) -> dict:
        return {"type": "char", "chars": "".join(self.chars), "specials": self.specials,
                "unk_id": self.unk_id}

    @classmethod
    def from_dict(cls, d: dict) -> "CharTokenizer":
        if d.get("type", "char") != cls.type:
            raise ValueError(f"a {cls.__name__} reads tokenizer type {cls.type!r}, not {d.get('type')!r}")
        tok = cls(list(d["chars"]), specials=d.get("specials", ()))
        if "unk_id" in d:
            tok.unk_id = int(d["unk_id"])
        return tok
