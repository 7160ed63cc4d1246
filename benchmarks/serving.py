"""Many visitors at once: each generating with its own thread ("before") vs continuous batching
through one :class:`~scratchformer.inference.batching.DecodeScheduler` per model ("after").

    python benchmarks/serving.py            # N = 1, 8, 32 clients, 200 tokens each per model
    python benchmarks/serving.py --quick    # 50 tokens, a short run
    python benchmarks/serving.py --server   # through the app (a child process), called as its page calls it
    python benchmarks/serving.py --server --modes after --clients 8 32   # batching on only (faster)

The shipped character pair (checkpoints/gpt-shakespeare and checkpoints/lstm-shakespeare, or
$SCRATCHFORMER_CHECKPOINTS). A client does what the app's /generate does: both models write the
same prompt side by side, one token of each in turn, 200 tokens, temperature 0.8, top-p 0.95, a
seed of its own. N clients (threads) start together.

* before: each client calls ``generate_stream`` on its own thread (torch.set_num_threads(1), as the
  app configures torch for this machine);
* after: each client calls ``scheduler.stream`` of the model's scheduler (max_rows 32); the two
  schedulers share one :class:`DecodeWorker` thread (``--separate-workers``: a thread each), which
  advances all the rows of a model in one batched pass per token.

Measured per client: time to first token (both models' first tokens in hand) and to completion
(both models' last tokens); then p50 and p95 over the clients. Aggregate tokens/s = all tokens of
all clients ÷ the wall time from the start to the last completion; "× one" divides it by the rate of
one client alone with generate_stream (measured three times during the run; the fastest counts).
Requests/s per core = N ÷ that wall time ÷ the cores. Every
"after" client's tokens are compared with its "before" tokens (same seed): ``same_tokens``.

``--server``: the app as a Space runs it (``python app.py`` in a child process on a free loopback
port, the shipped checkpoints), and N clients that call ``/generate`` as the page does (join the
queue, read the server-sent events, apply Gradio's diffs: :class:`PageCall`; both models, the page's
watch panel included, streamed). "before" is a server started with ``SCRATCHFORMER_BATCHING=0``,
"after" one with batching on; one client alone is timed on the "before" server (6 times; the fastest
counts). The app runs at most ``SCRATCHFORMER_GENERATE_CONCURRENCY`` generations at once (``--generate-concurrency``, default 32
here, so that the queue does not hide what the server can do; the table's header says which). First
token = the first update that carries generated text. ``same_tokens``: both texts of every client
equal before and after. ``server cpu``: the app process's CPU seconds during the run (/proc);
``client cpu``: this process's (the N pages reading their events and applying Gradio's diffs), which
runs on the same cores.

Prints a table, then as its last line one JSON object (``first_token_p50_s_32``, ``completion_p95_s_32``,
``aggregate_vs_single_32``, … for after; the same keys prefixed ``before_`` for before).
"""
from __future__ import annotations

import argparse
import json
import math
import os
import sys
import threading
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from scratchformer.checkpoint import load_checkpoint  # noqa: E402
from scratchformer.inference.batching import DecodeScheduler, DecodeWorker  # noqa: E402
from scratchformer.inference.generation import generate_stream  # noqa: E402
from scratchformer.inference.sampling import SamplingSettings  # noqa: E402

PROMPT = "ROMEO:\n"
SETTINGS = SamplingSettings(temperature=0.8, top_k=0, top_p=0.95)
GOALS = {"completion_p50_s_32": 4.0, "completion_p95_s_32": 6.0, "aggregate_vs_single_32": 8.0}


def parse_args(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--clients", type=int, nargs="+", default=[1, 8, 32])
    ap.add_argument("--tokens", type=int, default=200, help="new tokens per model per client")
    ap.add_argument("--max-rows", type=int, default=32)
    ap.add_argument("--quick", action="store_true", help="50 tokens: a short run")
    ap.add_argument("--separate-workers", action="store_true",
                    help="a worker thread per model (default: the two schedulers share one DecodeWorker)")
    ap.add_argument("--server", action="store_true",
                    help="through the app (a child process) and its HTTP API, called as the page calls it")
    ap.add_argument("--generate-concurrency", type=int, default=32,
                    help="--server: generations the app runs at once ($SCRATCHFORMER_GENERATE_CONCURRENCY)")
    ap.add_argument("--modes", nargs="+", choices=["before", "after"], default=["before", "after"],
                    help="which to run (before, one thread per client, is the slow one; one client alone is "
                         "always timed with generate_stream)")
    ap.add_argument("--checkpoints", default=os.environ.get("SCRATCHFORMER_CHECKPOINTS", str(ROOT / "checkpoints")))
    args = ap.parse_args(argv)
    if args.quick:
        args.tokens = min(args.tokens, 50)
    return args


def percentile(values: list[float], q: float) -> float:
    """The q-th percentile (0–100), linear between the nearest ranks (numpy's default)."""
    v = sorted(values)
    x = (len(v) - 1) * q / 100
    lo = int(x)
    hi = min(lo + 1, len(v) - 1)
    return v[lo] + (v[hi] - v[lo]) * (x - lo)


def client(open_streams, seed: int, tokens: int, start: threading.Barrier, out: dict) -> None:
    """One visitor: both models' streams, one token of each in turn (the app's /generate)."""
    start.wait()
    t0 = time.perf_counter()
    try:
        streams = open_streams(seed)
        ids = [[] for _ in streams]
        first = None
        for _ in range(tokens):
            for stream, got in zip(streams, ids):
                got.append(next(stream).token_id)
            if first is None:
                first = time.perf_counter() - t0
        out[seed] = {"first": first, "done": time.perf_counter() - t0, "ids": ids}
    except Exception as e:   # noqa: BLE001  reported in the table, the run goes on
        out[seed] = {"error": f"{type(e).__name__}: {e}"}


def run_clients(source, n: int, tokens: int, target=None) -> dict:
    """n clients at once (``target(source_i, seed, tokens, barrier, out)``, default :func:`client` on
    ``source``; a list of sources gives client i the i-th); their timings, the wall time, their ids."""
    target = target or client
    out: dict = {}
    barrier = threading.Barrier(n + 1)
    threads = [threading.Thread(target=target, args=(source[i] if isinstance(source, list) else source,
                                                     1000 + i, tokens, barrier, out)) for i in range(n)]
    for t in threads:
        t.start()
    barrier.wait()
    t0 = time.perf_counter()
    for t in threads:
        t.join()
    return summarise(out, time.perf_counter() - t0, tokens)


def summarise(out: dict, wall: float, tokens: int) -> dict:
    """The clients' results (by seed) → wall time, errors, ids, p50 / p95 of first token and completion."""
    errors = [r["error"] for r in out.values() if "error" in r]
    ok = [r for r in out.values() if "error" not in r]
    firsts, dones = [r["first"] for r in ok] or [math.nan], [r["done"] for r in ok] or [math.nan]
    return {"wall": wall, "errors": errors, "ids": {s: r.get("ids") for s, r in out.items()},
            "first_p50": percentile(firsts, 50), "first_p95": percentile(firsts, 95),
            "done_p50": percentile(dones, 50), "done_p95": percentile(dones, 95),
            "tokens": len(ok) * tokens * 2}

def main(argv=None) -> dict:
    args = parse_args(argv)
    torch.set_num_threads(1)
    if args.server:
        return server_main(args)
    cores = os.cpu_count() or 1
    models = []
    for name in ("gpt-shakespeare", "lstm-shakespeare"):
        loaded = load_checkpoint(Path(args.checkpoints) / name)
        models.append((loaded.model.eval(), loaded.tokenizer))
    worker = None if args.separate_workers else DecodeWorker()
    schedulers = [DecodeScheduler(m, tok, max_rows=args.max_rows, max_waiting=64, worker=worker)
                  for m, tok in models]

    def before(seed):
        return [generate_stream(m, tok, PROMPT, settings=SETTINGS, max_new_tokens=args.tokens, seed=seed)
                for m, tok in models]

    def after(seed):
        return [s.stream(PROMPT, settings=SETTINGS, max_new_tokens=args.tokens, seed=seed) for s in schedulers]

    run_clients(before, 2, min(args.tokens, 20))      # warm-up (first calls, allocations)
    run_clients(after, 2, min(args.tokens, 20))
    # one client alone, three times (start, middle, end of the run): the fastest is the reference,
    # so a burst of load from other processes cannot flatter the ratios
    singles = [run_clients(before, 1, args.tokens)]
    results = {}
    for n in args.clients:
        for mode, open_streams in (("before", before), ("after", after)):
            if mode in args.modes:
                results[mode, n] = run_clients(open_streams, n, args.tokens)
        if len(singles) < 2 and n != min(args.clients):
            singles.append(run_clients(before, 1, args.tokens))
    singles.append(run_clients(before, 1, args.tokens))
    for s in schedulers:
        s.close()
    header = (f"both models, the app's /generate as library calls, torch threads {torch.get_num_threads()}")
    return report_and_print(args, results, singles, cores, header,
                            {"max_rows": args.max_rows, "workers": "separate" if args.separate_workers else "shared",
                             "scheduler_steps": [s.steps for s in schedulers]})


def report_and_print(args, results: dict, singles: list, cores: int, header: str, extra: dict) -> dict:
    """The table and the last-line JSON of either mode."""
    if ("before", 1) in results:
        singles.append(results["before", 1])
    single_rates = [r["tokens"] / r["wall"] for r in singles]
    single_rate = max(single_rates)
    report = {"tokens_per_model": args.tokens, "cores": cores, "torch_threads": torch.get_num_threads(),
              "single_tok_s": round(single_rate, 1), "single_tok_s_runs": [round(r, 1) for r in single_rates],
              **extra}
    rows = []
    for (mode, n), r in results.items():
        prefix = "before_" if mode == "before" else ""
        agg = r["tokens"] / r["wall"]
        values = {"first_token_p50_s": r["first_p50"], "first_token_p95_s": r["first_p95"],
                  "completion_p50_s": r["done_p50"], "completion_p95_s": r["done_p95"],
                  "aggregate_tok_s": agg, "aggregate_vs_single": agg / single_rate,
                  "requests_per_s_per_core": n / r["wall"] / cores}
        for key, value in values.items():
            report[f"{prefix}{key}_{n}"] = round(value, 3)
        if "server_cpu_s" in r:     # --server: the app process's CPU time during the run, and the clients'
            report[f"{prefix}server_cpu_s_{n}"] = round(r["server_cpu_s"], 2)
            report[f"{prefix}client_cpu_s_{n}"] = round(r["client_cpu_s"], 2)
        if r["errors"]:
            report[f"{prefix}errors_{n}"] = r["errors"][:3]
        rows.append((mode, n, values, len(r["errors"])))
        if mode == "after" and ("before", n) in results:
            report[f"same_tokens_{n}"] = r["ids"] == results["before", n]["ids"]
    if max(args.clients) == 32 and args.tokens == 200:
        report["goals_met"] = {k: (report[k] <= v if "completion" in k else report[k] >= v)
                               for k, v in GOALS.items() if k in report}

    print(f"{args.tokens} tokens per model per client; {header}; {cores} cores; one client alone: "
          f"{single_rate:.0f} tokens/s (fastest of {', '.join(f'{r:.0f}' for r in single_rates)})")
    print(f"{'mode':7s} {'N':>3s} {'first p50':>10s} {'first p95':>10s} {'done p50':>9s} {'done p95':>9s} "
          f"{'tokens/s':>9s} {'× one':>6s} {'req/s/core':>10s} {'errors':>6s} {'server cpu':>10s} {'client cpu':>10s}")
    for mode, n, v, errors in rows:
        cpu, client = results[mode, n].get("server_cpu_s"), results[mode, n].get("client_cpu_s")
        print(f"{mode:7s} {n:3d} {v['first_token_p50_s']:9.3f}s {v['first_token_p95_s']:9.3f}s "
              f"{v['completion_p50_s']:8.3f}s {v['completion_p95_s']:8.3f}s {v['aggregate_tok_s']:9.0f} "
              f"{v['aggregate_vs_single']:6.1f} {v['requests_per_s_per_core']:10.2f} {errors:6d} "
              f"{'' if cpu is None else f'{cpu:9.2f}s':>10s} {'' if client is None else f'{client:9.2f}s':>10s}")
    print(json.dumps(report))
    return report


# ------------------------------------------------------------------------------ through the app

SERVER_SETTINGS = (SETTINGS.temperature, SETTINGS.top_k, SETTINGS.top_p)
SINGLE_RUNS = 3   # one visitor alone, timed this many times before the N runs and after (each ~1 s)
PAIR = "small (CPU-trained)"


def launch_app(args, batching: bool):
    """``python app.py`` as a child process on a free loopback port (the shipped checkpoints, or
    ``--checkpoints``), as a Space runs it: (the process, its url, its log file). Returns once the
    page's config is served; the weights load in the background and the first calls wait for them."""
    import socket
    import subprocess
    import tempfile
    import httpx
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    env = {**os.environ, "GRADIO_SERVER_NAME": "127.0.0.1", "GRADIO_SERVER_PORT": str(port),
           "SCRATCHFORMER_GENERATE_CONCURRENCY": str(args.generate_concurrency),
           "SCRATCHFORMER_QUEUE_SIZE": str(max(64, 2 * max(args.clients))),
           "SCRATCHFORMER_CHECKPOINTS": args.checkpoints, "SCRATCHFORMER_BATCHING": "1" if batching else "0",
           "GRADIO_ANALYTICS_ENABLED": "False"}
    log = tempfile.NamedTemporaryFile("w+", prefix="serving-app-", suffix=".log", delete=False)
    proc = subprocess.Popen([sys.executable, str(ROOT / "app.py")], cwd=ROOT, env=env, stdout=log,
                            stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            break
        try:
            if httpx.get(url + "/config", timeout=5).status_code == 200:
                return proc, url, log.name
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    proc.kill()
    log.seek(0)
    raise RuntimeError(f"the app did not start (log {log.name}):\n{log.read()[-3000:]}")


def cpu_seconds(pid: int) -> float:
    """The CPU time (user + system, every thread) process ``pid`` has used so far, from /proc (Linux;
    NaN elsewhere). On a machine whose speed drifts, the server's CPU seconds for a run are a
    steadier measure of the work it did than the wall time."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError):
        return math.nan


class PageCall:
    """What the page does to call ``/generate``: join the queue (``/gradio_api/queue/join``), then read
    the session's server-sent events (``/gradio_api/queue/data``), applying the diffs in which Gradio
    streams a generator's updates. A blocking read per client, nothing polled.

    (``gradio_client``'s ``Job`` iterator polls its results every millisecond under a lock; 32 of
    them in the server's process took the GIL from the server, and this benchmark used to measure
    that: 30–48 s at N = 32. So the server is now a child process and the clients read as a page does.)"""

    def __init__(self, url: str, api_name: str = "generate"):
        import httpx
        config = httpx.get(url + "/config", timeout=30).json()
        dep = next(d for d in config["dependencies"] if d.get("api_name") == api_name)
        kinds = {c["id"]: c.get("type") for c in config["components"]}
        self.url, self.fn_index = url, dep["id"]
        self.states = [kinds.get(i) == "state" for i in dep["inputs"]]

    def __call__(self, seed: int, tokens: int, start: threading.Barrier, out: dict) -> None:
        """One visitor pressing Generate: the first update with generated text, the last."""
        import uuid
        import httpx
        from gradio_client.utils import apply_diff
        values = iter((PROMPT, *SERVER_SETTINGS, tokens, seed, None, PAIR))
        data = [None if state else next(values) for state in self.states]
        session = uuid.uuid4().hex
        http = httpx.Client(base_url=self.url, timeout=httpx.Timeout(120))   # the page is open already
        start.wait()
        t0 = time.perf_counter()
        try:
            with http:
                joined = http.post("/gradio_api/queue/join", json={
                    "data": data, "fn_index": self.fn_index, "session_hash": session,
                    "event_data": None, "trigger_id": None})
                joined.raise_for_status()
                first, outputs, final = None, None, None
                with http.stream("GET", "/gradio_api/queue/data", params={"session_hash": session}) as events:
                    buffer = ""
                    for chunk in events.iter_text():
                        buffer += chunk
                        while "\n\n" in buffer and final is None:
                            line, buffer = buffer.split("\n\n", 1)
                            if not line.startswith("data:"):
                                continue
                            msg = json.loads(line[5:])
                            kind = msg.get("msg")
                            if kind == "process_generating":
                                update = msg["output"]["data"]
                                outputs = list(update) if outputs is None else [
                                    apply_diff(old, diff) for old, diff in zip(outputs, update)]
                            elif kind == "process_completed":
                                if not msg.get("success"):
                                    raise RuntimeError(str(msg.get("output"))[:300])
                                final = msg["output"]["data"]
                            if first is None and outputs is not None and outputs[0]:
                                first = time.perf_counter() - t0
                        if final is not None:
                            break
            done = time.perf_counter() - t0
            if final is None:
                raise RuntimeError("the stream ended without a result")
            out[seed] = {"first": done if first is None else first, "done": done, "ids": [final[0], final[2]]}
        except Exception as e:   # noqa: BLE001  reported in the table, the run goes on
            out[seed] = {"error": f"{type(e).__name__}: {e}"}


def server_main(args) -> dict:
    """``--server``: the app as a child process, batching off (before; and one client alone) and on
    (after), called as the page calls it."""
    cores = os.cpu_count() or 1
    results, singles = {}, []
    for mode in ("before", "after"):
        if mode not in args.modes and singles:
            continue
        proc, url, log = launch_app(args, batching=mode == "after")
        try:
            call = PageCall(url)
            run_clients(call, 2, min(args.tokens, 20), target=PageCall.__call__)            # warm-up: the weights, first calls
            def alone() -> list:     # one visitor alone, a few times (the machine's speed drifts; the fastest counts)
                return [run_clients(call, 1, args.tokens, target=PageCall.__call__) for _ in range(SINGLE_RUNS)]
            if mode == "before":
                singles += alone()
            if mode in args.modes:
                for n in args.clients:
                    cpu, own = cpu_seconds(proc.pid), time.process_time()
                    results[mode, n] = run_clients(call, n, args.tokens, target=PageCall.__call__)
                    results[mode, n]["server_cpu_s"] = cpu_seconds(proc.pid) - cpu
                    results[mode, n]["client_cpu_s"] = time.process_time() - own   # the N visitors' pages
            if mode == "before":
                singles += alone()
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=20)
            except Exception:   # noqa: BLE001
                proc.kill()
    header = (f"the app as a child process, /generate called as the page calls it, generate concurrency "
              f"{args.generate_concurrency}")
    return report_and_print(args, results, singles, cores, header, {"mode": "server",
                                                                    "generate_concurrency": args.generate_concurrency})


if __name__ == "__main__":
    main()
