"""Callbacks of the app's "look inside" tabs: attention, embeddings, the LSTM's gates, the models.

Plain functions, no Gradio: each takes the read-only ModelBank and plain values (text, numbers,
booleans) and returns figures and Markdown; ``ui.py`` wires them to widgets. A person's mistakes
raise ValueError naming the setting; notes about the input (cropped, characters replaced) come back
as the first output.
"""
from __future__ import annotations

import html
import math
from pathlib import Path

import torch

from . import views
from .positional import LearnedPositionalEmbedding, sinusoidal_table
from .ui_models import (LSTM_NAME, MAX_ANALYSIS_CHARS, TRANSFORMER, ModelBank, as_int, check_index,
                        context_limit, describe_model, notes_md, prepare_text, run_traced, top1_text,
                        unk_char)

DEFAULT_TEXT = "JULIET:\nO Romeo, Romeo! wherefore art thou Romeo?\nDeny thy father and refuse thy name;"


def _prepared(bank: ModelBank, name: str, text):
    loaded = bank.get(name)
    prep = prepare_text(text, loaded.tokenizer, context_limit(loaded, MAX_ANALYSIS_CHARS))
    return loaded, prep, notes_md(prep.notes(unk_char(loaded.tokenizer)))


# ------------------------------------------------------------------------------------------ attention

def _attention_figures(traced, chars, layer: int, head: int, hide_first: bool, causal: bool):
    attn = [a[0] for a in traced.trace.self_attn]          # L × [H, T, T]
    mask = "causal mask on" if causal else "causal mask OFF"
    grid = views.attention_grid(attn, hide_first, title=f"every layer × head ({mask})")
    head_fig = views.attention_heatmap(attn[layer][head], chars, hide_first=hide_first,
                                       title=f"layer {layer + 1}, head {head + 1} ({mask})")
    avg = views.attention_heatmap(attn[layer].mean(0), chars, hide_first=hide_first,
                                  title=f"layer {layer + 1}, average over heads ({mask})")
    return grid, head_fig, avg


def _diff_figure(on, off, chars, layer: int, head: int):
    d = off.trace.self_attn[layer][0, head] - on.trace.self_attn[layer][0, head]
    return views.attention_heatmap(d, chars, diverging=True,
                                   title=f"layer {layer + 1}, head {head + 1}: mask off − mask on "
                                         "(red: more attention without the mask)")


def _attention_inputs(bank, text, layer, head):
    loaded, prep, note = _prepared(bank, TRANSFORMER, text)
    cfg = loaded.config
    return loaded, prep, note, check_index(layer, "layer", cfg.n_layer), check_index(head, "head", cfg.n_head)


def _comparison(loaded, prep, on, off) -> str:
    itos = loaded.tokenizer.itos
    text = "".join(views.display_char(c) for c in prep.text)
    p_on, p_off = top1_text(on.trace.logits[0], itos), top1_text(off.trace.logits[0], itos)
    changed = sum(a != b for a, b in zip(p_on, p_off))
    return (f"**Loss on this text:** mask on {on.bits_per_char:.2f} bits/char, mask off "
            f"{off.bits_per_char:.2f} bits/char. With the mask off every position also sees the "
            f"characters after it, which this model never saw in training. "
            f"**{changed} of {len(p_on)}** top predictions change.\n\n"
            "Most likely next character at each position (shifted one place right, under the character "
            "it predicts):\n\n"
            f"```\ntext      {text}\nmask on    {p_on[:-1]}\nmask off   {p_off[:-1]}\n```")


def attention(bank: ModelBank, text, causal, layer, head, hide_first):
    """Everything in the attention tab for ``text``: (notes, grid, head, average, diff, comparison).

    Runs the Transformer twice, with the causal mask on and off, so the diff and the comparison
    of predictions and loss are always at hand; the matrices shown follow ``causal``.
    """
    loaded, prep, note, l, h = _attention_inputs(bank, text, layer, head)
    on = run_traced(loaded, prep.ids, causal=True)
    off = run_traced(loaded, prep.ids, causal=False)
    chars = on.chars
    grid, head_fig, avg = _attention_figures(on if causal else off, chars, l, h, bool(hide_first), bool(causal))
    return note, grid, head_fig, avg, _diff_figure(on, off, chars, l, h), _comparison(loaded, prep, on, off)


def attention_view(bank: ModelBank, text, causal, layer, head, hide_first):
    """After the causal toggle or the first-token option: (grid, head, average) only."""
    loaded, prep, _, l, h = _attention_inputs(bank, text, layer, head)
    traced = run_traced(loaded, prep.ids, causal=bool(causal))
    return _attention_figures(traced, traced.chars, l, h, bool(hide_first), bool(causal))


def attention_head(bank: ModelBank, text, causal, layer, head, hide_first):
    """After moving the layer or head slider: (the big head, its mask-off − mask-on diff) only."""
    loaded, prep, _, l, h = _attention_inputs(bank, text, layer, head)
    on = run_traced(loaded, prep.ids, causal=True)
    off = run_traced(loaded, prep.ids, causal=False)
    shown = on if causal else off
    mask = "causal mask on" if causal else "causal mask OFF"
    head_fig = views.attention_heatmap(shown.trace.self_attn[l][0, h], on.chars, hide_first=bool(hide_first),
                                       title=f"layer {l + 1}, head {h + 1} ({mask})")
    return head_fig, _diff_figure(on, off, on.chars, l, h)


ATTENTION_INTRO = r"""
Each head compares every character's query $q_i$ with the keys $k_j$ of the characters it may see
and spreads one unit of attention over them; row $i$ of a heatmap is that distribution:
$$\alpha_{ij} = \mathrm{softmax}_j\!\left(\frac{q_i \cdot k_j}{\sqrt{d_k}} + M_{ij}\right)$$
The causal mask $M_{ij} = -\infty$ for $j > i$ hides the future, so each heatmap is lower-triangular.
Turn it off to see what the model does when it can also look ahead (the predictions and the loss
change below). *Hide the first token* blanks its column (not renormalised) so the colour scale
stretches over the other weights: the first character often soaks up attention heads have nowhere
else to put.
"""


# ----------------------------------------------------------------------------------------- embeddings

def positional_figures(bank: ModelBank) -> list:
    """The sinusoidal pattern for the Transformer's width, and its learned table when it has one."""
    loaded = bank.get(TRANSFORMER)
    cfg = loaded.config
    figs = [views.positional_figure(sinusoidal_table(cfg.block_size, cfg.n_embd),
                                    title=f"sinusoidal encodings, {cfg.block_size} positions × {cfg.n_embd} dims")]
    pos = loaded.model.embed.pos
    if isinstance(pos, LearnedPositionalEmbedding):
        figs.append(views.positional_figure(pos.emb.weight, title="this model's learned positional embeddings"))
    else:
        figs.append(views.message_figure("This model uses the sinusoidal encodings above (nothing learned)."))
    return figs


def embedding_figure(bank: ModelBank, name: str):
    if not bank.available(name):
        return views.message_figure(bank.slots[name].error or f"{name} is not loaded")
    loaded = bank.get(name)
    return views.embedding_pca_figure(loaded.model.embed.weight if name == LSTM_NAME
                                      else loaded.model.embed.tok.weight, loaded.tokenizer.itos,
                                      title=f"{name}: token embeddings, PCA to 2-D")


def embedding_tables(bank: ModelBank) -> tuple:
    """(Transformer embeddings PCA, LSTM embeddings PCA, sinusoidal encodings, learned positions)."""
    positions = (positional_figures(bank) if bank.available(TRANSFORMER)
                 else [views.message_figure(bank.slots[TRANSFORMER].error or "")] * 2)
    return (embedding_figure(bank, TRANSFORMER), embedding_figure(bank, LSTM_NAME), *positions)


def hidden_states(bank: ModelBank, text):
    """The Transformer's hidden states for ``text`` layer by layer: (notes, figure)."""
    loaded, prep, note = _prepared(bank, TRANSFORMER, text)
    traced = run_traced(loaded, prep.ids)
    hidden = [h[0] for h in traced.trace.hidden_states]
    return note, views.hidden_states_figure(hidden, traced.chars, title="Transformer: hidden states by layer")


EMBEDDINGS_INTRO = r"""
Each character starts as one row of an embedding table, a vector of $d$ numbers learned in training.
PCA finds the two directions along which the rows differ most ($X - \bar X = U S V^\top$, plot
$XV_{:,1:2}$); characters the model treats alike land close together. Attention alone cannot tell
positions apart, so the Transformer adds a position vector to each embedding, the paper's
$$PE_{(pos,\,2i)} = \sin\!\big(pos / 10000^{2i/d}\big),\quad PE_{(pos,\,2i+1)} = \cos\!\big(pos / 10000^{2i/d}\big)$$
or, like ours, a learned one. Below: how each layer changes the vectors of your text.
"""


# ------------------------------------------------------------------------------------------------ LSTM

def lstm_inside(bank: ModelBank, text, layer, n_units):
    """The LSTM's gates and cells for ``text``: (notes, heatmaps, the top units' text colouring)."""
    loaded, prep, note = _prepared(bank, LSTM_NAME, text)
    l = check_index(layer, "layer", loaded.config.n_layer)
    n = as_int(n_units, "units")
    if not 1 <= n <= loaded.config.hidden:
        raise ValueError(f"units must be in 1…{loaded.config.hidden}, got {n}")
    traced = run_traced(loaded, prep.ids)
    gates = {k: v[l, 0] for k, v in traced.trace.gates.items()}       # [T, hidden]
    cells = traced.trace.cell_states[l, 0]
    units = views.top_varying_units(cells, n)
    fig = views.lstm_gates_figure(gates, cells, traced.chars, units,
                                  title=f"LSTM layer {l + 1}: the {n} units whose tanh(c_t) varies most")
    units_html = "".join(views.unit_text_html(traced.chars, torch.tanh(cells[:, u]), f"unit {u}: tanh(c_t)")
                         for u in units[:6])
    return note, fig, units_html


LSTM_INTRO = r"""
At each character the LSTM decides, per unit, what to forget, what to write and what to show:
$$c_t = f_t \odot c_{t-1} + i_t \odot g_t, \qquad h_t = o_t \odot \tanh(c_t)$$
with gates $i_t, f_t, o_t = \sigma(W x_t + U h_{t-1} + b)$ between 0 (closed) and 1 (open). The
heatmaps show the gates and the cell state of the units whose $\tanh(c_t)$ varies most over your
text (units that only drift steadily are skipped); below, your text coloured by single units'
$\tanh(c_t)$. Try text with quotes, line breaks or names and look for a unit that switches on and
off with them.
"""


# ---------------------------------------------------------------------------------------------- models

def _fmt(x, spec: str, unit: str = "") -> str:
    if x is None or (isinstance(x, float) and not math.isfinite(x)):
        return "—"
    return f"{x:{spec}}{unit}"


def models_table(bank: ModelBank) -> str:
    """One Markdown row per model: size, shape, validation loss, training budget and hardware."""
    rows = ["| model | parameters | shape | validation loss | bits / char | trained for | hardware |",
            "|---|---|---|---|---|---|---|"]
    for name, slot in bank.slots.items():
        if slot.loaded is None:
            rows.append(f"| {name} | ⚠️ not loaded: {html.escape(slot.error or '')} | | | | | |")
            continue
        m = slot.loaded.metrics or {}
        params = sum(p.numel() for p in slot.loaded.model.parameters())
        trained = (f"{_fmt(m.get('iters'), ',')} steps, {_fmt((m.get('tokens_seen') or 0) / 1e6, ',.1f')} M "
                   f"chars, {_fmt(m.get('wall_time_s'), ',.0f', ' s')}")
        rows.append(f"| {name} | {params / 1e6:.2f} M | {describe_model(slot.loaded)} "
                    f"| {_fmt(m.get('val_loss'), '.3f')} nats | {_fmt(m.get('bits_per_char'), '.3f')} "
                    f"| {trained} | {html.escape(str(m.get('hardware', '—')))} |")
    return "\n".join(rows)


COMPARISON = r"""
**What each does that the other doesn't.** The Transformer looks straight back at any of the last
`block_size` characters through attention, so it can copy a name it saw 100 characters ago in one
step, and it trains on all positions of a text in parallel; but it sees nothing beyond its window,
and each new token costs more as the context grows (the KV cache keeps the keys and values so that
cost stays one row per layer). The LSTM squeezes everything it has read into a fixed state
$(h_t, c_t)$: each token costs the same however long the text, and there is no window, but whatever
it remembers must survive many multiplications by the forget gate, and it trains one step at a time.
Loss is cross-entropy in nats per character; bits/char = loss / ln 2 — the lower the better
(nanoGPT's CPU-sized Transformer reaches about 1.88 nats, its 10 M-parameter GPU one 1.47).
"""

MODELS_INTRO = r"""
Both models were trained to minimise the same loss, the average $-\ln p(x_{t+1} \mid x_{\le t})$
over the first 90% of tiny Shakespeare, and evaluated on the last 10% they never trained on.
"""


def learning_curves_png(bank: ModelBank) -> str | None:
    png = Path(bank.checkpoint_dir) / "learning_curves.png"
    return str(png) if png.is_file() else None


