"""The training loops' matrix products (model/fast/gemm.py) against F.linear / addmm, and the LSTM trained
through them against PyTorch's LSTM, in float32 — with each backend: the BLAS (the default) and oneDNN
(``SCRATCHFORMER_GEMM=onednn``), where this PyTorch has it."""
import os
import subprocess
import sys

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from scratchformer.model.fast import gemm
from scratchformer.model.lstm import LSTM

F32 = dict(rtol=1e-5, atol=1e-5)
BACKENDS = ["blas"] + (["onednn"] if gemm.ONEDNN_PRESENT else [])


@pytest.fixture(autouse=True, params=BACKENDS)
def backend(request, monkeypatch):
    """Every test here runs once per backend (gemm.ONEDNN is read at each call)."""
    monkeypatch.setattr(gemm, "ONEDNN", request.param == "onednn")
    return request.param


def test_the_backend_is_the_blas_unless_onednn_is_asked_for():
    code = "from scratchformer.model.fast import gemm; print(gemm.ONEDNN)"
    for value, expected in ((None, "False"), ("onednn", str(gemm.ONEDNN_PRESENT)), ("blas", "False")):
        env = {k: v for k, v in os.environ.items() if k != "SCRATCHFORMER_GEMM"}
        if value is not None:
            env["SCRATCHFORMER_GEMM"] = value
        out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
        assert out.stdout.strip() == expected, value


def rand(*shape, seed=0):
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed))


def test_linear_and_packed_products_match_pytorch(backend):
    x, w, b, add = rand(12, 31), rand(40, 31, seed=1), rand(40, seed=2), rand(12, 40, seed=3)
    torch.testing.assert_close(gemm.linear(x, w, b), F.linear(x, w, b), **F32)
    torch.testing.assert_close(gemm.linear(x.t().contiguous().t(), w), x @ w.t(), **F32)  # strided input
    for pack in (True, False):
        torch.testing.assert_close(gemm.Packed(w, pack).addmm(add, x), torch.addmm(add, x, w.t()), **F32)
    assert gemm.uses_onednn(x, w) == (backend == "onednn")
    x64 = x.double()   # other dtypes take PyTorch's own path
    assert not gemm.uses_onednn(x64)
    torch.testing.assert_close(gemm.linear(x64, w.double()), x64 @ w.double().t())


def test_linear_function_gradients():
    x = rand(3, 5, 31).requires_grad_()
    w, b = rand(40, 31, seed=1).requires_grad_(), rand(40, seed=2).requires_grad_()
    dy = rand(3, 5, 40, seed=3)
    grads = torch.autograd.grad(gemm.LinearFunction.apply(x, w, b), (x, w, b), dy)
    ref = torch.autograd.grad(F.linear(x, w, b), (x, w, b), dy)
    for g, r in zip(grads, ref):
        torch.testing.assert_close(g, r, **F32)
    xd, wd, bd = (t.detach().double().requires_grad_() for t in (x, w, b))
    assert torch.autograd.gradcheck(gemm.LinearFunction.apply, (xd[:1, :2, :4], wd[:3, :4], bd[:3]))


def test_lstm_float32_gradients_match_pytorch_lstm():
    torch.manual_seed(0)
    theirs = nn.LSTM(6, 9, num_layers=2, batch_first=True)
    ours = LSTM(6, 9, num_layers=2)
    with torch.no_grad():
        for k, cell in enumerate(ours.cells):
            cell.ih.weight.copy_(getattr(theirs, f"weight_ih_l{k}"))
            cell.hh.weight.copy_(getattr(theirs, f"weight_hh_l{k}"))
            cell.ih.bias.copy_(getattr(theirs, f"bias_ih_l{k}"))
            cell.hh.bias.copy_(getattr(theirs, f"bias_hh_l{k}"))
    x = rand(4, 7, 6, seed=5)
    dy = rand(4, 7, 9, seed=6)
    (ours(x)[0] * dy).sum().backward()
    (theirs(x)[0] * dy).sum().backward()
    for k, cell in enumerate(ours.cells):
        for name, mine in (("weight_ih", cell.ih.weight), ("weight_hh", cell.hh.weight),
                           ("bias_ih", cell.ih.bias), ("bias_hh", cell.hh.bias)):
            torch.testing.assert_close(mine.grad, getattr(theirs, f"{name}_l{k}").grad, **F32,
                                       msg=f"{name}_l{k}")


def test_linear_function_gradients_for_a_time_major_gradient():
    # the LSTM hands back d x_proj as a [B, T, ·] view of [T, B, ·] memory: the same gradients
    x = rand(3, 5, 31).requires_grad_()
    w, b = rand(40, 31, seed=1).requires_grad_(), rand(40, seed=2).requires_grad_()
    dy = rand(5, 3, 40, seed=3).transpose(0, 1)
    assert not dy.is_contiguous()
    grads = torch.autograd.grad(gemm.LinearFunction.apply(x, w, b), (x, w, b), dy)
    ref = torch.autograd.grad(F.linear(x, w, b), (x, w, b), dy)
    for g, r in zip(grads, ref):
        torch.testing.assert_close(g, r, **F32)


def test_linear_module_is_nn_linear_with_the_same_gradients():
    torch.manual_seed(0)
    ours, ref = gemm.Linear(31, 40), nn.Linear(31, 40)
    ref.load_state_dict(ours.state_dict())
    assert isinstance(ours, nn.Linear) and set(ours.state_dict()) == {"weight", "bias"}
    x, dy = rand(2, 6, 31), rand(2, 6, 40, seed=1)
    with torch.no_grad():                                   # inference: exactly F.linear
        assert torch.equal(ours(x), ref(x))
    (ours(x) * dy).sum().backward()
    (ref(x) * dy).sum().backward()
    torch.testing.assert_close(ours.weight.grad, ref.weight.grad, **F32)
    torch.testing.assert_close(ours.bias.grad, ref.bias.grad, **F32)
