"""scratchformer: a Transformer and an LSTM written from scratch in PyTorch, laid open for learning.

The folders are the layers, and imports only go down (tests/test_layering.py keeps it so):

    tokenizer, device     text ↔ ids; where to compute
    model/                the networks, read next to the paper
    checkpoint            safetensors + JSON on disk ↔ a model
    inference/            sampling, generation, decoding, fill-in-the-blanks, traced passes
    training/             data, tasks, the training loop, every metric
    views/                pure functions: numbers → figures (import no model code)
    app/                  the Gradio app

The names below are the model layer's, for ``from scratchformer import GPT``.
"""
from .device import pick_device
from .model import *  # noqa: F401,F403
from .model import __all__ as _model_names
from .tokenizer import CharTokenizer

__all__ = ["pick_device", "CharTokenizer", *_model_names]
