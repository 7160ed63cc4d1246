"""The app's four models, loaded once and shared read-only by every request (no Gradio here).

:class:`ModelBank` loads each checkpoint once at start-up (eval mode, on the GPU when there is one).
A checkpoint that is missing, broken, or holds a model of the wrong kind (an LSTM where the
Transformer belongs) is remembered as an error message for its panels; the other models keep working.
Every per-request setting (the causal mask, the text) is an argument of a call: the shared models
are only ever read.
"""
from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import NamedTuple, Optional

import torch

from ..checkpoint import LoadedModel, load_checkpoint
from ..device import pick_device

log = logging.getLogger("scratchformer.app")

TRANSFORMER, LSTM_NAME, ENCDEC, BERT = "Transformer", "LSTM", "Encoder-decoder", "BERT"


class ModelSpec(NamedTuple):
    folder: str             # the checkpoint folder's name under the checkpoint directory
    kind: str               # the model_type its config.json must have
    optional: bool = False  # a missing folder is not an error: the app simply does not offer it


LARGE_TRANSFORMER, LARGE_LSTM = "Transformer (large)", "LSTM (large)"

# The models the app shows: display name -> where it comes from and what it must be.
MODELS = {TRANSFORMER: ModelSpec("gpt-shakespeare", "gpt"), LSTM_NAME: ModelSpec("lstm-shakespeare", "lstm"),
          ENCDEC: ModelSpec("seq2seq-dates", "seq2seq"), BERT: ModelSpec("bert-shakespeare", "bert"),
          LARGE_TRANSFORMER: ModelSpec("gpt-shakespeare-large", "gpt", optional=True),
          LARGE_LSTM: ModelSpec("lstm-shakespeare-large", "lstm", optional=True)}
LANGUAGE_MODELS = (TRANSFORMER, LSTM_NAME)   # the two that write text side by side

# The pairs a person can compare side by side: pair -> {role in the app: the bank's model}.
SMALL_PAIR, LARGE_PAIR = "small (CPU-trained)", "large (GPU-trained)"
PAIRS = {SMALL_PAIR: {TRANSFORMER: TRANSFORMER, LSTM_NAME: LSTM_NAME},
         LARGE_PAIR: {TRANSFORMER: LARGE_TRANSFORMER, LSTM_NAME: LARGE_LSTM}}


def default_checkpoint_dir() -> Path:
    """$SCRATCHFORMER_CHECKPOINTS, else the repository's checkpoints/ folder."""
    env = os.environ.get("SCRATCHFORMER_CHECKPOINTS")
    return Path(env) if env else Path(__file__).resolve().parents[2] / "checkpoints"


def configure_torch(concurrency: int = 1) -> int:
    """Size torch's CPU thread pool to the machine: cores // concurrency, between 1 and 4.

    ``concurrency`` requests may run a model at the same time, each using the whole pool; more
    threads than cores only makes them fight. These models are small, so one token's work is tiny:
    on a busy 2-core machine 2 threads per op were measured ~10× slower than 1 (threads waiting
    for each other). Returns the number chosen.
    """
    n = max(1, min(4, (os.cpu_count() or 1) // max(1, concurrency)))
    torch.set_num_threads(n)
    return n


class ModelUnavailable(ValueError):
    """The model a person asked for could not be loaded; the message says why."""


@dataclass
class Slot:
    """One model of the app: loaded, or the reason it is not."""

    name: str
    folder: Path
    loaded: Optional[LoadedModel] = None
    error: Optional[str] = None


@dataclass
class ModelBank:
    """Every model of the app, loaded once. Read-only after construction."""

    checkpoint_dir: Path
    device: torch.device
    slots: dict[str, Slot] = field(default_factory=dict)

    @classmethod
    def load(cls, checkpoint_dir: str | Path | None = None, device: str | torch.device | None = None,
             models: dict[str, ModelSpec] | None = None) -> "ModelBank":
        """Load every model of ``models`` (default :data:`MODELS`) from ``checkpoint_dir``."""
        checkpoint_dir = Path(checkpoint_dir) if checkpoint_dir else default_checkpoint_dir()
        device = torch.device(device) if device else pick_device()
        bank = cls(checkpoint_dir, device)
        for name, spec in (models or MODELS).items():
            slot = Slot(name, checkpoint_dir / spec.folder)
            if spec.optional and not slot.folder.exists():
                continue
            try:
                loaded = load_checkpoint(slot.folder, device=device)
                kind = loaded.config.model_type
                if kind != spec.kind:
                    raise ValueError(f"it holds a {kind!r} model, but the {name} must be a {spec.kind!r} model")
                slot.loaded = loaded
            except Exception as e:  # a broken or wrong checkpoint must not take the app down
                slot.error = f"{name} checkpoint {slot.folder} could not be loaded: {e}"
                log.warning(slot.error)
            bank.slots[name] = slot
        return bank

    def get(self, name: str) -> LoadedModel:
        """The loaded model called ``name``; ModelUnavailable with the reason otherwise."""
        slot = self.slots.get(name)
        if slot is None:
            raise ModelUnavailable(f"unknown model {name!r}; this app has {list(self.slots)}")
        if slot.loaded is None:
            raise ModelUnavailable(slot.error or f"{name} is not loaded")
        return slot.loaded

    def available(self, name: str) -> bool:
        return name in self.slots and self.slots[name].loaded is not None

    def pairs(self) -> list[str]:
        """The model pairs this bank can offer: the small pair always (its panels say why a model is
        missing), the large one when both of its checkpoints loaded."""
        return [p for p, roles in PAIRS.items()
                if p == SMALL_PAIR or all(self.available(n) for n in roles.values())]

    def for_pair(self, pair) -> "ModelBank":
        """The same bank with ``pair``'s models in the Transformer and LSTM roles (the loaded models
        are shared, not copied): a session's choice of pair, made per request."""
        if pair is None or pair == SMALL_PAIR:
            return self
        if pair not in self.pairs():
            raise ValueError(f"model pair must be one of {self.pairs()}, got {pair!r}")
        slots = dict(self.slots)
        for role, name in PAIRS[pair].items():
            slots[role] = Slot(role, self.slots[name].folder, self.slots[name].loaded, self.slots[name].error)
        return ModelBank(self.checkpoint_dir, self.device, slots)


def describe_model(loaded: LoadedModel) -> str:
    """"4 layers × 4 heads, d_model 128, context 256, learned positions" (or the LSTM's equivalent)."""
    cfg = loaded.config
    if getattr(cfg, "model_type", "") == "lstm":
        return f"{cfg.n_layer} layers × {cfg.hidden} units, embedding {cfg.n_embd}"
    return (f"{cfg.n_layer} layers × {cfg.n_head} heads, d_model {cfg.n_embd}, "
            f"context {cfg.block_size}, {cfg.pos} positions")
