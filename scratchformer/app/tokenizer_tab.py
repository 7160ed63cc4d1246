"""The app's "Tokenizer" tab: the same text through every tokenizer the app's models read.

* **Tokens** (:func:`tokenize`): the text as each tokenizer cuts it, coloured chips with their ids,
  and the counts: tokens, characters, characters per token. The tokenizers are those of the
  Transformers of the pairs this app offers (:meth:`~.bank.ModelBank.pairs`: the characters, the
  words' BPE) and GPT-2's byte-level BPE when its ``vocab.json`` and ``merges.txt`` are in the
  checkpoint folder's ``gpt2/`` (:data:`GPT2_FOLDER`).
* **Merges** (:func:`bpe_merges`): a word through a BPE round by round, each merge by its rank.
* **Search** (:func:`vocabulary_search`): the BPE tokens whose text contains a string, and the
  merge that made each.

Every tokenizer is read with its model's config (no weights, no torch: the tab is laid out and
answers before the models are loaded). Callbacks are plain functions of the bank and plain values,
returning HTML from :mod:`scratchformer.views.tokens`, where every token's text is escaped.
"""
from __future__ import annotations

import functools
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Optional

import gradio as gr

from ..tokenizers import BPETokenizer, Tokenizer
from ..views.tokens import (VocabRow, merge_steps_html, message_html, tokenizer_panel_html,
                            visible, vocabulary_search_html)
from .bank import PAIRS, TRANSFORMER, ModelBank
from .events import bound, live_triggers, md, model_event
from .inspect_tabs import DEFAULT_TEXT
from .links import link_row
from .policy import MAX_TEXT_BOX_CHARS, notes_md, shown_value
from .view import Control, View, declare

MAX_TOKENIZED_CHARS = MAX_TEXT_BOX_CHARS   # characters of text tokenized; a longer text is cropped first
MAX_CHIPS = 2000                           # chips drawn per tokenizer (the counts are of every token)
MAX_WORD_BYTES = 64                        # a word whose merges are shown: at most 64 UTF-8 bytes
MAX_QUERY_CHARS = 64                       # a vocabulary search's text
MAX_MATCHES = 50                           # rows of a vocabulary search
GPT2_FOLDER = "gpt2"                       # <checkpoints>/gpt2/vocab.json + merges.txt: GPT-2's BPE, if there

DEFAULT_WORD = " Romeo"
DEFAULT_QUERY = "the"
NO_BPE = ("None of this app's models reads BPE tokens (only the character models are here), so there "
          "are no merges to show and no vocabulary of word pieces to search.")


# ------------------------------------------------------------------------------- which tokenizers

@dataclass(frozen=True)
class TokenizerChoice:
    """A tokenizer the tab shows: its name ("characters (65)", "BPE (2,048 tokens)"), what reads it
    ("the Transformer and LSTM of the words (BPE) pair"), and how to get it (read on first use for
    GPT-2's files)."""

    name: str
    caption: str
    get: Callable[[], Tokenizer]
    bpe: bool


def tokenizer_name(tok: Tokenizer) -> str:
    """"characters (65)" for a character tokenizer, "BPE (2,048 tokens)" for a byte-level BPE."""
    if tok.unit == "character":
        return f"characters ({tok.vocab_size:,})"
    kind = "BPE" if isinstance(tok, BPETokenizer) else tok.type
    return f"{kind} ({tok.vocab_size:,} tokens)"


@functools.lru_cache(maxsize=4)
def read_gpt2(folder: str) -> BPETokenizer:
    """GPT-2's tokenizer from ``folder``'s vocab.json and merges.txt, read once (ValueError naming
    the file when they are broken)."""
    return BPETokenizer.from_gpt2_files(Path(folder) / "vocab.json", Path(folder) / "merges.txt")


def tokenizer_choices(bank: ModelBank) -> list[TokenizerChoice]:
    """The tokenizers of the Transformers of the pairs this bank offers, each once (two pairs that
    read the same vocabulary share one entry), then GPT-2's when its files are there."""
    found: dict[tuple, tuple[Tokenizer, list[str]]] = {}
    for pair in bank.pairs():
        model = PAIRS[pair][TRANSFORMER]
        if not bank.offered(model):
            continue
        tok = bank.tokenizer(model)
        key = (type(tok), tok.vocab_size, tok.texts)
        found.setdefault(key, (tok, []))[1].append(pair)
    choices, names = [], set()
    for tok, pairs in found.values():
        name = tokenizer_name(tok)
        if name in names:                     # two vocabularies of the same size: name the pair too
            name = f"{name}, {pairs[0]}"
        names.add(name)
        caption = "read by the models of the " + " and the ".join(pairs) + " pair" + ("s" if len(pairs) > 1 else "")
        choices.append(TokenizerChoice(name, caption, (lambda t=tok: t), isinstance(tok, BPETokenizer)))
    folder = Path(bank.checkpoint_dir) / GPT2_FOLDER
    if (folder / "vocab.json").is_file() and (folder / "merges.txt").is_file():
        choices.append(TokenizerChoice("GPT-2's BPE", "GPT-2's vocab.json and merges.txt (no model of this app reads it)",
                                       functools.partial(read_gpt2, str(folder)), True))
    return choices


def _bpe(bank: ModelBank, name) -> Optional[tuple[TokenizerChoice, BPETokenizer]]:
    """The BPE called ``name`` (None or "": the first), or None when the app offers no BPE;
    ValueError naming the choices for an unknown name."""
    offered = [c for c in tokenizer_choices(bank) if c.bpe]
    if not offered:
        return None
    if name is None or name == "":
        choice = offered[0]
    else:
        choice = next((c for c in offered if c.name == name), None)
        if choice is None:
            raise ValueError(f"bpe must be one of {', '.join(c.name for c in offered)}; got {shown_value(name)}")
    return choice, choice.get()


def _text(value, name: str) -> str:
    """A text box's value: None counts as empty; anything but text raises ValueError naming it."""
    if value is None:
        return ""
    if not isinstance(value, str):
        raise ValueError(f"{name} must be text, got {shown_value(value)} ({type(value).__name__})")
    return value


def token_bytes(tok: Tokenizer, i: int) -> bytes:
    """The bytes token ``i`` stands for: a BPE's own bytes, else the UTF-8 of its text."""
    if isinstance(tok, BPETokenizer):
        return tok.token_bytes(i)
    return tok.token_text(i).encode("utf-8", "replace")


# ------------------------------------------------------------------------------------------ tokens

def tokenizer_panel(choice: TokenizerChoice, text: str) -> str:
    """One tokenizer's panel for ``text`` (already cropped): chips, counts, what it replaced."""
    try:
        tok = choice.get()
    except ValueError as e:                   # GPT-2's files broken: the other panels still show
        return message_html(f"{choice.name}: {e}")
    if not text:
        return tokenizer_panel_html(choice.name, [], [], 0, caption=choice.caption,
                                    notes=["The text is empty: type something to see its tokens."])
    ids, replaced = tok.encode_with_report(text)
    notes = []
    if replaced:
        shown = " ".join(repr(c) for c in replaced[:12]) + (" …" if len(replaced) > 12 else "")
        notes.append(f"Outside this vocabulary, replaced by {tok.replacement!r}: {shown}")
    shown = ids[:MAX_CHIPS]
    caption = choice.caption
    if tokenizer_name(tok) not in choice.name:        # GPT-2's: its size is known once it is read
        caption = f"{tokenizer_name(tok)}; {caption}"
    return tokenizer_panel_html(choice.name, [tok.token_text(i) for i in shown], shown, len(text),
                                raw=[token_bytes(tok, i) for i in shown], caption=caption, notes=notes,
                                n_tokens=len(ids))


def tokenize(bank: ModelBank, text) -> tuple:
    """``text`` through every tokenizer of :func:`tokenizer_choices`: (notes, one HTML panel each).
    Text past :data:`MAX_TOKENIZED_CHARS` characters is cropped before anything is encoded, and
    the notes say so."""
    text = _text(text, "text")
    notes = []
    if len(text) > MAX_TOKENIZED_CHARS:
        notes.append(f"The text had {len(text):,} characters; the first {MAX_TOKENIZED_CHARS:,} are tokenized.")
        text = text[:MAX_TOKENIZED_CHARS]
    return (notes_md(notes), *[tokenizer_panel(c, text) for c in tokenizer_choices(bank)])


# ------------------------------------------------------------------------------------------ merges

def crop_bytes(word: str, limit: int) -> str:
    """The longest start of ``word`` whose UTF-8 has at most ``limit`` bytes (whole characters)."""
    out, n = [], 0
    for c in word:
        n += len(c.encode("utf-8", "replace"))
        if n > limit:
            break
        out.append(c)
    return "".join(out)


def replay_merges(tok: BPETokenizer, piece: str, steps) -> tuple[list, list, list]:
    """For :meth:`BPETokenizer.merge_steps` of ``piece``: each row's tokens as bytes and ids, and
    the pair (as text) its merge joins, found by applying the merges of the ranks the steps name to
    the piece's bytes (every occurrence, left to right, as BPE does)."""
    toks = [bytes([b]) for b in piece.encode("utf-8", "replace")]
    raws, ids, pairs = [], [], []
    for _, rank in steps:
        raws.append(toks)
        ids.append([tok.id_of[t] for t in toks])
        if rank is None:
            pairs.append(None)
            break
        a, b = tok.merges[rank]
        pairs.append((a.decode("utf-8", "backslashreplace"), b.decode("utf-8", "backslashreplace")))
        merged, k = [], 0
        while k < len(toks):
            if k + 1 < len(toks) and toks[k] == a and toks[k + 1] == b:
                merged.append(a + b)
                k += 2
            else:
                merged.append(toks[k])
                k += 1
        toks = merged
    return raws, ids, pairs


def bpe_merges(bank: ModelBank, word, bpe=None) -> str:
    """How the BPE ``bpe`` (default: the first offered) encodes ``word``: its pre-split pieces, each
    merged round by round (:meth:`BPETokenizer.merge_steps`), with the rank of every merge."""
    word = _text(word, "word")
    found = _bpe(bank, bpe)
    if found is None:
        return message_html(NO_BPE)
    choice, tok = found
    if not word:
        return message_html("Type a word to watch it being merged.")
    notes = []
    if any(0xD800 <= ord(c) <= 0xDFFF for c in word):   # lone surrogates: not text UTF-8 can carry
        word = "".join("\ufffd" if 0xD800 <= ord(c) <= 0xDFFF else c for c in word)
        notes.append("Lone surrogates (not text UTF-8 can carry) were replaced by '\ufffd'.")
    cropped = crop_bytes(word, MAX_WORD_BYTES)
    if cropped != word:
        notes.append(f"The word had {len(word.encode('utf-8')):,} bytes; its first {len(cropped.encode('utf-8'))} "
                     f"are merged (at most {MAX_WORD_BYTES}).")
        word = cropped
    pieces = tok.split_pieces(word)
    if len(pieces) > 1:
        notes.append(f"BPE first splits the text into {len(pieces)} pieces (words with the space before them, "
                     "numbers, punctuation) and never merges across them: each piece is merged on its own.")
    parts = [message_html(f"{tokenizer_name(tok)}: “{visible(word)}”")] if len(pieces) > 1 else []
    for k, piece in enumerate(pieces):
        steps = tok.merge_steps(piece)
        raws, ids, pairs = replay_merges(tok, piece, steps)
        n = len(steps) - 1
        title = (f"piece {k + 1} of {len(pieces)}: “{visible(piece)}”" if len(pieces) > 1 else
                 f"{tokenizer_name(tok)}: “{visible(piece)}”") + f", {n} merge{'' if n == 1 else 's'}"
        parts.append(merge_steps_html(steps, pairs, ids, raws, title=title, notes=notes if k == 0 else ()))
    return "".join(parts)


# ------------------------------------------------------------------------------------------ search

@functools.lru_cache(maxsize=8)
def _lowered(tok: Tokenizer) -> tuple[str, ...]:
    """Every token's text in lower case, in id order (once per tokenizer: a search reads them all)."""
    return tuple(t.lower() for t in tok.texts)


@functools.lru_cache(maxsize=8)
def made_by(tok: BPETokenizer) -> dict[bytes, tuple[int, bytes, bytes]]:
    """token bytes → (rank, left, right) of the first merge that makes it (once per tokenizer)."""
    out: dict[bytes, tuple[int, bytes, bytes]] = {}
    for rank, (a, b) in enumerate(tok.merges):
        out.setdefault(a + b, (rank, a, b))
    return out


def search_rows(tok: BPETokenizer, query: str) -> tuple[list[VocabRow], int]:
    """The tokens whose text contains ``query`` (ignoring case; ``␣`` ``⏎`` ``⇥`` stand for a space,
    a newline, a tab), the exact match first, then by id; an empty query: the tokens made by merges,
    by id. (the first :data:`MAX_MATCHES` rows, how many matched)."""
    needle = query.replace("␣", " ").replace("⏎", "\n").replace("⇥", "\t")
    made = made_by(tok)
    if needle:
        low = needle.lower()
        matches = [i for i, t in enumerate(_lowered(tok)) if low in t]
        matches.sort(key=lambda i: (tok.texts[i] != needle, i))
    else:
        matches = [i for i in range(tok.vocab_size) if not tok.is_special(i) and tok.token_bytes(i) in made]
    rows = []
    for i in matches[:MAX_MATCHES]:
        raw = tok.token_bytes(i)
        special = tok.is_special(i)
        rank, a, b = made.get(raw, (None, None, None)) if not special else (None, None, None)
        pair = None if rank is None else (a.decode("utf-8", "backslashreplace"), b.decode("utf-8", "backslashreplace"))
        rows.append(VocabRow(i, tok.token_text(i), raw, rank, pair, special, None if rank is None else (a, b)))
    return rows, len(matches)


def vocabulary_search(bank: ModelBank, query, bpe=None) -> str:
    """The tokens of the BPE ``bpe`` (default: the first offered) whose text contains ``query``:
    at most :data:`MAX_MATCHES`, each with its id and the merge (rank, pair) that made it."""
    query = _text(query, "search")
    found = _bpe(bank, bpe)
    if found is None:
        return message_html(NO_BPE)
    _, tok = found
    notes = []
    if len(query) > MAX_QUERY_CHARS:
        notes.append(f"The search had {len(query):,} characters; its first {MAX_QUERY_CHARS} were used.")
        query = query[:MAX_QUERY_CHARS]
    rows, total = search_rows(tok, query)
    return vocabulary_search_html(rows, query, total, title=tokenizer_name(tok), notes=notes)


def tokenizer_views(bank: ModelBank, text, word, query, bpe=None) -> tuple:
    """Everything in the tab: (notes, a panel per tokenizer, merges, search). What a new page and a
    link show."""
    return (*tokenize(bank, text), bpe_merges(bank, word, bpe), vocabulary_search(bank, query, bpe))


# ------------------------------------------------------------------------------------------ the tab

INTRO = r"""
A model reads ids, not text. The **character** tokenizer gives each of tiny Shakespeare's 65
characters an id: one token per character. The **byte-level BPE** (byte-pair encoding, as in GPT-2)
starts from the 256 byte values; training then joined the most frequent adjacent pair of tokens into
a new token, again and again, and kept the list of these merges (merge #0 was learned first). To
encode, the text is split into pieces (a word with the space before it, a number, punctuation), and
inside each piece the merge of lowest rank that applies is made, until none applies. Fewer tokens
for the same text means more text fits in a model's context, but a larger vocabulary to choose from
at every step: that is why this app compares models in bits per *character*, never per token.
Hover a token to see its id and bytes.
"""


def build_tokenizer_tab(bank: ModelBank, pair=None) -> None:
    """The Tokenizer tab. ``pair`` (the page's choice of models) is not followed: the tab shows every
    pair's tokenizer side by side."""
    with gr.Tab("Tokenizer", id="tokenizer") as tab:
        md(INTRO)
        share = link_row("tokenizer", tab)
        choices = tokenizer_choices(bank)
        bpes = [c.name for c in choices if c.bpe]
        text = gr.Textbox(DEFAULT_TEXT, label=f"Text (the first {MAX_TOKENIZED_CHARS:,} characters are tokenized)",
                          lines=3, max_length=MAX_TEXT_BOX_CHARS, elem_id="tok-text")
        note = gr.Markdown(elem_id="tok-note")
        if not choices:
            gr.Markdown("⚠️ No language model's checkpoint was found, so there is no tokenizer to show.")
        with gr.Row():
            panels = [gr.HTML(elem_id=f"tok-panel-{k}") for k in range(len(choices))]
        md("### Watch BPE merge a word\nEach row is one round: the outlined pair is merged next, by the rank "
           "of its merge (the lower, the earlier it was learned, the more frequent the pair was in training).")
        with gr.Row():
            word = gr.Textbox(DEFAULT_WORD, label=f"Word (at most {MAX_WORD_BYTES} bytes; a leading space is part "
                              "of it, as in running text)", max_length=MAX_WORD_BYTES, elem_id="tok-word",
                              visible=bool(bpes), scale=2)
            bpe = gr.Radio(bpes, value=bpes[0] if bpes else None, label="BPE vocabulary", elem_id="tok-bpe",
                           visible=len(bpes) > 1, scale=1)
        merges = gr.HTML(elem_id="tok-merges")
        md("### Search the vocabulary\nTokens whose text contains what you type (ignoring case; `␣` is a space), "
           f"at most {MAX_MATCHES}, with the merge that made each.")
        query = gr.Textbox(DEFAULT_QUERY, label="Search", max_length=MAX_QUERY_CHARS, elem_id="tok-search",
                           visible=bool(bpes))
        found = gr.HTML(elem_id="tok-found")

        bpe_link = {} if len(bpes) > 1 else None          # a link names the BPE only when there is a choice
        controls = [Control("text", text), Control("word", word, {"max_chars": MAX_WORD_BYTES}),
                    Control("search", query, {"max_chars": MAX_QUERY_CHARS}), Control("bpe", bpe, bpe_link)]
        # what a new page and a link show: everything, from the controls' values (no event of its own)
        declare(View("tokenizer_views", tokenizer_views, controls, [note, *panels, merges, found],
                     options=dict(api_visibility="private")), bank, share)
        # each part follows its own controls, live
        model_event(live_triggers(text), bound(tokenize, bank), [text], [note, *panels], "tokenize",
                    show_progress="hidden")
        model_event(live_triggers(word, bpe), bound(bpe_merges, bank), [word, bpe], [merges], "bpe_merges",
                    show_progress="hidden")
        model_event(live_triggers(query, bpe), bound(vocabulary_search, bank), [query, bpe], [found],
                    "vocabulary_search", show_progress="hidden")
