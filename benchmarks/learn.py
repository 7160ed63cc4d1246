"""The Watch it learn tab (the slider over training snapshots) and the Train live tab (a Transformer
and an LSTM trained side by side, now), measured through the served app as a page uses them.

    python benchmarks/learn.py [--checkpoints checkpoints] [--rounds 5] [--no-scrub]
                               [--no-live] [--live-seconds 60] [--keys 40]
                               [--no-induction] [--induction-seconds 90] [--induction-seeds 0,1,2]

A served app (in this process, on a free port: tests/app_checkpoints.serve) with the given
checkpoints. Everything is measured through gradio_client, in this order.

Watch it learn (``--no-scrub`` skips it; the checkpoints must hold training snapshots, ``train
--snapshots 12``), through ``/learning_step`` (both models' views at one step, figures included):

* ``history_first_s``: the first call, which loads every snapshot of both models and computes their
  samples, attention and head numbers (the page's arrival default does this once per server);
* ``scrub_first_ms``: the median of the first visit of each other step (its figures drawn);
* ``scrub_ms``: the median of later visits, over ``--rounds`` sweeps across all steps (the goal:
  ≤ 300 ms on this 2-core machine);
* ``scrub_max_ms``: the slowest later visit;
* the same four with ``_words`` for the word pair, when its checkpoints hold snapshots too.

Train live (``--no-live`` skips it, and the induction race below). First the server is brought to
where ``app.py`` leaves it: the page's default views computed (``arrival_s``), then the trainings'
fork server started and waited for (``live_warm_s``: what ``App.start()`` does in the
background, here timed on its own). Then:

* ``keystroke_p50_idle_ms`` / ``keystroke_p95_idle_ms``: a visitor types into the Attention tab
  (``/attention``: text, causal, layer, head, hide_first; one character more per call, a call every
  0.15 s at most, the next sent when the previous is answered, as a person typing ~7 characters per
  second) with no training running: ``--keys`` calls (after 3 not counted);
* ``live_train_first_update_s``: a first visitor submits ``/train_live`` (tiny Shakespeare, size
  tiny, ``--live-seconds`` s, seed 0); the time until its first update that shows a loss (a status
  "**Training** …"; goal ≤ 3 s);
* ``live_transformer_loss_60s`` / ``live_lstm_loss_60s``: each model's last reported validation loss
  (nats per character, read from the final "**Done**" status) after the race (goal: the Transformer
  below 2.0); ``live_steps`` how many steps each took;
* ``keystroke_p50_during_training_ms`` / ``…_p95_…``: meanwhile a second visitor (a second
  gradio_client, a session of its own) types into ``/attention`` as above, from the first update
  that shows a loss until the "Done" one (goal: p50 ≤ 400 ms). ``/attention`` is the tab's whole
  view (two passes, five figures); the page's own typing event (``attention_typed``, one pass and
  one figure) is private, so this is an upper bound of what a person typing sees.

Induction (``--no-induction`` skips it): races on the ``repeat`` toy task (size tiny,
``--induction-seconds`` s, one per seed of ``--induction-seeds``, default 0,1,2: when the head forms
moves with the seed), run through :class:`~scratchformer.training.live_process.LiveProcess`
directly, as the tab runs it (one thread, nice +10, its memory cap). The keys below are those of the
race whose final best score is the median (``induction_seed`` names it); ``induction_by_seed`` lists
every race's phase step, scores and losses:

* ``induction_phase_step``: the Transformer's step at which its loss first falls below half its
  first report (:func:`~scratchformer.training.live.induction_phase_step`), None if it never does;
  ``induction_phase_s``: the Transformer's own training seconds at that report (the curves' x axis),
  ``induction_phase_elapsed_s`` the race's seconds at it;
* ``induction_best_before``: the best head's induction score at the report just before that step;
  ``induction_best_after``: the best head's score at the end (goal ≥ 0.5);
* ``induction_transformer_loss`` / ``induction_lstm_loss``: the final losses (nats per answer letter).

The server and the clients share this process and its 2 cores (the training's child process too):
the timings move with whatever else the machine does. Prints a table, then one JSON line with every
key (None for a part skipped or a value that did not come), and ``goals_met`` per goal.
"""
from __future__ import annotations

import argparse
import json
import math
import os
import re
import statistics
import sys
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
# (comparison, bound): the measure must be ``<=``, ``<`` or ``>=`` the bound
GOALS = {"scrub_ms": ("<=", 300), "live_train_first_update_s": ("<=", 3.0),
         "live_transformer_loss_60s": ("<", 2.0), "keystroke_p50_during_training_ms": ("<=", 400),
         "induction_best_after": (">=", 0.5)}
SYMBOLS = {"<=": "≤", "<": "<", ">=": "≥"}
KEY_INTERVAL_S = 0.15        # a keystroke every 0.15 s at most (~7 characters per second)
TYPED = " Shall I compare thee to a summer's day? Thou art more lovely and more temperate."
TYPE_FROM = "JULIET:\nO Romeo, Romeo! wherefore art thou Romeo?\n"
ATTENTION_PARAMS = ["text", "causal", "layer", "head", "hide_first"]
STATUS_MODEL = re.compile(r"(Transformer|LSTM): ([\d,]+) parameters, ([\d,]+) steps, loss \*\*([^*]+)\*\*")


def percentile(values: list, q: float):
    """The nearest-rank ``q`` percentile of ``values`` (None when there are none)."""
    if not values:
        return None
    s = sorted(values)
    return s[max(0, min(len(s) - 1, math.ceil(q / 100 * len(s)) - 1))]


def rounded(x, digits: int = 1):
    return None if x is None else round(x, digits)


def met(value, goal) -> bool | None:
    if value is None:
        return None
    op, bound = goal
    return value <= bound if op == "<=" else value < bound if op == "<" else value >= bound


# ------------------------------------------------------------------------------- Watch it learn

def scrub(client, steps: list, rounds: int, training: str = "small (CPU-trained)") -> dict:
    """The Watch it learn slider moved over every snapshot of ``training`` (a pair's name)."""
    last = len(steps) - 1
    t0 = time.perf_counter()
    client.predict(last, training, api_name="/learning_step")
    history_first_s = time.perf_counter() - t0
    first = []
    for k in range(last):
        t0 = time.perf_counter()
        client.predict(k, training, api_name="/learning_step")
        first.append((time.perf_counter() - t0) * 1000)
    later = []
    for _ in range(rounds):
        for k in range(len(steps)):
            t0 = time.perf_counter()
            client.predict(k, training, api_name="/learning_step")
            later.append((time.perf_counter() - t0) * 1000)
    return {"history_first_s": round(history_first_s, 2),
            "scrub_first_ms": round(statistics.median(first), 1) if first else None,
            "scrub_ms": round(statistics.median(later), 1), "scrub_max_ms": round(max(later), 1)}


# ------------------------------------------------------------------------------------ typing

class Typist:
    """A visitor typing into the Attention tab: one character more per ``/attention`` call, the next
    call once the previous is answered and at least :data:`KEY_INTERVAL_S` after it was sent.
    :meth:`type` for a number of keys, or :meth:`start` / :meth:`stop` around something else."""

    def __init__(self, client):
        self.client = client
        self.n = 0
        self.latencies: list = []          # (sent at, ms)
        self.errors: list = []
        self._stop = threading.Event()
        self._thread = None

    def key(self) -> float:
        self.n += 1
        text = TYPE_FROM + TYPED[: self.n % len(TYPED) + 1]
        t0 = time.perf_counter()
        self.client.predict(text, True, 1, 1, False, api_name="/attention")
        ms = (time.perf_counter() - t0) * 1000
        time.sleep(max(0.0, KEY_INTERVAL_S - ms / 1000))
        return ms

    def type(self, keys: int) -> list:
        return [self.key() for _ in range(keys)]

    def _run(self) -> None:
        while not self._stop.is_set():
            sent = time.monotonic()
            try:
                self.latencies.append((sent, self.key()))
            except Exception as e:     # noqa: BLE001 - counted and reported, the race goes on
                self.errors.append(f"{type(e).__name__}: {str(e)[:200]}")
                time.sleep(KEY_INTERVAL_S)

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="bench-typist", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=30)


def check_attention_api(client) -> None:
    """``/attention`` takes the parameters the typist sends, in that order (the pair has a default)."""
    info = client.view_api(return_format="dict", print_info=False)
    params = info["named_endpoints"]["/attention"]["parameters"]
    names = [p["parameter_name"] for p in params]
    if names[: len(ATTENTION_PARAMS)] != ATTENTION_PARAMS or not all(p["parameter_has_default"]
                                                                     for p in params[len(ATTENTION_PARAMS):]):
        raise SystemExit(f"/attention's parameters changed: {names}; update benchmarks/learn.py's typist")


# ------------------------------------------------------------------------------ the live race

def models_of(status: str) -> dict:
    """{"Transformer": (steps, loss), "LSTM": …} from a live status line."""
    out = {}
    for name, _, steps, loss in STATUS_MODEL.findall(status or ""):
        try:
            out[name] = (int(steps.replace(",", "")), float(loss))
        except ValueError:
            out[name] = (int(steps.replace(",", "")), None)
    return out


def served_race(url: str, seconds: float, typist: Typist) -> dict:
    """Submit /train_live (tiny Shakespeare, tiny, ``seconds``) from a visitor of its own and follow
    its updates; ``typist`` (another visitor) types from the first loss until the "Done"."""
    from gradio_client import Client
    trainer = Client(url, verbose=False)
    out = {"first_update_s": None, "first_status": None, "final_status": None, "updates": 0,
           "typing_from_s": None, "typing_to_s": None}
    t0 = time.perf_counter()
    job = trainer.submit("shakespeare", "", "tiny", seconds, 0, api_name="/train_live")
    seen = 0
    try:
        while True:
            outputs = job.outputs()
            for o in outputs[seen:]:
                status = o[0] if isinstance(o, (list, tuple)) else o
                now = time.perf_counter() - t0
                out["updates"] += 1
                if isinstance(status, str) and "Training" in status and out["first_update_s"] is None:
                    out["first_update_s"], out["first_status"] = now, status
                    out["typing_from_s"] = now
                    typist.start()
                if isinstance(status, str) and status.startswith(("**Done", "**Stopped")) and out["typing_to_s"] is None:
                    out["typing_to_s"] = now
                    typist.stop()
                if isinstance(status, str):
                    out["final_status"] = status
            seen = len(outputs)
            if job.done():
                if len(job.outputs()) == seen:
                    break
                continue
            if time.perf_counter() - t0 > seconds + 120:
                raise RuntimeError(f"/train_live did not end within {seconds + 120:.0f} s")
            time.sleep(0.02)
        job.result()                  # raises the app's error, if the training failed
    finally:
        typist.stop()
        if hasattr(trainer, "close"):
            trainer.close()
    out["typing_window_s"] = (None if out["typing_from_s"] is None or out["typing_to_s"] is None
                              else out["typing_to_s"] - out["typing_from_s"])
    return out


def induction_race(seconds: float, seed: int = 0) -> dict:
    """A race on the repeat task through LiveProcess, as the tab runs it; its induction numbers."""
    from scratchformer.app.live_tab import MEMORY_MB
    from scratchformer.training.live import induction_phase_step
    from scratchformer.training.live_plan import check_plan
    from scratchformer.training.live_process import LiveProcess

    plan = check_plan("repeat", "", "tiny", seconds, seed)
    process = LiveProcess(plan, threads=1, nice=10, memory_mb=MEMORY_MB)
    last, elapsed = None, []
    for last in process.updates():
        elapsed.append(last.elapsed_s)
    if last is None or process.state is None:
        raise RuntimeError(f"the repeat race failed: {process.error or 'no result'}")

    def best(entry) -> float:
        return max(h["induction"] for layer in entry["heads"] for h in layer)

    curve = last.curves["Transformer"]
    history = last.head_history          # one entry per report, as the curve's points
    step = induction_phase_step(curve)
    out = {"induction_phase_step": step, "induction_phase_s": None, "induction_phase_elapsed_s": None,
           "induction_best_before": None, "induction_best_after": round(best(history[-1]), 3),
           "induction_transformer_loss": curve[-1]["loss"], "induction_lstm_loss": last.curves["LSTM"][-1]["loss"],
           "induction_first_loss": curve[0]["loss"], "induction_steps": dict(last.steps),
           "induction_reports": len(curve), "induction_elapsed_s": round(last.elapsed_s, 1), "induction_seed": seed}
    if step is not None:
        i = next(i for i, p in enumerate(curve) if p["step"] == step)
        out["induction_phase_s"] = round(curve[i]["seconds"], 2)
        out["induction_phase_elapsed_s"] = round(elapsed[i], 2) if i < len(elapsed) else None
        out["induction_best_before"] = round(best(history[i - 1]), 3) if i > 0 else None
    return out


def induction_races(seconds: float, seeds: list[int]) -> dict:
    """One repeat race per seed, one after another (an induction head forms at a step that moves
    with the seed, and in some seeds not within the race). The main keys are the race whose final
    best score is the median; ``induction_by_seed`` has every race's numbers."""
    runs = [induction_race(seconds, seed) for seed in seeds]
    median = sorted(runs, key=lambda r: r["induction_best_after"])[(len(runs) - 1) // 2]
    keys = ("induction_seed", "induction_phase_step", "induction_best_before", "induction_best_after",
            "induction_transformer_loss", "induction_lstm_loss")
    return {**median, "induction_by_seed": [{k: r[k] for k in keys} for r in runs]}


# ------------------------------------------------------------------------------------- main

def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--checkpoints", default=str(ROOT / "checkpoints"))
    ap.add_argument("--rounds", type=int, default=5, help="sweeps over every step after the first visits")
    ap.add_argument("--no-scrub", action="store_true", help="skip the Watch it learn slider")
    ap.add_argument("--no-live", action="store_true", help="skip the Train live measurements (induction too)")
    ap.add_argument("--no-induction", action="store_true", help="skip the repeat-task race")
    ap.add_argument("--live-seconds", type=float, default=60.0, help="the tiny Shakespeare race's seconds")
    ap.add_argument("--induction-seconds", type=float, default=90.0, help="the repeat race's seconds")
    ap.add_argument("--induction-seeds", default="0,1,2",
                    help="the repeat races' seeds, comma-separated (one race each, one after another)")
    ap.add_argument("--keys", type=int, default=40, help="keystrokes timed with no training running")
    args = ap.parse_args(argv)

    os.environ.setdefault("MPLBACKEND", "agg")           # as app.py
    sys.path.insert(0, str(ROOT))
    sys.path.insert(0, str(ROOT / "tests"))
    from gradio_client import Client
    from app_checkpoints import serve
    from scratchformer.app.blocks import build_app
    from scratchformer.app.bank import WORD_PAIR
    from scratchformer.app.learn_tab import steps_of, trainings
    from scratchformer.training import live_process

    result = {"snapshots": None, "history_first_s": None, "scrub_first_ms": None, "scrub_ms": None,
              "scrub_max_ms": None,
              "arrival_s": None, "live_warm_s": None, "live_seconds": None,
              "live_train_first_update_s": None, "live_transformer_loss_60s": None, "live_lstm_loss_60s": None,
              "live_steps": None, "live_updates": None,
              "keystroke_p50_idle_ms": None, "keystroke_p95_idle_ms": None, "keystrokes_idle": None,
              "keystroke_p50_during_training_ms": None, "keystroke_p95_during_training_ms": None,
              "keystroke_max_during_training_ms": None, "keystrokes_during_training": None,
              "keystroke_errors": None,
              "induction_seconds": None, "induction_phase_step": None, "induction_phase_s": None,
              "induction_phase_elapsed_s": None, "induction_best_before": None, "induction_best_after": None,
              "induction_transformer_loss": None, "induction_lstm_loss": None, "induction_first_loss": None,
              "induction_steps": None, "induction_reports": None, "induction_elapsed_s": None,
              "induction_seed": None, "induction_by_seed": None}
    steps: list = []
    app = build_app(args.checkpoints)
    demo = app.demo
    if not args.no_scrub:
        steps = steps_of(app.bank)
        if not steps:
            raise SystemExit(f"{args.checkpoints}: the character models have no training snapshots "
                             "(train them with --snapshots 12, or pass --no-scrub)")
    live = None
    try:
        url = serve(demo)
        client = Client(url, verbose=False)
        if not args.no_scrub:
            result["snapshots"] = len(steps)
            result.update(scrub(client, steps, args.rounds))
            if WORD_PAIR in trainings(app.bank):       # the word pair's snapshots, when shipped
                words = scrub(client, steps_of(app.bank, WORD_PAIR), args.rounds, WORD_PAIR)
                result.update({f"{k}_words": v for k, v in words.items()})
        if not args.no_live:
            # where app.py leaves the server: the defaults computed, then the fork server warmed
            t0 = time.perf_counter()
            app.arrival.start()
            app.arrival.wait()
            result["arrival_s"] = round(time.perf_counter() - t0, 2)
            t0 = time.perf_counter()
            live_process.warm()
            result["live_warm_s"] = round(time.perf_counter() - t0, 2)

            typist_client = Client(url, verbose=False)
            check_attention_api(typist_client)
            idle = Typist(typist_client)
            idle.type(3)                                    # not counted
            keys = idle.type(args.keys)
            result.update(keystroke_p50_idle_ms=rounded(statistics.median(keys)),
                          keystroke_p95_idle_ms=rounded(percentile(keys, 95)), keystrokes_idle=len(keys))

            busy = Typist(typist_client)
            live = served_race(url, args.live_seconds, busy)
            during = [ms for _, ms in busy.latencies]
            models = models_of(live["final_status"])
            result.update(
                live_seconds=args.live_seconds, live_train_first_update_s=rounded(live["first_update_s"], 2),
                live_transformer_loss_60s=models.get("Transformer", (None, None))[1],
                live_lstm_loss_60s=models.get("LSTM", (None, None))[1],
                live_steps={k: v[0] for k, v in models.items()} or None, live_updates=live["updates"],
                keystroke_p50_during_training_ms=rounded(statistics.median(during)) if during else None,
                keystroke_p95_during_training_ms=rounded(percentile(during, 95)),
                keystroke_max_during_training_ms=rounded(max(during)) if during else None,
                keystrokes_during_training=len(during), keystroke_errors=len(busy.errors))
            if busy.errors:
                print(f"keystroke errors during training ({len(busy.errors)}): {busy.errors[:3]}", file=sys.stderr)
    finally:
        demo.close()

    if not args.no_live and not args.no_induction:
        result["induction_seconds"] = args.induction_seconds
        result.update(induction_races(args.induction_seconds,
                                      [int(v) for v in args.induction_seeds.split(",") if v.strip()]))

    result["goals_met"] = {k: met(result[k], g) for k, g in GOALS.items()}

    def row(label: str, value, goal: str = "") -> None:
        print(f"{label:<46}{'—' if value is None else str(value):>14}{goal:>10}")

    def goal(key: str) -> str:
        op, bound = GOALS[key]
        return f"{SYMBOLS[op]} {bound:g}"

    print(f"{'measure':<46}{'value':>14}{'goal':>10}")
    if steps:
        print(f"{'steps':<46}{', '.join(str(t) for t, _ in steps)}")
    row("first call, both histories (s)", result["history_first_s"])
    row("first visit of a step, median (ms)", result["scrub_first_ms"])
    row("slider move, median (ms)", result["scrub_ms"], goal("scrub_ms"))
    row("slider move, slowest (ms)", result["scrub_max_ms"])
    if "scrub_ms_words" in result:
        row("word pair: first call (s)", result["history_first_s_words"])
        row("word pair: first visit of a step, median (ms)", result["scrub_first_ms_words"])
        row("word pair: slider move, median / slowest (ms)", f"{result['scrub_ms_words']} / {result['scrub_max_ms_words']}")
    row("page defaults computed (s)", result["arrival_s"])
    row("training fork server warmed (s)", result["live_warm_s"])
    row("Train → first loss on screen (s)", result["live_train_first_update_s"], goal("live_train_first_update_s"))
    secs = f"{args.live_seconds:g} s"
    row(f"Transformer loss after {secs} (nats/char)", result["live_transformer_loss_60s"],
        goal("live_transformer_loss_60s"))
    row(f"LSTM loss after {secs} (nats/char)", result["live_lstm_loss_60s"])
    if result["live_steps"]:
        row("steps (Transformer / LSTM)", " / ".join(str(result["live_steps"].get(k)) for k in ("Transformer", "LSTM")))
    row("keystroke, no training, p50 / p95 (ms)", None if result["keystroke_p50_idle_ms"] is None else
        f"{result['keystroke_p50_idle_ms']:.0f} / {result['keystroke_p95_idle_ms']:.0f}")
    row("keystroke during training, p50 (ms)", result["keystroke_p50_during_training_ms"],
        goal("keystroke_p50_during_training_ms"))
    row("keystroke during training, p95 / max (ms)", None if result["keystroke_p95_during_training_ms"] is None else
        f"{result['keystroke_p95_during_training_ms']:.0f} / {result['keystroke_max_during_training_ms']:.0f}")
    row("keystrokes timed (idle / during training)", None if result["keystrokes_idle"] is None else
        f"{result['keystrokes_idle']} / {result['keystrokes_during_training']}")
    for r in result["induction_by_seed"] or []:
        row(f"repeat, seed {r['induction_seed']}: phase step, best before / end",
            f"{r['induction_phase_step']}, {r['induction_best_before']} / {r['induction_best_after']}")
    row("the median seed", result["induction_seed"])
    row("repeat task: induction phase step", result["induction_phase_step"])
    row("… at the Transformer's seconds (race's s)", None if result["induction_phase_s"] is None else
        f"{result['induction_phase_s']:g} ({result['induction_phase_elapsed_s']:g})")
    row("best induction score before / at the end", None if result["induction_best_after"] is None else
        f"{result['induction_best_before']} / {result['induction_best_after']}")
    row("best induction score at the end", result["induction_best_after"], goal("induction_best_after"))
    row("repeat task: final loss Transformer / LSTM", None if result["induction_transformer_loss"] is None else
        f"{result['induction_transformer_loss']} / {result['induction_lstm_loss']}")
    if live:
        print(f"first status: {live['first_status']}")
        print(f"final status: {live['final_status']}")
    print(json.dumps(result))


if __name__ == "__main__":
    main()
