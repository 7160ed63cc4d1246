"""Byte-level BPE speed on tiny Shakespeare (1.1 MB): our from-scratch trainer and encoder
(scratchformer/tokenizers/bpe.py) against the `tokenizers` library (Rust) on the same vocabulary.

    python benchmarks/tokenizer.py [--vocab 2048] [--repeats 3]

Goals (issue 21, this 2-core machine): encode the corpus in ≤ 2 s (cold: an empty cache of pieces),
train its merges in ≤ 60 s. The library is optional (`pip install tokenizers`); without it the ratios
are left out. Prints a table, then one JSON line.
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time

from scratchformer.tokenizers.bpe import BPETokenizer
from scratchformer.training.data import load_corpus


def median_time(fn, repeats: int) -> tuple[float, object]:
    times, result = [], None
    for _ in range(repeats):
        t0 = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times), result


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--vocab", type=int, default=2048)
    p.add_argument("--repeats", type=int, default=3)
    args = p.parse_args(argv)
    text = load_corpus()
    train_s, tok = median_time(lambda: BPETokenizer.train(text, args.vocab), args.repeats)

    def cold_encode():
        tok._cache.clear()
        return tok.encode(text)
    encode_s, ids = median_time(cold_encode, args.repeats)
    assert tok.decode(ids) == text
    row = {"vocab_size": tok.vocab_size, "corpus_chars": len(text), "corpus_tokens": len(ids),
           "chars_per_token": round(len(text) / len(ids), 3), "train_s": round(train_s, 3),
           "encode_s": round(encode_s, 3)}
    try:
        import tokenizers as hf
    except ImportError:
        hf = None
    if hf is not None:
        ref = hf.ByteLevelBPETokenizer()
        hf_train_s, _ = median_time(lambda: ref.train_from_iterator([text], vocab_size=args.vocab, min_frequency=1,
                                                                     show_progress=False), args.repeats)
        with tempfile.TemporaryDirectory() as d:
            vocab, merges = tok.save_gpt2_files(d)
            same = hf.ByteLevelBPETokenizer(str(vocab), str(merges))
            hf_encode_s, enc = median_time(lambda: same.encode(text), args.repeats)
        row.update(hf_version=hf.__version__, hf_train_s=round(hf_train_s, 3), hf_encode_s=round(hf_encode_s, 3),
                   train_vs_hf=round(train_s / hf_train_s, 2), encode_vs_hf=round(encode_s / hf_encode_s, 2),
                   same_ids_as_hf=enc.ids == ids)
    row.update(goal_encode_s=2.0, goal_train_s=60.0,
               meets_goals=row["encode_s"] <= 2.0 and row["train_s"] <= 60.0)
    print(f"{'':28}{'ours':>10}{'tokenizers':>12}{'ours ÷ library':>16}")
    print(f"{'train merges (s)':28}{row['train_s']:>10.3f}{row.get('hf_train_s', float('nan')):>12.3f}"
          f"{row.get('train_vs_hf', float('nan')):>16.2f}")
    print(f"{'encode corpus, cold (s)':28}{row['encode_s']:>10.3f}{row.get('hf_encode_s', float('nan')):>12.3f}"
          f"{row.get('encode_vs_hf', float('nan')):>16.2f}")
    print(f"vocabulary {row['vocab_size']:,}; {row['corpus_chars']:,} characters → {row['corpus_tokens']:,} tokens "
          f"({row['chars_per_token']} characters per token); same ids as the library: {row.get('same_ids_as_hf')}")
    print(json.dumps(row))
    return row


if __name__ == "__main__":
    sys.exit(0 if main()["meets_goals"] else 1)
