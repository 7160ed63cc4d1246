"""Generation speed on the CPU, batch 1: GPT with the KV cache vs full recompute, the LSTM, and
Hugging Face transformers' GPT-2 ``generate`` (with its own cache) at the same dimensions.

    python benchmarks/generation.py                      # 6 layers, 6 heads, 192 dims, block 256
    python benchmarks/generation.py --n-embd 384 --block-size 128 --threads 2

The weights are random (seeded): speed does not depend on what was learned. Our GPT's weights are
copied into the GPT-2 model (GPT-2 is the same pre-norm architecture; its GELU is set to the exact
one ours uses), and the table reports the largest logit difference as a check that both compute the
same function. GPT-2 has no policy for running past ``n_positions``, so for the 500-token run it gets
``n_positions = prompt + new tokens`` (its attention then spans up to 506 keys where ours stops at
block_size); the "inside one block" rows compare both with ``n_positions = block_size``.

What is timed: our rows run ``generate_stream`` exactly as the app does, so every token also builds
its records — a ``Step`` (the logits, the distribution after temperature and after filtering, the
top-k and top-p masks over the whole vocabulary) inside a ``GenStep`` (decoded text, timing, the
context window). Hugging Face's ``generate`` returns token ids only. After the table, a roofline
line per row of ours: FLOPs computed per generated token (benchmarks/roofline.py), the GFLOP/s
that makes, and a matmul peak measured on this machine at the same thread count.

Prints a table, then as its last line one JSON object. The JSON's main figures are wall-clock
tokens/s; ``per_cpu_second`` holds the same rows per second of this process's CPU time.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import time

import torch
from roofline import gpt_forward_flops, line, lstm_forward_flops, matmul_peak_gflops

from scratchformer import GPT, LSTMLM, CharTokenizer, LSTMConfig, TransformerConfig
from scratchformer.inference.generation import generate_stream, refill_keep
from scratchformer.inference.sampling import SamplingSettings

CORPUS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "data", "tinyshakespeare.txt")
PROMPT = "ROMEO:\n"


def parse_args(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n-layer", type=int, default=6)
    ap.add_argument("--n-head", type=int, default=6)
    ap.add_argument("--n-embd", type=int, default=192)
    ap.add_argument("--block-size", type=int, default=256)
    ap.add_argument("--new-tokens", type=int, default=500)
    ap.add_argument("--lstm-layers", type=int, default=2)
    ap.add_argument("--lstm-embd", type=int, default=192)
    ap.add_argument("--lstm-hidden", type=int, default=0, help="0: chosen to match the GPT's parameters")
    ap.add_argument("--temperature", type=float, default=0.8)
    ap.add_argument("--top-k", type=int, default=40)
    ap.add_argument("--top-p", type=float, default=1.0)
    ap.add_argument("--repeats", type=int, default=3, help="timed runs per row; the median is reported")
    ap.add_argument("--threads", type=int, default=1, help="torch.set_num_threads (1 suits batch 1)")
    ap.add_argument("--skip-hf", action="store_true")
    return ap.parse_args(argv)


def tokenizer() -> CharTokenizer:
    if os.path.exists(CORPUS):
        with open(CORPUS, encoding="utf-8") as f:
            return CharTokenizer.from_text(f.read())
    return CharTokenizer([chr(c) for c in range(32, 97)] + ["\n"])  # 65 characters


def lstm_hidden_for(params: int, vocab: int, embd: int, layers: int) -> int:
    """The hidden size whose LSTMLM has about ``params`` parameters."""
    def count(h):
        lstm = 4 * h * (embd + h) + 8 * h + (layers - 1) * (4 * h * 2 * h + 8 * h)
        return vocab * embd + lstm + h * vocab + vocab
    return min(range(16, 4096), key=lambda h: abs(count(h) - params))


def time_tokens_per_s(runs: dict, repeats: int) -> tuple[dict, dict]:
    """{name: (run, n_tokens)} → ({name: tokens per wall-clock second}, {name: tokens per CPU second}),
    each the median of ``repeats`` timed runs.

    The runs take turns (round-robin), so a burst of load from other processes hits every row alike.
    CPU time (``time.process_time``) counts only this process's own work: on a busy shared machine it
    varies less than wall-clock time; with one thread and an idle machine the two agree.
    """
    for run, n in runs.values():
        run(min(n, 8))  # warm-up
    wall = {name: [] for name in runs}
    cpu = {name: [] for name in runs}
    for _ in range(repeats):
        for name, (run, n) in runs.items():
            w0, c0 = time.perf_counter(), time.process_time()
            run(n)
            wall[name].append(time.perf_counter() - w0)
            cpu[name].append(time.process_time() - c0)
    rate = lambda times: {name: runs[name][1] / statistics.median(t) for name, t in times.items()}  # noqa: E731
    return rate(wall), rate(cpu)


def ours(model, tok, args, use_cache):
    def run(n):
        settings = SamplingSettings(args.temperature, args.top_k, args.top_p)
        for _ in generate_stream(model, tok, PROMPT, settings=settings, max_new_tokens=n, seed=0,
                                 use_cache=use_cache):
            pass
    return run


def gpt_flops_per_token(cfg, prompt_len: int, n: int, use_cache: bool) -> float:
    """FLOPs computed per generated token (roofline.gpt_forward_flops for every position fed), following
    generate_stream's policy: with the cache a prefill of the prompt, one position per step, a
    prefill of refill_keep(block) positions whenever the cache is full; without it, a full pass over
    the last block_size positions every step (causal: position j attends j keys)."""
    f = lambda keys: gpt_forward_flops(cfg.n_layer, cfg.n_embd, cfg.d_ff, cfg.vocab_size, keys)  # noqa: E731
    prefill = lambda m: sum(f(j) for j in range(1, m + 1))  # noqa: E731
    total, cached = 0.0, None
    for i in range(n):
        length = prompt_len + i
        if not use_cache:
            total += prefill(min(length, cfg.block_size))
        elif cached is None or cached >= cfg.block_size:
            cached = min(length, cfg.block_size if cached is None else refill_keep(cfg.block_size))
            total += prefill(cached)
        else:
            cached += 1
            total += f(cached)
    return total / n


# --------------------------------------------------------------------------- Hugging Face GPT-2

def hf_gpt2(gpt: GPT, n_positions: int):
    """A GPT2LMHeadModel with our GPT's weights (GPT-2's Conv1D stores W transposed: [in, out])."""
    from transformers import GPT2Config, GPT2LMHeadModel
    c = gpt.config
    cfg = GPT2Config(vocab_size=c.vocab_size, n_positions=n_positions, n_embd=c.n_embd,
                     n_layer=c.n_layer, n_head=c.n_head, n_inner=c.d_ff, activation_function="gelu",
                     resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0, layer_norm_epsilon=1e-5,
                     bos_token_id=0, eos_token_id=None, pad_token_id=0)
    hf = GPT2LMHeadModel(cfg).eval()
    with torch.no_grad():
        t = hf.transformer
        t.wte.weight.copy_(gpt.embed.tok.weight)
        t.wpe.weight[:c.block_size].copy_(gpt.embed.pos.emb.weight)
        for block, layer in zip(t.h, gpt.layers):
            a = layer.self_attn
            block.ln_1.load_state_dict(layer.norm1.state_dict())
            block.ln_2.load_state_dict(layer.norm2.state_dict())
            block.attn.c_attn.weight.copy_(torch.cat([a.q_proj.weight, a.k_proj.weight, a.v_proj.weight]).T)
            block.attn.c_attn.bias.copy_(torch.cat([a.q_proj.bias, a.k_proj.bias, a.v_proj.bias]))
            block.attn.c_proj.weight.copy_(a.out_proj.weight.T)
            block.attn.c_proj.bias.copy_(a.out_proj.bias)
            block.mlp.c_fc.weight.copy_(layer.ff.linear1.weight.T)
            block.mlp.c_fc.bias.copy_(layer.ff.linear1.bias)
            block.mlp.c_proj.weight.copy_(layer.ff.linear2.weight.T)
            block.mlp.c_proj.bias.copy_(layer.ff.linear2.bias)
        t.ln_f.load_state_dict(gpt.ln_f.state_dict())
    return hf


def hf_runner(hf, ids, args):
    def run(n):
        torch.manual_seed(0)  # HF samples from the global generator
        hf.generate(ids, max_new_tokens=n, min_new_tokens=n, do_sample=True, top_k=args.top_k,
                    top_p=args.top_p, temperature=args.temperature, use_cache=True, pad_token_id=0)
    return run


def main(argv=None):
    args = parse_args(argv)
    torch.set_num_threads(args.threads)
    tok = tokenizer()
    torch.manual_seed(0)
    gpt = GPT(TransformerConfig(vocab_size=tok.vocab_size, n_layer=args.n_layer, n_head=args.n_head,
                                n_embd=args.n_embd, block_size=args.block_size, norm_first=True,
                                activation="gelu")).eval()
    hidden = args.lstm_hidden or lstm_hidden_for(gpt.num_params(), tok.vocab_size, args.lstm_embd,
                                                 args.lstm_layers)
    lstm = LSTMLM(LSTMConfig(vocab_size=tok.vocab_size, n_embd=args.lstm_embd, hidden=hidden,
                             n_layer=args.lstm_layers)).eval()
    n, n_in = args.new_tokens, args.block_size - len(tok.encode(PROMPT))
    runs = {  # name: (run, tokens)
        "ours GPT, KV cache": (ours(gpt, tok, args, True), n),
        "ours GPT, full recompute": (ours(gpt, tok, args, False), n),
        f"ours LSTM (hidden {hidden})": (ours(lstm, tok, args, True), n),
        "ours GPT, KV cache, inside one block": (ours(gpt, tok, args, True), n_in),
    }
    max_diff = hf_error = None
    if args.skip_hf:
        hf_error = "skipped"
    else:
        try:
            import transformers  # noqa: F401
        except ImportError as e:
            hf_error = f"transformers not importable ({e}); pip install transformers"
    if hf_error is None:
        ids = torch.tensor([tok.encode(PROMPT)])
        hf = hf_gpt2(gpt, args.block_size)
        with torch.no_grad():
            probe = torch.randint(0, tok.vocab_size, (1, args.block_size),
                                  generator=torch.Generator().manual_seed(1))
            max_diff = (hf(probe).logits - gpt(probe).logits).abs().max().item()
        runs[f"HF GPT-2 generate (n_positions {ids.size(1) + n})"] = (
            hf_runner(hf_gpt2(gpt, ids.size(1) + n), ids, args), n)
        runs["HF GPT-2 generate, inside one block"] = (hf_runner(hf, ids, args), n_in)
    tps, tps_cpu = time_tokens_per_s(runs, args.repeats)
    kv, rc, ls, kv_in = list(tps.values())[:4]
    hf_tps, hf_in = (list(tps.values())[4:] + [None, None])[:2]

    print(f"GPT: {args.n_layer} layers, {args.n_head} heads, {args.n_embd} dims, block {args.block_size}, "
          f"{gpt.num_params() / 1e6:.2f}M params; LSTM: {args.lstm_layers}×{hidden}, "
          f"{lstm.num_params() / 1e6:.2f}M params")
    print(f"batch 1, CPU, torch {torch.__version__}, {torch.get_num_threads()} thread(s); T={args.temperature}, "
          f"top_k={args.top_k}, top_p={args.top_p}; median of {args.repeats} runs, taken in turns")
    print(f"{'':44s} {'tokens':>7s} {'tokens/s':>10s} {'tokens/CPU-s':>13s}")
    for name, (_, toks) in runs.items():
        print(f"{name:44s} {toks:7d} {tps[name]:10.1f} {tps_cpu[name]:13.1f}")
    if hf_error:
        print(f"HF GPT-2: missing — {hf_error}")
    else:
        print(f"max |logits ours − HF GPT-2| with copied weights: {max_diff:.2e}")
    peak = matmul_peak_gflops()
    prompt_len, cfg = len(tok.encode(PROMPT)), gpt.config
    roof = {}
    for label, flops, rate in (
            ("ours GPT, KV cache", gpt_flops_per_token(cfg, prompt_len, n, True), kv),
            ("ours GPT, full recompute", gpt_flops_per_token(cfg, prompt_len, n, False), rc),
            ("ours LSTM", lstm_forward_flops(args.lstm_layers, args.lstm_embd, hidden, tok.vocab_size), ls)):
        text, roof[label] = line(label, flops, rate, peak)
        print(text)
    result = {
        "kv_cache_tokens_per_s": round(kv, 1), "recompute_tokens_per_s": round(rc, 1),
        "lstm_tokens_per_s": round(ls, 1),
        "hf_gpt2_tokens_per_s": None if hf_tps is None else round(hf_tps, 1),
        "speedup": round(kv / rc, 2),
        "kv_cache_vs_hf": None if hf_tps is None else round(kv / hf_tps, 2),
        "kv_cache_in_block_tokens_per_s": round(kv_in, 1),
        "hf_gpt2_in_block_tokens_per_s": None if hf_in is None else round(hf_in, 1),
        "max_logit_diff_vs_hf": max_diff, "hf_error": hf_error,
        "per_cpu_second": {name: round(v, 1) for name, v in tps_cpu.items()},
        "new_tokens": n, "in_block_tokens": n_in, "threads": torch.get_num_threads(),
        "gpt": {"n_layer": args.n_layer, "n_head": args.n_head, "n_embd": args.n_embd,
                "block_size": args.block_size, "params": gpt.num_params()},
        "lstm": {"n_layer": args.lstm_layers, "n_embd": args.lstm_embd, "hidden": hidden,
                 "params": lstm.num_params()},
        "sampling": {"temperature": args.temperature, "top_k": args.top_k, "top_p": args.top_p},
        "roofline": roof,
    }
    print(json.dumps(result))


if __name__ == "__main__":
    main()
