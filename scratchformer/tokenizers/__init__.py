"""Text ↔ ids. One interface (:class:`Tokenizer`, in base), one class per kind of token:

    base     the interface, how a token is shown (``display_token``), the registry of types
    char     one id per character (the tiny-Shakespeare models)
    bpe      byte-level byte-pair encoding, GPT-2's kind (trains; reads and writes vocab.json + merges.txt)

Everything above this folder asks a tokenizer what a token is (``token_text``, ``label``,
``unit``); nothing there assumes that one token is one character.
"""
from .base import TOKENIZER_TYPES, Tokenizer, display_token, register_tokenizer, tokenizer_from_dict
from .bpe import BPETokenizer
from .char import CharTokenizer, normalize

__all__ = ["TOKENIZER_TYPES", "BPETokenizer", "CharTokenizer", "Tokenizer", "display_token", "normalize", "register_tokenizer",
           "tokenizer_from_dict"]
