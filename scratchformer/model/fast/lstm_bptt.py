"""Backpropagation through time for one LSTM layer, written by hand (the fast training path).

The readable recurrence is :meth:`scratchformer.model.lstm.LSTMCell.step`; this file computes the
same forward pass and adds its gradient, so that training does not pay autograd's cost per step.
:func:`lstm_layer` is what :class:`~scratchformer.model.lstm.LSTM` calls.
"""
from __future__ import annotations

import torch
from torch import Tensor, nn

from .gemm import LinearFunction, Packed, linear


def lstm_layer(cell: nn.Module, x: Tensor, h: Tensor, c: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """One LSTM layer (an :class:`~scratchformer.model.lstm.LSTMCell`'s weights) over a whole
    sequence: x [B, T, input], h, c [B, hidden] → (outputs [B, T, hidden], h_T, c_T).

    The same function as stepping ``cell.step`` through the T steps (tests/test_fast.py), computed
    by :class:`LSTMLayerFunction`. x_proj = cell.ih(x), the input part of every gate for all steps
    at once, is computed time-major when training ([T, B, ·] in memory, the order in which the
    recurrence reads it); in inference it is one plain product.
    """
    if torch.is_grad_enabled():
        x_proj = LinearFunction.apply(x.transpose(0, 1), cell.ih.weight, cell.ih.bias).transpose(0, 1)
    else:
        x_proj = cell.ih(x)
    return LSTMLayerFunction.apply(x_proj, cell.hh.weight, cell.hh.bias, h, c)


class LSTMLayerFunction(torch.autograd.Function):
    """One LSTM layer over a whole sequence, with backpropagation through time written by hand.

    Autograd could differentiate the step loop itself, but it records ~10 tiny operations per step
    and computes the recurrent weight's gradient in T small products; on a CPU that is ~7× slower
    than this. Forward is the same recurrence as :meth:`LSTMCell.step`. Backward walks the steps in
    reverse (σ' = σ(1-σ), tanh' = 1-tanh²):

        dh_t  += dL/dh_t (from the layer above) ;   dc_t += dh_t ⊙ o_t ⊙ (1 - tanh²(c_t))
        dz_i = dc_t ⊙ g_t ⊙ i_t(1-i_t)      dz_f = dc_t ⊙ c_{t-1} ⊙ f_t(1-f_t)
        dz_g = dc_t ⊙ i_t ⊙ (1-g_t²)        dz_o = dh_t ⊙ tanh(c_t) ⊙ o_t(1-o_t)
        dc_{t-1} = dc_t ⊙ f_t               dh_{t-1} = dz_t · W_hh

    and then, in one matrix product over all steps, dW_hh = Σ_t dz_tᵀ h_{t-1} and db_hh = Σ_t dz_t.
    The gradient for the input part x_proj is dz itself (autograd carries it on to W_ih and x).
    tests/test_lstm.py checks it against autograd on the step loop and against PyTorch's ``LSTM``.
    The products go through :mod:`scratchformer.model.fast.gemm` (the weight laid out once per pass).
    """

    @staticmethod
    def forward(ctx, x_proj: Tensor, w_hh: Tensor, b_hh: Tensor, h0: Tensor, c0: Tensor):
        """x_proj [B, T, 4H] = x·W_ihᵀ + b_ih; h0, c0 [B, H] → (outputs [B, T, H], h_T, c_T)."""
        B, T, H4 = x_proj.shape
        H = H4 // 4
        zx = x_proj.transpose(0, 1) + b_hh                  # [T, B, 4H]
        hs = x_proj.new_empty(T + 1, B, H)                  # h_0 … h_T
        cs = x_proj.new_empty(T + 1, B, H)                  # c_0 … c_T
        tcs = x_proj.new_empty(T, B, H)                     # tanh(c_1) … tanh(c_T), kept for backward
        acts = x_proj.new_empty(T, B, H4)                   # gates i, f, g, o per step
        hs[0], cs[0] = h0, c0
        w = Packed(w_hh, pack=T > 1)
        # Every per-step view is taken once, before the loop (one call each instead of T): the loop
        # itself is then the seven operations of the recurrence.
        zx_, hs_, cs_, tcs_, acts_ = zx.unbind(0), hs.unbind(0), cs.unbind(0), tcs.unbind(0), acts.unbind(0)
        i_, f_, g_, o_ = (acts[:, :, k * H:(k + 1) * H].unbind(0) for k in range(4))
        for t in range(T):
            z = w.addmm(zx_[t], hs_[t])                     # z = x_proj + h_{t-1}·W_hhᵀ + b_hh
            torch.sigmoid(z, out=acts_[t])                  # i, f, o (g is overwritten next)
            torch.tanh(z[:, 2 * H:3 * H], out=g_[t])        # g = tanh(z_g)
            torch.mul(f_[t], cs_[t], out=cs_[t + 1]).addcmul_(i_[t], g_[t])   # c_t = f ⊙ c_{t-1} + i ⊙ g
            torch.mul(o_[t], torch.tanh(cs_[t + 1], out=tcs_[t]), out=hs_[t + 1])  # h_t = o ⊙ tanh(c_t)
        ctx.save_for_backward(w_hh, hs, cs, tcs, acts)
        return hs[1:].transpose(0, 1), hs[T].clone(), cs[T].clone()

    @staticmethod
    def backward(ctx, d_out: Tensor, d_hT: Tensor, d_cT: Tensor):
        w_hh, hs, cs, tcs, acts = ctx.saved_tensors
        T, B, H4 = acts.shape
        H = H4 // 4
        i, f, g, o = acts[..., :H], acts[..., H:2 * H], acts[..., 2 * H:3 * H], acts[..., 3 * H:]
        # Everything that does not depend on dh, dc is computed for all steps at once, so the
        # loop below is five operations per step:
        #   S = o ⊙ (1 - tanh²c_t)                       dc_t += dh_t ⊙ S
        #   Q = [g ⊙ i(1-i), c_{t-1} ⊙ f(1-f), i ⊙ (1-g²)]   dz_{i,f,g} = dc_t ⊙ Q
        #   R = tanh(c_t) ⊙ o(1-o)                       dz_o = dh_t ⊙ R
        S = o * (1 - tcs * tcs)
        Q = torch.cat([g * i * (1 - i), cs[:-1] * f * (1 - f), i * (1 - g * g)], dim=-1).view(T, B, 3, H)
        R = tcs * o * (1 - o)
        d_out = d_out.transpose(0, 1).contiguous() if d_out is not None else torch.zeros_like(hs[1:])
        w_t = Packed(w_hh.t())                              # dh_{t-1} = dz_t · W_hh
        dz_all = acts.new_empty(T, B, H4)
        dh = d_out[T - 1] + d_hT if d_hT is not None else d_out[T - 1]
        dc = d_cT.clone() if d_cT is not None else torch.zeros_like(cs[0])
        # the per-step views, taken once (see forward)
        S_, Q_, R_, f_, d_out_ = S.unbind(0), Q.unbind(0), R.unbind(0), f.unbind(0), d_out.unbind(0)
        dz_ = dz_all.unbind(0)
        dzifg_ = dz_all[:, :, :3 * H].view(T, B, 3, H).unbind(0)
        dzo_ = dz_all[:, :, 3 * H:].unbind(0)
        for t in range(T - 1, -1, -1):
            dc = torch.addcmul(dc, dh, S_[t])                                 # dc_t
            torch.mul(dc.unsqueeze(1), Q_[t], out=dzifg_[t])                  # dz_i, dz_f, dz_g
            torch.mul(dh, R_[t], out=dzo_[t])                                 # dz_o
            dc = dc * f_[t]                                                   # dc_{t-1}
            dh = w_t.addmm(d_out_[t - 1], dz_[t]) if t > 0 else linear(dz_[t], w_hh.t())  # dh_{t-1}
        dz_flat = dz_all.reshape(T * B, H4)
        d_w_hh = linear(dz_flat.t(), hs[:-1].reshape(T * B, H).t())     # Σ_t dz_tᵀ h_{t-1}
        return dz_all.transpose(0, 1), d_w_hh, dz_flat.sum(0), dh, dc
