"""For tests/test_ddp.py, run under torchrun: ``python -m torch.distributed.run … tests/ddp_rank_state.py
DUMP_DIR <the arguments of python -m scratchformer.train>``.

It runs the unchanged training (``scratchformer.training.train.train``) and watches it from outside:
the model it trains (the one handed to ``make_optimizer``) and the batches its training steps draw
(those drawn while that model is in training mode; ``estimate_loss`` draws its own in eval mode). At
the end each rank writes DUMP_DIR/rank{RANK}.json: its rank and world size, the SHA-256 of its final
weights, the sum of its first training batch's inputs and how many training batches it drew.
"""
import hashlib
import json
import os
import sys
from dataclasses import replace
from pathlib import Path

import torch

from scratchformer.training import train as T


def main(dump: Path, argv: list[str]) -> None:
    args = T.parse_args(argv)
    models, seen = [], {"first_batch_sum": None, "iters": 0}

    make_optimizer = T.make_optimizer

    def watched_make_optimizer(model, *args, **kwargs):
        models.append(model)
        return make_optimizer(model, *args, **kwargs)

    kind = T.MODEL_KINDS[args.model]

    def watched_make_task(args, device):
        batch_fn, tok, splits = kind.make_task(args, device)

        def watched_batch_fn(split, batch_size, gen):
            batch = batch_fn(split, batch_size, gen)
            if split == "train" and models[-1].training:   # a training step's batch, not estimate_loss's
                if seen["first_batch_sum"] is None:
                    seen["first_batch_sum"] = int(batch[0].sum())
                seen["iters"] += 1
            return batch

        return watched_batch_fn, tok, splits

    T.make_optimizer = watched_make_optimizer
    T.MODEL_KINDS[args.model] = replace(kind, make_task=watched_make_task)
    T.train(args)

    rank, world = int(os.environ.get("RANK", "0")), int(os.environ.get("WORLD_SIZE", "1"))
    flat = torch.cat([p.detach().float().reshape(-1).cpu() for p in models[-1].parameters()])
    dump.mkdir(parents=True, exist_ok=True)
    (dump / f"rank{rank}.json").write_text(json.dumps(
        {"rank": rank, "world": world, "sha256": hashlib.sha256(flat.numpy().tobytes()).hexdigest(), **seen}))


if __name__ == "__main__":
    main(Path(sys.argv[1]), sys.argv[2:])
