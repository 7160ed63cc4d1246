"""Snapshots: a model as it was at a dozen steps of its training, to watch it learn.

A checkpoint folder (:mod:`.checkpoint`) may hold a ``snapshots/`` folder written by the trainer
(``python -m scratchformer.train … --snapshots 12``):

* ``snapshots/step_000250.safetensors`` — the weights after 250 optimizer steps, in float16 (half the
  file; a 0.8M-parameter model's snapshot is 1.6 MB), read back into float32 parameters;
* ``snapshots/snapshots.json`` — ``{"format_version": 1, "snapshots": [{"step", "tokens",
  "train_loss", "val_loss", "file"}, …]}`` in step order; the losses are the trainer's estimates
  at that step (nats per token).

The steps are log-spaced (:func:`snapshot_steps`): a model changes most at the start, so 0, 1, 3, 10,
30, 100 … show more than twelve evenly spaced steps would. The config and the tokenizer are the
folder's own (a snapshot is the same network at another step).

Reading the index needs no torch; :func:`load_snapshot` imports it.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING

from .checkpoint import (CheckpointError, LoadedModel, atomic_save_tensors, atomic_write_text, load_weights_into,
                         model_tensors, read_config, read_tensors)
from .model.registry import build_model

if TYPE_CHECKING:
    import torch
    from torch import nn

SNAPSHOT_DIR, SNAPSHOT_INDEX, FORMAT_VERSION = "snapshots", "snapshots.json", 1
MAX_SNAPSHOTS = 64


def snapshot_steps(max_iters: int, count: int) -> list[int]:
    """``count`` steps from 0 to ``max_iters``, log-spaced: 0, then round(max_iters^(i/(count−2)))
    for i = 0 … count−2 (1 … max_iters), duplicates merged (so a short training may get fewer)."""
    if count < 1:
        return []
    if count == 1 or max_iters < 1:
        return [0]
    steps = {0, max_iters}
    for i in range(count - 1 if count > 2 else 0):
        steps.add(round(max_iters ** (i / (count - 2))))
    return sorted(steps)


def snapshot_file(step: int) -> str:
    return f"step_{step:06d}.safetensors"


def read_snapshots(path: str | Path) -> list[dict]:
    """The snapshots of checkpoint folder ``path``, in step order ([] when it has none). CheckpointError
    naming the file when the index is unreadable or lists a file that is not there."""
    index = Path(path) / SNAPSHOT_DIR / SNAPSHOT_INDEX
    if not index.is_file():
        return []
    try:
        data = json.loads(index.read_text(encoding="utf-8"))
        records = [dict(r) for r in data["snapshots"]]
        for r in records:
            r["step"] = int(r["step"])
            if not isinstance(r.get("file"), str) or "/" in r["file"] or "\\" in r["file"]:
                raise ValueError(f"step {r['step']}: bad file name {r.get('file')!r}")
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise CheckpointError(f"{index}: cannot read the snapshot index ({e})") from None
    for r in records:
        if not (index.parent / r["file"]).is_file():
            raise CheckpointError(f"{index.parent / r['file']}: file is missing (listed for step {r['step']})")
    return sorted(records, key=lambda r: r["step"])


def save_snapshot(path: str | Path, model: nn.Module, step: int, record: dict) -> None:
    """Write the model as it is now as the snapshot of ``step`` (float16) and list it in the index with
    ``record`` (tokens seen, losses). A snapshot of the same step is replaced."""
    import torch
    folder = Path(path) / SNAPSHOT_DIR
    folder.mkdir(parents=True, exist_ok=True)
    tensors = {k: v.to(torch.float16) if v.is_floating_point() else v for k, v in model_tensors(model).items()}
    atomic_save_tensors(folder / snapshot_file(step), tensors, metadata={"format": "pt", "step": str(step)})
    records = [r for r in read_snapshots(path) if r["step"] != step]
    records.append({"step": int(step), **{k: v for k, v in record.items() if k not in ("step", "file")},
                    "file": snapshot_file(step)})
    records.sort(key=lambda r: r["step"])
    atomic_write_text(folder / SNAPSHOT_INDEX, json.dumps({"format_version": FORMAT_VERSION, "snapshots": records},
                                                         indent=1) + "\n")


def load_snapshot(path: str | Path, step: int, device: str | torch.device = "cpu") -> LoadedModel:
    """The model of checkpoint folder ``path`` as it was at training step ``step`` (float32, eval mode,
    no gradients). CheckpointError naming the folder and the steps it has when there is no such
    snapshot, or naming the file when it is broken."""
    path = Path(path)
    records = {r["step"]: r for r in read_snapshots(path)}
    if step not in records:
        have = ", ".join(map(str, records)) or "none"
        raise CheckpointError(f"{path}: no snapshot of step {step} (steps: {have})")
    config, tokenizer = read_config(path)
    file = path / SNAPSHOT_DIR / records[step]["file"]
    tensors = {k: v.float() if v.is_floating_point() else v for k, v in read_tensors(file).items()}
    model = build_model(config)
    load_weights_into(model, tensors, file)
    model.to(device).eval()
    for p in model.parameters():
        p.requires_grad_(False)
    metrics = {k: v for k, v in records[step].items() if k != "file"}
    return LoadedModel(model=model, tokenizer=tokenizer, config=config, metrics=metrics, path=path)
