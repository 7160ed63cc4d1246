"""The models, read next to "Attention Is All You Need" (Vaswani et al. 2017).

Reading order: positional (§3.5) → attention (§3.2) → layers (§3.1, §3.3) → transformer (the three
shapes) → lstm → probe (what a pass records and switches off, an argument of the call: ablation is
its switching-off part) → trace (what a pass recorded). The configurations are in config (plain
dataclasses, no torch). The fast paths — the LSTM's hand-written backward, oneDNN products for
training, a fused GPT decoding step — are in fast/, tested equal to these; read them last, if at all.

``from scratchformer.model import GPT`` works for every name below; each module is imported when one
of its names is first used (PEP 562), so that importing ``scratchformer.model.config`` alone does not
import torch (about a second: the app reads its checkpoints' configs before torch is loaded).
"""
import importlib

# name -> the module of this package that defines it
_HOME = {
    "Ablation": "ablation", "ablate_heads": "ablation",
    **dict.fromkeys(["KVCache", "LayerCache", "MultiHeadAttention", "causal_mask", "combine_masks", "padding_mask",
                     "scaled_dot_product_attention", "subsequent_mask"], "attention"),
    "lm_loss": "basics", "num_params": "basics",
    "DecoderLayer": "layers", "EncoderLayer": "layers", "FeedForward": "layers",
    "LSTM": "lstm", "LSTMCell": "lstm", "LSTMLM": "lstm", "LSTMConfig": "config",
    "LearnedPositionalEmbedding": "positional", "SinusoidalPositionalEncoding": "positional",
    "sinusoidal_table": "positional",
    "LayerProbe": "probe", "Probe": "probe",
    "ModelOutput": "trace", "Trace": "trace",
    "GPT": "transformer", "BertLM": "transformer", "Seq2SeqTransformer": "transformer",
    "TransformerConfig": "config", "TransformerLM": "transformer", "build_transformer": "transformer",
    "shift_right": "transformer",
}
__all__ = list(_HOME)


def __getattr__(name: str):
    if name not in _HOME:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{_HOME[name]}", __name__), name)
    globals()[name] = value          # the next access is a plain lookup
    return value


def __dir__():
    return sorted(set(globals()) | set(__all__))
