"""Copy a checkpoint folder with its weights stored in float16 (half the size on disk).

    python scripts/half_checkpoint.py checkpoints/gpt-shakespeare-large runs/gpt-large-fp16

The copy loads like any checkpoint (the weights come back as float32 parameters); its validation loss
should be re-measured with ``python -m scratchformer.evaluate OUT`` (rounding to fp16 moves it slightly).
"""
import argparse
import json
from pathlib import Path

import torch

from scratchformer.checkpoint import METRICS_FILE, load_checkpoint, save_checkpoint


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("checkpoint", type=Path)
    ap.add_argument("out", type=Path)
    args = ap.parse_args(argv)
    loaded = load_checkpoint(args.checkpoint)
    metrics = dict(loaded.metrics, weights_dtype="float16", converted_from=str(args.checkpoint))
    save_checkpoint(args.out, loaded.model, loaded.tokenizer, metrics, dtype=torch.float16)
    size = (args.out / "model.safetensors").stat().st_size
    print(json.dumps({"out": str(args.out), "bytes": size, "metrics": str(args.out / METRICS_FILE)}))


if __name__ == "__main__":
    main()
