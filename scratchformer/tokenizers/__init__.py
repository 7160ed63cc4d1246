"""Text ↔ ids. One interface (:class:`Tokenizer`, in base), one class per kind of token:

    base     the interface, how a token is shown (``display_token``), the registry of types
    char     one id per character (the tiny-Shakespeare models)

Everything above this folder asks a tokenizer what a token is (``token_text``, ``label``,
``unit``); nothing there assumes that one token is one character.
"""
from .base import TOKENIZER_TYPES, Tokenizer, display_token, register_tokenizer, tokenizer_from_dict
from .char import CharTokenizer, normalize

__all__ = ["TOKENIZER_TYPES", "CharTokenizer", "Tokenizer", "display_token", "normalize", "register_tokenizer",
           "tokenizer_from_dict"]
