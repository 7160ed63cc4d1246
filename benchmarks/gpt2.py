"""GPT-2 (124M, the shape of Hugging Face's ``gpt2``) in the from-scratch GPT on the CPU: greedy
KV-cached decoding against transformers' own ``generate`` on the same weights, every head ablated in
turn (``head_worth``), and what loading the folder costs in time and memory.

    python benchmarks/gpt2.py            # 3 repeats per row (median), threads 1 and 2
    python benchmarks/gpt2.py --quick    # 1 repeat: a smoke run

The weights are random (``GPT2LMHeadModel(GPT2Config())``, seeded): speed does not depend on what was
learned, and the Hub is not needed. The folder is written as the Hub has it: ``model.safetensors``
(``save_pretrained(..., safe_serialization=True)``), ``config.json``, and a ``vocab.json`` +
``merges.txt`` written by our BPE (:meth:`BPETokenizer.save_gpt2_files`): a small vocabulary trained on
tiny-shakespeare, filled up with placeholder tokens to GPT-2's 50,257 ids so that the folder loads
(``load_gpt2_folder`` checks that vocab.json and config.json agree). The prompts are token ids drawn
at random (seeded) from the whole vocabulary.

What is timed, fp32, batch 1:

* ours: ``generate_stream`` exactly as the app runs it, temperature 0 (greedy): a prefill of the
  32-token prompt, then 100 single-token steps through the KV cache (the fast decoder of
  model/fast/decode.py), each step also building its ``Step`` record over the 50,257 logits and
  decoding its token's text;
* Hugging Face: ``model.generate(input_ids, max_new_tokens=100, do_sample=False, min_new_tokens=100)``
  (with its own KV cache, attention implementation its default).

Both must choose the same 100 tokens (checked, reported). Rows take turns (round-robin) so that a
burst of load from other processes hits both alike; the median of ``--repeats`` runs is reported,
at ``torch.set_num_threads(1)`` and ``(2)``. ``gpt2_decode_vs_hf_{1,2}t`` = HF seconds / our seconds.

``head_worth``: :func:`scratchformer.inference.interventions.head_worth` on 64 tokens, "zero" mode,
all 144 heads (2 threads). Memory: in a fresh subprocess, resident memory (``VmRSS`` of
/proc/self/status) after importing torch and scratchformer, and again after ``load_gpt2_folder``
(``gpt2_rss_added_mb``). The loaded weights are views of the safetensors file, so they become
resident as they are read: the JSON also gives the memory added after one forward pass and after
a first generation (which makes the fast decoder and its copy of the head).

Through the app (``--no-server`` skips these): the app is built in this process with
``SCRATCHFORMER_GPT2`` set to the folder and served on a free port; gradio_client calls the attention
view (``/attention``, the GPT-2 pair, a text of 64 tokens) ``--runs`` times: ``gpt2_attention_view_ms``
is the median, as a client sees it. Start-up: ``python app.py`` launched as a subprocess with and
without the variable, seconds to its first HTTP answer, alternating, median of 3 each:
``gpt2_startup_ratio`` = with / without (the page is laid out from GPT-2's config and vocabulary
alone; its weights load after the page is served).

Prints a table, then as its last line one JSON object.
"""
from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from scratchformer.gpt2 import load_gpt2_folder  # noqa: E402
from scratchformer.inference.generation import generate_stream  # noqa: E402
from scratchformer.inference.interventions import head_worth  # noqa: E402
from scratchformer.inference.sampling import SamplingSettings  # noqa: E402
from scratchformer.tokenizers import BPETokenizer  # noqa: E402

CORPUS = ROOT / "data" / "tinyshakespeare.txt"
GOALS = {"gpt2_decode_vs_hf_1t": 1.2, "gpt2_decode_vs_hf_2t": 1.2, "gpt2_head_worth_s": 10.0,
         "gpt2_rss_added_mb": 800.0, "gpt2_attention_view_ms": 1500.0}
SPECIAL = "<|endoftext|>"


def parse_args(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="one repeat per row (a smoke run)")
    ap.add_argument("--repeats", type=int, default=3, help="timed runs per row; the median is reported")
    ap.add_argument("--prompt-tokens", type=int, default=32)
    ap.add_argument("--new-tokens", type=int, default=100)
    ap.add_argument("--worth-tokens", type=int, default=64)
    ap.add_argument("--threads", default="1,2", help="comma-separated torch thread counts")
    ap.add_argument("--folder", default="", help="use this GPT-2 folder instead of making one")
    ap.add_argument("--no-server", action="store_true", help="skip the measurements through the app")
    ap.add_argument("--runs", type=int, default=10, help="calls of the attention view through the server")
    args = ap.parse_args(argv)
    if args.quick:
        args.repeats = 1
    return args


# ------------------------------------------------------------------------------------ the folder

def write_vocabulary(folder: Path, vocab_size: int) -> None:
    """vocab.json + merges.txt of ``vocab_size`` ids: our BPE trained on a slice of tiny-shakespeare
    (1,000 ids), then placeholder tokens up to ``vocab_size − 1``, then ``<|endoftext|>``."""
    text = CORPUS.read_text(encoding="utf-8")[:200_000] if CORPUS.exists() else "hello world " * 1000
    small = BPETokenizer.train(text, 1000)
    known = set(small.tokens)
    filler = (f"<unused{i}>".encode() for i in range(vocab_size))
    tokens = list(small.tokens) + [t for t in filler if t not in known][:vocab_size - 1 - len(small.tokens)]
    BPETokenizer(tokens, small.merges, specials=[SPECIAL]).save_gpt2_files(folder)


def make_folder(folder: Path) -> None:
    """A 124M GPT-2 folder with random weights (seed 0), as ``save_pretrained`` writes it."""
    from transformers import GPT2Config, GPT2LMHeadModel
    cfg = GPT2Config()
    torch.manual_seed(0)
    GPT2LMHeadModel(cfg).save_pretrained(folder, safe_serialization=True)
    write_vocabulary(folder, cfg.vocab_size)


# --------------------------------------------------------------------------------------- memory

RSS_SCRIPT = r"""
import gc, json, sys, time
sys.path.insert(0, sys.argv[2])
import torch
from scratchformer.gpt2 import load_gpt2_folder
from scratchformer.inference.generation import generate_stream
from scratchformer.inference.sampling import SamplingSettings
def status():
    out = {}
    for line in open("/proc/self/status"):
        key, _, value = line.partition(":")
        if key in ("VmRSS", "RssAnon", "RssFile", "VmHWM"):
            out[key] = int(value.split()[0]) / 1024           # kB → MiB
    return out
torch.set_num_threads(int(sys.argv[3]))
gc.collect()
before = status()
t0 = time.perf_counter()
loaded = load_gpt2_folder(sys.argv[1])
seconds = time.perf_counter() - t0
gc.collect()
after_load = status()
with torch.no_grad():
    loaded.model(torch.zeros(1, 64, dtype=torch.long))
after_forward = status()
class Ids:
    encode = staticmethod(lambda text: [0] * 8)
    decode = staticmethod(loaded.tokenizer.decode)
for _ in generate_stream(loaded.model, Ids(), "x", settings=SamplingSettings(temperature=0), max_new_tokens=4):
    pass
after_generate = status()
print(json.dumps({"before": before, "load": after_load, "forward": after_forward, "generate": after_generate,
                  "load_s": seconds, "params": sum(p.numel() for p in loaded.model.parameters())}))
"""


def measure_load(folder: Path, repeats: int, threads: int) -> dict:
    """Load the folder in ``repeats`` fresh subprocesses: median seconds, and resident memory (MiB)
    added by the load, and after that by one forward pass of 64 tokens and a first generation."""
    runs = []
    for _ in range(repeats):
        out = subprocess.run([sys.executable, "-c", RSS_SCRIPT, str(folder), str(ROOT), str(threads)],
                             capture_output=True, text=True, check=True)
        runs.append(json.loads(out.stdout.strip().splitlines()[-1]))
    med = lambda f: statistics.median(f(r) for r in runs)  # noqa: E731
    added = lambda stage, key="VmRSS": med(lambda r: r[stage][key] - r["before"][key])  # noqa: E731
    return {"load_s": med(lambda r: r["load_s"]), "rss_added_mb": added("load"),
            "peak_added_mb": added("load", "VmHWM"),
            "after_forward_mb": added("forward"), "after_forward_file_mb": added("forward", "RssFile"),
            "after_generate_mb": added("generate"), "after_generate_anon_mb": added("generate", "RssAnon"),
            "params": runs[0]["params"]}


# ------------------------------------------------------------------------------- through the app

def attention_view_ms(folder: Path, runs: int) -> tuple[float, int]:
    """Median ms of ``/attention`` on the GPT-2 pair for a 64-token text, through a served app (and
    the number of GPT-2 tokens read)."""
    import os
    from gradio_client import Client
    sys.path.insert(0, str(ROOT / "tests"))
    from app_checkpoints import serve                   # launch in this process on a free port
    os.environ["SCRATCHFORMER_GPT2"] = str(folder)
    from scratchformer.app.bank import GPT2, GPT2_PAIR
    from scratchformer.app.blocks import build_app
    app = build_app()
    demo = app.demo
    app.bank.load_models(late_in_background=False)
    tok = app.bank.get(GPT2).tokenizer
    text = tok.decode(tok.encode(CORPUS.read_text(encoding="utf-8")[:2000])[:64])
    try:
        client = Client(serve(demo), verbose=False)
        args = (text, True, 12, 1, False, GPT2_PAIR)
        client.predict(*args, api_name="/attention")      # warm: the first call builds caches
        times = []
        for _ in range(runs):
            t0 = time.perf_counter()
            client.predict(*args, api_name="/attention")
            times.append((time.perf_counter() - t0) * 1000)
    finally:
        demo.close()
        del os.environ["SCRATCHFORMER_GPT2"]
    return statistics.median(times), len(tok.encode(text))


def startup_s(gpt2: str | None) -> float:
    """Seconds from launching ``python app.py`` to its first HTTP answer (with $SCRATCHFORMER_GPT2 =
    ``gpt2`` when given)."""
    import os
    import socket
    import urllib.request
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    env = {**os.environ, "GRADIO_SERVER_PORT": str(port), "SCRATCHFORMER_MCP": "0"}
    env.pop("SCRATCHFORMER_GPT2", None)
    if gpt2:
        env["SCRATCHFORMER_GPT2"] = gpt2
    t0 = time.perf_counter()
    proc = subprocess.Popen([sys.executable, "app.py"], cwd=ROOT, env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    try:
        while time.perf_counter() - t0 < 180:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=2) as r:
                    if r.status == 200:
                        return time.perf_counter() - t0
            except OSError:
                time.sleep(0.05)
        raise RuntimeError("the app did not answer within 180 s")
    finally:
        proc.terminate()
        proc.wait(10)


# -------------------------------------------------------------------------------------- decoding

class IdsTokenizer:
    """The tokenizer the stream gets: ``encode`` gives the fixed prompt ids (any text), ``decode`` is
    the real tokenizer's — so generate_stream runs as the app runs it, on a prompt of chosen ids."""

    def __init__(self, tokenizer, prompt_ids: list[int]):
        self.tokenizer, self.prompt_ids = tokenizer, list(prompt_ids)

    def encode(self, text: str) -> list[int]:
        return list(self.prompt_ids)

    def decode(self, ids) -> str:
        return self.tokenizer.decode(ids)


def ours_runner(loaded, prompt_ids: list[int], n: int):
    tok = IdsTokenizer(loaded.tokenizer, prompt_ids)
    settings = SamplingSettings(temperature=0)

    def run() -> list[int]:
        return [s.token_id for s in generate_stream(loaded.model, tok, "<ids>", settings=settings,
                                                     max_new_tokens=n)]
    return run


def hf_runner(hf, prompt_ids: list[int], n: int):
    x = torch.tensor([prompt_ids])

    def run() -> list[int]:
        with torch.no_grad():
            out = hf.generate(x, attention_mask=torch.ones_like(x), max_new_tokens=n, do_sample=False,
                              min_new_tokens=n, pad_token_id=hf.config.eos_token_id)
        return out[0, x.size(1):].tolist()
    return run


def time_in_turns(runs: dict, repeats: int) -> tuple[dict, dict]:
    """{name: run} → ({name: median wall seconds}, {name: the ids of the last run}), runs in turns."""
    ids = {name: run() for name, run in runs.items()}          # warm-up, and the tokens
    times = {name: [] for name in runs}
    for _ in range(repeats):
        for name, run in runs.items():
            t0 = time.perf_counter()
            ids[name] = run()
            times[name].append(time.perf_counter() - t0)
    return {name: statistics.median(t) for name, t in times.items()}, ids


def main(argv=None):
    args = parse_args(argv)
    from transformers import GPT2LMHeadModel
    threads = [int(t) for t in args.threads.split(",") if t.strip()]
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(args.folder) if args.folder else Path(tmp)
        t0 = time.perf_counter()
        if not args.folder:
            make_folder(folder)
        made_s = time.perf_counter() - t0
        load = measure_load(folder, max(1, min(args.repeats, 3)), max(threads))

        loaded = load_gpt2_folder(folder)
        hf = GPT2LMHeadModel.from_pretrained(folder).eval()
        cfg = loaded.config
        g = torch.Generator().manual_seed(1)
        prompt = torch.randint(0, cfg.vocab_size, (args.prompt_tokens,), generator=g).tolist()
        worth_ids = torch.randint(0, cfg.vocab_size, (args.worth_tokens,), generator=g).tolist()
        with torch.no_grad():                      # the two models compute the same function
            x = torch.tensor([worth_ids])
            max_diff = (hf(x).logits - loaded.model(x).logits).abs().max().item()

        decode = {}
        for t in threads:
            torch.set_num_threads(t)
            secs, ids = time_in_turns({"ours": ours_runner(loaded, prompt, args.new_tokens),
                                       "hf": hf_runner(hf, prompt, args.new_tokens)}, args.repeats)
            decode[t] = {"ours_s": secs["ours"], "hf_s": secs["hf"], "ratio": secs["hf"] / secs["ours"],
                         "ids_equal": ids["ours"] == ids["hf"],
                         "first_diff": next((i for i, (a, b) in enumerate(zip(ids["ours"], ids["hf"]))
                                             if a != b), None)}

        torch.set_num_threads(max(threads))
        worth_times = []
        for _ in range(max(1, min(args.repeats, 3))):
            t0 = time.perf_counter()
            worth = head_worth(loaded.model, worth_ids, "zero")
            worth_times.append(time.perf_counter() - t0)
        worth_s = statistics.median(worth_times)

        server = {}
        if not args.no_server:
            server["attention_ms"], server["attention_tokens"] = attention_view_ms(folder, args.runs)
            with_var, without = [], []
            for _ in range(3):
                without.append(startup_s(None))
                with_var.append(startup_s(str(folder)))
            server["startup_with_s"], server["startup_without_s"] = statistics.median(with_var), statistics.median(without)

    n_heads = cfg.n_layer * cfg.n_head
    print(f"GPT-2 shape: {cfg.n_layer} layers, {cfg.n_head} heads, {cfg.n_embd} dims, vocab {cfg.vocab_size}, "
          f"{load['params'] / 1e6:.1f}M params, random weights (folder made in {made_s:.1f} s)")
    print(f"CPU fp32, batch 1, torch {torch.__version__}; median of {args.repeats} run(s), rows in turns; "
          f"max |logits ours − HF| on {len(worth_ids)} tokens: {max_diff:.2e}")
    print(f"greedy decoding: {args.prompt_tokens}-token prompt + {args.new_tokens} new tokens")
    print(f"{'threads':>7s} {'ours s':>8s} {'HF s':>8s} {'ours tok/s':>11s} {'HF tok/s':>9s} "
          f"{'HF/ours':>8s} {'goal':>5s} {'same ids':>9s}")
    for t, r in decode.items():
        print(f"{t:7d} {r['ours_s']:8.3f} {r['hf_s']:8.3f} {args.new_tokens / r['ours_s']:11.1f} "
              f"{args.new_tokens / r['hf_s']:9.1f} {r['ratio']:8.2f} {'≥1.2':>5s} {str(r['ids_equal']):>9s}")
    print(f"head_worth, {n_heads} heads, {len(worth_ids)} tokens, zero, {max(threads)} threads: "
          f"{worth_s:.2f} s (goal ≤ {GOALS['gpt2_head_worth_s']:.0f}); intact loss {worth['intact_loss']:.3f}")
    print(f"load_gpt2_folder: {load['load_s']:.2f} s; resident memory added {load['rss_added_mb']:.0f} MiB "
          f"(goal for what it adds in use, after a first generation: ≤ {GOALS['gpt2_rss_added_mb']:.0f}), peak during the load +{load['peak_added_mb']:.0f} MiB")
    print(f"  the weights are views of the safetensors file, resident once read: after one forward pass "
          f"+{load['after_forward_mb']:.0f} MiB ({load['after_forward_file_mb']:.0f} of it the file's pages); "
          f"after a first generation +{load['after_generate_mb']:.0f} MiB "
          f"({load['after_generate_anon_mb']:.0f} anonymous: the decoder's head copy, caches, buffers)")
    if server:
        print(f"through the app: /attention on the GPT-2 pair, {server['attention_tokens']} tokens: "
              f"{server['attention_ms']:.0f} ms median of {args.runs} (goal ≤ {GOALS['gpt2_attention_view_ms']:.0f}); "
              f"start-up {server['startup_with_s']:.2f} s with SCRATCHFORMER_GPT2, "
              f"{server['startup_without_s']:.2f} s without (ratio "
              f"{server['startup_with_s'] / server['startup_without_s']:.2f})")
    result = {
        **{f"gpt2_decode_vs_hf_{t}t": round(r["ratio"], 3) for t, r in decode.items()},
        "gpt2_head_worth_s": round(worth_s, 3),
        # what GPT-2 costs in use: the weights' pages read, the decoder's head copy, caches
        "gpt2_rss_added_mb": round(load["after_generate_mb"], 1),
        "gpt2_rss_after_load_mb": round(load["rss_added_mb"], 1),
        "gpt2_load_s": round(load["load_s"], 3),
        "gpt2_decode": {f"{t}t": {k: (round(v, 4) if isinstance(v, float) else v) for k, v in r.items()}
                        for t, r in decode.items()},
        "gpt2_ids_equal": all(r["ids_equal"] for r in decode.values()),
        "gpt2_peak_added_mb": round(load["peak_added_mb"], 1),
        "gpt2_rss_after_forward_mb": round(load["after_forward_mb"], 1),
        "gpt2_rss_after_generate_mb": round(load["after_generate_mb"], 1),
        "max_logit_diff_vs_hf": max_diff, "goals": GOALS, "repeats": args.repeats,
        "prompt_tokens": args.prompt_tokens, "new_tokens": args.new_tokens, "worth_tokens": args.worth_tokens,
        "params": load["params"],
        **({"gpt2_attention_view_ms": round(server["attention_ms"], 1),
            "gpt2_startup_ratio": round(server["startup_with_s"] / server["startup_without_s"], 3),
            "gpt2_startup_s": round(server["startup_with_s"], 2),
            "startup_without_gpt2_s": round(server["startup_without_s"], 2)} if server else {}),
    }
    print(json.dumps(result))
    assert result["gpt2_ids_equal"], "ours and Hugging Face chose different tokens"


if __name__ == "__main__":
    main()
