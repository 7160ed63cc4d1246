"""The fast decoding helper computes the model's own function: FastGPTDecoder against GPT.forward."""
import gc

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
    dict(activation="gelu_tanh", vocab_size=50),                  # GPT-2's block; a head taller than wide
]
# GPT-2 (scratchformer/gpt2.py): learned positions, pre-norm, biases, tied head, tanh-approximated GELU
GPT2_SHAPE = dict(pos="learned", norm_first=True, bias=True, tie_weights=True, activation="gelu_tanh")


def gpt(seed=0, dtype=D, vocab_size=13, **kw):
    torch.manual_seed(seed)
    model = GPT(TransformerConfig(vocab_size=vocab_size, n_layer=2, n_head=4, n_embd=16, block_size=24, **kw))
    with torch.no_grad():   # non-zero biases and norms, so that forgetting one shows
        for p in model.parameters():
            p.add_(0.1 * torch.randn_like(p))
    return model.to(dtype).eval()


@pytest.mark.parametrize("capacity", [None, 24])
@pytest.mark.parametrize("kw", CONFIGS)
def test_fast_decoder_gives_the_models_logits(kw, capacity):
    model = gpt(**kw)
    ids = torch.randint(0, model.config.vocab_size, (2, 20), generator=torch.Generator().manual_seed(1))
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


@pytest.mark.parametrize("dtype, atol", [(torch.float32, 1e-5), (D, 1e-10)])
def test_a_gpt2_shaped_model_decodes_exactly(dtype, atol):
    """GPT-2's options (gelu_tanh, learned positions, pre-norm, biases, tied head) in float32 as loaded
    from a GPT-2 folder: the prompt read at once, then one token at a time, each step's logits those
    of one plain forward pass over the whole sequence."""
    model = gpt(dtype=dtype, vocab_size=97, **GPT2_SHAPE)
    assert model.lm_head.weight is model.embed.tok.weight
    fast = fast_decoder(model)
    assert fast is not None
    ids = torch.randint(0, 97, (1, 24), generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        full = model(ids).logits
        cache = KVCache(2, capacity=24)
        torch.testing.assert_close(fast(ids[:, :9], cache), full[:, 8], rtol=0, atol=atol)
        for t in range(9, 24):
            torch.testing.assert_close(fast(ids[:, t:t + 1], cache), full[:, t], rtol=0, atol=atol)
    assert (fast(ids[:, :1], KVCache(2)) - full[:, 0]).abs().max() <= atol


def test_tall_weights_are_read_from_an_in_out_copy_on_the_cpu():
    """W^QKV, W₁ and a head with more rows than columns: [out, in]-shaped views of [in, out] storage
    (the faster product on the CPU); W^O, W₂ and the token table are the model's own tensors."""
    model = gpt(vocab_size=97)
    fast = FastGPTDecoder(model)
    _, w_qkv, _, w_o, _, _, w1, _, _, w2, _ = fast.layers[0]
    layer = model.layers[0]
    for w in (w_qkv, w1, fast.w_head):
        assert w.t().is_contiguous() and not w.is_contiguous()
    assert w_qkv.shape == (48, 16) and w1.shape == layer.ff.linear1.weight.shape
    torch.testing.assert_close(w1, layer.ff.linear1.weight, rtol=0, atol=0)
    torch.testing.assert_close(fast.w_head, model.lm_head.weight, rtol=0, atol=0)
    assert w_o is layer.self_attn.out_proj.weight and w2 is layer.ff.linear2.weight
    assert fast.w_tok is model.embed.tok.weight


def test_fast_decoder_is_made_once_per_model_and_again_after_a_weight_changes():
    model = gpt(vocab_size=97)
    ids = torch.randint(0, 97, (1, 6), generator=torch.Generator().manual_seed(4))
    first = fast_decoder(model)
    assert fast_decoder(model) is first                            # shared by the model's requests
    assert fast_decoder(gpt(vocab_size=97)) is not first           # another model, its own
    with torch.no_grad():
        model.lm_head.weight.mul_(1.5)                             # written in place (tied: the tokens too)
        model.layers[1].ff.linear1.weight.add_(0.25)
    second = fast_decoder(model)
    assert second is not first
    with torch.no_grad():
        torch.testing.assert_close(second(ids, KVCache(2)), model(ids).logits[:, -1], rtol=0, atol=1e-10)
    with torch.no_grad():                                          # a weight replaced by a new tensor
        model.layers[0].self_attn.q_proj.weight = torch.nn.Parameter(torch.randn(16, 16, dtype=D))
    third = fast_decoder(model)
    assert third is not second
    with torch.no_grad():
        torch.testing.assert_close(third(ids, KVCache(2)), model(ids).logits[:, -1], rtol=0, atol=1e-10)


def test_a_dropped_model_takes_its_decoder_with_it():
    from scratchformer.model.fast import decode
    model = gpt()
    fast_decoder(model)
    n = len(decode._DECODERS)
    del model
    gc.collect()
    assert len(decode._DECODERS) == n - 1


def test_a_decoder_made_under_inference_mode_serves_outside_it():
    model = gpt(vocab_size=97)
    with torch.inference_mode():
        fast = FastGPTDecoder(model)
    assert not fast.w_head.is_inference()
    ids = torch.randint(0, 97, (1, 5), generator=torch.Generator().manual_seed(5))
    with torch.no_grad():
        torch.testing.assert_close(fast(ids, KVCache(2)), model(ids).logits[:, -1], rtol=0, atol=1e-10)


def test_qkv_side_by_side_in_one_matrix_are_read_where_they_lie():
    """GPT-2's c_attn [d, 3d] as load_gpt2_folder reads it: W^Q, W^K, W^V are transposed views of its
    column blocks. The decoder's stack is that matrix (no copy) and the logits are the model's."""
    model = gpt(vocab_size=97, **GPT2_SHAPE)
    with torch.no_grad():
        for layer in model.layers:
            a = layer.self_attn
            c_attn = torch.cat([a.q_proj.weight.t(), a.k_proj.weight.t(), a.v_proj.weight.t()], dim=1)
            for k, proj in enumerate((a.q_proj, a.k_proj, a.v_proj)):
                proj.weight = torch.nn.Parameter(c_attn[:, 16 * k:16 * (k + 1)].t())
    fast = FastGPTDecoder(model)
    for layer, stacked in zip(model.layers, (entry[1] for entry in fast.layers)):
        q = layer.self_attn.q_proj.weight
        assert stacked.untyped_storage().data_ptr() == q.untyped_storage().data_ptr()
        assert stacked.shape == (48, 16)
    ids = torch.randint(0, 97, (1, 12), generator=torch.Generator().manual_seed(6))
    with torch.no_grad():
        full = model(ids).logits
        cache = KVCache(2)
        torch.testing.assert_close(fast(ids[:, :5], cache), full[:, 4], rtol=0, atol=1e-10)
        for t in range(5, 12):
            torch.testing.assert_close(fast(ids[:, t:t + 1], cache), full[:, t], rtol=0, atol=1e-10)
