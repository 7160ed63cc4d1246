"""Tokens as a person reads them: coloured chips with their ids, BPE merging a word step by step, a
search through a vocabulary. Pure functions from token texts, ids and bytes to HTML strings.

Every token's text is escaped (:func:`html.escape`) after it is made visible (:func:`visible`: a
space is ``␣``, a newline ``⏎``, an invisible or direction-changing character its code point), so no
text a person types, and no token of a vocabulary, can become markup on the page. A chip's tooltip
says its id and its bytes (a BPE token is bytes, not characters: ``\\xe2`` is one byte of a
three-byte character).

Each fragment starts with the same small ``<style>`` block (:data:`STYLE`), so it looks the same
wherever it lands: in Gradio's ``gr.HTML``, in a notebook, in a saved page.
"""
from __future__ import annotations

import html
import unicodedata
from typing import NamedTuple, Optional, Sequence

from ..tokenizers.base import display_token

# Light backgrounds, taken in turn: two neighbouring tokens never share a colour.
PALETTE = ("#dbeafe", "#fde68a", "#bbf7d0", "#fbcfe8", "#ddd6fe", "#fed7aa")

# One class per palette colour: a chip names its colour (``sf-k3``) instead of spelling it out, which
# keeps a text of 2,000 tokens to about 80 bytes a chip.
_COLOURS = "".join(f".sf-k{k}{{background:{c}}}\n" for k, c in enumerate(PALETTE))

STYLE = f"""<style>
.sf-tokens{{font-family:ui-monospace,SFMono-Regular,Menlo,monospace;line-height:1.25;margin:2px 0 10px 0}}
.sf-tokens .sf-head{{font-family:sans-serif;margin:2px 0 4px 0}}
.sf-tokens .sf-note{{font-family:sans-serif;color:#92400e;margin:2px 0}}
.sf-tokens .sf-box{{border:1px solid #ddd;border-radius:6px;padding:4px;max-height:420px;overflow:auto}}
.sf-k{{display:inline-flex;flex-direction:column;align-items:center;vertical-align:top;margin:2px 1px;
 padding:1px 4px;border-radius:4px;color:#111;min-width:1em}}
.sf-k>span{{white-space:pre;font-size:14px}}
.sf-k>small{{font-size:10px;color:#555}}
.sf-k.sf-merging{{outline:2px solid #f97316}}
{_COLOURS}.sf-tokens .sf-step{{display:flex;gap:8px;align-items:center;border-bottom:1px solid #eee;padding:2px 0}}
.sf-tokens .sf-rank{{font-family:sans-serif;font-size:12px;min-width:15em;color:#333}}
.sf-tokens table{{border-collapse:collapse}}
.sf-tokens td,.sf-tokens th{{padding:2px 8px;border-bottom:1px solid #eee;text-align:left;font-size:13px}}
.sf-tokens th{{font-family:sans-serif}}
</style>"""

_INVISIBLE_KINDS = {"Cc", "Cf", "Zl", "Zp", "Zs", "Co", "Cn"}   # controls, formats, separators, unassigned


def visible(text: str) -> str:
    """A token's text as a chip shows it: :func:`display_token` (``␣``, ``⏎``, ``⇥``, ``\\x07``,
    direction controls as ``U+202E``), and any other character that draws nothing or looks like a
    space (a zero-width space, a no-break space, a byte-order mark) as its code point, ``U+200B``."""
    return "".join(f"U+{ord(c):04X}" if unicodedata.category(c) in _INVISIBLE_KINDS else c
                   for c in display_token(text))


def escaped(text: str) -> str:
    """``text`` made visible (:func:`visible`) and escaped for HTML, quotes included."""
    return html.escape(visible(str(text)), quote=True)


def prose(text: str) -> str:
    """A sentence (a title, a note) for HTML: escaped, its spaces kept, but line breaks, tabs and
    invisible or direction-changing characters shown (``⏎``, ``⇥``, ``U+202E``), so a typed word
    quoted in it can neither become markup nor reorder the sentence around it."""
    shown = "".join(_VISIBLE_IN_PROSE.get(c) or (f"U+{ord(c):04X}" if unicodedata.category(c) in _CONTROL_KINDS else c)
                    for c in str(text))
    return html.escape(shown, quote=True)


_VISIBLE_IN_PROSE = {"\n": "⏎", "\t": "⇥"}
_CONTROL_KINDS = {"Cc", "Cf", "Zl", "Zp", "Co", "Cn"}


def byte_hex(raw: bytes, limit: int = 24) -> str:
    """``b"\\x20Ro"`` → ``"20 52 6f"`` (the first ``limit`` bytes, then ``…``)."""
    shown = " ".join(f"{b:02x}" for b in raw[:limit])
    return shown + (" …" if len(raw) > limit else "")


def chip(text: str, token_id: Optional[int], k: int, raw: Optional[bytes] = None, merging: bool = False) -> str:
    """One token: its visible text, its id underneath (none when ``token_id`` is None), coloured by
    its position ``k`` (:data:`PALETTE`); the tooltip gives the id and the bytes (``raw``, default
    the UTF-8 of ``text``). ``merging``: outlined, as one side of the pair merged next."""
    raw = text.encode("utf-8", "replace") if raw is None else bytes(raw)
    n = len(raw)
    tip = (f"id {token_id} · " if token_id is not None else "") + f"{n} byte{'' if n == 1 else 's'}: {byte_hex(raw)}"
    below = f"<small>{int(token_id)}</small>" if token_id is not None else ""
    cls = f"sf-k sf-k{k % len(PALETTE)}" + (" sf-merging" if merging else "")
    return f'<span class="{cls}" title="{html.escape(tip)}"><span>{escaped(text)}</span>{below}</span>'


def token_chips_html(texts: Sequence[str], ids: Sequence[int], raw: Optional[Sequence[bytes]] = None,
                     limit: Optional[int] = None) -> str:
    """The tokens of a text as a row of chips (:func:`chip`) that wraps like text: after a token
    that ends a line (its text ends with ``\\n``) the chips go on on a new line. ``texts[i]`` is the
    text of token ``ids[i]``; ``raw[i]`` its bytes (default: the UTF-8 of its text). At most
    ``limit`` chips (None: all); the caller says how many there were."""
    if len(texts) != len(ids) or (raw is not None and len(raw) != len(ids)):
        raise ValueError(f"token_chips_html: {len(texts)} texts for {len(ids)} ids"
                         + ("" if raw is None else f" and {len(raw)} byte strings"))
    n = len(ids) if limit is None else min(limit, len(ids))
    parts = []
    for k in range(n):
        parts.append(chip(texts[k], ids[k], k, None if raw is None else raw[k]))
        if texts[k].endswith("\n"):
            parts.append("<br>")
    return "".join(parts)


def _notes_html(notes: Sequence[str]) -> str:
    return "".join(f'<div class="sf-note">⚠️ {prose(n)}</div>' for n in notes)


def message_html(text: str) -> str:
    """A panel that only says ``text`` (nothing typed, no BPE offered…)."""
    return f'{STYLE}<div class="sf-tokens"><div class="sf-head">{prose(text)}</div></div>'


def tokenizer_panel_html(title: str, texts: Sequence[str], ids: Sequence[int], n_chars: int,
                         raw: Optional[Sequence[bytes]] = None, caption: str = "",
                         notes: Sequence[str] = (), n_tokens: Optional[int] = None) -> str:
    """One tokenizer's view of a text: its name (``title``, and ``caption`` beside it), the counts
    (tokens, the text's ``n_chars`` characters, characters per token), ``notes``, then the chips of
    ``ids`` (:func:`token_chips_html`). ``n_tokens``: how many tokens the text has when ``ids`` are
    only the first of them (the counts are of all; a note says how many are drawn)."""
    n = len(ids) if n_tokens is None else n_tokens
    per = f"{n_chars / n:.2f}" if n else "—"
    counts = (f'<b class="sf-count">{n:,}</b> token{"" if n == 1 else "s"} · '
              f'<b class="sf-chars">{n_chars:,}</b> character{"" if n_chars == 1 else "s"} · '
              f'<b class="sf-per">{per}</b> characters per token')
    cropped = [f"the first {len(ids):,} of the {n:,} tokens are shown"] if len(ids) < n else []
    head = f"<b>{prose(title)}</b>" + (f" <small>{prose(caption)}</small>" if caption else "")
    return (f'{STYLE}<div class="sf-tokens"><div class="sf-head">{head}</div>'
            f'<div class="sf-head">{counts}</div>{_notes_html([*notes, *cropped])}'
            f'<div class="sf-box">{token_chips_html(texts, ids, raw)}</div></div>')


def _merging_positions(tokens: Sequence[str], pair: Optional[tuple[str, str]]) -> set[int]:
    """Positions of the tokens that the merge of ``pair`` joins: every occurrence, left to right,
    never overlapping (as BPE merges them)."""
    marks: set[int] = set()
    if pair is None:
        return marks
    k = 0
    while k + 1 < len(tokens):
        if (tokens[k], tokens[k + 1]) == tuple(pair):
            marks |= {k, k + 1}
            k += 2
        else:
            k += 1
    return marks


def merge_steps_html(steps: Sequence[tuple[Sequence[str], Optional[int]]],
                     pairs: Optional[Sequence[Optional[tuple[str, str]]]] = None,
                     ids: Optional[Sequence[Sequence[int]]] = None,
                     raw: Optional[Sequence[Sequence[bytes]]] = None, title: str = "",
                     notes: Sequence[str] = ()) -> str:
    """BPE merging one pre-split piece, a row per round: the tokens so far as chips and the merge
    applied next, by its rank (``#0`` was learned first: the pair most frequent in training).

    ``steps``: :meth:`~scratchformer.tokenizers.bpe.BPETokenizer.merge_steps`, ``[(tokens as text,
    rank of the merge applied next or None), …]``; ``pairs[k]``: the two tokens merged after row k
    (outlined in that row); ``ids[k]``, ``raw[k]``: the ids of row k's tokens (under the chips) and
    their bytes (in the tooltips; default: the UTF-8 of their texts)."""
    rows = []
    for k, (tokens, rank) in enumerate(steps):
        pair = pairs[k] if pairs is not None else None
        marks = _merging_positions(tokens, pair)
        row_ids = ids[k] if ids is not None else [None] * len(tokens)
        row_raw = raw[k] if raw is not None else [None] * len(tokens)
        chips = "".join(chip(t, i, j, b, merging=j in marks)
                        for j, (t, i, b) in enumerate(zip(tokens, row_ids, row_raw)))
        if rank is None:
            what = f"done: {len(tokens)} token{'' if len(tokens) == 1 else 's'}, no pair has a merge"
        else:
            joined = f" ({escaped(pair[0])} + {escaped(pair[1])})" if pair is not None else ""
            what = f'next: merge <b class="sf-rank-n">#{int(rank):,}</b>{joined}'
        rows.append(f'<div class="sf-step"><span class="sf-rank">{k}. {what}</span><span>{chips}</span></div>')
    head = f'<div class="sf-head"><b>{prose(title)}</b></div>' if title else ""
    return f'{STYLE}<div class="sf-tokens">{head}{_notes_html(notes)}{"".join(rows)}</div>'


class VocabRow(NamedTuple):
    """One token of a vocabulary search: its id, text and bytes, and how it was made: ``rank`` and
    ``pair`` (the texts of the two tokens) of the merge that made it, both None for one of the 256
    byte tokens or a special token (``special``); ``pair_raw``: the bytes of those two tokens."""

    id: int
    text: str
    raw: bytes
    rank: Optional[int] = None
    pair: Optional[tuple[str, str]] = None
    special: bool = False
    pair_raw: Optional[tuple[bytes, bytes]] = None


def vocabulary_search_html(rows: Sequence[VocabRow], query: str, total: int, title: str = "",
                           notes: Sequence[str] = ()) -> str:
    """The tokens whose text contains ``query``: a table of id, token (a chip) and how it was made
    (a byte, a special token, or merge #rank of two tokens). ``total``: how many matched (``rows``
    may be fewer: the first ones)."""
    head = f"<b>{prose(title)}</b> · " if title else ""
    if query:
        found = f"{total:,} token{'' if total == 1 else 's'} contain “{escaped(query)}”"
    else:
        found = f"{total:,} tokens made by merges"
    if len(rows) < total:
        found += f"; the first {len(rows):,} are shown"
    body = []
    for k, r in enumerate(rows):
        if r.special:
            made = "special token (never made from text)"
        elif r.rank is None:
            made = f"byte 0x{r.raw[0]:02x} (one of the 256 base tokens)" if len(r.raw) == 1 else "in the vocabulary"
        else:
            a, b = r.pair if r.pair is not None else ("?", "?")
            ra, rb = r.pair_raw if r.pair_raw is not None else (None, None)
            made = f'merge <b class="sf-rank-n">#{int(r.rank):,}</b>: {chip(a, None, 0, ra)} + {chip(b, None, 1, rb)}'
        body.append(f'<tr><td>{int(r.id)}</td><td>{chip(r.text, r.id, k, r.raw)}</td><td>{made}</td></tr>')
    table = ("<table><tr><th>id</th><th>token</th><th>made by</th></tr>" + "".join(body) + "</table>") if body else ""
    return (f'{STYLE}<div class="sf-tokens"><div class="sf-head">{head}{found}</div>'
            f'{_notes_html(notes)}{table}</div>')
