"""The model families: one table from a checkpoint's ``model_type`` to everything the rest of the code
needs to know about it.

    model_type → config class, how to build the network, how it writes text, one line for people

Checkpoint loading (the config and the network), training, generation, the app's model bank and the
MCP tools all read this table; none of them lists model types of its own. A new family is one model
file plus one :func:`register_family` call (here, or in the code that defines it).

``decoding`` says how a family continues a text, which is what generation and the app ask:

* ``"kv_cache"``  a causal Transformer: the prompt once, then one token per step through a KV cache
* ``"state"``     a recurrent network: the prompt once, then one token per step carrying its state
* ``"recompute"`` any other left-to-right model: a whole forward pass over the context every step
* ``"masked"``    a bidirectional model: it fills in blanks, it does not continue a text
* ``"seq2seq"``   an encoder-decoder: it writes an output for a source text (greedy or beam search)

What every network offers the code above it (the shipped ones, and a new family's):

* ``config``: its config (``model_type``, ``vocab_size``, and ``block_size`` for a Transformer);
* ``forward(ids, targets=None, *, causal=None, trace=False) -> ModelOutput`` (model/trace.py):
  logits, the loss when given targets, and with ``trace=True`` a Trace (attention weights per layer
  for the attention views);
* ``context_length``: the most tokens one pass reads (None: no limit, as the LSTM).

The builders are named as ``"module:Class"`` and imported when first used: reading a config needs no
torch (the app lays its page out from the configs before torch is imported).
"""
from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import Any, Callable

from .config import LSTMConfig, TransformerConfig

DECODINGS = ("kv_cache", "state", "recompute", "masked", "seq2seq")
WRITES_TEXT = ("kv_cache", "state", "recompute")   # the decodings that continue a prompt


@dataclass(frozen=True)
class ModelFamily:
    """One kind of model: its config dataclass, its network, how it writes text, what it is."""

    model_type: str
    config: type                  # a dataclass with to_dict / from_dict (see config.py)
    build: str | Callable         # "module:Class" (relative to scratchformer.model) or a callable(config)
    decoding: str                 # one of DECODINGS
    description: str              # one line for people: "decoder-only Transformer (GPT-style)"

    def __post_init__(self):
        if self.decoding not in DECODINGS:
            raise ValueError(f"decoding must be one of {DECODINGS}, got {self.decoding!r}")

    @property
    def writes_text(self) -> bool:
        """Whether this family continues a prompt (generation, the side-by-side writers)."""
        return self.decoding in WRITES_TEXT

    def make(self, config: Any):
        """A freshly initialised network for ``config``."""
        build = self.build
        if isinstance(build, str):
            module, _, name = build.partition(":")
            build = getattr(importlib.import_module(module, __package__), name)
        return build(config)


FAMILIES: dict[str, ModelFamily] = {}


def register_family(family: ModelFamily) -> ModelFamily:
    """Add ``family`` to the table (a later registration of the same model_type replaces it)."""
    FAMILIES[family.model_type] = family
    return family


def family(model_type: str) -> ModelFamily:
    """The family of ``model_type``; ValueError naming it and the known ones."""
    found = FAMILIES.get(model_type) if isinstance(model_type, str) else None
    if found is None:
        raise ValueError(f"unknown model_type {model_type!r}; expected one of {sorted(FAMILIES)}")
    return found


def config_from_dict(d: dict):
    """The config a checkpoint's ``"model"`` section describes, by its ``model_type``."""
    if not isinstance(d, dict):
        raise ValueError(f"model config must be a JSON object, got {type(d).__name__}")
    return family(d.get("model_type")).config.from_dict(d)


def build_model(config):
    """A freshly initialised network for ``config`` (any registered family)."""
    return family(getattr(config, "model_type", None)).make(config)


register_family(ModelFamily("gpt", TransformerConfig, ".transformer:GPT", "kv_cache",
                            "decoder-only Transformer (GPT-style): predicts the next token"))
register_family(ModelFamily("bert", TransformerConfig, ".transformer:BertLM", "masked",
                            "bidirectional Transformer encoder (BERT-style): fills in masked tokens"))
register_family(ModelFamily("seq2seq", TransformerConfig, ".transformer:Seq2SeqTransformer", "seq2seq",
                            "the paper's encoder-decoder Transformer: rewrites a source text"))
register_family(ModelFamily("lstm", LSTMConfig, ".lstm:LSTMLM", "state",
                            "LSTM language model: predicts the next token, carrying (h, c)"))
