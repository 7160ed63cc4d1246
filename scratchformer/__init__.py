"""scratchformer: a Transformer and an LSTM written from scratch in PyTorch, laid open for learning.

The folders are the layers, and imports only go down (tests/test_layering.py keeps it so):

    tokenizers/, device   text ↔ ids (one Tokenizer interface); where to compute
    model/                the networks, read next to the paper; registry: model_type → config, network
    checkpoint            safetensors + JSON on disk ↔ a model
    inference/            sampling, generation, decoding, fill-in-the-blanks, traced passes
    training/             data, tasks, the training loop, every metric
    views/                pure functions: numbers → figures (import no model code, only token labels)
    app/                  the Gradio app

The names below are the model layer's, for ``from scratchformer import GPT``. They are looked up
when first used (PEP 562), not when the package is imported: every ``scratchformer.*`` import runs
this file, and the app lays out its page before it imports torch (see scratchformer/app/bank.py).
"""
from . import model as _model

__all__ = ["pick_device", "CharTokenizer", *_model.__all__]


def __getattr__(name: str):
    if name == "pick_device":
        from .device import pick_device
        return pick_device
    if name == "CharTokenizer":
        from .tokenizers import CharTokenizer
        return CharTokenizer
    return getattr(_model, name)     # AttributeError for a name the model layer does not have


def __dir__():
    return sorted(set(globals()) | set(__all__))
