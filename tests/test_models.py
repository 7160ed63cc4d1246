"""GPT, BertLM and the encoder-decoder: causality, KV cache, padding, traces, gradients, positions,
and whole models against PyTorch's nn.TransformerEncoder / nn.Transformer with copied weights."""
import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from scratchformer.model.attention import KVCache, subsequent_mask
from scratchformer.model.config import LSTMConfig, TransformerConfig
from scratchformer.model.lstm import LSTMLM
from scratchformer.model.positional import SinusoidalPositionalEncoding, make_positional, sinusoidal_table
from scratchformer.model.transformer import GPT, BertLM, Seq2SeqTransformer, build_transformer, shift_right
from test_layers import copy_decoder_layer, copy_encoder_layer, jitter

D = torch.float64
V, PAD, BOS, EOS = 13, 0, 1, 2


def make(model_type="gpt", seed=0, **kw):
    torch.manual_seed(seed)
    base = dict(model_type=model_type, vocab_size=V, block_size=8, n_layer=2, n_head=2, n_embd=8)
    if model_type == "seq2seq":
        base.update(pad_id=PAD, bos_id=BOS, eos_id=EOS)
    model = build_transformer(TransformerConfig(**{**base, **kw})).to(D).eval()
    jitter(model, seed + 100)  # GPT-2 init is tiny (std 0.02, zero biases): make differences visible
    return model


def ids_(*shape, seed=1, low=3):
    return torch.randint(low, V, shape, generator=torch.Generator().manual_seed(seed))


# -------------------------------------------------------------------------------- positional table

def test_sinusoidal_values_computed_by_hand():
    pe = sinusoidal_table(20, 8)
    assert pe.shape == (20, 8)
    assert pe[0].tolist() == [0.0, 1.0] * 4                     # sin 0 = 0, cos 0 = 1
    for pos in (1, 5, 13):
        assert pe[pos, 0].item() == pytest.approx(math.sin(pos), abs=1e-6)
        assert pe[pos, 1].item() == pytest.approx(math.cos(pos), abs=1e-6)
        for i in range(4):                                      # PE(pos, 2i), PE(pos, 2i+1)
            angle = pos / 10000 ** (2 * i / 8)
            assert pe[pos, 2 * i].item() == pytest.approx(math.sin(angle), abs=1e-6)
            assert pe[pos, 2 * i + 1].item() == pytest.approx(math.cos(angle), abs=1e-6)
    assert pe[7, 6].item() == pytest.approx(math.sin(7 / 1000), abs=1e-6)  # 10000^(6/8) = 1000
    odd = sinusoidal_table(4, 5)                                # odd width: last column is a sine
    assert odd[3, 4].item() == pytest.approx(math.sin(3 / 10000 ** (4 / 5)), abs=1e-6)
    enc = SinusoidalPositionalEncoding(20, 8)
    assert torch.equal(enc(torch.tensor([5, 13])), pe[[5, 13]])
    assert not list(enc.parameters())
    with pytest.raises(ValueError, match="positional"):
        make_positional("rotary", 8, 8)


# ------------------------------------------------------------------------------------- causality

@pytest.mark.parametrize("norm_first", [True, False], ids=["prenorm", "postnorm"])
@pytest.mark.parametrize("pos", ["learned", "sinusoidal"])
def test_gpt_causal_mask_hides_the_future(pos, norm_first):
    model = make(pos=pos, norm_first=norm_first)
    a = ids_(2, 8)
    b = a.clone()
    b[:, 4:] = ids_(2, 4, seed=9)  # change tokens after position t = 3
    for trace in (False, True):    # fused and manual attention paths
        la, lb = model(a, trace=trace).logits, model(b, trace=trace).logits
        assert torch.allclose(la[:, :4], lb[:, :4], atol=1e-12)
        assert not torch.allclose(la[:, 4:], lb[:, 4:], atol=1e-3)
        na, nb = model(a, causal=False, trace=trace).logits, model(b, causal=False, trace=trace).logits
        assert not torch.allclose(na[:, :4], nb[:, :4], atol=1e-3)  # without the mask the past sees it


def test_bert_is_bidirectional_by_default_and_causal_on_request():
    model = make("bert")
    assert isinstance(model, BertLM)
    a = ids_(1, 6)
    b = a.clone()
    b[0, 5] = (a[0, 5] + 1 - 3) % (V - 3) + 3
    assert not torch.allclose(model(a).logits[:, :5], model(b).logits[:, :5], atol=1e-3)
    assert torch.allclose(model(a, causal=True).logits[:, :5], model(b, causal=True).logits[:, :5],
                          atol=1e-12)


def test_causal_flag_is_per_call_not_state():
    model = make()
    x = ids_(2, 7)
    causal_first = [model(x, causal=True).logits, model(x, causal=False).logits]
    non_causal_first = [model(x, causal=False).logits, model(x, causal=True).logits]
    assert torch.equal(causal_first[0], non_causal_first[1])
    assert torch.equal(causal_first[1], non_causal_first[0])
    assert not torch.allclose(causal_first[0], causal_first[1], atol=1e-3)
    assert model(x, trace=True).trace.causal is True
    assert model(x, causal=False, trace=True).trace.causal is False


def test_gpt_trace_contents():
    model = make()
    x = ids_(2, 6)
    out = model(x, trace=True)
    tr = out.trace
    assert torch.equal(tr.tokens, x) and torch.equal(tr.logits, out.logits)
    assert len(tr.self_attn) == 2 and len(tr.hidden_states) == 3
    for w in tr.self_attn:
        assert w.shape == (2, 2, 6, 6)
        assert torch.allclose(w.sum(-1), torch.ones((), dtype=D))
        assert (w[..., ~subsequent_mask(6)] == 0).all()
    assert tr.token_embeddings.shape == (2, 6, 8) and tr.positional_embeddings.shape == (6, 8)
    assert torch.allclose(out.logits, model(x).logits, atol=1e-12)  # fused path == manual path


def test_sequence_longer_than_block_size_is_a_clear_error():
    with pytest.raises(ValueError, match="block_size"):
        make()(ids_(1, 9))


# -------------------------------------------------------------------------------------- KV cache

@pytest.mark.parametrize("trace", [False, True])
@pytest.mark.parametrize("pos,norm_first", [("learned", True), ("sinusoidal", False)])
def test_kv_cache_incremental_equals_full_forward(pos, norm_first, trace):
    model = make(pos=pos, norm_first=norm_first)
    x = ids_(2, 8)
    full = model(x).logits
    cache = KVCache(model.config.n_layer)
    parts = [model(x[:, :3], cache=cache, trace=trace).logits]  # prefill, then one token at a time
    for t in range(3, 8):
        out = model(x[:, t:t + 1], cache=cache, trace=trace)
        parts.append(out.logits)
        if trace:
            assert out.trace.self_attn[0].shape == (2, 2, 1, t + 1)
    assert cache.length == 8
    assert (torch.cat(parts, dim=1) - full).abs().max() <= 1e-5
    with pytest.raises(ValueError, match="block_size"):
        model(x[:, :1], cache=cache)  # position 8 does not exist


# --------------------------------------------------------------------------------------- seq2seq

def test_seq2seq_decoder_is_causal_and_ignores_source_padding():
    model = make("seq2seq", n_dec_layer=1)
    src = ids_(2, 6)
    tgt_in = shift_right(ids_(2, 5, seed=2), BOS)
    base = model(src, tgt_in).logits
    changed = tgt_in.clone()
    changed[:, 3:] = ids_(2, 2, seed=3)
    later = model(src, changed).logits
    assert torch.allclose(base[:, :3], later[:, :3], atol=1e-12)
    assert not torch.allclose(base[:, 3:], later[:, 3:], atol=1e-3)
    # a source with padding gives what the unpadded source gives
    short, padded = src[:1, :4], torch.cat([src[:1, :4], torch.full((1, 2), PAD)], dim=1)
    assert torch.allclose(model(short, tgt_in[:1]).logits, model(padded, tgt_in[:1]).logits, atol=1e-12)
    # whatever vector sits at a padded source position, the decoder does not see it
    before = model(padded, tgt_in[:1]).logits[..., 3:]  # (the pad column of a tied head moves)
    with torch.no_grad():
        model.embed.tok.weight[PAD] += 5.0
    assert torch.allclose(model(padded, tgt_in[:1]).logits[..., 3:], before, atol=1e-12)


def test_seq2seq_trace_shapes():
    model = make("seq2seq", n_layer=2, n_dec_layer=3)
    src = torch.cat([ids_(2, 5), torch.full((2, 2), PAD)], dim=1)  # S = 7, last two padded
    tgt_in = shift_right(ids_(2, 4, seed=5), BOS)                     # T = 4
    out = model(src, tgt_in, trace=True)
    tr = out.trace
    assert out.logits.shape == (2, 4, V)
    assert [w.shape for w in tr.encoder_self_attn] == [(2, 2, 7, 7)] * 2
    assert [w.shape for w in tr.self_attn] == [(2, 2, 4, 4)] * 3
    assert [w.shape for w in tr.cross_attn] == [(2, 2, 4, 7)] * 3
    assert len(tr.hidden_states) == 4 and len(tr.encoder_hidden_states) == 2
    assert torch.equal(tr.src_tokens, src) and torch.equal(tr.tokens, tgt_in)
    assert all((w[..., 5:] == 0).all() for w in tr.cross_attn + tr.encoder_self_attn)
    assert torch.allclose(out.logits, model(src, tgt_in).logits, atol=1e-12)


def test_shift_right_and_config():
    assert shift_right(torch.tensor([[5, 6, 7]]), BOS).tolist() == [[BOS, 5, 6]]
    cfg = TransformerConfig(model_type="bert", n_embd=16, n_head=4, mask_id=3)
    assert TransformerConfig.from_dict(cfg.to_dict()) == cfg and cfg.d_ff == 64
    assert isinstance(build_transformer(TransformerConfig(vocab_size=V, n_embd=8, n_head=2)), GPT)
    for bad in (dict(model_type="rnn"), dict(n_embd=10, n_head=4)):
        with pytest.raises(ValueError):
            TransformerConfig(**bad)
    with pytest.raises(ValueError, match="unknown"):
        TransformerConfig.from_dict({"model_type": "gpt", "heads": 2})
    with pytest.raises(ValueError, match="pad_id"):
        Seq2SeqTransformer(TransformerConfig(model_type="seq2seq"))


# ------------------------------------------------------------------- whole models against PyTorch

def test_gpt_matches_torch_transformer_encoder(close):
    """Pre-norm GPT = embeddings → nn.TransformerEncoder(norm_first, final LayerNorm) → tied head."""
    model = make(pos="sinusoidal", activation="gelu", norm_first=True)
    layer = nn.TransformerEncoderLayer(8, 2, 32, dropout=0.0, activation="gelu", batch_first=True,
                                       norm_first=True, dtype=D)
    ref = nn.TransformerEncoder(layer, 2, norm=nn.LayerNorm(8, dtype=D), enable_nested_tensor=False).eval()
    for ours, theirs in zip(model.layers, ref.layers):
        copy_encoder_layer(ours, theirs)
    ref.norm.load_state_dict(model.ln_f.state_dict())
    x = ids_(2, 8)
    h = model.embed.tok(x) + sinusoidal_table(8, 8).to(D)
    expected = ref(h, mask=~subsequent_mask(8), is_causal=True) @ model.embed.tok.weight.T
    close("GPT vs nn.TransformerEncoder + head", model(x).logits, expected)


@pytest.mark.filterwarnings("ignore:enable_nested_tensor is True")
def test_seq2seq_matches_torch_transformer(close):
    """Pre-norm encoder-decoder = shared embeddings → nn.Transformer(norm_first) → tied head."""
    model = make("seq2seq", activation="relu", norm_first=True)
    ref = nn.Transformer(8, 2, 2, 2, 32, dropout=0.0, activation="relu", batch_first=True,
                         norm_first=True, dtype=D).eval()
    for ours, theirs in zip(model.encoder, ref.encoder.layers):
        copy_encoder_layer(ours, theirs)
    for ours, theirs in zip(model.decoder, ref.decoder.layers):
        copy_decoder_layer(ours, theirs)
    ref.encoder.norm.load_state_dict(model.enc_norm.state_dict())
    ref.decoder.norm.load_state_dict(model.dec_norm.state_dict())
    src = torch.cat([ids_(2, 4), torch.full((2, 2), PAD)], dim=1)
    src[1, 4:] = ids_(2, seed=7)
    tgt_in = shift_right(ids_(2, 5, seed=8), BOS)
    emb = lambda ids: model.embed.tok(ids) + model.embed.pos(torch.arange(ids.size(1)))  # noqa: E731
    out = ref(emb(src), emb(tgt_in), tgt_mask=~subsequent_mask(5), src_key_padding_mask=src == PAD,
              memory_key_padding_mask=src == PAD)
    close("Seq2SeqTransformer vs nn.Transformer + head", model(src, tgt_in).logits,
          out @ model.embed.tok.weight.T)


# ------------------------------------------------------------------------------------- gradients

def _check_grads(model):
    for name, p in model.named_parameters():
        assert p.grad is not None, f"{name} got no gradient"
        assert torch.isfinite(p.grad).all(), f"{name} has a non-finite gradient"
        if name.endswith("k_proj.bias"):
            # softmax is unchanged by adding one number to a whole row of scores, and a key bias
            # adds q·b_k to every score of the row: its gradient is zero (up to rounding)
            assert p.grad.abs().max() < 1e-10, name
        else:
            assert p.grad.abs().max() > 0, f"{name} has an all-zero gradient"


@pytest.mark.parametrize("model_type,kw", [("gpt", dict(pos="learned")),
                                           ("gpt", dict(pos="sinusoidal", norm_first=False)),
                                           ("bert", dict()),
                                           ("seq2seq", dict()),
                                           ("seq2seq", dict(norm_first=False, tie_weights=False))])
def test_every_parameter_gets_a_gradient(model_type, kw):
    model = make(model_type, **kw).train()
    x = ids_(2, 8)  # all 8 positions, so every learned position vector is used
    if model_type == "seq2seq":
        y = ids_(2, 8, seed=4)
        out = model(x, shift_right(y, BOS), y)
    else:
        out = model(x, ids_(2, 8, seed=4))
    out.loss.backward()
    _check_grads(model)


def test_every_lstm_parameter_gets_a_gradient():
    torch.manual_seed(0)
    model = LSTMLM(LSTMConfig(vocab_size=V, n_embd=6, hidden=8, n_layer=2)).to(D)
    x = ids_(2, 6, low=0)
    out = model(x, ids_(2, 6, seed=4, low=0))
    assert out.loss.item() == pytest.approx(F.cross_entropy(out.logits.reshape(-1, V),
                                                            ids_(2, 6, seed=4, low=0).reshape(-1)).item())
    out.loss.backward()
    _check_grads(model)
