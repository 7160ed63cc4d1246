"""The models' configurations: plain dataclasses, what a checkpoint's config.json stores.

They live apart from the networks and import no torch, so that a checkpoint's architecture can be
read (and an app laid out from it) before torch is imported: ``import torch`` takes about a second.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from typing import Optional


class ConfigDict:
    """``to_dict`` / ``from_dict`` for a config dataclass: what a checkpoint's config.json stores."""

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict):
        """The config from a dict; ValueError naming any key this config does not have."""
        unknown = set(d) - {f.name for f in fields(cls)}
        if unknown:
            raise ValueError(f"unknown {cls.__name__} keys: {sorted(unknown)}")
        return cls(**d)


MODEL_TYPES = ("gpt", "bert", "seq2seq")


@dataclass
class TransformerConfig(ConfigDict):
    """Architecture of a Transformer. ``model_type`` is "gpt", "bert" or "seq2seq"."""

    model_type: str = "gpt"
    vocab_size: int = 65
    block_size: int = 256          # longest sequence (positions 0 … block_size-1)
    n_layer: int = 4               # layers (encoder layers for seq2seq)
    n_head: int = 4
    n_embd: int = 128              # d_model
    d_ff: Optional[int] = None     # default 4·n_embd
    dropout: float = 0.0
    pos: str = "learned"           # "learned" or "sinusoidal"
    norm_first: bool = True        # pre-norm (True) or the paper's post-norm (False)
    activation: str = "gelu"       # "gelu" or "relu"
    bias: bool = True
    tie_weights: bool = True       # output head shares the token-embedding matrix
    scale_embeddings: bool = False  # multiply token embeddings by √d_model (the paper does)
    n_dec_layer: Optional[int] = None  # seq2seq: decoder layers (default n_layer)
    pad_id: Optional[int] = None   # seq2seq / bert: padding token
    bos_id: Optional[int] = None   # seq2seq: decoder start token
    eos_id: Optional[int] = None   # seq2seq: end of output
    mask_id: Optional[int] = None  # bert: the blank token

    def __post_init__(self):
        if self.model_type not in MODEL_TYPES:
            raise ValueError(f"unknown model_type {self.model_type!r}; expected one of {MODEL_TYPES}")
        if self.d_ff is None:
            self.d_ff = 4 * self.n_embd
        if self.n_embd % self.n_head:
            raise ValueError(f"n_embd ({self.n_embd}) must be divisible by n_head ({self.n_head})")


@dataclass
class LSTMConfig(ConfigDict):
    """Architecture of the LSTM language model."""

    model_type: str = "lstm"
    vocab_size: int = 65
    n_embd: int = 64        # embedding width
    hidden: int = 256       # hidden (and cell) units per layer
    n_layer: int = 2
    dropout: float = 0.0
    block_size: int = 256   # training window; generation carries (h, c) and has no limit

    def __post_init__(self):
        if self.model_type != "lstm":
            raise ValueError(f"LSTMConfig model_type must be 'lstm', got {self.model_type!r}")
