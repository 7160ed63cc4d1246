"""Tiny random-weight checkpoints for the app's tests (the app must work whatever the weights are),
and ``serve(demo)``, which launches a demo in-process for gradio_client and the browser.

``make_checkpoints(folder)`` writes gpt-shakespeare/ and lstm-shakespeare/ with the corpus's 65
characters, small enough that building the whole app takes well under a second of model work.
"""
import socket
from pathlib import Path

import torch

from scratchformer.checkpoint import save_checkpoint
from scratchformer.model.registry import build_model
from scratchformer.model.config import LSTMConfig
from scratchformer.tokenizers import CharTokenizer
from scratchformer.model.config import TransformerConfig

CHARS = "\n !$&',-.3:;?ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"  # tiny Shakespeare's 65

GPT_CONFIG = dict(model_type="gpt", vocab_size=65, block_size=64, n_layer=2, n_head=2, n_embd=16)
LSTM_CONFIG = dict(model_type="lstm", vocab_size=65, n_embd=8, hidden=16, n_layer=2, block_size=64)


def _metrics(kind: str) -> dict:
    curve = [{"iter": i, "tokens": (i + 1) * 1000, "train_loss": 4.2 - 0.2 * i, "val_loss": 4.3 - 0.2 * i,
              "lr": 1e-3} for i in range(5)]
    return {"val_loss": 3.5, "bits_per_char": 3.5 / 0.6931, "iters": 5, "tokens_seen": 5000,
            "hardware": f"test ({kind})", "wall_time_s": 1.0, "curve": curve}


def make_checkpoints(folder: Path, gpt: dict | None = None, lstm: dict | None = None) -> Path:
    """Write both tiny checkpoints into ``folder``; returns ``folder``."""
    torch.manual_seed(0)
    tok = CharTokenizer(list(CHARS))
    for name, cfg in (("gpt-shakespeare", TransformerConfig(**(gpt or GPT_CONFIG))),
                      ("lstm-shakespeare", LSTMConfig(**(lstm or LSTM_CONFIG)))):
        save_checkpoint(folder / name, build_model(cfg).eval(), tok, _metrics(cfg.model_type))
    return folder


WORD_VOCAB = 320     # 256 bytes + 64 merges: enough for word pieces such as "␣the", small enough to be quick


def word_tokenizer():
    """A byte-level BPE of WORD_VOCAB tokens trained on the corpus's first 100,000 characters (cached)."""
    global _WORD_TOK
    if _WORD_TOK is None:
        from scratchformer.tokenizers import BPETokenizer
        text = (Path(__file__).resolve().parents[1] / "data" / "tinyshakespeare.txt").read_text(encoding="utf-8")
        _WORD_TOK = BPETokenizer.train(text[:100_000], WORD_VOCAB)
    return _WORD_TOK


_WORD_TOK = None


def make_word_checkpoints(folder: Path) -> Path:
    """The word pair (gpt-shakespeare-bpe/, lstm-shakespeare-bpe/): random weights over the BPE of
    :func:`word_tokenizer`, the same tiny shapes as the character pair. Returns ``folder``."""
    torch.manual_seed(1)
    tok = word_tokenizer()
    for name, cfg in (("gpt-shakespeare-bpe", TransformerConfig(**(GPT_CONFIG | {"vocab_size": tok.vocab_size}))),
                      ("lstm-shakespeare-bpe", LSTMConfig(**(LSTM_CONFIG | {"vocab_size": tok.vocab_size})))):
        save_checkpoint(folder / name, build_model(cfg).eval(), tok, _metrics(cfg.model_type))
    return folder


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def serve(demo) -> str:
    """Queue and launch ``demo`` in this process on a free loopback port; returns its URL."""
    from scratchformer.app import blocks as ui
    demo.queue(default_concurrency_limit=4, max_size=32)
    _, url, _ = demo.launch(prevent_thread_lock=True, server_name="127.0.0.1", server_port=free_port(),
                            quiet=True, **ui.launch_kwargs())
    return url
