"""Training data: the tiny-Shakespeare corpus, its train/validation split, and random batches.

The split follows nanoGPT so that losses compare with its published ones: the first 90% of the
*characters* are for training and the last 10% for validation (:func:`split_text`). Each part is
encoded on its own, so a character model and a BPE model train and are measured on exactly the same
text (for characters this is nanoGPT's cut of the ids at 90%).

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

from ..tokenizers import BPETokenizer, CharTokenizer, Tokenizer, tokenizer_from_dict

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


def split_text(text: str) -> tuple[str, str]:
    """(train, val) text: the first 90% of the characters, cut at ``int(0.9 · n)``, and the rest."""
    n = int(TRAIN_FRACTION * len(text))
    return text[:n], text[n:]


def corpus_tokenizer(spec: str, text: str) -> Tokenizer:
    """The tokenizer ``--tokenizer SPEC`` names, for a corpus whose training split is ``text``:

    * ``char``: the sorted characters of the text (65 for tiny Shakespeare);
    * ``bpe:N``: a byte-level BPE of N tokens trained on ``text`` (the training split only: the
      validation text must not shape the vocabulary it is measured with);
    * a path to a JSON file holding a tokenizer (``{"type": "bpe", …}``, as ``to_dict`` writes), or
      a checkpoint folder (its ``config.json``'s tokenizer: a second model on the first one's tokens).
    """
    if spec == "char":
        return CharTokenizer.from_text(text)
    if spec.startswith("bpe:"):
        try:
            size = int(spec[4:])
        except ValueError:
            raise ValueError(f"--tokenizer bpe:N needs a whole number N, got {spec!r}") from None
        return BPETokenizer.train(text, size)
    path = Path(spec)
    if path.is_dir():
        path = path / "config.json"
    if not path.is_file():
        raise ValueError(f"--tokenizer must be 'char', 'bpe:N', a tokenizer JSON file or a checkpoint folder; "
                         f"{spec!r} is none of them")
    import json
    d = json.loads(path.read_text(encoding="utf-8"))
    return tokenizer_from_dict(d["tokenizer"] if isinstance(d, dict) and "tokenizer" in d else d)


def encode_corpus(text: str, tokenizer: Tokenizer) -> Tensor:
    """All of ``text`` as a 1-D tensor of ids (int64)."""
    return torch.tensor(tokenizer.encode(text), dtype=torch.long)


def split(data: Tensor | str, tokenizer: Optional[Tokenizer] = None) -> tuple[Tensor, Tensor]:
    """(train, val) ids. ``data`` is the raw text (cut by :func:`split_text`, each part encoded with
    ``tokenizer``, by default the text's own character vocabulary), or ids already encoded one per
    character (cut at ``int(0.9 · n)`` like nanoGPT: the same cut).
    """
    if isinstance(data, str):
        tokenizer = tokenizer or default_tokenizer(data)
        train_text, val_text = split_text(data)
        return encode_corpus(train_text, tokenizer), encode_corpus(val_text, tokenizer)
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
