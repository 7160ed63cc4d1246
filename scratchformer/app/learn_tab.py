"""The "Watch it learn" tab: a pair (Transformer and LSTM) at a dozen steps of their training, side
by side, from the snapshots their training saved (:mod:`scratchformer.snapshots`).

One slider picks the snapshot; for both models at that step the tab shows the learning curves with
the step marked, a sample from the same prompt and seed, the Transformer's attention grid on a fixed
text, each head's numbers over the whole training (with the step marked), and both embedding tables'
PCA. Everything is computed once per folder (:func:`learning_history`, about 3 s the first time) and
kept: moving the slider only draws.

A choice picks the pair (:func:`trainings`: every pair whose two models both have snapshots: the
character pair, and the word pair when its checkpoints are there). The k-th snapshot of each model is
shown side by side; the character pair's two trainings had the same steps, the word pair's did not
(2,500 steps for the Transformer, 4,500 for the LSTM), so there each model is at its own k-th step,
and the plots mark both. Losses are in bits per character (a word model's divided by the validation
text's characters per token), so the two pairs can be compared.
"""
from __future__ import annotations

import math
import threading
from pathlib import Path
from typing import NamedTuple

import gradio as gr

from .. import views
from ..snapshots import SNAPSHOT_DIR, SNAPSHOT_INDEX, load_snapshot, read_snapshots
from .bank import LSTM_NAME, PAIRS, SMALL_PAIR, TRANSFORMER, ModelBank
from .events import live_triggers, md
from .inspect_tabs import chars_per_token
from .links import link_row
from .policy import as_int
from .view import Control, View, declare

LEARN_INTRO = r"""
How did the models get here? Their training saved a **snapshot** at a dozen steps, log-spaced
(0, 1, 2, 5, 11, 25, 55, 122, 272, 605, 1,347, 3,000: a model changes most at the start). Move the
slider: both models at that step write from the same prompt and seed, the Transformer reads the same
text, and the plots mark the step. Watch the text go from noise to letters and spaces to words and
names, the loss fall (the LSTM faster at first), and the heads narrow: at step 0 each spreads its
attention evenly over everything before it (the most entropy it can have); later each looks at a few
characters, some favouring the one just before. At the bottom, the LSTM's gates on the same text: at
step 0 every gate is about ½ (random weights), later they open and close on particular characters.
The word pair (when it is there) learned on BPE tokens: pick it above the slider to watch words, not
letters, appear. Its two trainings ran different numbers of steps, so each model is shown at its own
k-th snapshot; the losses are in bits per character for both pairs.
"""


def steps_of(bank: ModelBank, pair: str = SMALL_PAIR) -> list[tuple[int, int]]:
    """The snapshots of ``pair``'s two models, k-th with k-th: [(the Transformer's step, the LSTM's
    step)], as many as the model with fewer has ([] when either has none or its snapshots cannot be
    read). Reads the index files only: no torch."""
    found = []
    for role in (TRANSFORMER, LSTM_NAME):
        slot = bank.slots.get(PAIRS.get(pair, {}).get(role, ""))
        found.append(_snapshot_steps(slot.folder) if slot is not None else ())
    return list(zip(*found))


_STEPS: dict[tuple, tuple] = {}    # a folder's snapshot steps by (folder, its index's modification time)


def _snapshot_steps(folder) -> tuple:
    """The steps of checkpoint folder ``folder``'s snapshots, sorted (() when it has none or its index
    cannot be read); the index is read again only when it changes (every slider move asks)."""
    folder = Path(folder)
    index = folder / SNAPSHOT_DIR / SNAPSHOT_INDEX
    try:
        key = (str(folder.resolve()), index.stat().st_mtime_ns)
    except OSError:                  # no snapshots
        return ()
    if key not in _STEPS:
        try:
            _STEPS[key] = tuple(sorted(r["step"] for r in read_snapshots(folder)))
        except (ValueError, OSError, TypeError):   # CheckpointError: the tab says so when it is computed
            _STEPS[key] = ()
    return _STEPS[key]


def trainings(bank: ModelBank) -> list[str]:
    """The pairs the tab can show: those offered whose two models both have snapshots."""
    return [p for p in bank.pairs() if steps_of(bank, p)]


_HISTORIES: dict[tuple, list] = {}
_LOCKS: dict[str, threading.Lock] = {}
_GUARD = threading.Lock()


def learning_history(folder: str | Path, device="cpu") -> list:
    """Every snapshot of checkpoint folder ``folder`` as a
    :class:`~scratchformer.inference.learning.SnapshotView`, in step order ([] when it has none);
    computed once per folder (and again only when its index changes; concurrent first calls compute
    it once). CheckpointError naming the file for a broken snapshot."""
    from ..inference.learning import snapshot_view
    folder = Path(folder)
    index = folder / SNAPSHOT_DIR / SNAPSHOT_INDEX
    key = (str(folder.resolve()), index.stat().st_mtime_ns if index.is_file() else 0)
    if key not in _HISTORIES:
        with _GUARD:
            lock = _LOCKS.setdefault(key[0], threading.Lock())
        with lock:
            if key not in _HISTORIES:
                _HISTORIES[key] = [snapshot_view(load_snapshot(folder, r["step"], device), r)
                                   for r in read_snapshots(folder)]
    return _HISTORIES[key]


class LearnUpdate(NamedTuple):
    """The tab's views at one step, in the order of their outputs."""

    caption: str                 # Markdown
    curves: object               # figure
    transformer_sample: str
    lstm_sample: str
    attention: object            # figure
    heads: object                # figure
    transformer_pca: object      # figure
    lstm_pca: object             # figure
    lstm_gates: object           # figure


GATE_UNITS = 12     # LSTM units whose gates the tab draws


def _bits(nats: float) -> str:
    return f"{nats / math.log(2):.2f}" if math.isfinite(nats) else "?"


def learning_step(bank: ModelBank, snapshot, training: str = SMALL_PAIR) -> LearnUpdate:
    """Both models of the pair ``training`` (one of :func:`trainings`) at snapshot number ``snapshot``
    (0 = the first step). Drawn once per step and kept (a dozen steps; the figures are only read
    afterwards)."""
    offered = trainings(bank)
    if not offered:
        raise ValueError("the character models have no training snapshots (train them with --snapshots 12)")
    if training not in offered:
        raise ValueError(f"training must be one of {offered} (the pairs whose models have snapshots), "
                         f"got {str(training)[:40]!r}")
    steps = steps_of(bank, training)
    k = as_int(snapshot, "snapshot", 0, len(steps) - 1)
    bank.load_models()
    slots = {role: bank.slots[name] for role, name in PAIRS[training].items()}
    hist = tuple(learning_history(slots[role].folder, bank.device) for role in (TRANSFORMER, LSTM_NAME))
    key = (tuple(id(h) for h in hist), tuple(steps), k)    # a history is replaced when its index changes
    if key not in _DRAWN:
        _DRAWN[key] = (hist, _draw(slots, steps, k, *({v.step: v for v in h} for h in hist)))
    return _DRAWN[key][1]


# (histories, drawn views) by (the histories' ids, the steps, the snapshot); the histories are kept
# with their figures so that an id is never reused while its entry exists.
_DRAWN: dict[tuple, tuple] = {}


def _draw(slots: dict, steps: list[tuple[int, int]], k: int, t_hist: dict, l_hist: dict) -> LearnUpdate:
    """The views of snapshot ``k``; ``slots``: the pair's slot per role. A word model's losses and
    tokens are turned into bits and characters with the validation text's characters per token c:
    bits per character = nats per token / c / ln 2 (as the Models tab's curves)."""
    from ..inference.learning import TEXT
    (step, l_step), (last, l_last) = steps[k], steps[-1]
    t, l = t_hist[step], l_hist[l_step]
    c = {role: 1.0 if slots[role].tokenizer.unit == "character" else chars_per_token(slots[role].metrics)
         for role in (TRANSFORMER, LSTM_NAME)}
    loss = (f"validation loss: Transformer {_bits(t.val_loss / c[TRANSFORMER])}, LSTM "
            f"{_bits(l.val_loss / c[LSTM_NAME])} bits per character (the trainer's estimate at that step)")
    seen = {role: v.tokens * c[role] for role, v in ((TRANSFORMER, t), (LSTM_NAME, l))}
    if (step, last) == (l_step, l_last):
        caption = (f"**Step {step:,} of {last:,}** (snapshot {k + 1} of {len(steps)}) · "
                   f"{round(seen[TRANSFORMER]):,} characters seen · {loss}")
        marks = [(seen[TRANSFORMER], f"step {step:,}")]
    else:
        caption = (f"**Snapshot {k + 1} of {len(steps)}** · Transformer at step {step:,} of {last:,}, LSTM at "
                   f"step {l_step:,} of {l_last:,} (about {round(seen[TRANSFORMER]):,} and {round(seen[LSTM_NAME]):,} "
                   f"characters seen) · {loss}")
        marks = [(seen[TRANSFORMER], f"Transformer, step {step:,}"), (seen[LSTM_NAME], f"LSTM, step {l_step:,}")]
    curves = {role: _with_snapshots(slots[role].metrics.get("curve", []), hist.values())
              for role, hist in ((TRANSFORMER, t_hist), (LSTM_NAME, l_hist))}
    curves_fig = views.export_name(views.curves_at_step_figure(curves, marks, chars_per_token=c),
                                   f"learning_curves_step_{step}")
    attention = views.export_name(views.attention_grid(
        t.attention, title=f"Transformer at step {step:,}: every head on {TEXT[:24]!r}…"), f"attention_grid_step_{step}")
    t_steps = [s for s, _ in steps]
    heads = views.export_name(views.head_history_figure(t_steps, [t_hist[s].heads for s in t_steps], k),
                              "heads_over_training")
    pcas = []
    for name, v in ((TRANSFORMER, t), (LSTM_NAME, l)):
        tok = slots[name].tokenizer
        pcas.append(views.export_name(views.embedding_pca_figure(
            v.embeddings, tok.texts, specials=tok.specials, title=f"{name} embeddings at step {v.step:,} (PCA)"),
            f"embeddings_pca_{name.lower()}_step_{v.step}"))
    final = l_hist[l_last]
    units = views.top_varying_units(final.cells, GATE_UNITS)     # the same units at every step: the final model's liveliest
    gates = views.export_name(views.lstm_gates_figure(
        l.gates, l.cells, l.pieces, units,
        title=f"LSTM at step {l_step:,}: its last layer's gates on {TEXT[:24]!r}… (the {GATE_UNITS} units "
              "whose cell state varies most at the end)"), f"lstm_gates_step_{l_step}")
    return LearnUpdate(caption, curves_fig, t.sample, l.sample, attention, heads, *pcas, gates)


def _with_snapshots(curve: list, snapshots) -> list:
    """The training's logged curve (every 250 steps) with the snapshots' own estimates added, so the
    log-spaced early steps (1, 2, 5 … 122) are on it too; in step order."""
    points = {int(p["iter"]): p for p in curve if "iter" in p}
    for v in snapshots:
        points.setdefault(v.step, {"iter": v.step, "tokens": v.tokens, "train_loss": v.train_loss,
                                   "val_loss": v.val_loss})
    return [points[i] for i in sorted(points)]


TRAINING_LABELS = {SMALL_PAIR: "the character pair", "words (BPE)": "the word pair (BPE)"}


def build_learn_tab(bank: ModelBank, pair=None) -> None:
    """The Watch it learn tab, with its own choice of pair among :func:`trainings` (``pair``, the
    page's choice, is not followed: GPT-2 and pairs trained live have no snapshots)."""
    with gr.Tab("Watch it learn", id="learn") as tab:
        md(LEARN_INTRO)
        offered = trainings(bank)
        if not offered:
            md("The character models' checkpoints have no training snapshots. Train them with "
               "`--snapshots 12` (see the README's *Training* section) and the tab fills in.")
            return
        share = link_row("learn", tab)
        training = gr.Radio([(TRAINING_LABELS.get(p, p), p) for p in offered], value=offered[0],
                            label="whose training", elem_id="learn-training", visible=len(offered) > 1)
        counts = [len(steps_of(bank, p)) for p in offered]
        steps = steps_of(bank, offered[0])
        label = ("snapshot: " + " · ".join(f"{i}: step {s:,}" for i, (s, _) in enumerate(steps)) if len(offered) == 1
                 else f"snapshot (0 = the start of training, {max(counts) - 1} = its end; the caption gives the steps)")
        slider = gr.Slider(0, max(counts) - 1, max(counts) - 1, step=1, elem_id="learn-step", label=label)
        caption = gr.Markdown(elem_id="learn-caption")
        curves = gr.Plot(show_label=False, elem_id="learn-curves")
        with gr.Row():
            samples = [gr.Textbox(label=f"{name} writes after ROMEO: (the same seed at every step)",
                                  lines=6, interactive=False, elem_id=f"learn-sample-{name.lower()}")
                       for name in (TRANSFORMER, LSTM_NAME)]
        attention = gr.Plot(show_label=False, elem_id="learn-attention")
        heads = gr.Plot(show_label=False, elem_id="learn-heads")
        with gr.Row():
            pcas = [gr.Plot(show_label=False, elem_id=f"learn-pca-{name.lower()}") for name in (TRANSFORMER, LSTM_NAME)]
        gates = gr.Plot(show_label=False, elem_id="learn-gates")
        declare(View("learning_step", learning_step, [Control("step", slider), Control("training", training)],
                     [caption, curves, *samples, attention, heads, *pcas, gates],
                     live_triggers(slider) + live_triggers(training)),
                bank, share)
