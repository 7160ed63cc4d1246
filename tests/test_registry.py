"""A new tokenizer and a new model family, defined here in the test only, go through the whole
library as the shipped ones do: the checkpoint, generation, a traced pass and the attention view.

That is the promise of the tokenizer layer (tokenizers/) and of the registry (model/registry.py):
nothing above them assumes one token is one character, or that the models are a GPT and an LSTM.
"""
from __future__ import annotations

import math
import re
from dataclasses import dataclass

import pytest
import torch
from torch import nn

from scratchformer.checkpoint import load_checkpoint, save_checkpoint
from scratchformer.model.config import ConfigDict
from scratchformer.model.registry import FAMILIES, ModelFamily, build_model, family, register_family
from scratchformer.model.trace import ModelOutput, Trace
from scratchformer.tokenizers import TOKENIZER_TYPES, Tokenizer, register_tokenizer, tokenizer_from_dict


# ------------------------------------------------------------------------------ a toy tokenizer

class WordTokenizer(Tokenizer):
    """One id per word or run of spaces ("the", " ", "\\n"); "<unk>" for any other word."""

    type = "toy-words"
    unit = "token"

    def __init__(self, words):
        self.words = list(words) + ["<unk>"]
        self.specials = ["<unk>"]
        self.ids = {w: i for i, w in enumerate(self.words)}

    @property
    def vocab_size(self):
        return len(self.words)

    def encode_with_report(self, text):
        ids, unknown = [], {}
        for piece in re.findall(r"\s+|\S+", text):
            i = self.ids.get(piece)
            if i is None:
                unknown[piece] = None
                i = self.ids["<unk>"]
            ids.append(i)
        return ids, list(unknown)

    def decode(self, ids, skip_specials=True):
        return "".join(self.words[i] for i in ids if not (skip_specials and self.is_special(i)))

    def token_text(self, i):
        i = int(i)
        if not 0 <= i < len(self.words):
            raise ValueError(f"token id {i} is outside the vocabulary (0..{len(self.words) - 1})")
        return self.words[i]

    def special_id(self, name):
        return self.ids[name]

    def to_dict(self):
        return {"type": self.type, "words": self.words[:-1]}

    @classmethod
    def from_dict(cls, d):
        return cls(d["words"])


WORDS = ["the", "king", "queen", "is", "dead", "long", "live", " ", "\n", ",", "!"]


@pytest.fixture
def words():
    register_tokenizer(WordTokenizer)
    yield WordTokenizer(WORDS)
    TOKENIZER_TYPES.pop(WordTokenizer.type)


def test_a_registered_tokenizer_type_is_read_from_its_json(words):
    again = tokenizer_from_dict(words.to_dict())
    assert isinstance(again, WordTokenizer) and again.words == words.words
    ids, unknown = words.encode_with_report("the king is dead, long live the queen!")
    assert unknown == ["dead,", "queen!"]          # whole pieces, as typed
    assert words.decode(words.encode("long live the king")) == "long live the king"
    assert words.pieces(words.encode("the king")) == ["the", " ", "king"]
    assert words.label(words.encode(" ")[0]) == "␣" and words.label(words.encode("\n")[0]) == "⏎"
    assert words.count(3) == "3 tokens"
    assert words.texts[words.special_id("<unk>")] == "<unk>" and words.is_special(words.special_id("<unk>"))


def test_an_unknown_tokenizer_type_is_a_clear_error():
    with pytest.raises(ValueError, match=r"unknown tokenizer type 'sentencepiece'; known types: \['bpe', 'char'"):
        tokenizer_from_dict({"type": "sentencepiece"})
    with pytest.raises(ValueError, match="must be a JSON object"):
        tokenizer_from_dict(["char"])


def test_an_unknown_model_type_is_a_clear_error():
    with pytest.raises(ValueError, match=r"unknown model_type 'mamba'; expected one of \['bert', 'gpt', 'lstm', 'seq2seq'\]"):
        family("mamba")
    assert family("gpt").writes_text and family("lstm").writes_text
    assert not family("bert").writes_text and not family("seq2seq").writes_text


# ---------------------------------------------------------------------------- a toy model family

@dataclass
class ToyConfig(ConfigDict):
    """One layer, one head: causal self-attention over the token embeddings, then the output head."""

    model_type: str = "toy-attn"
    vocab_size: int = len(WORDS) + 1
    n_embd: int = 8
    block_size: int = 16
    n_layer: int = 1
    n_head: int = 1


class ToyAttention(nn.Module):
    """h_t = x_t + Σ_j α_tj x_j with α = softmax(q·kᵀ/√d + M); logits = h·W_outᵀ."""

    def __init__(self, cfg: ToyConfig):
        super().__init__()
        self.config = cfg
        self.emb = nn.Embedding(cfg.vocab_size, cfg.n_embd)
        self.q = nn.Linear(cfg.n_embd, cfg.n_embd)
        self.k = nn.Linear(cfg.n_embd, cfg.n_embd)
        self.head = nn.Linear(cfg.n_embd, cfg.vocab_size)

    @property
    def context_length(self):
        return self.config.block_size

    def forward(self, ids, targets=None, *, causal=None, trace=False):
        causal = True if causal is None else causal
        x = self.emb(ids)
        scores = self.q(x) @ self.k(x).transpose(-2, -1) / self.config.n_embd ** 0.5
        if causal:
            T = ids.size(1)
            scores = scores.masked_fill(~torch.ones(T, T, dtype=torch.bool).tril(), float("-inf"))
        weights = scores.softmax(-1)
        h = x + weights @ x
        logits = self.head(h)
        tr = (Trace(tokens=ids, logits=logits.detach(), causal=causal, self_attn=[weights[:, None].detach()],
                    hidden_states=[x.detach(), h.detach()]) if trace else None)
        return ModelOutput(logits, None, tr)


@pytest.fixture
def toy_family():
    register_family(ModelFamily("toy-attn", ToyConfig, ToyAttention, "recompute", "one attention head (a test)"))
    yield FAMILIES["toy-attn"]
    FAMILIES.pop("toy-attn")


@pytest.fixture
def toy_checkpoint(tmp_path, words, toy_family):
    torch.manual_seed(0)
    model = build_model(ToyConfig())
    save_checkpoint(tmp_path / "toy", model, words, {"note": "made in a test"})
    return tmp_path / "toy"


def test_a_new_family_and_tokenizer_load_and_generate(toy_checkpoint, words):
    from scratchformer.inference.generation import generate_stream
    loaded = load_checkpoint(toy_checkpoint)
    assert isinstance(loaded.model, ToyAttention) and isinstance(loaded.tokenizer, WordTokenizer)
    steps = list(generate_stream(loaded.model, loaded.tokenizer, "long live the king", max_new_tokens=20,
                                 seed=3))
    assert len(steps) == 20
    # each step's logits are those of one whole pass over what it saw (the "recompute" decoding)
    seq = loaded.tokenizer.encode("long live the king") + [s.token_id for s in steps]
    for i, s in enumerate(steps):
        seen = seq[s.context_start:s.context_start + s.context_len]
        assert s.context_len == min(loaded.model.config.block_size, 7 + i)
        logits = loaded.model(torch.tensor([seen])).logits[0, -1]
        assert torch.allclose(s.step.logits, logits, atol=1e-6)
        assert s.text == loaded.tokenizer.decode([s.token_id])      # a whole word (or space) per token
    assert any(len(s.text) > 1 for s in steps)


def test_a_new_family_in_the_attention_view(toy_checkpoint, words):
    from scratchformer.app.bank import TRANSFORMER, ModelBank, ModelSpec
    from scratchformer.app.inspect_tabs import attention
    bank = ModelBank.load(toy_checkpoint.parent, models={TRANSFORMER: ModelSpec("toy", "toy-attn")})
    text = "the king is dead\nlong live the king"
    views = attention(bank, text, True, 1, 1, False)
    ids = words.encode(text)
    weights = bank.get(TRANSFORMER).model(torch.tensor([ids]), trace=True).trace.self_attn[0][0, 0]
    heat = views.head.data[0]
    assert list(heat.z.shape) == [len(ids), len(ids)]
    assert torch.allclose(torch.tensor(heat.z, dtype=torch.float32), weights, atol=1e-6)
    # the axes name tokens by their text, spaces and line breaks made visible: whole words, not characters
    ticks = list(views.head.layout.xaxis.ticktext)
    assert ticks[:3] == ["the", "␣", "king"] and "⏎" in ticks
    # the loss is per character of the text predicted, not per token: Σ −log₂ p(token) ÷ its characters
    logp = torch.log_softmax(bank.get(TRANSFORMER).model(torch.tensor([ids])).logits[0].double(), -1)
    nats = -logp[:-1].gather(1, torch.tensor(ids[1:])[:, None]).sum()
    chars = len("".join(words.pieces(ids[1:])))
    assert f"mask on {float(nats) / chars / math.log(2):.2f} bits/char" in views.comparison
