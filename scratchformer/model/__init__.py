"""The models, read next to "Attention Is All You Need" (Vaswani et al. 2017).

Reading order: positional (§3.5) → attention (§3.2) → layers (§3.1, §3.3) → transformer (the three
shapes) → lstm (and lstm_bptt, its hand-written backward) → trace (what a pass records when asked).
"""
from .ablation import Ablation, ablate_heads
from .attention import (KVCache, LayerCache, MultiHeadAttention, causal_mask, combine_masks, padding_mask,
                        scaled_dot_product_attention, subsequent_mask)
from .basics import lm_loss, num_params
from .layers import DecoderLayer, EncoderLayer, FeedForward
from .lstm import LSTM, LSTMCell, LSTMConfig, LSTMLM
from .positional import LearnedPositionalEmbedding, SinusoidalPositionalEncoding, sinusoidal_table
from .trace import ModelOutput, Trace
from .transformer import (GPT, BertLM, Seq2SeqTransformer, TransformerConfig, TransformerLM,
                          build_transformer, shift_right)

__all__ = [
    "Ablation", "ablate_heads",
    "KVCache", "LayerCache", "MultiHeadAttention", "causal_mask", "combine_masks", "padding_mask",
    "scaled_dot_product_attention", "subsequent_mask", "lm_loss", "num_params", "DecoderLayer",
    "EncoderLayer", "FeedForward", "LSTM", "LSTMCell", "LSTMConfig", "LSTMLM", "LearnedPositionalEmbedding",
    "SinusoidalPositionalEncoding", "sinusoidal_table", "ModelOutput", "Trace", "GPT", "BertLM",
    "Seq2SeqTransformer", "TransformerConfig", "TransformerLM", "build_transformer", "shift_right",
]
