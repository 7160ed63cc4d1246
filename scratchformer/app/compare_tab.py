"""The "Chars vs words" tab: one text through the character Transformer and the word-piece
(BPE) Transformer, on one axis of characters (:mod:`scratchformer.inference.compare`).

Both read exactly the same characters: the text as the character model reads it (its first 128
characters, unknown characters replaced), which the word model then encodes in its own tokens.
"""
from __future__ import annotations

import gradio as gr

from .. import views
from .bank import TRANSFORMER, WORD_PAIR, WORD_TRANSFORMER, ModelBank
from .events import live_triggers, md
from .links import link_row
from .policy import MAX_ANALYSIS_CHARS, MAX_TEXT_BOX_CHARS, check_index, context_limit, notes_md, prepare_text
from .view import Control, View, declare

DEFAULT_TEXT = "JULIET:\nO Romeo, Romeo! wherefore art thou Romeo?\nDeny thy father and refuse thy name;"
DEFAULT_WORD = "father"
MAX_WORD_CHARS = 64
NAMES = ("character Transformer", "word Transformer")

INTRO = r"""
The same text through the **character** Transformer (one token per character) and the **word**
Transformer (byte-level BPE: one token is often a whole word, `␣father`), drawn on one axis of
characters. A word token's surprise $-\log_2 p$ is shared evenly by its characters, so a word costs
the same bits in both pictures and the two lines can be compared letter by letter. Below, the
attention of the word you pick: from the word model's token that ends it, and from the character
model's last character of it.
"""


def characters_vs_words(bank: ModelBank, text, word, layer, head):
    """(notes, figure, caption HTML) for ``text``: both Transformers' surprise per character, and the
    attention of the query at the last character of ``word`` in layer ``layer``, head ``head``."""
    from ..inference.compare import biggest_disagreement, find_word, side, token_at, word_spans
    from ..inference.traced import run_traced
    if WORD_PAIR not in bank.pairs():
        raise ValueError("this app has no word-level pair (checkpoints/gpt-shakespeare-bpe): nothing to compare")
    chars, words = bank.get(TRANSFORMER), bank.get(WORD_TRANSFORMER)
    if not isinstance(word, str) or len(word) > MAX_WORD_CHARS:
        raise ValueError(f"word must be text of at most {MAX_WORD_CHARS} characters")
    prep = prepare_text(text, chars.tokenizer, context_limit(chars.model, MAX_ANALYSIS_CHARS))
    read = prep.text
    n_layer = min(chars.config.n_layer, words.config.n_layer)
    n_head = min(chars.config.n_head, words.config.n_head)
    l, h = check_index(layer, "layer", n_layer), check_index(head, "head", n_head)
    notes = prep.notes()
    try:
        query_char = find_word(read, word)
    except ValueError as e:        # not (or no longer) in what the models read: the last word of it
        spans = word_spans(read)
        if not spans:
            raise ValueError(f"{e}, and the text has no word to show instead") from None
        query_char = spans[-1][1] - 1
        notes.append(f"{e}; showing its last word, {read[spans[-1][0]:spans[-1][1]]!r}, instead.")
    word_ids = words.tokenizer.encode(read)[:context_limit(words.model, MAX_ANALYSIS_CHARS)]
    sides = {}
    for name, loaded, ids in ((NAMES[0], chars, prep.ids), (NAMES[1], words, word_ids)):
        traced = run_traced(loaded.model, loaded.tokenizer, ids)
        q = token_at(traced.pieces, query_char)
        row = traced.trace.self_attn[l][0, h][q, :q + 1].tolist()
        sides[name] = side(traced.pieces, traced.bits, row, q)
    fig = views.export_name(views.characters_vs_words_figure(
        read, sides, query_char, title=f"characters vs words: layer {l + 1}, head {h + 1}"),
        f"characters_vs_words_L{l + 1}H{h + 1}")
    caption = views.characters_vs_words_caption(read, sides, query_char,
                                                 biggest_disagreement(read, *sides.values()))
    return notes_md(notes), fig, caption


def build_compare_tab(bank: ModelBank, pair=None) -> None:
    """The tab (only when the app has the word pair); ``pair`` is not used: it shows both pairs."""
    if WORD_PAIR not in bank.pairs() or not bank.offered(TRANSFORMER):
        return
    cfg = bank.config(TRANSFORMER)
    with gr.Tab("Chars vs words", id="compare") as tab:
        md(INTRO)
        share = link_row("compare", tab)
        with gr.Row():
            text = gr.Textbox(DEFAULT_TEXT, label=f"Text (both read its first {min(MAX_ANALYSIS_CHARS, cfg.block_size)} "
                                                  "characters)", lines=3, scale=3, elem_id="compare-text",
                              max_length=MAX_TEXT_BOX_CHARS)
            with gr.Column(scale=2):
                word = gr.Textbox(DEFAULT_WORD, label="word whose attention is shown", elem_id="compare-word",
                                  max_length=MAX_WORD_CHARS)
                with gr.Row():
                    layer = gr.Slider(1, cfg.n_layer, cfg.n_layer, step=1, label="layer", elem_id="compare-layer")
                    head = gr.Slider(1, cfg.n_head, 1, step=1, label="head", elem_id="compare-head")
        note = gr.Markdown()
        plot = gr.Plot(show_label=False, elem_id="compare-plot")
        caption = gr.HTML(elem_id="compare-caption")
        declare(View("characters_vs_words", characters_vs_words,
                     [Control("text", text), Control("word", word, dict(max_chars=MAX_WORD_CHARS)),
                      Control("layer", layer), Control("head", head)],
                     [note, plot, caption], live_triggers(text, word, layer, head)), bank, share)

