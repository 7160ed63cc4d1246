"""The fast paths (scratchformer/model/fast/) compute the readable paths' functions: outputs and gradients.

* ``accelerate(model)`` (training: oneDNN products in attention and feed-forward) against the same model
  untouched, a GPT and an encoder-decoder, in float32 on the CPU (the case it changes);
* ``lstm_layer`` (the LSTM's hand-written backward) against autograd through ``LSTMCell.step``, and a
  whole LSTMLM's fast pass against its traced (step-by-step) pass.

The fused decoding step is tested in tests/test_fast_decode.py.
"""
import copy

import pytest
import torch
from torch import nn

from scratchformer.model.config import LSTMConfig, TransformerConfig
from scratchformer.model.fast import accelerate, lstm_layer
from scratchformer.model.fast.gemm import Linear
from scratchformer.model.lstm import LSTMLM, LSTMCell
from scratchformer.model.transformer import build_transformer, shift_right

F32 = dict(rtol=1e-5, atol=1e-5)


def _grads(model: nn.Module) -> dict:
    return {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}


@pytest.mark.parametrize("model_type", ["gpt", "seq2seq"])
def test_accelerate_changes_no_number(model_type):
    torch.manual_seed(0)
    specials = dict(pad_id=0, bos_id=1, eos_id=2) if model_type == "seq2seq" else {}
    cfg = TransformerConfig(model_type=model_type, vocab_size=13, block_size=16, n_layer=2, n_head=2,
                            n_embd=16, **specials)
    readable = build_transformer(cfg).train()
    fast = accelerate(copy.deepcopy(readable))
    assert set(fast.state_dict()) == set(readable.state_dict())           # checkpoints unchanged
    swapped = [n for n, m in fast.named_modules() if type(m) is Linear]
    assert swapped and all(".self_attn." in n or ".cross_attn." in n or ".ff." in n for n in swapped)
    assert type(fast.lm_head) is nn.Linear
    g = torch.Generator().manual_seed(1)
    ids = torch.randint(3, 13, (3, 9), generator=g)
    args = (ids, shift_right(ids, 1), ids) if model_type == "seq2seq" else (ids, ids)
    outs = []
    for model in (readable, fast):
        out = model(*args)
        out.loss.backward()
        outs.append((out.logits.detach(), _grads(model)))
    (la, ga), (lb, gb) = outs
    torch.testing.assert_close(lb, la, **F32)
    assert set(ga) == set(gb)
    for n in ga:
        torch.testing.assert_close(gb[n], ga[n], **F32, msg=n)
    with torch.no_grad():                                                  # inference: exactly F.linear
        assert torch.equal(fast.eval()(*args).logits, readable.eval()(*args).logits)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_lstm_layer_equals_the_step_loop(dtype):
    torch.manual_seed(0)
    cell = LSTMCell(5, 7).to(dtype)
    g = torch.Generator().manual_seed(2)
    x, h0, c0 = (torch.randn(*s, generator=g).to(dtype).requires_grad_() for s in ((3, 6, 5), (3, 7), (3, 7)))
    dy = torch.randn(3, 6, 7, generator=g).to(dtype)
    tol = F32 if dtype == torch.float32 else dict(rtol=1e-10, atol=1e-10)

    def readable():
        h, c, outs = h0, c0, []
        x_proj = cell.ih(x)
        for t in range(x.size(1)):
            h, c, _ = cell.step(x_proj[:, t], h, c)
            outs.append(h)
        return torch.stack(outs, 1), h, c

    results = []
    for run in (readable, lambda: lstm_layer(cell, x, h0, c0)):
        out, h, c = run()
        loss = (out * dy).sum() + h.square().sum() + c.sum()
        inputs = (x, h0, c0, *cell.parameters())
        results.append((out.detach(), h.detach(), c.detach(), torch.autograd.grad(loss, inputs)))
    for a, b in zip(results[0][:3], results[1][:3]):
        torch.testing.assert_close(b, a, **tol)
    for a, b in zip(results[0][3], results[1][3]):
        torch.testing.assert_close(b, a, **tol)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("steps", [1, 2, 9, 300])
def test_lstm_layer_in_inference_equals_the_step_loop(dtype, steps):
    """Without a gradient (a prompt read before generating), lstm_layer gives the same outputs and
    final state as LSTMCell.step, step by step."""
    torch.manual_seed(1)
    cell = LSTMCell(5, 7).to(dtype)
    g = torch.Generator().manual_seed(3)
    x, h0, c0 = (torch.randn(*s, generator=g).to(dtype) for s in ((3, steps, 5), (3, 7), (3, 7)))
    tol = F32 if dtype == torch.float32 else dict(rtol=1e-10, atol=1e-10)
    with torch.no_grad():
        h, c, outs = h0, c0, []
        x_proj = cell.ih(x)
        for t in range(steps):
            h, c, _ = cell.step(x_proj[:, t], h, c)
            outs.append(h)
        fast = lstm_layer(cell, x, h0, c0)
    assert fast[0].shape == (3, steps, 7) and fast[1].shape == fast[2].shape == (3, 7)
    for got, want in zip(fast, (torch.stack(outs, 1), h, c)):
        torch.testing.assert_close(got, want, **tol)


def test_lstm_model_fast_and_traced_passes_agree_in_float32():
    torch.manual_seed(0)
    model = LSTMLM(LSTMConfig(vocab_size=11, n_embd=6, hidden=8, n_layer=2))
    ids = torch.randint(0, 11, (2, 7))
    fast = model(ids, ids)                       # lstm_layer (hand-written backward)
    fast.loss.backward()
    g_fast = _grads(model)
    model.zero_grad()
    slow = model(ids, ids, trace=True)           # autograd through LSTMCell.step
    slow.loss.backward()
    torch.testing.assert_close(fast.logits, slow.logits, **F32)
    for n, p in model.named_parameters():
        torch.testing.assert_close(g_fast[n], p.grad, **F32, msg=n)
