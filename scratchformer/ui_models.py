"""The app's models and the computations behind its views — no Gradio here, so it can be tested bare.

* :class:`ModelBank` loads each checkpoint once at start-up (eval mode, no gradients, on the GPU
  when there is one). A checkpoint that is missing or broken is remembered as an error message for
  its panel; the other models keep working.
* :func:`prepare_text` applies the app's limits and the tokenizer's policy for unknown characters,
  and says what it changed, so the UI can tell the person.
* :func:`run_traced` runs one forward pass with ``trace=True`` under ``torch.inference_mode`` and
  returns the trace on the CPU. Every per-request setting (the causal mask, the text) is an argument:
  the shared models are only ever read.
"""
from __future__ import annotations

import html
import logging
import math
import os
from dataclasses import dataclass, field
from numbers import Real
from pathlib import Path
from typing import Optional

import torch

from .checkpoint import LoadedModel, load_checkpoint
from .device import pick_device
from .trace import Trace
from .views import display_char, surprise_bits

log = logging.getLogger("scratchformer.app")

# The models the app shows: display name -> checkpoint folder name.
MODELS = {"Transformer": "gpt-shakespeare", "LSTM": "lstm-shakespeare"}
TRANSFORMER, LSTM_NAME = "Transformer", "LSTM"

MAX_PROMPT_CHARS = 2000      # generation prompts keep their last 2,000 characters
MAX_ANALYSIS_CHARS = 256     # attention / embeddings / LSTM views read at most this many characters


def default_checkpoint_dir() -> Path:
    """$SCRATCHFORMER_CHECKPOINTS, else the repository's checkpoints/ folder."""
    env = os.environ.get("SCRATCHFORMER_CHECKPOINTS")
    return Path(env) if env else Path(__file__).resolve().parent.parent / "checkpoints"


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
             models: dict[str, str] | None = None) -> "ModelBank":
        checkpoint_dir = Path(checkpoint_dir) if checkpoint_dir else default_checkpoint_dir()
        device = torch.device(device) if device else pick_device()
        bank = cls(checkpoint_dir, device)
        for name, folder in (models or MODELS).items():
            slot = Slot(name, checkpoint_dir / folder)
            try:
                slot.loaded = load_checkpoint(slot.folder, device=device)
            except Exception as e:  # a broken checkpoint must not take the app down
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


# ---------------------------------------------------------------------------------------- text in

def as_int(value, name: str) -> int:
    """A whole number from a slider (40.0 → 40); ValueError naming ``name`` otherwise."""
    if isinstance(value, bool) or not isinstance(value, Real) or not math.isfinite(value) \
            or value != int(value):
        raise ValueError(f"{name} must be a whole number, got {value!r}")
    return int(value)


def check_index(value, name: str, n: int) -> int:
    """A 1-based choice from a slider (layer 1…n) as a 0-based index; ValueError naming the range."""
    k = as_int(value, name)
    if not 1 <= k <= n:
        raise ValueError(f"{name} must be in 1…{n}, got {k}")
    return k - 1


NOTE_MARK = "⚠️ "


def notes_md(notes: list[str]) -> str:
    """Notes about the input (cropped, characters replaced) as Markdown lines the page shows; the UI
    also pops each line up as a warning."""
    return "\n\n".join(NOTE_MARK + html.escape(n) for n in notes)



@dataclass
class PreparedText:
    """Text as the model will read it, and what was changed on the way."""

    text: str                 # the characters the model reads (after cropping and replacement)
    ids: list[int]
    replaced: list[str]       # distinct characters outside the vocabulary
    cropped_from: int = 0     # the original length when the text was cropped, else 0

    def notes(self, unk: str = "?") -> list[str]:
        """Plain sentences saying what happened to the text (empty when nothing did)."""
        out = []
        if self.cropped_from:
            out.append(f"The text had {self.cropped_from:,} characters; the model reads "
                       f"{len(self.text):,} of them.")
        if self.replaced:
            shown = " ".join(repr(c) for c in self.replaced[:12]) + (" …" if len(self.replaced) > 12 else "")
            out.append(f"Characters outside the vocabulary were replaced by {unk!r}: {shown}.")
        return out


def prepare_text(text, tokenizer, max_chars: int, keep: str = "start") -> PreparedText:
    """Check, crop and encode ``text``.

    ValueError for text that is not a string or is empty. Text longer than ``max_chars`` is cropped
    to its first (``keep="start"``) or last (``keep="end"``) ``max_chars`` characters. Unknown
    characters follow the tokenizer's policy (normalise, then replace) and are listed.
    """
    if text is None:
        text = ""
    if not isinstance(text, str):
        raise ValueError(f"text must be a string, got {type(text).__name__}")
    if not text:
        raise ValueError("the text is empty: type at least one character")
    ids, replaced = tokenizer.encode_with_report(text)  # may change the length (… → ...)
    cropped_from = 0
    if len(ids) > max_chars:
        cropped_from = len(ids)
        ids = ids[:max_chars] if keep == "start" else ids[-max_chars:]
    return PreparedText(tokenizer.decode(ids), ids, replaced, cropped_from)


def unk_char(tokenizer) -> str:
    return tokenizer.itos[tokenizer.unk_id]


def context_limit(loaded: LoadedModel, cap: int) -> int:
    """How many characters a view may feed this model: ``cap``, and no more than its block size
    when it has one (a Transformer with learned positions has none beyond it)."""
    block = getattr(loaded.config, "block_size", None)
    return min(cap, block) if block and getattr(loaded.config, "model_type", "") != "lstm" else cap


# ----------------------------------------------------------------------------------- forward passes

@dataclass
class TracedText:
    """One traced forward pass over a text, on the CPU."""

    chars: list[str]
    trace: Trace
    bits: list[float]         # per-character surprise −log₂ p(x_t | x_<t), NaN for the first
    bits_per_char: float      # their mean over t ≥ 1 (NaN for a one-character text)


def run_traced(loaded: LoadedModel, ids: list[int], causal: Optional[bool] = None) -> TracedText:
    """model(ids, trace=True) with the mask as asked, under inference_mode, moved to the CPU."""
    model = loaded.model
    x = torch.tensor([ids], dtype=torch.long, device=next(model.parameters()).device)
    kwargs = {} if causal is None else {"causal": bool(causal)}
    with torch.inference_mode():
        out = model(x, trace=True, **kwargs)
    trace = out.trace.to("cpu")
    bits = surprise_bits(trace.logits[0], ids)
    finite = [b for b in bits[1:]]
    bpc = sum(finite) / len(finite) if finite else float("nan")
    return TracedText([loaded.tokenizer.itos[i] for i in ids], trace, bits, bpc)


def top1_text(logits: torch.Tensor, itos: list[str]) -> str:
    """The most likely next character at every position, as display characters."""
    return "".join(display_char(itos[i]) for i in logits.argmax(-1).tolist())


def describe_model(loaded: LoadedModel) -> str:
    """"4 layers × 4 heads, d_model 128, context 256, learned positions" (or the LSTM's equivalent)."""
    cfg = loaded.config
    if getattr(cfg, "model_type", "") == "lstm":
        return f"{cfg.n_layer} layers × {cfg.hidden} units, embedding {cfg.n_embd}"
    return (f"{cfg.n_layer} layers × {cfg.n_head} heads, d_model {cfg.n_embd}, "
            f"context {cfg.block_size}, {cfg.pos} positions")
