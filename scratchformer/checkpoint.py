"""Checkpoints: a folder holding ``model.safetensors``, ``config.json`` and ``metrics.json``.

* ``model.safetensors`` — the weights, by parameter name. safetensors stores raw tensors only, so
  loading never runs code (no pickle, no ``torch.load``). A tied output head (``lm_head.weight`` is the
  token-embedding matrix) is stored once and tied again on load.
* ``config.json`` — ``{"format_version": 1, "model": <architecture>, "tokenizer": <vocabulary>}``.
* ``metrics.json`` — how it was trained and how well it does (see ``scratchformer.train``).

Every file is written to a temporary name first and then renamed (``os.replace``), so a crash while
saving never leaves a half-written checkpoint behind. Loading checks everything it reads and raises
:class:`CheckpointError` naming the file and what is wrong.

Reading the JSON files (:func:`read_config`, :func:`read_metrics`) needs no torch; the functions that
touch tensors import it (and the networks) when called. Importing torch takes about a second, and the
app lays out its page from the configs before it loads any weights (scratchformer/app/bank.py).
"""
from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Union

from .model.config import LSTMConfig, TransformerConfig
from .model.registry import build_model, config_from_dict
from .tokenizers import Tokenizer, tokenizer_from_dict

if TYPE_CHECKING:           # annotations only: torch itself is imported by the functions that use it
    import torch
    from torch import nn

FORMAT_VERSION = 1
WEIGHTS_FILE, CONFIG_FILE, METRICS_FILE = "model.safetensors", "config.json", "metrics.json"
ModelConfig = Union[TransformerConfig, LSTMConfig]   # or any registered family's config (model/registry.py)


class CheckpointError(ValueError):
    """A checkpoint folder that cannot be loaded; the message names the file and the problem."""


@dataclass
class LoadedModel:
    """A model ready for inference (eval mode, no gradients) with its tokenizer and records."""

    model: nn.Module
    tokenizer: Tokenizer
    config: ModelConfig
    metrics: dict = field(default_factory=dict)
    path: Path = Path(".")


# ----------------------------------------------------------------------------------- configs, models
# The config class and the network of each model_type come from the registry (model/registry.py):
# config_from_dict and build_model are imported from there.

def _tied_names(model: nn.Module) -> set[str]:
    """Names of parameters that are the same tensor as an earlier one (stored once)."""
    seen, tied = {}, set()
    for name, p in model.named_parameters(remove_duplicate=False):
        if id(p) in seen:
            tied.add(name)
        else:
            seen[id(p)] = name
    return tied


def model_tensors(model: nn.Module) -> dict[str, torch.Tensor]:
    """The state dict to store: tied duplicates dropped, every tensor contiguous on the CPU."""
    tied = _tied_names(model)
    return {k: v.detach().to("cpu").contiguous() for k, v in model.state_dict().items() if k not in tied}


# -------------------------------------------------------------------------------------------- saving

def atomic_write_text(path: Path, text: str) -> None:
    """Write to a temporary name, then rename over ``path``: a reader never sees half a file."""
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


def atomic_save_tensors(path: Path, tensors: dict[str, torch.Tensor], metadata: dict | None = None) -> None:
    """safetensors ``save_file`` to a temporary name, then rename over ``path``."""
    from safetensors.torch import save_file
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    save_file(tensors, str(tmp), metadata=metadata)
    os.chmod(tmp, 0o644)  # readable like the JSON files next to it
    os.replace(tmp, path)


def save_checkpoint(path: str | Path, model: nn.Module, tokenizer: Tokenizer, metrics: dict,
                    dtype: torch.dtype | None = None) -> None:
    """Write ``model.safetensors``, ``config.json`` and ``metrics.json`` into the folder ``path``.

    ``model_type`` and ``params`` are added to the metrics when missing. ``dtype=torch.float16`` stores
    the weights in half precision (half the file; a Space needs Git LFS, or Xet, for files over 10 MB);
    :func:`load_checkpoint` reads them back into the model's float32 parameters.
    """
    from .model.basics import num_params
    if dtype is not None and not dtype.is_floating_point:
        raise ValueError(f"dtype must be a floating-point dtype such as torch.float16, got {dtype}")
    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    cfg = model.config
    metrics = {"model_type": cfg.model_type, "params": num_params(model), **metrics}
    tensors = model_tensors(model)
    if dtype is not None:
        tensors = {k: v.to(dtype) if v.is_floating_point() else v for k, v in tensors.items()}
    atomic_save_tensors(path / WEIGHTS_FILE, tensors, metadata={"format": "pt"})
    config = {"format_version": FORMAT_VERSION, "model": cfg.to_dict(), "tokenizer": tokenizer.to_dict()}
    atomic_write_text(path / CONFIG_FILE, json.dumps(config, indent=2) + "\n")
    atomic_write_text(path / METRICS_FILE, json.dumps(metrics, indent=2) + "\n")


# ------------------------------------------------------------------------------------------- loading

def _read_json(file: Path) -> dict:
    if not file.is_file():
        raise CheckpointError(f"{file}: file is missing")
    try:
        data = json.loads(file.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise CheckpointError(f"{file}: not valid JSON ({e})") from None
    if not isinstance(data, dict):
        raise CheckpointError(f"{file}: expected a JSON object, got {type(data).__name__}")
    return data


def read_config(path: str | Path) -> tuple[ModelConfig, Tokenizer]:
    """Parse and check ``config.json`` of the checkpoint folder ``path``."""
    file = Path(path) / CONFIG_FILE
    data = _read_json(file)
    version = data.get("format_version")
    if version != FORMAT_VERSION:
        raise CheckpointError(f"{file}: format_version {version!r} is not supported (expected {FORMAT_VERSION})")
    for key in ("model", "tokenizer"):
        if not isinstance(data.get(key), dict):
            raise CheckpointError(f"{file}: missing or invalid {key!r} section")
    try:
        config = config_from_dict(data["model"])
    except (ValueError, TypeError) as e:
        raise CheckpointError(f"{file}: invalid model config: {e}") from None
    try:
        tokenizer = tokenizer_from_dict(data["tokenizer"])
    except (ValueError, TypeError, KeyError) as e:
        raise CheckpointError(f"{file}: invalid tokenizer: {e}") from None
    if tokenizer.vocab_size != config.vocab_size:
        raise CheckpointError(f"{file}: tokenizer has {tokenizer.vocab_size} symbols but the model's "
                              f"vocab_size is {config.vocab_size}")
    return config, tokenizer


def read_metrics(path: str | Path) -> dict:
    """``metrics.json`` of the checkpoint folder ``path``; {} when the folder has none."""
    file = Path(path) / METRICS_FILE
    return _read_json(file) if file.exists() else {}


def read_tensors(file: Path) -> dict[str, torch.Tensor]:
    """Load a safetensors file on the CPU, turning any failure into a CheckpointError naming it."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file
    if not file.is_file():
        raise CheckpointError(f"{file}: file is missing")
    try:
        return load_file(str(file), device="cpu")
    except (SafetensorError, OSError, ValueError, RuntimeError) as e:
        raise CheckpointError(f"{file}: cannot read tensors, the file is truncated or corrupt ({e})") from None


def load_weights_into(model: nn.Module, tensors: dict[str, torch.Tensor], file: Path, assign: bool = False) -> None:
    """Copy ``tensors`` into ``model`` after checking names and shapes; CheckpointError on mismatch.
    ``assign``: make the tensors themselves the model's parameters (a model built on "meta")."""
    tied = _tied_names(model)
    expected = {k: v for k, v in model.state_dict().items() if k not in tied}
    missing = sorted(set(expected) - set(tensors))
    unexpected = sorted(set(tensors) - set(expected))
    if missing:
        raise CheckpointError(f"{file}: missing tensors {missing[:5]}{' …' if len(missing) > 5 else ''} "
                              "for this config")
    if unexpected:
        raise CheckpointError(f"{file}: unexpected tensors {unexpected[:5]}"
                              f"{' …' if len(unexpected) > 5 else ''} for this config")
    for name, want in expected.items():
        got = tensors[name]
        if tuple(got.shape) != tuple(want.shape):
            raise CheckpointError(f"{file}: tensor {name!r} has shape {tuple(got.shape)} but the config "
                                  f"needs {tuple(want.shape)}")
    # strict=False only because tied duplicates are absent from the file; they are the same tensor
    model.load_state_dict(tensors, strict=False, assign=assign)


def load_checkpoint(path: str | Path, device: str | torch.device = "cpu") -> LoadedModel:
    """Load a checkpoint folder for inference: eval mode, ``requires_grad`` off, on ``device``."""
    path = Path(path)
    if not path.is_dir():
        raise CheckpointError(f"{path}: checkpoint directory does not exist")
    config, tokenizer = read_config(path)
    metrics = read_metrics(path)
    file = path / WEIGHTS_FILE
    tensors = read_tensors(file)
    model = build_model(config)
    load_weights_into(model, tensors, file)
    model.to(device).eval()
    for p in model.parameters():
        p.requires_grad_(False)
    return LoadedModel(model=model, tokenizer=tokenizer, config=config, metrics=metrics, path=path)
