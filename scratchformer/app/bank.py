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

GPT-2 (``$SCRATCHFORMER_GPT2``: a Hugging Face GPT-2 folder, or a Hub id such as ``gpt2``, see
:func:`gpt2_models`) is a *late* slot: 124M parameters (500 MB, and a download on a Space) would keep
every first view waiting, so its weights load in a background thread of their own once the small
models are loaded, and only what needs GPT-2 waits for them. A Hub id's small files (config and
vocabulary) are fetched when the bank opens, so that the page can be laid out.

:meth:`ModelBank.load` does both at once (tests, scripts). Every per-request setting (the causal
mask, the text) is an argument of a call: the shared models are only ever read.

Generations are served by continuous batching (:meth:`ModelBank.stream`): one
:class:`~scratchformer.inference.batching.DecodeScheduler` per loaded language model, made on its
first generation, all of them on one :class:`~scratchformer.inference.batching.DecodeWorker` thread,
shared by every request (and by the per-request banks of :meth:`ModelBank.for_pair`).
``SCRATCHFORMER_BATCHING=0`` turns it off (each request then runs ``generate_stream`` itself).
"""
from __future__ import annotations

import dataclasses
import logging
import os
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Iterator, NamedTuple, Optional

from ..checkpoint import LoadedModel, ModelConfig, read_config, read_metrics
from ..tokenizers import Tokenizer

if TYPE_CHECKING:
    import torch

    from ..inference.generation import GenStep
    from ..inference.sampling import SamplingSettings

log = logging.getLogger("scratchformer.app")

TRANSFORMER, LSTM_NAME, ENCDEC, BERT = "Transformer", "LSTM", "Encoder-decoder", "BERT"


class ModelSpec(NamedTuple):
    folder: str             # the checkpoint folder's name under the checkpoint directory (gpt2: the source)
    kind: str               # the model_type its config.json must have
    optional: bool = False  # a missing folder is not an error: the app simply does not offer it
    source: str = "checkpoint"   # "checkpoint": our own folder; "gpt2": a Hugging Face GPT-2 (late slot)


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

# GPT-2, when $SCRATCHFORMER_GPT2 names one: in the Transformer's place, next to the word LSTM (the
# LSTM role keeps an LSTM, so that every view of the pair, "Inside the LSTM" included, has its model;
# each model reads with its own tokenizer: GPT-2's 50,257 tokens, the LSTM's 2,048).
GPT2, GPT2_PAIR = "GPT-2", "GPT-2 (words)"
PAIRS[GPT2_PAIR] = {TRANSFORMER: GPT2, LSTM_NAME: WORD_LSTM}
GPT2_ENV = "SCRATCHFORMER_GPT2"


# Pairs trained live in the app (app/live_tab.py), each owned by the session that trained it: its id
# ("live:<size>:<random token>", which only that session is told) → {role: the loaded model}. At most
# MAX_LIVE_PAIRS are kept (the oldest dropped first); a session's pair is dropped when it ends.
LIVE_PREFIX = "live:"
MAX_LIVE_PAIRS = 16
_LIVE: dict[str, dict[str, LoadedModel]] = {}
_LIVE_LOCK = threading.Lock()


def add_live_pair(pair_id: str, models: dict[str, LoadedModel]) -> None:
    """Keep a pair trained live under ``pair_id`` (``{"Transformer": …, "LSTM": …}``)."""
    with _LIVE_LOCK:
        _LIVE[pair_id] = models
        oldest = list(_LIVE)[: max(0, len(_LIVE) - MAX_LIVE_PAIRS)]
    for old in oldest:
        drop_live_pair(old)


def drop_live_pair(pair_id: str) -> bool:
    """Forget a pair trained live (its models are freed once no request uses them); True if it was there."""
    with _LIVE_LOCK:
        models = _LIVE.pop(pair_id, None)
    for loaded in (models or {}).values():
        _LIVE_SCHEDULERS.drop(loaded)
    return models is not None


def live_pair(pair_id) -> Optional[dict[str, LoadedModel]]:
    """The models of a pair trained live, or None (not a live id, or gone)."""
    if not isinstance(pair_id, str) or not pair_id.startswith(LIVE_PREFIX):
        return None
    with _LIVE_LOCK:
        return _LIVE.get(pair_id)


def live_pair_count() -> int:
    with _LIVE_LOCK:
        return len(_LIVE)


def gpt2_models() -> dict[str, ModelSpec]:
    """{"GPT-2": its spec} when $SCRATCHFORMER_GPT2 names a GPT-2 (a folder, or a Hub id such as
    ``gpt2``, downloaded on first use); {} when it is unset or empty."""
    source = os.environ.get(GPT2_ENV, "").strip()
    return {GPT2: ModelSpec(source, "gpt", source="gpt2")} if source else {}


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
    source: str = "checkpoint"             # ModelSpec.source; "gpt2" slots load late (module docstring)
    origin: str = ""                       # what the page calls its source (a folder's name, a Hub id)
    hub_id: str = ""                       # a GPT-2 from the Hugging Face Hub: its id
    title: str = ""                        # in a pair's role (for_pair): the model's own name ("GPT-2")
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)

    @property
    def late(self) -> bool:
        """Loaded after the others, in a thread of its own (a GPT-2's 500 MB)."""
        return self.source == "gpt2"


BATCHING_ENV = "SCRATCHFORMER_BATCHING"   # "0": no continuous batching (each request decodes alone)
BATCH_ROWS = 32                           # streams of one model decoded together at most
BATCH_WAITING = 64                        # more waiting than this: "busy, retry" (SchedulerBusy)
BATCH_CACHE_BYTES = 1 << 30               # a GPT's batched KV cache stays under this (GPT-2: 13 rows)


def batching_on() -> bool:
    """Whether generations go through the shared decode schedulers: unless $SCRATCHFORMER_BATCHING is
    "0" (read at each call), and never on ZeroGPU, where a GPU exists only inside each request's call."""
    from .zerogpu import spaces_module
    return os.environ.get(BATCHING_ENV, "1").strip() != "0" and spaces_module() is None


class Schedulers:
    """The decode schedulers of a bank's loaded models, keyed by the loaded model (never by the role a
    pair gives it), and their one worker thread; made on first use, shared by :meth:`ModelBank.for_pair`'s
    banks. A model that cannot be batched (no fast decoder) is remembered as None: it decodes alone."""

    def __init__(self):
        self._lock = threading.Lock()
        self._by_model: dict[int, tuple[LoadedModel, object]] = {}   # id(loaded) → (loaded, scheduler or None)
        self._worker = None

    def get(self, loaded: LoadedModel):
        """The scheduler serving ``loaded`` (made now on its first call), or None when it cannot be batched."""
        entry = self._by_model.get(id(loaded))      # (the dict holds ``loaded``: its id stays its own)
        if entry is not None and (entry[1] is None or entry[1].alive):
            return entry[1]
        with self._lock:
            entry = self._by_model.get(id(loaded))
            if entry is not None and (entry[1] is None or entry[1].alive):
                return entry[1]
            from ..inference.batching import DecodeScheduler, DecodeWorker
            if entry is not None or self._worker is None:   # first use, or a worker that stopped
                self._worker = DecodeWorker("scratchformer-decode")
            try:
                scheduler = DecodeScheduler(loaded.model, loaded.tokenizer, max_rows=self._rows(loaded.model),
                                            max_waiting=BATCH_WAITING, worker=self._worker)
            except ValueError as e:          # a model the batched passes do not cover: it decodes alone
                log.info("%s decodes without batching: %s", loaded.config.model_type, e)
                scheduler = None
            self._by_model[id(loaded)] = (loaded, scheduler)
            return scheduler

    @staticmethod
    def _rows(model) -> int:
        """BATCH_ROWS, fewer for a GPT whose batched cache would pass BATCH_CACHE_BYTES (a row holds
        keys and values of block_size + 1 positions in every layer)."""
        cfg = model.config
        if not hasattr(cfg, "n_head"):
            return BATCH_ROWS
        w = next(model.parameters())
        row_bytes = 2 * cfg.n_layer * (cfg.block_size + 1) * cfg.n_embd * w.element_size()
        return max(1, min(BATCH_ROWS, BATCH_CACHE_BYTES // row_bytes))

    def drop(self, loaded: LoadedModel) -> None:
        """Forget ``loaded``'s scheduler and stop it (a pair trained live that is dropped)."""
        with self._lock:
            entry = self._by_model.pop(id(loaded), None)
        if entry is not None and entry[1] is not None:
            entry[1].close()

    def close(self) -> None:
        """Stop every scheduler (streams still open get an error); the worker's thread ends."""
        with self._lock:
            entries, self._by_model = list(self._by_model.values()), {}
            worker, self._worker = self._worker, None
        for _, scheduler in entries:
            if scheduler is not None:
                scheduler.close()
        if worker is not None:
            worker.stop()


_LIVE_SCHEDULERS = Schedulers()     # the decode schedulers of the pairs trained live (dropped with them)


@dataclass
class ModelBank:
    """Every model of the app: configs read at once, weights loaded once on first use (see the module
    docstring). Read-only after loading."""

    checkpoint_dir: Path
    device: Optional[torch.device] = None          # chosen when the weights are loaded
    slots: dict[str, Slot] = field(default_factory=dict)
    concurrency: Optional[int] = None              # if set, torch's thread pool is sized for it on loading
    ready: bool = False                            # weights loaded (or failed): slots are final, late ones aside
    schedulers: Schedulers = field(default_factory=Schedulers, repr=False)   # shared by for_pair's banks
    _late_started: bool = field(default=False, repr=False)
    _want_device: Optional[str] = field(default=None, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    @classmethod
    def open(cls, checkpoint_dir: str | Path | None = None, device: str | torch.device | None = None,
             models: dict[str, ModelSpec] | None = None, concurrency: Optional[int] = None) -> "ModelBank":
        """Read the config of every model of ``models`` (default :data:`MODELS` and :func:`gpt2_models`)
        from ``checkpoint_dir``; no weights, no torch. ``device``: where :meth:`load_models` will put
        them (default: the GPU when there is one)."""
        checkpoint_dir = Path(checkpoint_dir) if checkpoint_dir else default_checkpoint_dir()
        bank = cls(checkpoint_dir, concurrency=concurrency, _want_device=None if device is None else str(device))
        for name, spec in (models or {**MODELS, **gpt2_models()}).items():
            if spec.source == "gpt2":
                bank.slots[name] = bank._open_gpt2(name, spec.folder)
                continue
            slot = Slot(name, checkpoint_dir / spec.folder, origin=spec.folder)
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

    def _open_gpt2(self, name: str, source: str) -> Slot:
        """The slot of a GPT-2 named by ``source`` (a folder, or a Hub id whose small files are
        fetched now): its config and vocabulary read, its weights left for :meth:`_load_late`."""
        from ..gpt2 import gpt2_folder, read_gpt2_config
        local = Path(source).expanduser()
        slot = Slot(name, local, source="gpt2", origin=local.name if local.is_dir() else source,
                    hub_id="" if local.is_dir() else source)
        try:
            slot.folder = gpt2_folder(source)
            slot.config, slot.tokenizer = read_gpt2_config(slot.folder)
            slot.metrics = {"source": f"Hugging Face GPT-2 {slot.origin}"}
        except Exception as e:
            self._fail(slot, e)
        return slot

    @classmethod
    def load(cls, checkpoint_dir: str | Path | None = None, device: str | torch.device | None = None,
             models: dict[str, ModelSpec] | None = None) -> "ModelBank":
        """:meth:`open`, then :meth:`load_models`: every model loaded before this returns (late ones too)."""
        bank = cls.open(checkpoint_dir, device, models)
        bank.load_models(late_in_background=False)
        return bank

    def load_models(self, late_in_background: bool = True) -> None:
        """Load the weights of every model whose config was read (eval mode, on the GPU when there is
        one). Once: a later call returns at once, a call while another thread loads waits for it.
        Late slots (GPT-2) are then loaded in a background thread (or here, ``late_in_background=False``)."""
        if not self.ready:
            self._load_small()
        late = [s for s in self.slots.values() if s.late and s.config is not None and s.loaded is None]
        if late and not late_in_background:
            for slot in late:
                self._load_late(slot)
        elif late and not self._late_started:
            self._late_started = True
            threading.Thread(target=lambda: [self._load_late(s) for s in late], name="scratchformer-gpt2",
                             daemon=True).start()

    def _load_late(self, slot: Slot) -> None:
        """Load a late slot's weights (once; a second caller waits for the first)."""
        with slot._lock:
            if slot.loaded is not None or slot.config is None:
                return
            try:
                from ..gpt2 import FILES, gpt2_folder, load_gpt2_folder
                folder = slot.folder
                if slot.hub_id and not (folder / "model.safetensors").is_file():
                    folder = gpt2_folder(slot.hub_id, files=FILES)     # the weights: downloaded now
                slot.loaded = load_gpt2_folder(folder, device=self.device)
                slot.loaded.metrics.update(slot.metrics)
            except Exception as e:  # a download that fails, broken weights: the other models keep working
                slot.config = None
                self._fail(slot, e)

    def _load_small(self) -> None:
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
                if slot.config is None or slot.late:
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
        shown = slot.origin or slot.folder.name
        reason = str(e).replace(str(slot.folder.parent) + os.sep, "").replace(str(slot.folder), shown)
        what = f"${GPT2_ENV} = {shown}" if slot.late else f"checkpoint {shown}"
        slot.error = f"{slot.name} {what} could not be loaded: {reason}"
        log.warning("%s checkpoint %s could not be loaded: %s", slot.name, slot.folder, e)

    def get(self, name: str) -> LoadedModel:
        """The loaded model called ``name`` (loading the weights first if need be); ModelUnavailable
        with the reason otherwise."""
        self.load_models()
        slot = self.slots.get(name)
        if slot is None:
            raise ModelUnavailable(f"unknown model {name!r}; this app has {list(self.slots)}")
        if slot.late:
            self._load_late(slot)         # waits while GPT-2 is loading
        if slot.loaded is None:
            raise ModelUnavailable(slot.error or f"{name} is not loaded")
        return slot.loaded

    def stream(self, name: str, prompt: str, settings: SamplingSettings, max_new_tokens: int,
               seed: int) -> Iterator[GenStep]:
        """Model ``name``'s generation of ``prompt``: the :class:`GenStep` records that
        ``generate_stream(model, tokenizer, prompt, settings=…, max_new_tokens=…, seed=…)`` yields, served
        in a batch with every other request's (:class:`Schedulers`), or by generate_stream itself when
        batching is off (:func:`batching_on`) or the model cannot be batched. Close it (``close()``)
        when stopping early: its row is freed at once. Arguments are checked before anything is queued
        (ValueError); :class:`~scratchformer.inference.batch_streams.SchedulerBusy`, a ValueError, when
        too many generations run and wait already."""
        loaded = self.get(name)
        scheduler = self.schedulers.get(loaded) if batching_on() else None
        if scheduler is None:
            from ..inference.generation import generate_stream
            return generate_stream(loaded.model, loaded.tokenizer, prompt, settings=settings,
                                   max_new_tokens=max_new_tokens, seed=seed)
        return scheduler.stream(prompt, settings=settings, max_new_tokens=max_new_tokens, seed=seed)

    def available(self, name: str) -> bool:
        """Whether model ``name`` is loaded (loading the weights first if need be)."""
        self.load_models()
        if name in self.slots and self.slots[name].late:
            self._load_late(self.slots[name])
        return name in self.slots and self.slots[name].loaded is not None

    def largest_model(self, names) -> int:
        """The parameter count of the largest loaded model among ``names`` (0 when none is loaded)."""
        return max((sum(p.numel() for p in self.get(n).model.parameters()) for n in names if self.available(n)),
                   default=0)

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

    def shape(self, pair) -> dict[str, int]:
        """The sizes the controls of ``pair`` range over, from the configs alone: the Transformer's
        layers and heads, the LSTM's layers and units (a key is absent when its model is not offered)."""
        live = live_pair(pair)
        if live is not None:
            t, l = live[TRANSFORMER].config, live[LSTM_NAME].config
            return dict(layer=t.n_layer, head=t.n_head, lstm_layer=l.n_layer, lstm_unit=l.hidden)
        roles = PAIRS.get(pair, PAIRS[SMALL_PAIR])
        out = {}
        if self.offered(roles[TRANSFORMER]):
            cfg = self.config(roles[TRANSFORMER])
            out.update(layer=cfg.n_layer, head=cfg.n_head)
        if self.offered(roles[LSTM_NAME]):
            cfg = self.config(roles[LSTM_NAME])
            out.update(lstm_layer=cfg.n_layer, lstm_unit=cfg.hidden)
        return out

    def largest_shape(self) -> dict[str, int]:
        """Each size's largest value over the pairs offered: the range a control (and the API) accepts;
        the page narrows it to the chosen pair's (:func:`~.view.follow_pair`)."""
        out: dict[str, int] = {}
        for p in self.pairs():
            for key, n in self.shape(p).items():
                out[key] = max(out.get(key, 0), n)
        return out

    def for_pair(self, pair) -> "ModelBank":
        """The same bank with ``pair``'s models in the Transformer and LSTM roles (the loaded models
        are shared, not copied): a session's choice of pair, made per request."""
        if pair is None or pair == SMALL_PAIR:
            return self
        if isinstance(pair, str) and pair.startswith(LIVE_PREFIX):
            return self._live_bank(pair)
        self.load_models()
        if pair in PAIRS:
            for name in PAIRS[pair].values():      # a late model (GPT-2): wait for its weights
                if name in self.slots and self.slots[name].late:
                    self._load_late(self.slots[name])
                    if self.slots[name].loaded is None:
                        raise ModelUnavailable(self.slots[name].error or f"{name} is not loaded")
        if pair not in self.pairs():
            raise ValueError(f"model pair must be one of {self.pairs()}, got {pair!r}")
        slots = dict(self.slots)
        for role, name in PAIRS[pair].items():
            slots[role] = dataclasses.replace(self.slots[name], name=role, title=name)
        return ModelBank(self.checkpoint_dir, self.device, slots, ready=True, schedulers=self.schedulers)


    def _live_bank(self, pair: str) -> "ModelBank":
        """The bank with a pair trained live (:func:`add_live_pair`) in the Transformer and LSTM roles."""
        models = live_pair(pair)
        if models is None:
            raise ModelUnavailable("the models trained live on this page are gone (the page was closed or "
                                   "reloaded, or the server restarted): train them again in the Train live tab")
        self.load_models()
        slots = dict(self.slots)
        for role, loaded in models.items():
            slots[role] = Slot(name=role, folder=loaded.path, config=loaded.config, tokenizer=loaded.tokenizer,
                               metrics=loaded.metrics, loaded=loaded, origin="trained live",
                               title=f"{role} (trained live)")
        return ModelBank(self.checkpoint_dir, self.device, slots, ready=True, schedulers=_LIVE_SCHEDULERS)


def describe_model(loaded: LoadedModel | ModelConfig) -> str:
    """"4 layers × 4 heads, d_model 128, context 256, learned positions" (or the LSTM's equivalent),
    from a loaded model or its config."""
    cfg = getattr(loaded, "config", loaded)
    if getattr(cfg, "model_type", "") == "lstm":
        return f"{cfg.n_layer} layers × {cfg.hidden} units, embedding {cfg.n_embd}"
    return (f"{cfg.n_layer} layers × {cfg.n_head} heads, d_model {cfg.n_embd}, "
            f"context {cfg.block_size}, {cfg.pos} positions")
