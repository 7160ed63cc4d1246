"""Byte-level byte-pair encoding (BPE), as GPT-2 uses it, written to be read.

Sennrich et al. (2016), "Neural Machine Translation of Rare Words with Subword Units": start from single
symbols and repeatedly merge the most frequent adjacent pair into a new symbol. GPT-2 (Radford et al.
2019, §2.2) starts from *bytes*, so every text has an encoding (no unknown tokens), and never merges
across the pieces of a pre-split, so a merge stays inside a word:

1. **Pre-split** the text with GPT-2's pattern :data:`GPT2_PATTERN`: contractions (``'s``, ``'ll``),
   a word with the space before it (``␣king``), a number, a run of punctuation, whitespace.
2. **Bytes**: each piece is its UTF-8 bytes; the 256 byte values are the base tokens.
3. **Train** (:meth:`BPETokenizer.train`): count every adjacent pair of tokens inside the pieces
   (weighted by how often the piece occurs), merge the most frequent pair everywhere into one new token,
   record the merge; repeat until the vocabulary has the size asked for. Merge *k* has rank *k*.
4. **Encode** a piece (:func:`merge_piece`): among its adjacent pairs, apply the merge of lowest rank
   (the one learned first); repeat until no pair of the piece has a merge.
5. **Decode**: concatenate the tokens' bytes, decode UTF-8; bytes that are not valid UTF-8 (a
   sequence cut inside a character) are shown as ``�``, never raised.

Special tokens (``<|endoftext|>``) are numbered after the text tokens and never made by ``encode``.

Files: the project's JSON (``to_dict``), and GPT-2's ``vocab.json`` + ``merges.txt``
(:meth:`BPETokenizer.from_gpt2_files`, :meth:`BPETokenizer.save_gpt2_files`). GPT-2 writes a byte
as a printable character (:func:`bytes_to_unicode`: ``Ġ`` is the space byte), so a token such as
``Ġking`` in vocab.json is the bytes of " king".
"""
from __future__ import annotations

import codecs
import heapq
import json
from collections import Counter
from functools import lru_cache
from pathlib import Path
from typing import Iterable, Sequence

import regex

from .base import Tokenizer, register_tokenizer

#: GPT-2's pre-split pattern (its encoder.py): contractions, an optional space + letters, an optional
#: space + digits, an optional space + other symbols, whitespace not followed by a non-space, whitespace.
GPT2_PATTERN = r"""'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+"""


@lru_cache(maxsize=1)
def bytes_to_unicode() -> dict[int, str]:
    """GPT-2's printable name for each byte value (its ``bytes_to_unicode``): the printable Latin-1
    bytes stand for themselves; the other 68 (space, controls, …) are shifted to U+0100 and above, in
    byte order. So the space byte 0x20 is written ``Ġ`` (U+0120) and the newline 0x0A ``Ċ``."""
    printable = [*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1), *range(ord("®"), ord("ÿ") + 1)]
    names = {b: chr(b) for b in printable}
    shift = 0
    for b in range(256):
        if b not in names:
            names[b] = chr(256 + shift)
            shift += 1
    return names


def _byte_names_order() -> list[int]:
    """The byte values in the order GPT-2's vocab.json numbers them (printable first, then the rest)."""
    return list(bytes_to_unicode())


def _to_gpt2_name(token: bytes) -> str:
    names = bytes_to_unicode()
    return "".join(names[b] for b in token)


def _from_gpt2_name(name: str) -> bytes | None:
    """The bytes a vocab.json key stands for, or None if it uses a character that names no byte."""
    byte_of = _unicode_to_bytes()
    try:
        return bytes(byte_of[c] for c in name)
    except KeyError:
        return None


@lru_cache(maxsize=1)
def _unicode_to_bytes() -> dict[str, int]:
    return {c: b for b, c in bytes_to_unicode().items()}


# ----------------------------------------------------------------------------------------- encoding

def merge_piece(tokens: list[bytes], ranks: dict[tuple[bytes, bytes], int]) -> list[bytes]:
    """Apply the merges to one pre-split piece, lowest rank first (step 4 of the module docstring).

    Each round finds the adjacent pair with the lowest rank and merges *every* occurrence of it, left
    to right; it stops when no adjacent pair has a rank. Example with ranks {(t,h):0, (th,e):1}:
    ``t h e`` → ``th e`` → ``the``. This is GPT-2's ``bpe()``; it costs O(n²) for a piece of n bytes,
    so long pieces go to :func:`merge_long_piece`, which gives the same tokens in O(n log n).
    """
    while len(tokens) > 1:
        pairs = set(zip(tokens, tokens[1:]))
        best = min(pairs, key=lambda p: ranks.get(p, _NO_RANK))
        if best not in ranks:
            break
        merged, i = [], 0
        while i < len(tokens):
            if i + 1 < len(tokens) and (tokens[i], tokens[i + 1]) == best:
                merged.append(tokens[i] + tokens[i + 1])
                i += 2
            else:
                merged.append(tokens[i])
                i += 1
        tokens = merged
    return tokens


_NO_RANK = float("inf")
LONG_PIECE = 64        # bytes; pieces longer than this use the heap (same result, bounded time)


def merge_long_piece(tokens: list[bytes], ranks: dict[tuple[bytes, bytes], int]) -> list[bytes]:
    """:func:`merge_piece` with a priority queue over a linked list of tokens: O(n log n).

    The queue holds (rank, position) of every adjacent pair that has a merge; popping the smallest
    merges the leftmost pair of the lowest rank, as a round of :func:`merge_piece` does first. An entry
    is stale when either side has changed since it was pushed (checked against the current tokens).
    """
    n = len(tokens)
    toks: list[bytes | None] = list(tokens)
    nxt = list(range(1, n + 1))            # nxt[i] == n: no right neighbour
    prv = list(range(-1, n - 1))
    heap = [(ranks[(toks[i], toks[i + 1])], i, toks[i], toks[i + 1])
            for i in range(n - 1) if (toks[i], toks[i + 1]) in ranks]
    heapq.heapify(heap)
    while heap:
        rank, i, left, right = heapq.heappop(heap)
        j = nxt[i] if toks[i] is not None else n
        if j >= n or toks[i] != left or toks[j] != right:
            continue                        # stale: one side was merged away since
        toks[i] = left + right
        toks[j] = None
        nxt[i] = nxt[j]
        if nxt[j] < n:
            prv[nxt[j]] = i
        for a in (prv[i], i):               # the new pairs on either side of the merged token
            if a >= 0 and nxt[a] < n:
                pair = (toks[a], toks[nxt[a]])
                if pair in ranks:
                    heapq.heappush(heap, (ranks[pair], a, *pair))
    return [t for t in toks if t is not None]


# ------------------------------------------------------------------------------------- the tokenizer

@register_tokenizer
class BPETokenizer(Tokenizer):
    """Byte-level BPE: ``tokens[i]`` is the bytes token i stands for; ``merges`` in rank order.

    Every byte value must be a token, so every text encodes (``encode_with_report`` reports only lone
    surrogates, which are not text UTF-8 can carry, and become ``�``).
    """

    type = "bpe"
    unit = "token"
    replacement = "\ufffd"

    def __init__(self, tokens: Sequence[bytes], merges: Sequence[tuple[bytes, bytes]],
                 specials: Sequence[str] = (), pattern: str = GPT2_PATTERN):
        self.tokens: list[bytes] = [bytes(t) for t in tokens]
        self.merges: list[tuple[bytes, bytes]] = [(bytes(a), bytes(b)) for a, b in merges]
        self.specials: list[str] = list(specials)
        self.pattern = pattern
        self._split = regex.compile(pattern)
        self.id_of: dict[bytes, int] = {t: i for i, t in enumerate(self.tokens)}
        if len(self.id_of) != len(self.tokens):
            raise ValueError("BPE vocabulary has a repeated token")
        missing = [b for b in range(256) if bytes([b]) not in self.id_of]
        if missing:
            raise ValueError(f"BPE vocabulary lacks the byte token(s) {[hex(b) for b in missing[:8]]}: "
                             "every byte must be a token")
        self.ranks: dict[tuple[bytes, bytes], int] = {}
        for rank, (a, b) in enumerate(self.merges):
            if a + b not in self.id_of:
                raise ValueError(f"merge {rank} ({a!r} + {b!r}) makes a token that is not in the vocabulary")
            self.ranks.setdefault((a, b), rank)
        self._cache: dict[str, tuple[int, ...]] = {}

    # ---- training

    @classmethod
    def train(cls, text: str, vocab_size: int, specials: Sequence[str] = (),
              pattern: str = GPT2_PATTERN) -> "BPETokenizer":
        """Learn ``vocab_size − 256 − len(specials)`` merges from ``text`` (step 3 of the module docstring).

        The text is pre-split and each distinct piece counted once with its frequency, so a merge costs
        work only in the pieces that contain the pair: ``where[pair]`` lists them, and the pair counts
        are updated by the difference each changed piece makes. Ties between equally frequent pairs go
        to the pair whose bytes sort first, so training is deterministic.
        """
        n_merges = vocab_size - 256 - len(specials)
        if n_merges < 0:
            raise ValueError(f"vocab_size must be at least {256 + len(specials)} (256 bytes + specials), "
                             f"got {vocab_size}")
        counts = Counter(regex.findall(pattern, text))
        words = [[bytes([b]) for b in piece.encode("utf-8", "replace")] for piece in counts]
        freq = list(counts.values())
        pair_count: Counter = Counter()
        where: dict[tuple[bytes, bytes], set[int]] = {}
        for w, (toks, f) in enumerate(zip(words, freq)):
            for pair in zip(toks, toks[1:]):
                pair_count[pair] += f
                where.setdefault(pair, set()).add(w)
        tokens = [bytes([b]) for b in range(256)]
        merges: list[tuple[bytes, bytes]] = []
        for _ in range(n_merges):
            if not pair_count:
                break                                   # every piece is one token: nothing to merge
            top = max(pair_count.values())
            best = min(pair for pair, c in pair_count.items() if c == top)
            merges.append(best)
            new = best[0] + best[1]
            tokens.append(new)
            for w in list(where.get(best, ())):
                old = words[w]
                merged = _merge_all(old, best, new)
                for pair in zip(old, old[1:]):          # take the old pairs out …
                    pair_count[pair] -= freq[w]
                    if pair_count[pair] <= 0:
                        del pair_count[pair]
                for pair in zip(merged, merged[1:]):    # … and the new ones in
                    pair_count[pair] += freq[w]
                    where.setdefault(pair, set()).add(w)
                words[w] = merged
            where.pop(best, None)
        return cls(tokens, merges, specials=specials, pattern=pattern)

    # ---- the Tokenizer interface

    @property
    def vocab_size(self) -> int:
        return len(self.tokens) + len(self.specials)

    def token_bytes(self, i: int) -> bytes:
        """The bytes of text token ``i`` (a special token's name, encoded)."""
        i = self._check(i)
        return self.tokens[i] if i < len(self.tokens) else self.specials[i - len(self.tokens)].encode()

    def token_text(self, i: int) -> str:
        """The text of token ``i``; bytes that are only part of a character are written ``\\xe2``."""
        i = self._check(i)
        if i >= len(self.tokens):
            return self.specials[i - len(self.tokens)]
        return self.tokens[i].decode("utf-8", "backslashreplace")

    def is_special(self, i: int) -> bool:
        return int(i) >= len(self.tokens)

    def special_id(self, name: str) -> int:
        if name not in self.specials:
            raise KeyError(f"special token {name!r} is not in this tokenizer (has {self.specials})")
        return len(self.tokens) + self.specials.index(name)

    def _check(self, i) -> int:
        i = int(i)
        if not 0 <= i < self.vocab_size:
            raise ValueError(f"token id {i} is outside the vocabulary (0..{self.vocab_size - 1})")
        return i

    def encode_piece(self, piece: str) -> tuple[int, ...]:
        """The ids of one pre-split piece (cached: a text repeats its words)."""
        ids = self._cache.get(piece)
        if ids is None:
            toks = [bytes([b]) for b in piece.encode("utf-8")]
            toks = (merge_piece if len(toks) <= LONG_PIECE else merge_long_piece)(toks, self.ranks)
            ids = tuple(self.id_of[t] for t in toks)
            if len(self._cache) < 100_000 and len(piece) <= LONG_PIECE:
                self._cache[piece] = ids
        return ids

    def encode_with_report(self, text: str) -> tuple[list[int], list[str]]:
        """Ids of ``text``: pre-split, each piece's bytes merged by rank. Only lone surrogates (not
        encodable as UTF-8) are replaced, by ``�``, and reported."""
        replaced: dict[str, None] = {}
        try:
            text.encode("utf-8")
        except UnicodeEncodeError:
            fixed = []
            for ch in text:
                if 0xD800 <= ord(ch) <= 0xDFFF:
                    replaced[f"U+{ord(ch):04X}"] = None
                    ch = self.replacement
                fixed.append(ch)
            text = "".join(fixed)
        ids: list[int] = []
        for piece in self._split.findall(text):
            ids.extend(self.encode_piece(piece))
        return ids, list(replaced)

    def decode(self, ids: Iterable[int], skip_specials: bool = True) -> str:
        """The text of ``ids``; bytes that are not valid UTF-8 become ``�`` (never an error)."""
        out = bytearray()
        for i in ids:
            i = self._check(i)
            if i < len(self.tokens):
                out += self.tokens[i]
            elif not skip_specials:
                out += self.specials[i - len(self.tokens)].encode()
        return out.decode("utf-8", "replace")

    def pieces(self, ids: Sequence[int]) -> list[str]:
        """The text each token adds to the text read so far, decoding the bytes as they come: a
        character whose bytes are split across tokens belongs to the token that completes it (that
        token's piece holds it, the earlier ones are empty), so the pieces join to ``decode(ids)`` and
        count its characters."""
        decoder = codecs.getincrementaldecoder("utf-8")("replace")
        out = []
        for i in ids:
            i = self._check(i)
            out.append(decoder.decode(self.tokens[i]) if i < len(self.tokens)
                       else self.specials[i - len(self.tokens)])
        if out:
            out[-1] += decoder.decode(b"", final=True)
        return out

    def merge_steps(self, word: str) -> list[tuple[list[str], int | None]]:
        """How a piece is encoded, round by round: [(tokens as text, rank of the merge applied next), …],
        the last with rank None. For the Tokenizer tab's "watch BPE merge a word"."""
        toks = [bytes([b]) for b in word.encode("utf-8", "replace")]
        steps = []
        while True:
            pairs = [(self.ranks[p], p) for p in zip(toks, toks[1:]) if p in self.ranks]
            if not pairs:
                steps.append(([t.decode("utf-8", "backslashreplace") for t in toks], None))
                return steps
            rank, best = min(pairs)
            steps.append(([t.decode("utf-8", "backslashreplace") for t in toks], rank))
            toks = _merge_all(toks, best, best[0] + best[1])

    def split_pieces(self, text: str) -> list[str]:
        """Step 1 alone: the pre-split pieces of ``text`` (merges never cross them)."""
        return self._split.findall(text)

    # ---- files

    def to_dict(self) -> dict:
        """The project's JSON: tokens and merges written as GPT-2 writes them (``Ġking``)."""
        return {"type": self.type, "pattern": self.pattern, "specials": self.specials,
                "tokens": [_to_gpt2_name(t) for t in self.tokens],
                "merges": [f"{_to_gpt2_name(a)} {_to_gpt2_name(b)}" for a, b in self.merges]}

    @classmethod
    def from_dict(cls, d: dict) -> "BPETokenizer":
        if d.get("type") != cls.type:
            raise ValueError(f"a {cls.__name__} reads tokenizer type {cls.type!r}, not {d.get('type')!r}")
        for key in ("tokens", "merges"):
            if not isinstance(d.get(key), list):
                raise ValueError(f"bpe tokenizer: {key!r} must be a list")
        tokens = []
        for n, name in enumerate(d["tokens"]):
            t = _from_gpt2_name(name) if isinstance(name, str) else None
            if t is None:
                raise ValueError(f"bpe tokenizer: token {n} ({str(name)[:40]!r}) is not a byte-level name")
            tokens.append(t)
        merges = [_parse_merge(line, n, "bpe tokenizer merges") for n, line in enumerate(d["merges"])]
        return cls(tokens, merges, specials=d.get("specials", ()), pattern=d.get("pattern", GPT2_PATTERN))

    def save_gpt2_files(self, folder: str | Path) -> tuple[Path, Path]:
        """Write ``vocab.json`` (name → id, specials included) and ``merges.txt`` (``#version: 0.2``,
        then one merge per line in rank order), as GPT-2's files are written."""
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        vocab = {_to_gpt2_name(t): i for i, t in enumerate(self.tokens)}
        vocab.update({s: len(self.tokens) + k for k, s in enumerate(self.specials)})
        (folder / "vocab.json").write_text(json.dumps(vocab, ensure_ascii=False), encoding="utf-8")
        lines = ["#version: 0.2"] + [f"{_to_gpt2_name(a)} {_to_gpt2_name(b)}" for a, b in self.merges]
        (folder / "merges.txt").write_text("\n".join(lines) + "\n", encoding="utf-8")
        return folder / "vocab.json", folder / "merges.txt"

    @classmethod
    def from_gpt2_files(cls, vocab_path: str | Path, merges_path: str | Path,
                        specials: Sequence[str] = ("<|endoftext|>",)) -> "BPETokenizer":
        """Read GPT-2's ``vocab.json`` + ``merges.txt``. Entries named in ``specials`` (when present)
        are special tokens and must carry the last ids. ValueError naming the file (and line) of
        anything broken: not JSON, ids that are not 0…n−1, a name that is not byte-level, a merge
        line that is not two tokens of the vocabulary whose join is in it."""
        vocab_path, merges_path = Path(vocab_path), Path(merges_path)
        try:
            vocab = json.loads(vocab_path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
            raise ValueError(f"{vocab_path.name}: cannot read it as JSON ({e})") from None
        if not isinstance(vocab, dict) or not vocab:
            raise ValueError(f"{vocab_path.name}: must be a JSON object mapping token to id")
        ids = sorted(vocab.values(), key=lambda v: (not isinstance(v, int), v if isinstance(v, int) else 0))
        if any(not isinstance(v, int) or isinstance(v, bool) for v in ids) or ids != list(range(len(ids))):
            raise ValueError(f"{vocab_path.name}: ids must be the whole numbers 0…{len(vocab) - 1}, each once")
        by_id = sorted(vocab, key=vocab.get)
        present = [s for s in specials if s in vocab]
        n_text = len(by_id) - len(present)
        if sorted(by_id[n_text:]) != sorted(present):
            raise ValueError(f"{vocab_path.name}: special tokens {present} must have the last ids")
        tokens = []
        for i, name in enumerate(by_id[:n_text]):
            t = _from_gpt2_name(name)
            if t is None:
                raise ValueError(f"{vocab_path.name}: token {name[:40]!r} (id {i}) is not a byte-level name")
            tokens.append(t)
        try:
            lines = merges_path.read_text(encoding="utf-8").splitlines()
        except (OSError, UnicodeDecodeError) as e:
            raise ValueError(f"{merges_path.name}: cannot read it ({e})") from None
        merges = []
        for n, line in enumerate(lines, start=1):
            if (n == 1 and line.startswith("#version")) or not line.strip():
                continue
            merges.append(_parse_merge(line, n, merges_path.name))
        known = set(tokens)
        for n, (a, b) in enumerate(merges):
            for part in (a, b, a + b):
                if part not in known:
                    raise ValueError(f"{merges_path.name}: merge {n + 1} ({_to_gpt2_name(a)} {_to_gpt2_name(b)}) "
                                     f"uses or makes {_to_gpt2_name(part)!r}, which {vocab_path.name} lacks")
        try:
            return cls(tokens, merges, specials=present)
        except ValueError as e:
            raise ValueError(f"{vocab_path.name}: {e}") from None


def _parse_merge(line, n: int, where: str) -> tuple[bytes, bytes]:
    parts = line.split(" ") if isinstance(line, str) else []
    pair = [_from_gpt2_name(p) for p in parts] if len(parts) == 2 else []
    if len(pair) != 2 or None in pair or not all(pair):
        raise ValueError(f"{where}: line {n} ({str(line)[:60]!r}) is not two byte-level tokens separated by a space")
    return pair[0], pair[1]


def _merge_all(tokens: list[bytes], pair: tuple[bytes, bytes], new: bytes) -> list[bytes]:
    """``tokens`` with every non-overlapping occurrence of ``pair`` (left to right) replaced by ``new``."""
    out, i = [], 0
    while i < len(tokens):
        if i + 1 < len(tokens) and tokens[i] == pair[0] and tokens[i + 1] == pair[1]:
            out.append(new)
            i += 2
        else:
            out.append(tokens[i])
            i += 1
    return out
