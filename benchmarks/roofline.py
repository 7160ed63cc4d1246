"""The distance to the machine's limit: FLOPs per token of each model, and a measured matmul peak.

Shared by the benchmarks (imported as ``roofline`` from this folder). Counts are multiply-adds × 2,
matrix products only (norms, softmax, activations and the optimizer are left out: they are a few
percent of the arithmetic, and a roofline asks how far the big products are from the peak).

Forward FLOPs per token:

* GPT (n_layer L, width d, feed-forward d_ff, vocabulary V, c keys attended):
  2·L·(4·d² + 2·d·d_ff) for the projections and the feed-forward, 2·L·2·c·d for Q·Kᵀ and
  weights·V, 2·d·V for the head;
* LSTM (embedding E, hidden H, L layers): 2·4H·(E + H) for the first layer, 2·4H·2H for each
  further one, 2·H·V for the head.

A training step costs about 3× the forward FLOPs (the backward pass computes two products per
forward one: the gradient of the input and of the weight).
"""
from __future__ import annotations

import time

import torch


def gpt_forward_flops(n_layer: int, d: int, d_ff: int, vocab: int, context: float) -> float:
    """Forward FLOPs per token of a GPT attending over ``context`` keys on average."""
    return 2 * n_layer * (4 * d * d + 2 * d * d_ff) + 2 * n_layer * 2 * context * d + 2 * d * vocab


def lstm_forward_flops(n_layer: int, n_embd: int, hidden: int, vocab: int) -> float:
    """Forward FLOPs per token of a stacked LSTM language model."""
    h4 = 4 * hidden
    return 2 * h4 * (n_embd + hidden) + (n_layer - 1) * 2 * h4 * 2 * hidden + 2 * hidden * vocab


def matmul_peak_gflops(n: int = 512, seconds: float = 0.5) -> float:
    """The best GFLOP/s of an n×n float32 matrix product at the current torch thread count, through
    PyTorch's BLAS (``torch.mm``) or oneDNN (what PyTorch's fused LSTM and scratchformer.model.fast.gemm
    use; on AMD processors it is about twice MKL's), whichever is faster here."""
    a, b = torch.randn(n, n), torch.randn(n, n)
    out = torch.empty(n, n)
    products = [lambda: torch.mm(a, b, out=out)]
    if torch.backends.mkldnn.is_available() and hasattr(torch.ops.mkldnn, "_linear_pointwise"):
        products.append(lambda: torch.ops.mkldnn._linear_pointwise(a, b, None, "none", [], ""))
    best = float("inf")
    for product in products:
        product()
        t_end = time.perf_counter() + seconds
        while time.perf_counter() < t_end:
            t0 = time.perf_counter()
            for _ in range(4):
                product()
            best = min(best, (time.perf_counter() - t0) / 4)
    return 2 * n ** 3 / best / 1e9


def line(label: str, flops_per_token: float, tokens_per_s: float, peak: float) -> tuple[str, dict]:
    """A printable roofline line and its JSON: FLOPs per token, achieved GFLOP/s, share of the peak."""
    achieved = flops_per_token * tokens_per_s / 1e9
    text = (f"roofline {label}: {flops_per_token / 1e6:.2f} MFLOP/token × {tokens_per_s:,.0f} tokens/s = "
            f"{achieved:.2f} GFLOP/s, {100 * achieved / peak:.1f}% of the measured matmul peak "
            f"{peak:.1f} GFLOP/s ({torch.get_num_threads()} thread(s))")
    return text, {"mflop_per_token": round(flops_per_token / 1e6, 3), "gflops": round(achieved, 3),
                  "peak_gflops": round(peak, 1), "fraction_of_peak": round(achieved / peak, 4)}
