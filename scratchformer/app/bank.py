"""The app's models, loaded once and shared read-only by every request (no Gradio here).

Two steps, so that the page is served before torch is even imported (``import torch`` takes about a
second, as long as everything else between ``python app.py`` and the first page):

1. :meth:`ModelBank.open` reads each checkpoint's ``config.json`` and ``metrics.json`` (small JSON,
   no torch). That is all the layout needs: layer and head counts, block sizes, which models exist.
   A folder that is missing, a config that is broken or of the wrong kind (an LSTM where the
   Transformer belongs) becomes its slot's error message here, and its panels say so.
2. The weights are loaded on first use (:meth:`ModelBank.load_models`, once, in whichever thread asks
   first: the app's default views, computed in the background after launch). Every request that
   needs a model (:meth:`~ModelBank.get`, :meth:`~ModelBank.available`) waits for that, it never
   fails for being early. Weights that turn out to be broken become their slot's error then (the
   page's header and the model's panels are updated with the default views).

:meth:`ModelBank.load` does both at once (tests, scripts). Every per-request setting (the causal
mask, the text) is an argument of a call: the shared models are only ever read.
"""
from __future__ import annotations

import dataclasses
import logging
import os
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, NamedTuple, Optional

from ..checkpoint import LoadedModel, ModelConfig, read_config, read_metrics
from ..tokenizers import Tokenizer

if TYPE_CHECKING:
    import torch

log = logging.getLogger("scratchformer.app")

TRANSFORMER, LSTM_NAME, ENCDEC, BERT = "Transformer", "LSTM", "Encoder-decoder", "BERT"


class ModelSpec(NamedTuple):
    folder: str             # the checkpoint folder's name under the checkpoint directory
    kind: str               # the model_type its config.json must have
    optional: bool = False  # a missing folder is not an error: the app simply does not offer it


LARGE_TRANSFORMER, LARGE_LSTM = "Transformer (large)", "LSTM (large)"
WORD_TRANSFORMER, WORD_LSTM = "Transformer (words)", "LSTM (words)"

# The models the app shows: display name -> where it comes from and what it must be.
MODELS = {TRANSFORMER: ModelSpec("gpt-shakespeare", "gpt"), LSTM_NAME: ModelSpec("lstm-shakespeare", "lstm"),
          ENCDEC: ModelSpec("seq2seq-dates", "seq2seq"), BERT: ModelSpec("bert-shakespeare", "bert"),
          WORD_TRANSFORMER: ModelSpec("gpt-shakespeare-bpe", "gpt", optional=True),
          WORD_LSTM: ModelSpec("lstm-shakespeare-bpe", "lstm", optional=True),
          LARGE_TRANSFORMER: ModelSpec("gpt-shakespeare-large", "gpt", optional=True),
          LARGE_LSTM: ModelSpec("lstm-shakespeare-large", "lstm", optional=True)}
LANGUAGE_MODELS = (TRANSFORMER, LSTM_NAME)   # the two that write text side by side

# The pairs a person can compare side by side: pair -> {role in the app: the bank's model}.
# (The small character pair keeps its first name, "small (CPU-trained)", so that older links still open.)
SMALL_PAIR, WORD_PAIR, LARGE_PAIR = "small (CPU-trained)", "words (BPE)", "large (GPU-trained)"
PAIRS = {SMALL_PAIR: {TRANSFORMER: TRANSFORMER, LSTM_NAME: LSTM_NAME},
         WORD_PAIR: {TRANSFORMER: WORD_TRANSFORMER, LSTM_NAME: WORD_LSTM},
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
    import torch
    n = max(1, min(4, (os.cpu_count() or 1) // max(1, concurrency)))
    torch.set_num_threads(n)
    return n


class ModelUnavailable(ValueError):
    """The model a person asked for could not be loaded; the message says why."""


@dataclass
class Slot:
    """One model of the app: its configuration (read first), then the loaded model, or the reason
    it is not there."""

    name: str
    folder: Path
    config: Optional[ModelConfig] = None   # from config.json, before any weights
    tokenizer: Optional[Tokenizer] = None  # from config.json too: the vocabulary, before any weights
    metrics: dict = field(default_factory=dict)
    loaded: Optional[LoadedModel] = None
    error: Optional[str] = None


@dataclass
class ModelBank:
    """Every model of the app: configs read at once, weights loaded once on first use (see the module
    docstring). Read-only after loading."""

    checkpoint_dir: Path
    device: Optional[torch.device] = None          # chosen when the weights are loaded
    slots: dict[str, Slot] = field(default_factory=dict)
    concurrency: Optional[int] = None              # if set, torch's thread pool is sized for it on loading
    ready: bool = False                            # weights loaded (or failed): slots are final
    _want_device: Optional[str] = field(default=None, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    @classmethod
    def open(cls, checkpoint_dir: str | Path | None = None, device: str | torch.device | None = None,
             models: dict[str, ModelSpec] | None = None, concurrency: Optional[int] = None) -> "ModelBank":
        """Read the config of every model of ``models`` (default :data:`MODELS`) from ``checkpoint_dir``;
        no weights, no torch. ``device``: where :meth:`load_models` will put them (default: the GPU
        when there is one)."""
        checkpoint_dir = Path(checkpoint_dir) if checkpoint_dir else default_checkpoint_dir()
        bank = cls(checkpoint_dir, concurrency=concurrency, _want_device=None if device is None else str(device))
        for name, spec in (models or MODELS).items():
            slot = Slot(name, checkpoint_dir / spec.folder)
            if spec.optional and not slot.folder.exists():
                continue
            try:
                if not slot.folder.is_dir():
                    raise ValueError(f"{slot.folder}: checkpoint directory does not exist")
                config, tokenizer = read_config(slot.folder)
                if config.model_type != spec.kind:
                    raise ValueError(f"it holds a {config.model_type!r} model, but the {name} must be a "
                                     f"{spec.kind!r} model")
                slot.config, slot.tokenizer, slot.metrics = config, tokenizer, read_metrics(slot.folder)
            except Exception as e:  # a broken or wrong checkpoint must not take the app down
                bank._fail(slot, e)
            bank.slots[name] = slot
        return bank

    @classmethod
    def load(cls, checkpoint_dir: str | Path | None = None, device: str | torch.device | None = None,
             models: dict[str, ModelSpec] | None = None) -> "ModelBank":
        """:meth:`open`, then :meth:`load_models`: every model loaded before this returns."""
        bank = cls.open(checkpoint_dir, device, models)
        bank.load_models()
        return bank

    def load_models(self) -> None:
        """Load the weights of every model whose config was read (eval mode, on the GPU when there is
        one). Once: a later call returns at once, a call while another thread loads waits for it."""
        if self.ready:
            return
        with self._lock:
            if self.ready:
                return
            import torch                                  # the first import of torch in the app
            from ..checkpoint import load_checkpoint
            from ..device import pick_device
            if self.concurrency is not None:
                configure_torch(self.concurrency)
            self.device = torch.device(self._want_device) if self._want_device else pick_device()
            for slot in self.slots.values():
                if slot.config is None:
                    continue
                try:
                    slot.loaded = load_checkpoint(slot.folder, device=self.device)
                except Exception as e:  # weights that cannot be read: the other models keep working
                    slot.config = None
                    self._fail(slot, e)
            self.ready = True

    @staticmethod
    def _fail(slot: Slot, e: Exception) -> None:
        """Record why ``slot`` failed. The page names the checkpoint by its folder's name, never by the
        server's absolute path (which only the log shows)."""
        reason = str(e).replace(str(slot.folder.parent) + os.sep, "").replace(str(slot.folder), slot.folder.name)
        slot.error = f"{slot.name} checkpoint {slot.folder.name} could not be loaded: {reason}"
        log.warning("%s checkpoint %s could not be loaded: %s", slot.name, slot.folder, e)

    def get(self, name: str) -> LoadedModel:
        """The loaded model called ``name`` (loading the weights first if need be); ModelUnavailable
        with the reason otherwise."""
        self.load_models()
        slot = self.slots.get(name)
        if slot is None:
            raise ModelUnavailable(f"unknown model {name!r}; this app has {list(self.slots)}")
        if slot.loaded is None:
            raise ModelUnavailable(slot.error or f"{name} is not loaded")
        return slot.loaded

    def available(self, name: str) -> bool:
        """Whether model ``name`` is loaded (loading the weights first if need be)."""
        self.load_models()
        return name in self.slots and self.slots[name].loaded is not None

    def offered(self, name: str) -> bool:
        """Whether the app shows model ``name``: its config was read and is of the right kind (no
        waiting for the weights: the page is laid out from this). False once its weights failed."""
        return name in self.slots and self.slots[name].config is not None

    def config(self, name: str) -> ModelConfig:
        """The config of model ``name`` (no waiting for the weights); ModelUnavailable with the reason
        when it has none."""
        if not self.offered(name):
            raise ModelUnavailable(self.slots[name].error if name in self.slots else f"unknown model {name!r}")
        return self.slots[name].config

    def tokenizer(self, name: str) -> Tokenizer:
        """The tokenizer of model ``name``, read with its config (no waiting for the weights)."""
        self.config(name)
        return self.slots[name].tokenizer

    def vocab_size(self, names) -> int:
        """The largest vocabulary among the offered models ``names`` (1 when none is offered): the
        end of a top-k slider that serves them all."""
        return max((self.tokenizer(n).vocab_size for n in names if self.offered(n)), default=1)

    def language_models(self) -> list[str]:
        """Every offered model of every pair (the bank's names): what a control serving any pair
        must allow (the largest vocabulary, the most layers)."""
        return [n for p in self.pairs() for n in PAIRS[p].values() if self.offered(n)]

    def pairs(self) -> list[str]:
        """The model pairs this bank can offer: the small character pair always (its panels say why a
        model is missing), the word pair and the large pair when both of their checkpoints are there
        (their configs read; :meth:`for_pair` then also needs their weights)."""
        return [p for p, roles in PAIRS.items()
                if p == SMALL_PAIR or all(self.offered(n) for n in roles.values())]

    def for_pair(self, pair) -> "ModelBank":
        """The same bank with ``pair``'s models in the Transformer and LSTM roles (the loaded models
        are shared, not copied): a session's choice of pair, made per request."""
        if pair is None or pair == SMALL_PAIR:
            return self
        self.load_models()
        if pair not in self.pairs():
            raise ValueError(f"model pair must be one of {self.pairs()}, got {pair!r}")
        slots = dict(self.slots)
        for role, name in PAIRS[pair].items():
            slots[role] = dataclasses.replace(self.slots[name], name=role)
        return ModelBank(self.checkpoint_dir, self.device, slots, ready=True)


def describe_model(loaded: LoadedModel | ModelConfig) -> str:
    """"4 layers × 4 heads, d_model 128, context 256, learned positions" (or the LSTM's equivalent),
    from a loaded model or its config."""
    cfg = getattr(loaded, "config", loaded)
    if getattr(cfg, "model_type", "") == "lstm":
        return f"{cfg.n_layer} layers × {cfg.hidden} units, embedding {cfg.n_embd}"
    return (f"{cfg.n_layer} layers × {cfg.n_head} heads, d_model {cfg.n_embd}, "
            f"context {cfg.block_size}, {cfg.pos} positions")
