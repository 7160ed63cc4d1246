"""What one session costs the server after it generated, and the server's RSS after many sessions.

    python benchmarks/sessions.py [--sessions 1000] [--tokens 50] [--clients 4] [--long 2000]

1. One session, sized: the app is built and launched in this process (the checkpoints of
   $SCRATCHFORMER_CHECKPOINTS or checkpoints/), gradio_client calls ``/generate`` for --long tokens
   (2,000) with both models, and what Gradio then holds for that session (``demo.state_holder``) is
   sized: its gr.State values (the generation's record) and Gradio's own per-session copy (the
   config of every component, with the last value sent to each: texts, HTML, plots; components an
   update changed). Bytes = tensors' storage + ``sys.getsizeof`` of every other object reached,
   each once, leaving out what the session shares with the app (components, functions, models). An
   empty session's copy is sized too: every session has it, even one that never generated.
2. Many sessions: ``python app.py`` is started (benchmarks/app.py's ``start``), its RSS is read once
   the default views are computed, then --sessions API sessions, --clients at a time, each call
   ``/generate`` once for --tokens tokens (seed = session number) by raw HTTP and never close (API
   clients send no heartbeat, so Gradio keeps their sessions, up to ``state_session_capacity``);
   RSS is read again 5 s after the last one. --tokens is 50 so that 1,000 sessions take about
   5 minutes on 2 shared cores (each /generate also streams the watch panel's figures).

Prints a table; the last line is one JSON object.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import threading
import time
import types
import urllib.request
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from app import ROOT, free_port, start, stop  # noqa: E402  (benchmarks/app.py)
from live import rss_mb  # noqa: E402

from scratchformer.app.bank import SMALL_PAIR  # noqa: E402

PROMPT = "ROMEO:\n"
SETTINGS = (0.8, 0, 0.95)          # temperature, top_k, top_p (the page's defaults)


def deep_bytes(obj, seen: set) -> int:
    """Bytes ``obj`` holds: tensors' storage + ``sys.getsizeof`` of every object reached, each once
    (ids in ``seen`` are not counted: put there what is shared with the app)."""
    import torch
    if id(obj) in seen or isinstance(obj, (type, types.ModuleType, types.FunctionType, types.MethodType)):
        return 0
    seen.add(id(obj))
    if isinstance(obj, torch.Tensor):
        return sys.getsizeof(obj) + obj.untyped_storage().nbytes()
    n = sys.getsizeof(obj)
    if isinstance(obj, dict):
        return n + sum(deep_bytes(k, seen) + deep_bytes(v, seen) for k, v in obj.items())
    if isinstance(obj, (list, tuple, set, frozenset)):
        return n + sum(deep_bytes(v, seen) for v in obj)
    if hasattr(obj, "__dict__"):
        n += deep_bytes(vars(obj), seen)
    for slot in getattr(type(obj), "__slots__", ()):
        n += deep_bytes(getattr(obj, slot, None), seen)
    return n


def shared_with_app(app) -> set:
    """ids of what every session only points to: the app, its components and functions, the models."""
    import torch
    demo = app.demo
    shared = {id(demo), id(app.bank), id(demo.default_config)}
    shared |= {id(b) for b in demo.blocks.values()} | {id(f) for f in demo.fns.values()}
    for slot in app.bank.slots.values():
        shared.add(id(slot))
    shared |= {id(m) for m in _objects_of(torch.nn.Module)}
    return shared


def _objects_of(kind) -> list:
    import gc
    return [o for o in gc.get_objects() if isinstance(o, kind)]


def session_bytes(app, session) -> dict:
    """What ``session`` (a gradio SessionState) holds, in bytes, by part."""
    from gradio.state_holder import SessionState
    demo = app.demo
    shared = shared_with_app(app)
    seen = set(shared)
    out = {"state": deep_bytes(session.state_data, seen)}
    out["gradio_copy"] = (deep_bytes(session.config_values, seen) + deep_bytes(session.blocks_config.blocks, seen)
                          + deep_bytes(session.blocks_config.fns, seen))
    empty = SessionState(demo)
    seen = set(shared)
    out["empty_session"] = (deep_bytes(empty.config_values, seen) + deep_bytes(empty.blocks_config.blocks, seen)
                            + deep_bytes(empty.blocks_config.fns, seen))
    out["total"] = out["state"] + out["gradio_copy"]
    return out


def one_session(tokens: int) -> dict:
    """Phase 1: launch the app here, generate ``tokens`` tokens in one session, size that session."""
    os.environ.setdefault("MPLBACKEND", "agg")
    from gradio_client import Client
    from scratchformer.app.blocks import build_app, launch_kwargs
    app = build_app()
    demo = app.demo
    demo.queue(default_concurrency_limit=4, max_size=64)
    _, url, _ = demo.launch(prevent_thread_lock=True, server_name="127.0.0.1", server_port=free_port(), quiet=True,
                            **launch_kwargs())
    try:
        app.arrival.payload()                    # the default views, as app.py computes them at start
        client = Client(url, verbose=False)
        t0 = time.perf_counter()
        out = client.predict(PROMPT, *SETTINGS, tokens, 0, api_name="/generate")
        seconds = time.perf_counter() - t0
        assert len(out[0]) == tokens, "the Transformer's text is not as long as asked"
        [session] = [s for s in demo.state_holder.session_data.values() if s.state_data]
        sizes = session_bytes(app, session)
    finally:
        demo.close()
    return {**sizes, "seconds": seconds}


def many_sessions(n: int, tokens: int, clients: int) -> dict:
    """Phase 2: ``python app.py``; its RSS before and after ``n`` API sessions that each generate."""
    proc, url, _ = start(ROOT / "app.py")
    api = url + "gradio_api/"
    try:
        cfg = json.load(urllib.request.urlopen(url + "config", timeout=60))
        gen_id = next(d["id"] for d in cfg["dependencies"] if d.get("api_name") == "generate")
        failures, lock = [], threading.Lock()

        def generate(k: int) -> None:
            h = uuid.uuid4().hex[:11]
            body = {"fn_index": gen_id, "data": [PROMPT, *SETTINGS, tokens, k, None, SMALL_PAIR], "session_hash": h,
                    "event_data": None, "trigger_id": None}
            req = urllib.request.Request(api + "queue/join", json.dumps(body).encode(),
                                         {"Content-Type": "application/json"})
            urllib.request.urlopen(req, timeout=300).read()
            with urllib.request.urlopen(api + f"queue/data?session_hash={h}", timeout=300) as r:
                for line in r:
                    if b"process_completed" in line:
                        if b'"success": true' not in line and b'"success":true' not in line:
                            with lock:
                                failures.append(line[:300])
                        break

        generate(0)                              # waits for the default views; warms everything up
        time.sleep(3)
        before = rss_mb(proc.pid)
        t0 = time.perf_counter()
        with ThreadPoolExecutor(clients) as pool:
            list(pool.map(generate, range(n)))
        seconds = time.perf_counter() - t0
        time.sleep(5)
        after = rss_mb(proc.pid)
    finally:
        stop(proc)
    return {"rss_before_mb": before, "rss_after_mb": after, "seconds": seconds, "failures": len(failures),
            "first_failure": failures[0].decode(errors="replace") if failures else None}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--sessions", type=int, default=1000, help="API sessions that each generate (0: skip)")
    ap.add_argument("--tokens", type=int, default=50, help="tokens each of those sessions generates")
    ap.add_argument("--clients", type=int, default=4, help="sessions at a time")
    ap.add_argument("--long", type=int, default=2000, help="tokens of the one session that is sized")
    args = ap.parse_args()

    one = one_session(args.long)
    many = many_sessions(args.sessions, args.tokens, args.clients) if args.sessions else {}
    kb = lambda b: f"{b / 1024:,.0f}"          # noqa: E731
    print(f"scratchformer sessions benchmark · {os.cpu_count()} cores · checkpoints "
          f"{os.environ.get('SCRATCHFORMER_CHECKPOINTS', 'checkpoints/')}")
    rows = [(f"one session after {args.long} tokens: total KB", kb(one["total"]), "≤ 1024"),
            ("  its gr.State values KB", kb(one["state"]), ""),
            ("  Gradio's per-session copy KB", kb(one["gradio_copy"]), ""),
            ("  (of which any session has, empty) KB", kb(one["empty_session"]), ""),
            (f"  /generate {args.long} tokens s", f"{one['seconds']:.1f}", "")]
    if many:
        per = (many["rss_after_mb"] - many["rss_before_mb"]) * 1024 / max(1, args.sessions)
        rows += [(f"server RSS before / after {args.sessions} sessions MB",
                  f"{many['rss_before_mb']:.0f} / {many['rss_after_mb']:.0f}", ""),
                 (f"  per session ({args.tokens} tokens each) KB", f"{per:,.0f}", ""),
                 (f"  {args.sessions} sessions, {args.clients} at a time s", f"{many['seconds']:.0f}", ""),
                 ("  failed calls", str(many["failures"]), "0")]
    for name, value, goal in rows:
        print(f"{name:46s} {value:>14s}  {goal}")
    if many.get("first_failure"):
        print("first failure:", many["first_failure"])
    print(json.dumps({
        "session_bytes_2000_tokens" if args.long == 2000 else f"session_bytes_{args.long}_tokens": one["total"],
        "session_state_bytes": one["state"], "session_gradio_copy_bytes": one["gradio_copy"],
        "empty_session_bytes": one["empty_session"], "sessions": args.sessions, "tokens_per_session": args.tokens,
        **{k: round(v, 1) for k, v in many.items() if isinstance(v, float)},
        "failures": many.get("failures"),
    }))


if __name__ == "__main__":
    main()
