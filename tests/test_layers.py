"""Encoder and decoder layers (and 2-layer stacks) against nn.TransformerEncoderLayer / DecoderLayer."""
import pytest
import torch
from torch import nn

from scratchformer.model.attention import padding_mask, subsequent_mask
from scratchformer.model.layers import DecoderLayer, EncoderLayer, FeedForward
from scratchformer.model.probe import LayerProbe
from test_attention import copy_mha

D = torch.float64
B, T, S, d_model, n_head, d_ff = 2, 5, 6, 8, 2, 16
SRC_IDS = torch.tensor([[3, 4, 5, 6, 0, 0], [3, 4, 5, 6, 7, 8]])  # 0 = padding
TGT_IDS = torch.tensor([[3, 4, 5, 0, 0], [3, 4, 5, 6, 7]])


def _copy(dst: nn.Module, src: nn.Module) -> None:
    with torch.no_grad():
        dst.weight.copy_(src.weight)
        dst.bias.copy_(src.bias)


def copy_encoder_layer(ours: EncoderLayer, theirs: nn.TransformerEncoderLayer) -> None:
    copy_mha(ours.self_attn, theirs.self_attn)
    _copy(ours.ff.linear1, theirs.linear1)
    _copy(ours.ff.linear2, theirs.linear2)
    _copy(ours.norm1, theirs.norm1)
    _copy(ours.norm2, theirs.norm2)


def copy_decoder_layer(ours: DecoderLayer, theirs: nn.TransformerDecoderLayer) -> None:
    copy_mha(ours.self_attn, theirs.self_attn)
    copy_mha(ours.cross_attn, theirs.multihead_attn)
    _copy(ours.ff.linear1, theirs.linear1)
    _copy(ours.ff.linear2, theirs.linear2)
    for k in (1, 2, 3):
        _copy(getattr(ours, f"norm{k}"), getattr(theirs, f"norm{k}"))


def jitter(module: nn.Module, seed: int) -> nn.Module:
    """Perturb every parameter (torch starts biases at 0 and LayerNorms at 1/0; make them count)."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in module.parameters():
            p.add_(0.2 * torch.randn(p.shape, generator=g, dtype=p.dtype))
    return module.eval()


def _inputs(seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(B, T, d_model, dtype=D, generator=g), torch.randn(B, S, d_model, dtype=D, generator=g)


def test_feedforward_rejects_unknown_activation():
    with pytest.raises(ValueError, match="activation"):
        FeedForward(8, 16, activation="swish")


@pytest.mark.parametrize("masked", [False, True], ids=["nomask", "causal+pad"])
@pytest.mark.parametrize("activation", ["relu", "gelu"])
@pytest.mark.parametrize("norm_first", [False, True], ids=["postnorm", "prenorm"])
def test_encoder_layer_matches_torch(norm_first, activation, masked, close):
    theirs = jitter(nn.TransformerEncoderLayer(d_model, n_head, d_ff, dropout=0.0, activation=activation,
                                               batch_first=True, norm_first=norm_first, dtype=D), 1)
    ours = EncoderLayer(d_model, n_head, d_ff, activation=activation, norm_first=norm_first).to(D).eval()
    copy_encoder_layer(ours, theirs)
    x, _ = _inputs()
    if masked:
        ref = theirs(x, src_mask=~subsequent_mask(T), src_key_padding_mask=TGT_IDS == 0)
        kw = dict(mask=padding_mask(TGT_IDS, 0), causal=True)
    else:
        ref, kw = theirs(x), {}
    for need_weights in (False, True):
        probe = LayerProbe(weights=need_weights)
        out = ours(x, probe=probe, **kw)
        close("EncoderLayer vs nn.TransformerEncoderLayer", out, ref)
        assert (probe.self_attn is not None) == need_weights
    assert probe.self_attn.shape == (B, n_head, T, T)


@pytest.mark.parametrize("causal", [True, False])
@pytest.mark.parametrize("activation", ["relu", "gelu"])
@pytest.mark.parametrize("norm_first", [False, True], ids=["postnorm", "prenorm"])
def test_decoder_layer_matches_torch(norm_first, activation, causal, close):
    theirs = jitter(nn.TransformerDecoderLayer(d_model, n_head, d_ff, dropout=0.0, activation=activation,
                                               batch_first=True, norm_first=norm_first, dtype=D), 2)
    ours = DecoderLayer(d_model, n_head, d_ff, activation=activation, norm_first=norm_first).to(D).eval()
    copy_decoder_layer(ours, theirs)
    x, mem = _inputs(3)
    ref = theirs(x, mem, tgt_mask=~subsequent_mask(T) if causal else None,
                 tgt_key_padding_mask=TGT_IDS == 0, memory_key_padding_mask=SRC_IDS == 0)
    for need_weights in (False, True):
        probe = LayerProbe(weights=need_weights)
        out = ours(x, mem, mask=padding_mask(TGT_IDS, 0), memory_mask=padding_mask(SRC_IDS, 0),
                   causal=causal, probe=probe)
        close("DecoderLayer vs nn.TransformerDecoderLayer", out, ref)
        assert (probe.self_attn is not None) == (probe.cross_attn is not None) == need_weights
    sw, cw = probe.self_attn, probe.cross_attn
    assert sw.shape == (B, n_head, T, T) and cw.shape == (B, n_head, T, S)
    assert (cw[0, :, :, 4:] == 0).all()  # padded source positions get no cross-attention
    if causal:
        assert (sw[..., ~subsequent_mask(T)] == 0).all()


@pytest.mark.parametrize("norm_first", [False, True], ids=["postnorm", "prenorm"])
def test_two_layer_stacks_match_torch(norm_first, close):
    kw = dict(dropout=0.0, activation="gelu", batch_first=True, norm_first=norm_first, dtype=D)
    enc = jitter(nn.TransformerEncoder(nn.TransformerEncoderLayer(d_model, n_head, d_ff, **kw), 2,
                                       enable_nested_tensor=False), 4)
    dec = jitter(nn.TransformerDecoder(nn.TransformerDecoderLayer(d_model, n_head, d_ff, **kw), 2), 5)
    ours_enc = [EncoderLayer(d_model, n_head, d_ff, activation="gelu", norm_first=norm_first).to(D).eval()
                for _ in range(2)]
    ours_dec = [DecoderLayer(d_model, n_head, d_ff, activation="gelu", norm_first=norm_first).to(D).eval()
                for _ in range(2)]
    for o, t in zip(ours_enc, enc.layers):
        copy_encoder_layer(o, t)
    for o, t in zip(ours_dec, dec.layers):
        copy_decoder_layer(o, t)
    x, src = _inputs(6)
    src_mask = padding_mask(SRC_IDS, 0)
    ref_mem = enc(src, src_key_padding_mask=SRC_IDS == 0)
    mem = src
    for layer in ours_enc:
        mem = layer(mem, mask=src_mask)
    keep = SRC_IDS != 0  # torch's fast path may zero padded rows; only real positions are defined
    close("2-layer encoder stack vs nn.TransformerEncoder", mem[keep], ref_mem[keep])
    ref = dec(x, ref_mem, tgt_mask=~subsequent_mask(T), memory_key_padding_mask=SRC_IDS == 0)
    y = x
    for layer in ours_dec:
        y = layer(y, mem, memory_mask=src_mask, causal=True)
    close("2-layer decoder stack vs nn.TransformerDecoder", y, ref)


def test_layer_defaults_are_the_configs():
    """EncoderLayer / DecoderLayer built with no options are TransformerConfig's layers (pre-norm, GELU)."""
    from scratchformer.model.config import TransformerConfig
    cfg = TransformerConfig()
    for layer in (EncoderLayer(8, 2, 16), DecoderLayer(8, 2, 16)):
        assert layer.norm_first is cfg.norm_first is True
        assert layer.ff.act is torch.nn.functional.gelu and cfg.activation == "gelu"


@pytest.mark.parametrize("norm_first", [False, True], ids=["postnorm", "prenorm"])
def test_decoder_layer_with_a_kv_cache_matches_the_full_pass(norm_first, close):
    """The decoder's self-attention keeps its keys and values in the probe's cache, like the encoder's;
    the cross-attention's keys (the encoder output) are not cached."""
    from scratchformer.model.attention import LayerCache
    torch.manual_seed(0)
    layer = DecoderLayer(d_model, n_head, d_ff, norm_first=norm_first).to(D).eval()
    x, mem = _inputs(7)
    full = layer(x, mem, causal=True)
    cache = LayerCache()
    steps = [layer(x[:, :2], mem, causal=True, probe=LayerProbe(cache=cache))]
    for t in range(2, T):
        steps.append(layer(x[:, t:t + 1], mem, causal=True, probe=LayerProbe(cache=cache)))
    assert cache.length == T
    close("DecoderLayer step by step with a cache vs one pass", torch.cat(steps, dim=1), full)
