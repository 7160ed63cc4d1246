"""Matrix products for the training loops: PyTorch's BLAS by default, oneDNN where it is faster.

The maths is the one of ``F.linear``: y = x·Wᵀ + b, with W stored [out, in] like ``nn.Linear``.
PyTorch sends a float32 matrix product on the CPU to its BLAS (MKL). oneDNN (the library under
PyTorch's fused LSTM) has its own kernels, and a weight used at every step can be laid out once for
them (:class:`Packed`). Which is faster depends on the processor: on the AMD EPYC of issue 13 (2026-11)
oneDNN ran the small products of one LSTM step about twice as fast; on today's AMD EPYC (Zen 3, AVX2,
2026-12) the BLAS is 5-25% faster for every product the GPT and the LSTM train with
(issue 24; ``benchmarks/training.py``). So the BLAS is the default and oneDNN is chosen with the
environment variable ``SCRATCHFORMER_GEMM=onednn`` (read at import). Other dtypes, other devices and a
PyTorch without oneDNN always take ``F.linear`` / ``torch.addmm``. The two agree up to float32
rounding (tests/test_gemm.py runs both).

These functions do not record gradients: :class:`LinearFunction` and
:class:`~scratchformer.model.fast.lstm_bptt.LSTMLayerFunction` call them inside their own backward.
"""
from __future__ import annotations

import os
from typing import Optional

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..attention import MultiHeadAttention
from ..layers import FeedForward

ONEDNN_PRESENT = torch.backends.mkldnn.is_available() and hasattr(torch.ops.mkldnn, "_linear_pointwise")
ONEDNN = ONEDNN_PRESENT and os.environ.get("SCRATCHFORMER_GEMM", "blas").strip().lower() == "onednn"


def uses_onednn(*tensors: Tensor) -> bool:
    """Whether products of these tensors go through oneDNN (chosen, present, float32 CPU tensors)."""
    return ONEDNN and all(t.device.type == "cpu" and t.dtype == torch.float32 for t in tensors)


def linear(x: Tensor, w: Tensor, b: Optional[Tensor] = None) -> Tensor:
    """x [N, in] → x·wᵀ + b [N, out], for w [out, in] (``F.linear`` without autograd)."""
    if uses_onednn(x, w):
        return torch.ops.mkldnn._linear_pointwise(x.contiguous(), w.contiguous(), b, "none", [], "")
    return F.linear(x, w, b)


class Packed:
    """A weight w [out, in] prepared once for many products ``add + x·wᵀ`` (one per time step):
    laid out for oneDNN where that is chosen, else its transpose taken once."""

    def __init__(self, w: Tensor, pack: bool = True):
        self.wt = w.t()   # pack=False: not worth laying out for one product
        self.packed = (torch.ops.mkldnn._reorder_linear_weight(w.contiguous(), None)
                       if pack and uses_onednn(w) else None)

    def addmm(self, add: Tensor, x: Tensor) -> Tensor:
        """add [N, out] + x [N, in] · wᵀ (``torch.addmm(add, x, w.t())``)."""
        if self.packed is not None and add.dtype == x.dtype == torch.float32:
            return torch.ops.mkldnn._linear_pointwise.binary(x.contiguous(), add.contiguous(), self.packed,
                                                              None, "add")
        return torch.addmm(add, x, self.wt)


class LinearFunction(torch.autograd.Function):
    """y = x·Wᵀ + b over the last dimension of x, with its gradient (dx = dy·W, dW = dyᵀ·x, db = Σ dy),
    every product through :func:`linear`. ``LinearFunction.apply(x, w, b)`` = ``F.linear(x, w, b)``."""

    @staticmethod
    def forward(ctx, x: Tensor, w: Tensor, b: Optional[Tensor]):
        ctx.save_for_backward(x, w)
        ctx.has_bias = b is not None
        return linear(x.reshape(-1, x.size(-1)), w, b).view(*x.shape[:-1], w.size(0))

    @staticmethod
    def backward(ctx, dy: Tensor):
        x, w = ctx.saved_tensors
        # The rows (positions) may be taken in any order, the same for dy and x. When dy arrives
        # time-major ([B, T, ·] viewing [T, B, ·] memory, as the LSTM's gradient does), read both in
        # that order: dy is then used where it lies instead of being copied into [B·T, ·] first.
        swap = dy.dim() == 3 and not dy.is_contiguous() and dy.transpose(0, 1).is_contiguous()
        if swap:
            dy, x = dy.transpose(0, 1), x.transpose(0, 1)
        dy2 = dy.reshape(-1, dy.size(-1))
        dx = dw = db = None
        if ctx.needs_input_grad[0]:
            dx = linear(dy2, w.t()).view(*dy.shape[:-1], w.size(1))
            if swap:
                dx = dx.transpose(0, 1)
        if ctx.needs_input_grad[1]:
            dw = linear(dy2.t(), x.reshape(-1, x.size(-1)).t())
        if ctx.has_bias and ctx.needs_input_grad[2]:
            db = dy2.sum(0)
        return dx, dw, db


class Linear(nn.Linear):
    """``nn.Linear`` (y = x·Wᵀ + b, the same parameters and state_dict) whose training passes go
    through :class:`LinearFunction`: float32 on the CPU, gradients on, no autocast. Everything else —
    inference, other dtypes and devices — is ``F.linear``, the readable path. :func:`accelerate`
    puts it in place of a model's ``nn.Linear`` layers."""

    def forward(self, x: Tensor) -> Tensor:
        if (torch.is_grad_enabled() and uses_onednn(x, self.weight)
                and not torch.is_autocast_enabled("cpu")):
            return LinearFunction.apply(x, self.weight, self.bias)
        return F.linear(x, self.weight, self.bias)


def accelerate(model: nn.Module) -> nn.Module:
    """Make ``model``'s training passes faster, computing the same function: the ``nn.Linear`` layers
    of its attention and feed-forward blocks become :class:`Linear` (the class is swapped in place;
    parameters, state_dict keys and inference results are unchanged). For a model being trained
    (``training/train.py`` calls it), never for one shared by requests. Returns the model.
    The LSTM needs nothing: its forward already takes :func:`~scratchformer.model.fast.lstm_layer`.
    """
    for module in model.modules():
        if isinstance(module, (MultiHeadAttention, FeedForward)):
            for child in module.children():
                if type(child) is nn.Linear:
                    child.__class__ = Linear
    return model
