"""scratchformer: a Transformer and an LSTM written from scratch in PyTorch, laid open for learning."""
from .attention import (KVCache, MultiHeadAttention, causal_mask, combine_masks, padding_mask,
                        scaled_dot_product_attention, subsequent_mask)
from .device import pick_device
from .layers import DecoderLayer, EncoderLayer, FeedForward
from .lstm import LSTM, LSTMCell, LSTMConfig, LSTMLM
from .positional import LearnedPositionalEmbedding, SinusoidalPositionalEncoding, sinusoidal_table
from .tokenizer import CharTokenizer
from .trace import ModelOutput, Trace
from .transformer import (GPT, BertLM, Seq2SeqTransformer, TransformerConfig, TransformerLM,
                          build_transformer, shift_right)

__all__ = [
    "KVCache", "MultiHeadAttention", "causal_mask", "combine_masks", "padding_mask",
    "scaled_dot_product_attention", "subsequent_mask", "pick_device", "DecoderLayer", "EncoderLayer",
    "FeedForward", "LSTM", "LSTMCell", "LSTMConfig", "LSTMLM", "LearnedPositionalEmbedding",
    "SinusoidalPositionalEncoding", "sinusoidal_table", "CharTokenizer", "ModelOutput", "Trace", "GPT",
    "BertLM", "Seq2SeqTransformer", "TransformerConfig", "TransformerLM", "build_transformer",
    "shift_right",
]
