"""The Watch it learn tab: how long the first computation of the snapshots takes, and a slider move
through the served app (``/learning_step``: both models' views at one step, figures included).

    python benchmarks/learn.py [--checkpoints checkpoints] [--rounds 5]

A served app (in this process, on a free port) with the given checkpoints, which must hold training
snapshots (``train --snapshots 12``). Measured through gradio_client, as a page's slider move is:

* ``history_first_s``: the first call, which loads every snapshot of both models and computes their
  samples, attention and head numbers (the page's arrival default does this once per server);
* ``scrub_first_ms``: the median of the first visit of each other step (its figures drawn);
* ``scrub_ms``: the median of later visits, over ``--rounds`` sweeps across all steps (the goal:
  ≤ 300 ms on this 2-core machine);
* ``scrub_max_ms``: the slowest later visit.

Prints a table, then one JSON line. The live-training measurements the issue names
(``live_train_first_update_s`` …) belong to the tab's live training, which is not built yet.
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
GOALS = {"scrub_ms": 300}


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--checkpoints", default=str(ROOT / "checkpoints"))
    ap.add_argument("--rounds", type=int, default=5, help="sweeps over every step after the first visits")
    args = ap.parse_args(argv)

    sys.path.insert(0, str(ROOT / "tests"))
    from gradio_client import Client
    from app_checkpoints import serve
    from scratchformer.app.blocks import build_demo
    from scratchformer.app.learn_tab import steps_of

    demo = build_demo(args.checkpoints)
    steps = steps_of(demo.bank)
    if not steps:
        raise SystemExit(f"{args.checkpoints}: the character models have no training snapshots "
                         "(train them with --snapshots 12)")
    try:
        client = Client(serve(demo), verbose=False)
        last = len(steps) - 1
        t0 = time.perf_counter()
        client.predict(last, api_name="/learning_step")
        history_first_s = time.perf_counter() - t0
        first = []
        for k in range(last):
            t0 = time.perf_counter()
            client.predict(k, api_name="/learning_step")
            first.append((time.perf_counter() - t0) * 1000)
        later = []
        for _ in range(args.rounds):
            for k in range(len(steps)):
                t0 = time.perf_counter()
                client.predict(k, api_name="/learning_step")
                later.append((time.perf_counter() - t0) * 1000)
    finally:
        demo.close()

    result = {"snapshots": len(steps), "history_first_s": round(history_first_s, 2),
              "scrub_first_ms": round(statistics.median(first), 1) if first else None,
              "scrub_ms": round(statistics.median(later), 1), "scrub_max_ms": round(max(later), 1)}
    result["goals_met"] = {k: result[k] <= v for k, v in GOALS.items()}
    print(f"{'measure':<34}{'value':>12}{'goal':>10}")
    print(f"{'steps':<34}{', '.join(map(str, steps))}")
    print(f"{'first call, both histories (s)':<34}{result['history_first_s']:>12}")
    print(f"{'first visit of a step, median (ms)':<34}{str(result['scrub_first_ms']):>12}")
    print(f"{'slider move, median (ms)':<34}{result['scrub_ms']:>12}{'≤ 300':>10}")
    print(f"{'slider move, slowest (ms)':<34}{result['scrub_max_ms']:>12}")
    print(json.dumps(result))


if __name__ == "__main__":
    main()
