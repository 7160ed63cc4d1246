"""How fast the app answers, measured through the running server as a user sees it.

    python benchmarks/app.py [--runs 30] [--startups 3]

1. Starts ``python app.py`` as a subprocess on a free port (checkpoints from $SCRATCHFORMER_CHECKPOINTS
   or checkpoints/) and, with gradio_client, calls the attention view for a 128-character prompt:
   p50 / p95 latency (goal p50 ≤ 300 ms on CPU) and the size of its answer (goal ≤ 1.5 MB): the
   JSON of the outputs as the client receives them.
2. Startup: seconds from launching the process to its first successful HTTP response, for app.py
   and for a bare Gradio hello-world started the same way; ``startup_ratio`` = app / hello-world
   (goal ≤ 1.5×). Each is started ``--startups`` times, alternating, and the medians compared.

3. Generating 200 characters with both models (``/generate``: the surprise strip's traced passes,
   both streams with their Step records, the page updates, the why-this-token figure):
   ``generate_200_s``, the median of 3 calls, with a roofline line: the FLOPs both models compute for
   the 200 tokens (benchmarks/roofline.py) over that time, beside a measured matmul peak.

Prints a table; the last line is one JSON object.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import torch
from roofline import gpt_forward_flops, line, lstm_forward_flops, matmul_peak_gflops

ROOT = Path(__file__).resolve().parent.parent
PROMPT_128 = ("JULIET:\nO Romeo, Romeo! wherefore art thou Romeo?\nDeny thy father and refuse thy name;\n"
              "Or, if thou wilt not, be but sworn my love,\nAnd I'll")[:128]
HELLO = """import gradio as gr
with gr.Blocks() as demo:
    name = gr.Textbox(label="name")
    out = gr.Textbox(label="greeting")
    name.submit(lambda n: "Hello " + n, name, out, api_name="hello")
demo.launch()
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start(script: Path, timeout: float = 180.0) -> tuple[subprocess.Popen, str, float]:
    """Run ``python script`` on a free port; return (process, url, seconds to the first HTTP 200)."""
    port = free_port()
    env = {**os.environ, "GRADIO_SERVER_NAME": "127.0.0.1", "GRADIO_SERVER_PORT": str(port),
           "GRADIO_ANALYTICS_ENABLED": "False"}
    url = f"http://127.0.0.1:{port}/"
    t0 = time.perf_counter()
    proc = subprocess.Popen([sys.executable, str(script)], cwd=ROOT, env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE)
    while time.perf_counter() - t0 < timeout:
        if proc.poll() is not None:
            raise RuntimeError(f"{script} exited: {proc.stderr.read().decode()[-2000:]}")
        try:
            with urllib.request.urlopen(url, timeout=2) as r:
                if r.status == 200:
                    return proc, url, time.perf_counter() - t0
        except OSError:
            time.sleep(0.05)
    proc.kill()
    raise RuntimeError(f"{script} did not answer within {timeout} s")


def stop(proc: subprocess.Popen) -> None:
    proc.terminate()
    try:
        proc.wait(10)
    except subprocess.TimeoutExpired:
        proc.kill()


def percentile(xs: list[float], q: float) -> float:
    xs = sorted(xs)
    k = (len(xs) - 1) * q
    lo, hi = int(k), min(int(k) + 1, len(xs) - 1)
    return xs[lo] + (xs[hi] - xs[lo]) * (k - lo)


def time_endpoint(client, api_name: str, args: tuple, runs: int) -> tuple[list[float], int]:
    client.predict(*args, api_name=api_name)  # warm-up
    times, size = [], 0
    for _ in range(runs):
        t0 = time.perf_counter()
        out = client.predict(*args, api_name=api_name)
        times.append(time.perf_counter() - t0)
        size = len(json.dumps(out).encode())
    return times, size


def generate_flops(n: int, prompt_len: int = 7) -> float:
    """FLOPs of n generated tokens from both shipped models (GPT with its KV cache, refilled to half the
    block when full; the LSTM one step per token), forward passes only."""
    ck = Path(os.environ.get("SCRATCHFORMER_CHECKPOINTS", ROOT / "checkpoints"))
    g = json.loads((ck / "gpt-shakespeare" / "config.json").read_text())["model"]
    m = json.loads((ck / "lstm-shakespeare" / "config.json").read_text())["model"]
    f = lambda keys: gpt_forward_flops(g["n_layer"], g["n_embd"], g["d_ff"], g["vocab_size"], keys)  # noqa: E731
    total, cached = 0.0, 0
    for i in range(n):
        if i == 0 or cached >= g["block_size"]:
            cached = min(prompt_len + i, g["block_size"] // 2 if i else g["block_size"])
            total += sum(f(j) for j in range(1, cached + 1))
        else:
            cached += 1
            total += f(cached)
    return total + n * lstm_forward_flops(m["n_layer"], m["n_embd"], m["hidden"], m["vocab_size"])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--runs", type=int, default=30)
    ap.add_argument("--startups", type=int, default=3)
    args = ap.parse_args()
    from gradio_client import Client

    with tempfile.TemporaryDirectory() as tmp:
        hello = Path(tmp) / "hello.py"
        hello.write_text(HELLO)
        app_startups, hello_startups = [], []
        for _ in range(args.startups):
            for script, record in ((ROOT / "app.py", app_startups), (hello, hello_startups)):
                proc, _, seconds = start(script)
                record.append(seconds)
                stop(proc)

    proc, url, _ = start(ROOT / "app.py")
    try:
        client = Client(url, verbose=False)
        attn = (PROMPT_128, True, 1, 1, False)   # text, causal, layer, head, hide first token
        rows = {"attention (all views)": time_endpoint(client, "/attention", attn, args.runs)}
        rows["attention_view (mask toggle)"] = time_endpoint(client, "/attention_view", (PROMPT_128, False) + attn[2:], args.runs)
        rows["attention_head (slider)"] = time_endpoint(client, "/attention_head", attn, args.runs)
        rows["lstm_gates"] = time_endpoint(client, "/lstm_gates", (PROMPT_128, 2, 16), args.runs)
        gen_args = ("ROMEO:\n", 0.8, 0, 0.95, 200, 0)
        rows["generate (200 tokens, both models)"] = time_endpoint(client, "/generate", gen_args, 3)
    finally:
        stop(proc)

    print(f"scratchformer app benchmark · {platform.processor() or platform.machine()} · "
          f"{os.cpu_count()} cores · prompt {len(PROMPT_128)} chars · {args.runs} runs per endpoint")
    print(f"{'endpoint':38s} {'p50 ms':>9s} {'p95 ms':>9s} {'payload':>12s}")
    for name, (times, size) in rows.items():
        print(f"{name:38s} {1000 * percentile(times, 0.5):9.1f} {1000 * percentile(times, 0.95):9.1f} "
              f"{size:>10,d} B")
    app_s, hello_s = statistics.median(app_startups), statistics.median(hello_startups)
    print(f"{'startup: python app.py':38s} {app_s:9.2f} s   (runs: {', '.join(f'{x:.2f}' for x in app_startups)})")
    print(f"{'startup: Gradio hello-world':38s} {hello_s:9.2f} s   (runs: {', '.join(f'{x:.2f}' for x in hello_startups)})")
    gen_s = percentile(rows["generate (200 tokens, both models)"][0], 0.5)
    torch.set_num_threads(os.cpu_count())   # the app's own setting (app.bank.configure_torch)
    roof_text, roof = line("generate 200 tokens, both models", generate_flops(200) / 200, 200 / gen_s,
                           matmul_peak_gflops())
    print(roof_text.replace("tokens/s", "token pairs/s"))
    attn_times, attn_size = rows["attention (all views)"]
    print(json.dumps({
        "attention_p50_ms": round(1000 * percentile(attn_times, 0.5), 1),
        "attention_p95_ms": round(1000 * percentile(attn_times, 0.95), 1),
        "attention_payload_bytes": attn_size,
        "startup_s": round(app_s, 2), "hello_world_startup_s": round(hello_s, 2),
        "startup_ratio": round(app_s / hello_s, 3),
        "generate_200_tokens_s": round(gen_s, 2), "generate_200_s": round(gen_s, 3),
        "roofline_generate": roof,
    }))


if __name__ == "__main__":
    main()
