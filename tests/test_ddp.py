"""DistributedDataParallel: two CPU processes (gloo) train a few steps and end with identical weights.

The training runs under tests/ddp_rank_state.py, which records what each rank saw and ended with."""
import json
import os
import subprocess
import sys
from pathlib import Path

from scratchformer.training import data as D

ROOT = Path(__file__).resolve().parent.parent


def test_two_gloo_ranks_end_identical(tmp_path):
    corpus = tmp_path / "small.txt"
    corpus.write_text(D.load_corpus()[:20_000], encoding="utf-8")
    dump = tmp_path / "ranks"
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
           str(ROOT / "tests" / "ddp_rank_state.py"), str(dump),
           "--model", "gpt", "--out", str(tmp_path / "ck"), "--data", str(corpus),
           "--n-layer", "1", "--n-head", "2", "--n-embd", "16", "--block-size", "16", "--batch-size", "4",
           "--max-iters", "6", "--eval-interval", "3", "--eval-iters", "2", "--lr", "1e-2", "--threads", "1",
           "--device", "cpu", "--no-final-eval"]
    res = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=120,
                         env={**os.environ, "OMP_NUM_THREADS": "1",  # the script's folder is tests/, so:
                              "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))})
    assert res.returncode == 0, res.stdout[-2000:] + res.stderr[-4000:]
    ranks = [json.loads((dump / f"rank{r}.json").read_text()) for r in (0, 1)]
    assert [r["world"] for r in ranks] == [2, 2] and [r["iters"] for r in ranks] == [6, 6]
    assert ranks[0]["first_batch_sum"] != ranks[1]["first_batch_sum"]  # each rank saw different data
    assert ranks[0]["sha256"] == ranks[1]["sha256"]                    # yet the replicas agree
    # only rank 0 wrote the checkpoint, and it counts both ranks' tokens
    metrics = json.loads((tmp_path / "ck" / "metrics.json").read_text())
    assert metrics["tokens_seen"] == 6 * 2 * 4 * 16 and "x 2 processes" in metrics["hardware"]
