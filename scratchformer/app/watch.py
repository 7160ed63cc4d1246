"""Watch the Transformer attend while it writes, and replay exactly what it saw at any step.

After each generated character the newest position's attention is taken from a traced forward pass
over **exactly** the context the generator gave the model for that step: with the KV cache this is
``sequence[context_start : context_start + context_len]`` (:class:`~scratchformer.inference.generation.GenStep`),
which after a refill is the last half block plus what followed, not a plain crop of the text. That
pass's last-position logits equal the generation step's (tested), so the attention shown is the one
behind the character written.

The inference code (torch) is imported inside the callbacks that use it: the page is laid out and
served before torch is imported (see :mod:`.blocks`).
"""
from __future__ import annotations

import html as html_lib
from typing import NamedTuple, Sequence

from ..model.registry import family
from .. import views
from .bank import TRANSFORMER


class StepAttention(NamedTuple):
    """The newest position's attention for one generation step."""

    weights: object        # [H, T] tensor: row h = head h of the chosen layer
    pieces: list[str]      # the text of the T tokens of the context
    logits: object         # [V] the traced pass's scores for the next token (check: = the step's)


def step_attention(model, tokenizer, sequence: Sequence[int], start: int, length: int,
                   layer: int) -> StepAttention:
    """A traced pass over ``sequence[start:start+length]``: layer ``layer``'s (0-based) attention of
    the last position, per head."""
    from ..inference.traced import run_traced
    ids = list(sequence[start:start + length])
    traced = run_traced(model, tokenizer, ids)
    return StepAttention(traced.trace.self_attn[layer][0, :, -1, :], traced.pieces, traced.trace.logits[0, -1])


def context_caption(name: str, k: int, start: int, length: int, block_size, tokenizer) -> str:
    """Which tokens the model saw at step ``k`` (1-based), in words (the tokenizer's unit: characters
    for a character model)."""
    unit = tokenizer.unit + "s"
    where = f"{unit} {start + 1}…{start + length} of the prompt + generated text"
    if block_size is None:
        return (f"**{name}, step {k}:** it read the whole text so far ({tokenizer.count(length)}) "
                "through its state.")
    why = ""
    if start:
        why = (f" (the KV cache holds at most {block_size} positions; when it fills it is rebuilt from the "
               f"last {tokenizer.count(block_size // 2)}, so the model saw this window, not the last {block_size})")
    return f"**{name}, step {k}:** it saw {tokenizer.count(length)}, {where}{why}. Struck through: not seen."


def watch_views(loaded, sequence: Sequence[int], start: int, length: int, step, layer: int, k: int):
    """(attention figure, distribution figure, context HTML) for step ``k`` of a generation whose
    token ids are ``sequence`` (prompt + generated, at least up to this step). The figures are plain
    data (:class:`~scratchformer.views.common.PlainFigure`): this panel is redrawn as the models write."""
    attn, context = attention_views(loaded, sequence, start, length, step.token_id, layer, k)
    tok = loaded.tokenizer
    dist = views.export_name(views.next_char_figure(
        step.probs_filtered, tok.texts, step.token_id,
        title=f"step {k}: next {tok.unit} (chose '{tok.label(step.token_id)}')", step=step, plain=True),
        f"watch_distribution_step{k}")
    return attn, dist, context


def attention_views(loaded, sequence: Sequence[int], start: int, length: int, token_id: int, layer: int, k: int):
    """:func:`watch_views` without the distribution: (attention figure, context HTML), for step ``k``
    that chose ``token_id``."""
    tok = loaded.tokenizer
    pieces = tok.pieces(sequence[:start + length])
    text, chosen = "".join(pieces), tok.token_text(token_id)
    # the context figure counts characters of the text: where the tokens seen start and end in it
    start_c, length_c = len("".join(pieces[:start])), len("".join(pieces[start:]))
    if family(loaded.config.model_type).decoding == "state":     # a recurrent network: no attention
        attn = views.message_figure("The LSTM has no attention: everything it read is in its state (h, c).",
                                    height=160)
        caption = context_caption("LSTM", k, 0, length, None, tok)
    else:
        sa = step_attention(loaded.model, tok, sequence, start, length, layer)
        attn = views.export_name(views.newest_attention_figure(
            sa.weights, sa.pieces, title=f"step {k}: where '{views.display_token(sa.pieces[-1])}' looks, layer {layer + 1}",
            plain=True),
            f"watch_attention_step{k}_L{layer + 1}")
        caption = context_caption(TRANSFORMER, k, start, length, loaded.config.block_size, tok)
    return attn, caption_html(caption) + views.context_html(text, start_c, length_c, chosen)


def caption_html(markdown_bold: str) -> str:
    """The caption's **bold** lead as HTML (the context box is HTML)."""
    lead, _, rest = markdown_bold.partition(":** ")
    return f"<p><b>{html_lib.escape(lead.strip('*'))}:</b> {html_lib.escape(rest)}</p>"
