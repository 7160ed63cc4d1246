"""The app's Embeddings tab: both models' token-embedding tables in 2-D, a token's nearest tokens in
each table, the positional encodings, and the hidden states of a text layer by layer.

Every view follows the page's choice of models (``pair``: the character pair, the word pair, …):
when the tab is built with the pair's component, each view takes it as its last control
(:func:`~.view.paired` lends that pair's models the Transformer and LSTM roles for the call) and is
redrawn when it changes. Callbacks are plain functions of the read-only ModelBank and plain values.

The inference code (torch) is imported inside the callbacks that use it: the page is laid out and
served before torch is imported (see :mod:`.blocks`).
"""
from __future__ import annotations

import html
from typing import NamedTuple, Optional

import gradio as gr

from .. import views
from .bank import LANGUAGE_MODELS, LSTM_NAME, PAIRS, SMALL_PAIR, TRANSFORMER, ModelBank, live_pair
from .events import bound, live_triggers, md, model_event, model_then
from .links import link_row
from .policy import MAX_ANALYSIS_CHARS, MAX_TEXT_BOX_CHARS, context_limit, notes_md, prepare_text
from .view import Control, View, declare, pair_controls, paired

DEFAULT_TEXT = "JULIET:\nO Romeo, Romeo! wherefore art thou Romeo?\nDeny thy father and refuse thy name;"
# The token box starts on the first of these that the models' tokenizer makes one token: a word
# (with its space: " king" is one token of a word model, "king" another) or a character.
TOKEN_CANDIDATES = (" king", " the", "k")
N_NEIGHBOURS = 10
MAX_WORD_TOKENS = 16   # the token box reads at most this many tokens (its text is cropped before encoding)


# ------------------------------------------------------------------------------- embedding tables

def positional_figures(bank: ModelBank) -> list:
    """The sinusoidal pattern for the Transformer's width, and its learned table when it has one."""
    from ..model.positional import sinusoidal_table
    loaded = bank.get(TRANSFORMER)
    cfg = loaded.config
    figs = [views.export_name(views.positional_figure(
        sinusoidal_table(cfg.block_size, cfg.n_embd),
        title=f"sinusoidal encodings, {cfg.block_size} positions × {cfg.n_embd} dims"), "positions_sinusoidal")]
    learned = loaded.model.position_table()
    if learned is not None:
        figs.append(views.export_name(views.positional_figure(learned, title="this model's learned positional embeddings"),
                                      "positions_learned"))
    else:
        figs.append(views.message_figure("This model uses the sinusoidal encodings above (nothing learned)."))
    return figs


def embedding_figure(bank: ModelBank, name: str):
    """``name``'s token-embedding table in 2-D (PCA); a message figure when the model is missing."""
    if not bank.available(name):
        return views.message_figure(bank.slots[name].error or f"{name} is not loaded")
    loaded = bank.get(name)
    tok = loaded.tokenizer
    fig = views.embedding_pca_figure(loaded.model.token_embedding_table(), tok.texts, specials=tok.specials,
                                     title=f"{name}: {tok.count(tok.vocab_size)} as embeddings, PCA to 2-D")
    return views.export_name(fig, f"embeddings_pca_{name.lower()}")


def embedding_tables(bank: ModelBank) -> tuple:
    """(Transformer embeddings PCA, LSTM embeddings PCA, sinusoidal encodings, learned positions).

    They depend on the models only, so they are computed once per pair of loaded models and kept
    (GPT-2's 50,257-token table takes about a second to project; switching pairs back and forth
    must not cost that each time)."""
    bank.load_models()
    models = tuple(bank.slots[n].loaded if n in bank.slots else None for n in (TRANSFORMER, LSTM_NAME))
    key = tuple(id(m) for m in models)
    if key in _TABLES:
        return _TABLES[key][1]
    positions = (positional_figures(bank) if bank.available(TRANSFORMER)
                 else [views.message_figure(bank.slots[TRANSFORMER].error or "")] * 2)
    figures = (embedding_figure(bank, TRANSFORMER), embedding_figure(bank, LSTM_NAME), *positions)
    if all(m is not None for m in models):    # a missing model's message is not kept
        _TABLES[key] = (models, figures)
    return figures


# (the loaded models, their figures) by the models' ids; the models are kept with their figures so
# that an id is never reused while its entry exists. A few pairs at most: nothing to evict.
_TABLES: dict[tuple, tuple] = {}


# ---------------------------------------------------------------------------- nearest tokens

def default_token(tokenizer) -> str:
    """The first of :data:`TOKEN_CANDIDATES` that ``tokenizer`` encodes as one token (the last one,
    a single character, otherwise)."""
    for text in TOKEN_CANDIDATES:
        if len(tokenizer.encode(text)) == 1:
            return text
    return TOKEN_CANDIDATES[-1]


def token_of(tokenizer, text) -> tuple[int, list[str], list[str]]:
    """The token a person means by ``text``: (its id, the tokens ``text`` makes, notes about the text).

    The text is checked and cropped before it is encoded (:func:`~.policy.prepare_text`, at most
    :data:`MAX_WORD_TOKENS` tokens); a text of several tokens (a word the vocabulary splits) stands
    for its last token. ValueError for an empty text or one that is not text."""
    prep = prepare_text(text, tokenizer, MAX_WORD_TOKENS)
    if not prep.ids:                 # e.g. a character model given only what it cannot read
        raise ValueError("the token box holds nothing this model's vocabulary can read")
    return prep.ids[-1], tokenizer.pieces(prep.ids), prep.notes()


def _neighbours_block(bank: ModelBank, name: str, text) -> tuple[str, list[str]]:
    """(HTML table of the token's nearest tokens in ``name``'s embedding table, notes)."""
    from ..inference.neighbours import nearest_tokens
    from ..views.embeddings import neighbours_html
    if not bank.available(name):
        return f"<p>{html.escape(bank.slots[name].error or f'{name} is not loaded')}</p>", []
    loaded = bank.get(name)
    tok = loaded.tokenizer
    token_id, pieces, notes = token_of(tok, text)
    label = views.display_token(tok.token_text(token_id))
    note = ""
    if len(pieces) > 1:
        shown = " · ".join(views.display_token(p) for p in pieces)
        note = (f"{views.display_token(''.join(pieces))} is {tok.count(len(pieces))} for this model ({shown}): "
                f"these are the neighbours of its last token, {label}.")
    rows = [(i, tok.token_text(i), cos) for i, cos in nearest_tokens(loaded.model.token_embedding_table(),
                                                                      token_id, N_NEIGHBOURS)]
    heading = f"{name}: the {len(rows)} tokens nearest to {label} (id {token_id}) by cosine similarity"
    return neighbours_html(heading, rows, note=note), notes


class Neighbours(NamedTuple):
    """The nearest-tokens views, in the order of their outputs."""

    notes: str
    transformer: str     # HTML
    lstm: str            # HTML


def neighbours(bank: ModelBank, token) -> Neighbours:
    """The :data:`N_NEIGHBOURS` tokens nearest to ``token`` (a word, a piece of one, a character:
    its last token if it makes several) in the Transformer's and in the LSTM's embedding table."""
    if token is None or token == "":
        ask = "<p>Type a word or a character to see the tokens nearest to it.</p>"
        return Neighbours(notes_md([]), ask, ask)
    t_html, t_notes = _neighbours_block(bank, TRANSFORMER, token)
    l_html, l_notes = _neighbours_block(bank, LSTM_NAME, token)
    return Neighbours(notes_md(list(dict.fromkeys(t_notes + l_notes))), t_html, l_html)


# ------------------------------------------------------------------------------------ hidden states

def hidden_states(bank: ModelBank, text):
    """The Transformer's hidden states for ``text`` layer by layer: (notes, figure)."""
    from ..inference.traced import run_traced
    loaded = bank.get(TRANSFORMER)
    prep = prepare_text(text, loaded.tokenizer, context_limit(loaded.model, MAX_ANALYSIS_CHARS))
    traced = run_traced(loaded.model, loaded.tokenizer, prep.ids)
    hidden = [h[0] for h in traced.trace.hidden_states]
    fig = views.hidden_states_figure(hidden, traced.pieces, title="Transformer: hidden states by layer")
    return notes_md(prep.notes()), views.export_name(fig, "hidden_states_by_layer")


EMBEDDINGS_INTRO = r"""
Each token (a character for the character models, a word or a piece of one for the word models)
starts as one row of an embedding table, a vector of $d$ numbers learned in training. PCA finds the
two directions along which the rows differ most ($X - \bar X = U S V^\top$, plot $XV_{:,1:2}$);
tokens the model treats alike land close together. With thousands of tokens every token is a point
(hover over it for its text) and about 150 of them, spread over the plot, are written out. Below the
plots, the tokens whose rows point most nearly the same way as one token's:
$\cos(e_i, e_j) = e_i \cdot e_j \,/\, (\lVert e_i \rVert \, \lVert e_j \rVert)$.
Attention alone cannot tell positions apart, so the Transformer adds a position vector to each
embedding, the paper's
$$PE_{(pos,\,2i)} = \sin\!\big(pos / 10000^{2i/d}\big),\quad PE_{(pos,\,2i+1)} = \cos\!\big(pos / 10000^{2i/d}\big)$$
or, like ours, a learned one. Last: how each layer changes the vectors of your text.
"""


# ------------------------------------------------------------------------------------------ the tab

def pair_token(bank: ModelBank, pair) -> str:
    """The token box's starting token for ``pair``'s tokenizer (" king" for words, "k" for
    characters); read from the config, no weights. ValueError naming the pairs for anything else."""
    live = live_pair(pair)
    if live is not None:                     # a pair trained live on this page
        return default_token(live[TRANSFORMER].tokenizer)
    if pair not in bank.pairs():
        raise ValueError(f"pair must be one of {bank.pairs()}")
    return default_token(bank.tokenizer(PAIRS[pair][TRANSFORMER]))


def _pair_changed(pair) -> list:
    """Choosing another pair of models redraws the view (``change``: also when a link sets it)."""
    return [] if pair is None else [pair.change]


def _initial_tokenizer(bank: ModelBank, pair):
    """The tokenizer of the Transformer of the pair the page opens on (read with its config: no
    weights are loaded to lay out the page); None when that model is not offered."""
    chosen = pair.value if pair is not None and pair.value in PAIRS else SMALL_PAIR
    model = PAIRS[chosen][TRANSFORMER]
    return bank.tokenizer(model) if bank.offered(model) else None


def build_embeddings_tab(bank: ModelBank, pair: Optional[gr.components.Component] = None) -> None:
    """The Embeddings tab. ``pair``: the page's choice of models (a gr.Radio of :data:`~.bank.PAIRS`),
    or None for the character pair always."""
    with gr.Tab("Embeddings", id="embeddings") as tab:
        md(EMBEDDINGS_INTRO)
        share = link_row("embeddings", tab)
        with gr.Row():
            tables = [gr.Plot(show_label=False, elem_id=f"emb-{name.lower()}") for name in LANGUAGE_MODELS]
        tok = _initial_tokenizer(bank, pair)
        token = gr.Textbox(default_token(tok) if tok is not None else TOKEN_CANDIDATES[-1],
                           label="Token: its nearest tokens in each table (a word keeps its space: \" king\")",
                           elem_id="emb-token", max_length=MAX_TEXT_BOX_CHARS)
        token_note = gr.Markdown(elem_id="emb-token-note")
        with gr.Row():
            near = [gr.HTML(elem_id=f"emb-neighbours-{name.lower()}") for name in LANGUAGE_MODELS]
        with gr.Row():
            tables += [gr.Plot(show_label=False, elem_id=f"pos-{k}") for k in range(2)]
        # on the page from the start (computed once); the endpoint stays for API users
        declare(View("embedding_tables", paired(embedding_tables, pair), pair_controls(pair), tables,
                     _pair_changed(pair), link=False), bank)
        text = gr.Textbox(DEFAULT_TEXT, label="Text", lines=2, elem_id="hidden-text", max_length=MAX_TEXT_BOX_CHARS)
        button = gr.Button("Show hidden states", elem_id="hidden-btn")
        note = gr.Markdown()
        plot = gr.Plot(show_label=False, elem_id="hidden-plot")
        offered = bank.offered(TRANSFORMER)
        near_view = View("embedding_neighbours", paired(neighbours, pair), [Control("token", token), *pair_controls(pair)],
                         [token_note, *near], live_triggers(token), link=False)
        hidden_view = View("hidden_states", paired(hidden_states, pair), [Control("text", text), *pair_controls(pair)],
                           [note, plot], live_triggers(text) + [button.click] + _pair_changed(pair),
                           arrival=offered, link=False)
        declare(near_view, bank)
        declare(hidden_view, bank)
        if pair is not None:
            # another pair: the token box starts again on that tokenizer's token, then its neighbours
            start = model_event(_pair_changed(pair), bound(pair_token, bank), [pair], [token], "embedding_pair_token",
                                show_progress="hidden", api_visibility="private")
            model_then(start, bound(near_view.compute, bank), near_view.components, list(near_view.outputs),
                       "embedding_pair_neighbours", show_progress="hidden", api_visibility="private")
        if offered:
            _share_both(share, bank, near_view, hidden_view)


def _share_both(share, bank: ModelBank, near_view: View, hidden_view: View) -> None:
    """The tab's link: it carries the text, the token and the pair, and shows both views (a tab's
    link row opens one view: here, the two together)."""
    controls = list({c.name: c for c in [*hidden_view.controls, *near_view.controls]}.values())  # the pair once

    def value(c: Control, values: dict):
        return values.get(c.name, c.component.value)

    def show(**values):
        near = near_view.compute(bank, *[value(c, values) for c in near_view.controls])
        hidden = hidden_view.compute(bank, *[value(c, values) for c in hidden_view.controls])
        return (*near, *hidden)

    share.share([(c.name, c.component, c.link) for c in controls if c.link is not None], show,
                [*near_view.outputs, *hidden_view.outputs])
