"""The fast decoding helper computes the model's own function: FastGPTDecoder against GPT.forward."""
import pytest
import torch

from scratchformer.model.attention import KVCache
from scratchformer.model.config import TransformerConfig
from scratchformer.model.fast import FastGPTDecoder, fast_decoder
from scratchformer.model.transformer import GPT

D = torch.float64

CONFIGS = [
    dict(),                                                        # the shipped GPT: pre-norm, GELU, biases
    dict(norm_first=False, activation="relu", bias=False),         # the paper's post-norm
    dict(pos="sinusoidal", scale_embeddings=True, tie_weights=False),
]


def gpt(seed=0, **kw):
    torch.manual_seed(seed)
    model = GPT(TransformerConfig(vocab_size=13, n_layer=2, n_head=4, n_embd=16, block_size=24, **kw))
    with torch.no_grad():   # non-zero biases and norms, so that forgetting one shows
        for p in model.parameters():
            p.add_(0.1 * torch.randn_like(p))
    return model.to(D).eval()


@pytest.mark.parametrize("capacity", [None, 24])
@pytest.mark.parametrize("kw", CONFIGS)
def test_fast_decoder_gives_the_models_logits(kw, capacity):
    model = gpt(**kw)
    ids = torch.randint(0, 13, (2, 20), generator=torch.Generator().manual_seed(1))
    full = model(ids).logits                                      # [2, 20, V], one plain pass
    fast, cache = FastGPTDecoder(model), KVCache(2, capacity)
    torch.testing.assert_close(fast(ids[:, :7], cache), full[:, 6], rtol=0, atol=1e-10)   # prefill
    for t in range(7, 12):                                         # one token at a time
        torch.testing.assert_close(fast(ids[:, t:t + 1], cache), full[:, t], rtol=0, atol=1e-10)
    torch.testing.assert_close(fast(ids[:, 12:20], cache), full[:, 19], rtol=0, atol=1e-10)  # a chunk
    assert cache.length == 20
    # the cache it fills is the one the model's own pass fills
    ref = KVCache(2)
    model(ids, cache=ref)
    for a, b in zip(cache.layers, ref.layers):
        torch.testing.assert_close(a.k, b.k, rtol=0, atol=1e-10)
        torch.testing.assert_close(a.v, b.v, rtol=0, atol=1e-10)


def test_fast_decoder_refuses_what_it_cannot_stand_in_for():
    model = gpt()
    assert fast_decoder(model) is not None
    assert fast_decoder(model.train()) is None                    # dropout would be skipped
    cache = KVCache(2, capacity=24)
    with pytest.raises(ValueError, match="block_size"):
        FastGPTDecoder(model.eval())(torch.zeros(1, 25, dtype=torch.long), cache)


def test_preallocated_cache_matches_concatenation():
    model = gpt()
    ids = torch.randint(0, 13, (1, 10), generator=torch.Generator().manual_seed(2))
    grown, fixed = KVCache(2), KVCache(2, capacity=12)
    for t in range(10):
        a = model(ids[:, t:t + 1], cache=grown).logits
        b = model(ids[:, t:t + 1], cache=fixed).logits
        assert torch.equal(a, b)
    with pytest.raises(ValueError, match="at most 12"):
        fixed.layers[0].append(*(torch.zeros(1, 4, 3, 4, dtype=D),) * 2)
