"""Masks, scaled dot-product attention and multi-head attention against PyTorch's own."""
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from scratchformer.model.attention import (LayerCache, MultiHeadAttention, causal_mask, combine_masks,
                                     padding_mask, scaled_dot_product_attention, subsequent_mask)
from scratchformer.model.probe import LayerProbe

D = torch.float64


def copy_mha(ours: MultiHeadAttention, theirs: nn.MultiheadAttention) -> None:
    """Copy nn.MultiheadAttention's packed [W_q; W_k; W_v] (and biases) into our three projections."""
    with torch.no_grad():
        for proj, w, b in zip((ours.q_proj, ours.k_proj, ours.v_proj),
                              theirs.in_proj_weight.chunk(3), theirs.in_proj_bias.chunk(3)):
            proj.weight.copy_(w)
            proj.bias.copy_(b)
        ours.out_proj.weight.copy_(theirs.out_proj.weight)
        ours.out_proj.bias.copy_(theirs.out_proj.bias)


def mha_pair(d_model=8, n_head=2, seed=0, dtype=D):
    torch.manual_seed(seed)
    theirs = nn.MultiheadAttention(d_model, n_head, batch_first=True, dtype=dtype).eval()
    with torch.no_grad():  # torch initialises the biases to zero; make them count
        theirs.in_proj_bias.normal_()
        theirs.out_proj.bias.normal_()
    ours = MultiHeadAttention(d_model, n_head).to(dtype).eval()
    copy_mha(ours, theirs)
    return ours, theirs


# ------------------------------------------------------------------------------------------ masks

def test_subsequent_mask_is_lower_triangle():
    assert subsequent_mask(3).tolist() == [[True, False, False],
                                           [True, True, False],
                                           [True, True, True]]
    assert subsequent_mask(4).dtype == torch.bool


def test_causal_mask_with_cache_offset():
    # 2 new queries after 3 cached positions: they are rows 3 and 4 of the full 5x5 causal mask
    assert torch.equal(causal_mask(2, 5), subsequent_mask(5)[3:])
    assert causal_mask(1, 4).tolist() == [[True, True, True, True]]
    assert torch.equal(causal_mask(4, 4), subsequent_mask(4))


def test_padding_mask_shape_and_values():
    ids = torch.tensor([[5, 6, 0, 0], [7, 0, 8, 9]])
    m = padding_mask(ids, pad_id=0)
    assert m.shape == (2, 1, 1, 4)
    assert m[:, 0, 0].tolist() == [[True, True, False, False], [True, False, True, True]]


def test_combine_masks_is_logical_and_with_broadcast():
    pad = padding_mask(torch.tensor([[1, 1, 0]]), pad_id=0)        # [1, 1, 1, 3]
    both = combine_masks(subsequent_mask(3), None, pad)            # → [1, 1, 3, 3]
    assert both.shape == (1, 1, 3, 3)
    assert both[0, 0].tolist() == [[True, False, False], [True, True, False], [True, True, False]]
    assert combine_masks(None, None) is None
    assert combine_masks(None, pad) is pad


# --------------------------------------------------------------------- scaled dot-product attention

def _qkv(B=2, H=3, Tq=4, Tk=5, d=6, seed=0, requires_grad=False):
    g = torch.Generator().manual_seed(seed)
    return [torch.randn(B, H, T, d, dtype=D, generator=g, requires_grad=requires_grad)
            for T in (Tq, Tk, Tk)]


@pytest.mark.parametrize("kind", ["none", "bool", "causal"])
def test_sdpa_matches_torch(kind, close):
    Tk = 4 if kind == "causal" else 5
    q, k, v = _qkv(Tk=Tk) if kind != "causal" else _qkv(Tq=4, Tk=4)
    if kind == "none":
        mask, ref = None, F.scaled_dot_product_attention(q, k, v)
    elif kind == "bool":
        mask = torch.rand(2, 1, 4, Tk, generator=torch.Generator().manual_seed(1)) > 0.4
        mask[..., 0] = True  # no fully masked row here (tested separately)
        ref = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)
    else:
        mask, ref = subsequent_mask(4), F.scaled_dot_product_attention(q, k, v, is_causal=True)
    out, w = scaled_dot_product_attention(q, k, v, mask)
    close("scaled_dot_product_attention", out, ref)
    assert w.shape == (2, 3, 4, Tk)
    assert torch.allclose(w.sum(-1), torch.ones((), dtype=D))
    if mask is not None:
        assert (w.masked_select(~mask.expand_as(w)) == 0).all()


def test_sdpa_fully_masked_row_gives_zeros_and_finite_grads():
    q, k, v = _qkv(B=1, H=2, Tq=3, Tk=4, requires_grad=True)
    mask = torch.ones(3, 4, dtype=torch.bool)
    mask[1] = False  # query 1 may attend to nothing
    out, w = scaled_dot_product_attention(q, k, v, mask)
    assert torch.isfinite(out).all() and torch.isfinite(w).all()
    assert (w[:, :, 1] == 0).all() and (out[:, :, 1] == 0).all()
    assert torch.allclose(w[:, :, [0, 2]].sum(-1), torch.ones((), dtype=D))
    (out.square().sum() + w.square().sum()).backward()
    for t in (q, k, v):
        assert torch.isfinite(t.grad).all()
    assert (q.grad[:, :, 1] == 0).all()  # the masked query influenced nothing


# --------------------------------------------------------------------------- multi-head attention

@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
@pytest.mark.parametrize("need_weights", [True, False])
@pytest.mark.parametrize("cross", [False, True], ids=["self", "cross"])
def test_mha_matches_torch(cross, need_weights, dtype, close):
    ours, theirs = mha_pair(dtype=dtype)
    g = torch.Generator().manual_seed(2)
    x = torch.randn(2, 5, 8, generator=g).to(dtype)
    mem = torch.randn(2, 7, 8, generator=g).to(dtype) if cross else x
    out, w = ours(x, mem, probe=LayerProbe(weights=need_weights))
    ref, ref_w = theirs(x, mem, mem, need_weights=True, average_attn_weights=False)
    suffix = "" if dtype == D else " (float32)"
    close("MultiHeadAttention vs nn.MultiheadAttention" + suffix, out, ref)
    if need_weights:
        assert w.shape == (2, 2, 5, mem.size(1))
        close("MHA per-head weights vs nn.MultiheadAttention" + suffix, w, ref_w)
    else:
        assert w is None


@pytest.mark.parametrize("need_weights", [True, False])
def test_mha_masks_match_torch(need_weights, close):
    """Our masks say True = may attend; nn.MultiheadAttention's say True = may NOT: invert here."""
    ours, theirs = mha_pair(seed=3)
    g = torch.Generator().manual_seed(4)
    x = torch.randn(2, 4, 8, dtype=D, generator=g)
    mem = torch.randn(2, 6, 8, dtype=D, generator=g)
    ids = torch.tensor([[3, 4, 5, 6, 0, 0], [3, 4, 5, 6, 7, 0]])
    attn_mask = torch.rand(4, 6, generator=g) > 0.3
    attn_mask[:, 0] = True  # keep at least one key per query
    keep = combine_masks(attn_mask, padding_mask(ids, 0))
    out, w = ours(x, mem, mask=keep, probe=LayerProbe(weights=need_weights))
    ref, ref_w = theirs(x, mem, mem, attn_mask=~attn_mask, key_padding_mask=ids == 0,
                        need_weights=True, average_attn_weights=False)
    close("MultiHeadAttention vs nn.MultiheadAttention", out, ref)
    if need_weights:
        close("MHA per-head weights vs nn.MultiheadAttention", w, ref_w)


def test_mha_causal_flag_matches_torch_causal_mask(close):
    ours, theirs = mha_pair(seed=5)
    x = torch.randn(2, 5, 8, dtype=D, generator=torch.Generator().manual_seed(6))
    ref, ref_w = theirs(x, x, x, attn_mask=~subsequent_mask(5), need_weights=True,
                        average_attn_weights=False)
    out_fused, _ = ours(x, causal=True)
    out_manual, w = ours(x, causal=True, probe=LayerProbe(weights=True))
    close("MultiHeadAttention vs nn.MultiheadAttention", out_fused, ref)
    close("MultiHeadAttention vs nn.MultiheadAttention", out_manual, ref)
    close("MHA per-head weights vs nn.MultiheadAttention", w, ref_w)
    # causal together with a padding mask goes through the combined-mask path of both
    pad = padding_mask(torch.tensor([[1, 1, 1, 0, 0], [1, 1, 1, 1, 1]]), 0)
    a, _ = ours(x, mask=pad, causal=True)
    b, _ = ours(x, mask=pad, causal=True, probe=LayerProbe(weights=True))
    r, _ = theirs(x, x, x, attn_mask=~subsequent_mask(5),
                  key_padding_mask=~pad[:, 0, 0])
    close("MultiHeadAttention vs nn.MultiheadAttention", a, r)
    close("MultiHeadAttention vs nn.MultiheadAttention", b, r)


def test_mha_fused_and_manual_paths_agree_on_fully_masked_row():
    ours, _ = mha_pair(seed=7)
    x = torch.randn(1, 3, 8, dtype=D, requires_grad=True)
    mask = torch.ones(3, 3, dtype=torch.bool)
    mask[2] = False
    a, _ = ours(x, mask=mask)
    b, w = ours(x, mask=mask, probe=LayerProbe(weights=True))
    assert torch.isfinite(a).all() and torch.allclose(a, b)
    assert (w[0, :, 2] == 0).all()
    assert torch.allclose(a[0, 2], ours.out_proj.bias)  # nothing attended → zero before W^O
    (a.sum() + b.sum()).backward()
    assert torch.isfinite(x.grad).all()
    assert all(torch.isfinite(p.grad).all() for p in ours.parameters())


@pytest.mark.parametrize("need_weights", [True, False])
def test_mha_kv_cache_matches_full_causal_pass(need_weights):
    ours, _ = mha_pair(seed=8)
    x = torch.randn(2, 6, 8, dtype=D, generator=torch.Generator().manual_seed(9))
    full, _ = ours(x, causal=True)
    cache = LayerCache()
    first, _ = ours(x[:, :2], causal=True, probe=LayerProbe(weights=need_weights, cache=cache))
    steps = [first]
    for t in range(2, 6):
        xt = x[:, t:t + 1]
        out, w = ours(xt, causal=True, probe=LayerProbe(weights=need_weights, cache=cache))
        steps.append(out)
        if need_weights:
            assert w.shape == (2, 2, 1, t + 1)
    assert cache.length == 6
    assert torch.allclose(torch.cat(steps, dim=1), full, atol=1e-10)


def test_mha_rejects_indivisible_heads():
    with pytest.raises(ValueError, match="divisible"):
        MultiHeadAttention(10, 3)


def test_forward_keeps_the_papers_few_arguments():
    """What to record, what to switch off and the KV cache travel in one per-call probe."""
    import inspect
    from scratchformer.model.layers import DecoderLayer, EncoderLayer
    assert len(inspect.signature(MultiHeadAttention.forward).parameters) - 1 <= 5
    enc = list(inspect.signature(EncoderLayer.forward).parameters)
    dec = list(inspect.signature(DecoderLayer.forward).parameters)
    assert enc == ["self", "x", "mask", "causal", "probe"]
    assert [p for p in dec if p not in ("memory", "memory_mask")] == enc   # the same, plus the encoder's


def test_mha_ablates_heads_and_keeps_intermediates_for_this_call_only(close):
    ours, _ = mha_pair(seed=10)
    x = torch.randn(1, 4, 8, dtype=D, generator=torch.Generator().manual_seed(11))
    probe = LayerProbe(full=True, heads_off=(1,))
    out, _ = ours(x, causal=True, probe=probe)
    assert set(probe.record) == {"q", "k", "v", "heads", "concat"}
    assert (probe.record["heads"][:, 1] == 0).all()
    intact, _ = ours(x, causal=True)
    kept = probe.record["concat"][..., :4] @ ours.out_proj.weight[:, :4].T + ours.out_proj.bias
    close("head 1 off = head 0 alone through W^O", out, kept)
    assert not torch.allclose(out, intact)
