"""The "Train live" tab: a Transformer and an LSTM of about the same size trained side by side, now,
on a corpus the person picks, for a bounded number of seconds (the race itself:
:mod:`scratchformer.training.live`; its process: :mod:`scratchformer.training.live_process`).

Every second the tab redraws both loss curves, a sample of each model, the Transformer's attention
on a fixed text and each head's numbers so far (on the repeat task: its induction score). Stop ends
the race early and keeps the models. When a race ends, its pair belongs to the page that trained it:
it is added to the page's choice of models at the top ("trained live: …"), so every tab can show it,
until the page is closed (:func:`forget`).

Sharing one machine (a Space is shared by strangers):

* at most :data:`RUNNING` races at a time (``$SCRATCHFORMER_LIVE_TRAININGS``, default 1), and at most
  :data:`WAITING` more waiting in line (their place is shown); past that, a clear "busy" message;
* a race runs in a child process at a lower priority, on one thread, with a time cap (its seconds,
  at most 120; killed 20 s past them) and a memory cap (:data:`MEMORY_MB`);
* one race per page at a time; closing the page stops its race and frees its models.
"""
from __future__ import annotations

import os
import secrets
import threading
from typing import Optional

import gradio as gr

from .. import views
from ..checkpoint import LoadedModel
from ..training.live_plan import MAX_BUDGET_S, MAX_TEXT, MIN_TEXT, SIZES, TASKS, check_plan
from .bank import LIVE_PREFIX, LSTM_NAME, TRANSFORMER, ModelBank, add_live_pair, drop_live_pair
from .events import friendly, md, page_only
from .policy import visible_controls

RUNNING = max(1, int(os.environ.get("SCRATCHFORMER_LIVE_TRAININGS", "1")))
WAITING = 4
MEMORY_MB = 1536

CORPUS_CHOICES = [("tiny Shakespeare", "shakespeare"), ("a text you paste", "text"),
                  ("toy task: copy letters", "copy"), ("toy task: reverse letters", "reverse"),
                  ("toy task: a random sequence, repeated (induction heads)", "repeat")]
CORPUS_NAMES = {v: k for k, v in CORPUS_CHOICES}

LIVE_INTRO = r"""
Train a **Transformer** and an **LSTM** of about the same number of parameters, now, on the same
text, and watch them learn. They take turns, one training step at a time, so each gets the same
seconds: the curves are a race. Every second you see both losses, what each writes, and where the
Transformer's heads look. Pick **toy task: a random sequence, repeated**: a random string of letters
is written twice, and the second copy can only be predicted by looking back at the first. Watch the
loss stay flat, then drop at once (give it 90 s or more: on a 2-core CPU the drop comes after 30 to 60 s,
depending on the seed): that is when an **induction head** forms (a head in layer 2 that
attends to the token *after* the earlier copy of the current one). Its score is plotted per head:
its attention on the few letters after the earlier copy, minus its attention on the same places in a
text that does not repeat. A head that looks by position alone (a fixed distance back, or everywhere
evenly) scores 0; only attention that follows the letters counts.
When the training ends (or you stop it), the pair is added to the **Models** choice at the top of
the page: every tab can then show *your* models, until you close the page.
"""


class Busy(ValueError):
    """Too many trainings are waiting: the message says how many and what to do."""


class TrainingQueue:
    """A line of trainings: the first ``running`` in line run, at most ``waiting`` more wait. A place
    in line is a ticket; :meth:`position` is 0 for a ticket that may run, else its place among the
    waiting (1 = next)."""

    def __init__(self, running: int = RUNNING, waiting: int = WAITING):
        self.running, self.waiting = running, waiting
        self._line: list = []
        self._changed = threading.Condition()

    def join(self) -> object:
        with self._changed:
            if len(self._line) >= self.running + self.waiting:
                raise Busy(f"the server is busy: {self.running} training(s) running and {self.waiting} waiting, "
                           "the most it takes; try again in a minute")
            ticket = object()
            self._line.append(ticket)
            return ticket

    def position(self, ticket) -> int:
        with self._changed:
            i = self._line.index(ticket)
            return 0 if i < self.running else i - self.running + 1

    def wait(self, ticket, timeout: float) -> int:
        """Wait until the line moves (or ``timeout`` s); the ticket's position then."""
        with self._changed:
            if self._line.index(ticket) >= self.running:
                self._changed.wait(timeout)
        return self.position(ticket)

    def leave(self, ticket) -> None:
        with self._changed:
            if ticket in self._line:
                self._line.remove(ticket)
                self._changed.notify_all()

    def __len__(self) -> int:
        with self._changed:
            return len(self._line)


QUEUE = TrainingQueue()


class Run:
    """One page's training: its stop request, and its process once it has started."""

    def __init__(self):
        self.stop = threading.Event()
        self.process = None


_RUNS: dict[str, Run] = {}            # session → its training in progress
_PAIRS: dict[str, str] = {}           # session → the id of its pair trained live
_LOCK = threading.Lock()


def warm_after(arrival) -> None:
    """Start the trainings' fork server (it imports torch: seconds of CPU) in the background, once
    the page's default views are computed, so that the first Train starts at once."""
    def run():
        arrival.wait()
        from ..training.live_process import warm
        warm()
    threading.Thread(target=run, name="scratchformer-live-warm", daemon=True).start()


def session_of(request: Optional[gr.Request]) -> str:
    session = getattr(request, "session_hash", None)
    if not session:
        raise ValueError("a live training needs a session (open the page, or use gradio_client)")
    return session


def stop_training(request: gr.Request = None):
    """Stop this page's training: it ends after the step in progress, reports once more (its status
    then says **Stopped**) and keeps its models. Nothing is written here: the training's own stream
    says it, and a reply of this event could arrive after the training's last update and hide it.
    When none is running, a message says so."""
    run = _RUNS.get(getattr(request, "session_hash", None) or "")
    if run is None:
        gr.Info("No training of this page is running.")
        return gr.skip()
    run.stop.set()
    if run.process is not None:
        run.process.stop()
    return gr.skip()


def forget(session: str) -> None:
    """A page was closed: kill its training at once and drop its pair."""
    run = _RUNS.get(session)
    if run is not None:
        run.stop.set()
        if run.process is not None:
            run.process.kill()
    with _LOCK:
        pair = _PAIRS.pop(session, None)
    if pair:
        drop_live_pair(pair)


def _loaded(state: dict) -> dict[str, LoadedModel]:
    """The trained pair (the child's tensors and configs) as models ready for the other tabs."""
    import torch
    from safetensors.torch import load

    from ..model.registry import build_model, config_from_dict
    from ..tokenizers import tokenizer_from_dict
    tok = tokenizer_from_dict(state["tokenizer"])
    out = {}
    for name, m in state["models"].items():
        config = config_from_dict(m["config"])
        model = build_model(config)
        model.load_state_dict(load(m["tensors"]))
        model.eval().requires_grad_(False)
        out[name] = LoadedModel(model=model, tokenizer=tok, config=config,
                                metrics={"trained": "live", "params": sum(p.numel() for p in model.parameters())})
    del torch
    return out


def _status(u, plan, waiting: int = 0) -> str:
    if u is None:
        return (f"**Waiting in line: {waiting} training(s) before yours.** It starts by itself; "
                "keep this page open." if waiting else "**Starting…**")
    unit = "character" if plan.corpus not in TASKS else "letter of the answer"
    parts = []
    for name in (TRANSFORMER, LSTM_NAME):
        curve = u.curves.get(name) or [{}]
        loss = curve[-1].get("loss", float("nan"))
        parts.append(f"{name}: {u.params[name]:,} parameters, {u.steps[name]:,} steps, loss **{loss:.3f}** "
                     f"nats per {unit}")
    head = ("**Stopped**" if u.stopped == "stopped" else "**Stopped: the training reached its memory cap**"
            if u.stopped == "memory" else "**Done**" if u.done else "**Training**")
    text = f"{head} · {u.elapsed_s:.0f} s of {u.budget_s:.0f} · " + " · ".join(parts)
    if u.corpus == "repeat" and u.head_history:
        best = max(h["induction"] for layer in u.head_history[-1]["heads"] for h in layer)
        text += f" · best induction score {best:.2f}"
    return text


def _draw(u, plan) -> tuple:
    import torch
    unit = "character" if plan.corpus not in TASKS else "answer letter"
    curves = views.export_name(views.live_curves_figure(u.curves, u.budget_s, unit), "live_training_curves")
    attention = [torch.tensor(a) for a in u.attention]
    text = "".join(u.pieces)
    grid = views.export_name(views.attention_grid(
        attention, title=f"The Transformer's heads now, on {text[:28]!r}…"), "live_training_attention")
    heads = views.export_name(views.live_heads_figure(u.head_history), "live_training_heads")
    # a pasted text's direction controls, learnt and written back, shown as their code points
    samples = [visible_controls(u.prompt + u.samples.get(name, "")) if u.samples else ""
               for name in (TRANSFORMER, LSTM_NAME)]
    return curves, *samples, grid, heads


def race(plan, run: Run):
    """Run ``plan`` when its turn in :data:`QUEUE` comes: yields ("waiting", place in line) while it
    waits, then ("update", LiveUpdate) for each report. Afterwards ``run.process`` holds the ended
    process (its ``state``: the trained pair), or is None when the run was stopped before it started.
    ValueError when the line is full or the training failed; the place in line is given up and the
    process is gone however it ends."""
    from ..training.live_process import LiveProcess
    ticket = QUEUE.join()
    try:
        place = QUEUE.position(ticket)
        while place > 0:
            yield "waiting", place
            if run.stop.is_set():
                return
            place = QUEUE.wait(ticket, 1.0)
        run.process = LiveProcess(plan, threads=1, nice=10, memory_mb=MEMORY_MB)
        if run.stop.is_set():
            run.process.stop()
        for update in run.process.updates():
            yield "update", update
        if run.process.state is None:
            raise ValueError(f"the training failed: {run.process.error or 'no result'}")
    finally:
        QUEUE.leave(ticket)
        if run.process is not None:
            run.process.kill()


def check_request(corpus, text, size, seconds, seed) -> None:
    """The page's first step on **Train**: the values checked (ValueError naming the bad one), no work."""
    check_plan(corpus, text, size, seconds, seed)


def pair_label(plan, seconds: float) -> str:
    return f"trained live by you: {CORPUS_NAMES[plan.corpus]}, {plan.size}, {seconds:.0f} s"


def train_live(bank: ModelBank, corpus, text, size, seconds, seed, pair_choices=None, request: gr.Request = None):
    """Train the pair (a generator of the tab's updates: status, curves, two samples, attention,
    heads, the page's choice of models)."""
    plan = check_plan(corpus, text, size, seconds, seed)     # every value checked before any work
    session = session_of(request)
    run = Run()
    with _LOCK:
        if session in _RUNS:
            raise ValueError("this page is already training a pair: stop it first")
        _RUNS[session] = run
    skip = gr.skip()
    try:
        last = None
        for kind, value in race(plan, run):
            if kind == "waiting":
                yield _status(None, plan, value), *[skip] * 6
            else:
                last = value
                yield _status(last, plan), *_draw(last, plan), skip
        if run.process is None:
            yield "Stopped before it started.", *[skip] * 6
            return
        models = _loaded(run.process.state)
        pair_id = f"{LIVE_PREFIX}{plan.size}:{secrets.token_urlsafe(9)}"
        with _LOCK:
            old = _PAIRS.get(session)
            _PAIRS[session] = pair_id
        if old:
            drop_live_pair(old)
        add_live_pair(pair_id, models)
        label = pair_label(plan, last.elapsed_s if last else plan.budget_s)
        choices = [c for c in (pair_choices or []) if not str(c[1]).startswith(LIVE_PREFIX)] + [(label, pair_id)]
        note = (" · The pair is now in the **Models** choice at the top of the page, as "
                f"*{label}*: pick it and every tab shows your models (until you close this page).")
        yield _status(last, plan) + note, *[skip] * 5, gr.update(choices=choices, visible=True)
    finally:
        with _LOCK:
            if _RUNS.get(session) is run:
                del _RUNS[session]


def build_live_tab(bank: ModelBank, pair: gr.Radio) -> None:
    """The Train live tab."""
    with gr.Tab("Train live", id="train"):
        md(LIVE_INTRO)
        with gr.Row():
            corpus = gr.Radio(CORPUS_CHOICES, value="shakespeare", label="text to learn", elem_id="live-corpus", scale=3)
            size = gr.Radio([(f"{s}: Transformer {g[0]}×{g[1]}, d {g[2]} · LSTM {l[0]}×{l[1]}", s)
                             for s, (g, l) in ((s, (v["gpt"], v["lstm"])) for s, v in SIZES.items())],
                            value="tiny", label="size (layers × heads or units)", elem_id="live-size", scale=2)
        text = gr.Textbox(label=f"your text (for “a text you paste”: {MIN_TEXT} to {MAX_TEXT:,} characters)", lines=3,
                          max_length=MAX_TEXT, elem_id="live-text")
        with gr.Row():
            seconds = gr.Slider(5, MAX_BUDGET_S, 60, step=5, label="seconds of training", elem_id="live-seconds")
            seed = gr.Number(0, precision=0, label="seed", minimum=0, elem_id="live-seed")
            start = gr.Button("Train", variant="primary", elem_id="live-train")
            stop = gr.Button("Stop", elem_id="live-stop")
        status = gr.Markdown("Press **Train**: both models start from random weights.", elem_id="live-status")
        curves = gr.Plot(show_label=False, elem_id="live-curves")
        with gr.Row():
            samples = [gr.Textbox(label=f"{name} writes (prompt, then its text; the same seed each time)", lines=4,
                                  interactive=False, elem_id=f"live-sample-{name.lower()}")
                       for name in (TRANSFORMER, LSTM_NAME)]
        attention = gr.Plot(show_label=False, elem_id="live-attention")
        heads = gr.Plot(show_label=False, elem_id="live-heads")

        # typing or pasting a text means "train on this": the choice follows (in the browser, no request).
        # On .change, not .input: Gradio's input event follows keystrokes, and a paste is no keystroke
        text.change(None, [text, corpus], corpus, js="(text, corpus) => text.trim() ? 'text' : corpus",
                    queue=False, api_visibility="private")

        def train(corpus, text, size, seconds, seed, request: gr.Request):
            choices = [tuple(c) for c in (pair.choices or [])]
            yield from train_live(bank, corpus, text, size, seconds, seed, choices, request)

        # the values are checked first, by an event with no outputs: a refusal is a message only, not
        # an error mark on every view the training draws (and on the page's choice of models)
        checked = start.click(page_only(friendly(check_request)), [corpus, text, size, seconds, seed], None,
                              api_visibility="private", concurrency_id="live_control", concurrency_limit=None,
                              preprocess=False, show_progress="hidden")
        checked.success(page_only(friendly(train)), [corpus, text, size, seconds, seed],
                        [status, curves, *samples, attention, heads, pair], api_name="train_live",
                        concurrency_id="train", concurrency_limit=RUNNING + WAITING, preprocess=False,
                        trigger_mode="once", show_progress="hidden")
        # queued (so its message reaches the page) in a group with no limit (the check above too): never behind anything
        stop.click(page_only(friendly(stop_training)), None, status, api_name="stop_live",
                   concurrency_id="live_control", concurrency_limit=None, preprocess=False, show_progress="hidden")
