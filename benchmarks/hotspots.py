"""Where the time goes: a profile summary of the hot paths the speed benchmarks measure.

    python benchmarks/hotspots.py [--only generate,train_gpt,train_lstm,attention] [--rows 12]

For each path, two views of the same work (1 thread, the shipped checkpoints' sizes, random weights):

* torch.profiler: the PyTorch operators by self CPU time (what the arithmetic and the dispatcher cost);
* cProfile: the Python functions by own time (what the interpreter costs around the operators).

Paths: ``generate`` — 200 tokens of KV-cache generation with its Step records (GPT 4×128, block 128);
``train_gpt`` / ``train_lstm`` — 5 training steps at nanoGPT's CPU configuration (batch 12 × 64);
``attention`` — the app's attention callback (both passes and every figure) for 128 characters.
Not a benchmark: the numbers are only comparable within one run.
"""
from __future__ import annotations

import argparse
import cProfile
import io
import pstats
import time

import torch
from torch.profiler import ProfilerActivity, profile

from scratchformer import GPT, LSTMLM, CharTokenizer, LSTMConfig, TransformerConfig
from scratchformer.inference.generation import generate_stream
from scratchformer.inference.sampling import SamplingSettings

CHARS = "\n !$&',-.3:;?ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"


def gpt(**kw) -> GPT:
    torch.manual_seed(0)
    return GPT(TransformerConfig(vocab_size=65, n_layer=4, n_head=4, n_embd=128, block_size=128, **kw))


def lstm() -> LSTMLM:
    torch.manual_seed(0)
    return LSTMLM(LSTMConfig(vocab_size=65, n_embd=64, hidden=248, n_layer=2, block_size=64))


def path_generate():
    model, tok = gpt().eval(), CharTokenizer(list(CHARS))
    settings = SamplingSettings(0.8, 40, 0.95)
    return lambda: [None for _ in generate_stream(model, tok, "ROMEO:\n", settings=settings,
                                                  max_new_tokens=200, seed=0)]


def path_train(model):
    model.train()
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    gen = torch.Generator().manual_seed(0)

    def run():
        for _ in range(5):
            x = torch.randint(0, 65, (12, 65), generator=gen)
            loss = model(x[:, :-1], x[:, 1:]).loss
            opt.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            opt.step()
    return run


def path_attention():
    from scratchformer.app.bank import ModelBank
    from scratchformer.app.inspect_tabs import attention
    bank = ModelBank.load()
    text = ("JULIET:\nO Romeo, Romeo! wherefore art thou Romeo?\nDeny thy father and refuse thy name;\n"
            "Or, if thou wilt not, be but sworn my love,\nAnd I'll")[:128]
    return lambda: attention(bank, text, True, 1, 1, False)


PATHS = {"generate": path_generate, "train_gpt": lambda: path_train(gpt()),
         "train_lstm": lambda: path_train(lstm()), "attention": path_attention}


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--only", default=",".join(PATHS))
    ap.add_argument("--rows", type=int, default=12)
    args = ap.parse_args(argv)
    torch.set_num_threads(1)
    for name in args.only.split(","):
        run = PATHS[name]()
        run()  # warm-up
        t0 = time.perf_counter()
        run()
        wall = time.perf_counter() - t0
        with profile(activities=[ProfilerActivity.CPU]) as prof:
            run()
        pr = cProfile.Profile()
        pr.enable()
        run()
        pr.disable()
        print(f"\n=== {name}: {1000 * wall:.1f} ms unprofiled ===")
        print(prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=args.rows,
                                        max_name_column_width=40))
        s = io.StringIO()
        pstats.Stats(pr, stream=s).sort_stats("tottime").print_stats(args.rows)
        print("\n".join(line for line in s.getvalue().splitlines()[4:] if line.strip()))


if __name__ == "__main__":
    main()
