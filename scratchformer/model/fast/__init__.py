"""The fast paths: the readable modules' functions, computed faster (tests/test_fast.py and
tests/test_fast_decode.py keep them equal, outputs and gradients).

Read model/ first; nothing here is needed to understand what the models compute. Three entry points:

    lstm_layer(cell, x, h, c)   one LSTM layer over a sequence, its backward written by hand
                                (lstm_bptt.py); the only name the readable modules import from here:
                                :class:`~scratchformer.model.lstm.LSTM` calls it when a pass records
                                nothing and silences nothing
    accelerate(model)           training: the attention and feed-forward ``nn.Linear`` layers take
                                their products through gemm.py (the BLAS, or oneDNN where
                                SCRATCHFORMER_GEMM=onednn chooses it); state_dict unchanged
    fast_decoder(model)         generation: a GPT's cached decoding step with fewer calls (decode.py)
"""
from .decode import FastGPTDecoder, fast_decoder
from .gemm import accelerate
from .lstm_bptt import lstm_layer

__all__ = ["FastGPTDecoder", "accelerate", "fast_decoder", "lstm_layer"]
