"""Training data: the tiny-Shakespeare corpus, its train/validation split, and random batches.

The split follows nanoGPT so that losses compare with its published ones: the whole text is encoded,
the first 90% of the ids are for training and the last 10% for validation.

A language-model batch is ``block_size + 1`` consecutive characters starting at a random offset:
the input ``x`` is the first ``block_size`` of them and the target ``y`` the same window shifted by one,
so position t learns to predict character t+1 from characters ≤ t.

Extension point (other tasks): a task is a function ``batch_fn(split, batch_size, generator) ->
tuple of tensors`` plus a loss computed by the model's ``forward``. Synthetic tasks (dates for the
encoder-decoder, masked characters for the BERT-style model) live in :mod:`scratchformer.training.tasks`;
:mod:`scratchformer.training.train` picks the task from its model registry (see ``MODEL_KINDS`` there).
"""
from __future__ import annotations

from pathlib import Path
from typing import Optional

import torch
from torch import Tensor

from ..tokenizers import CharTokenizer

DEFAULT_CORPUS = Path(__file__).resolve().parents[2] / "data" / "tinyshakespeare.txt"
TRAIN_FRACTION = 0.9


def load_corpus(path: str | Path | None = None) -> str:
    """The text of ``path`` (default: data/tinyshakespeare.txt). ValueError naming a missing file."""
    path = Path(path) if path is not None else DEFAULT_CORPUS
    if not path.is_file():
        raise ValueError(f"corpus file {path} does not exist")
    return path.read_text(encoding="utf-8")


def default_tokenizer(text: Optional[str] = None) -> CharTokenizer:
    """The character vocabulary of the corpus (65 characters for tiny Shakespeare), sorted."""
    return CharTokenizer.from_text(load_corpus() if text is None else text)


def encode_corpus(text: str, tokenizer: CharTokenizer) -> Tensor:
    """All of ``text`` as a 1-D tensor of ids (int64)."""
    return torch.tensor(tokenizer.encode(text), dtype=torch.long)


def split(data: Tensor | str, tokenizer: Optional[CharTokenizer] = None) -> tuple[Tensor, Tensor]:
    """(train, val): the first 90% of the ids and the last 10%, cut at ``int(0.9 · n)`` like nanoGPT.

    ``data`` is the encoded corpus, or the raw text (encoded with ``tokenizer``, by default the text's
    own character vocabulary).
    """
    if isinstance(data, str):
        data = encode_corpus(data, tokenizer or default_tokenizer(data))
    n = int(TRAIN_FRACTION * len(data))
    return data[:n], data[n:]


def get_batch(data: Tensor, batch_size: int, block_size: int, generator: Optional[torch.Generator] = None,
              device: torch.device | str = "cpu") -> tuple[Tensor, Tensor]:
    """``batch_size`` random windows of ``data`` → (x [B, T], y [B, T]), y the next character of x:

    x = data[i : i+T], y = data[i+1 : i+T+1] for random offsets i (drawn with ``generator``).
    """
    if len(data) <= block_size:
        raise ValueError(f"data has {len(data)} tokens; block_size must be below that (got {block_size})")
    ix = torch.randint(len(data) - block_size, (batch_size,), generator=generator)
    offsets = torch.arange(block_size + 1)
    windows = data[ix[:, None] + offsets]          # [B, T+1]
    x, y = windows[:, :-1].contiguous(), windows[:, 1:].contiguous()
    device = torch.device(device)
    if device.type == "cuda":
        return x.pin_memory().to(device, non_blocking=True), y.pin_memory().to(device, non_blocking=True)
    return x.to(device), y.to(device)


def sequential_batches(data: Tensor, batch_size: int, block_size: int):
    """Every non-overlapping window of ``data`` in order, ``batch_size`` at a time: yields (x, y).

    Used for the exact validation loss: windows start at 0, T, 2T, …; the last partial window is
    dropped (fewer than T characters are left out of ~111k).
    """
    n_windows = (len(data) - 1) // block_size
    for start in range(0, n_windows, batch_size):
        idx = torch.arange(start, min(start + batch_size, n_windows)) * block_size
        offsets = torch.arange(block_size + 1)
        windows = data[idx[:, None] + offsets]
        yield windows[:, :-1], windows[:, 1:]
