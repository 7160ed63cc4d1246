"""Which tokens a model treats alike: the nearest rows of its token-embedding table.

Two tokens whose embedding rows point the same way enter the network as nearly the same vector, so
the model can only tell them apart by what surrounds them. Direction, not length, is compared (the
cosine similarity), as word-vector papers do (Mikolov et al. 2013): a frequent token's row is often
longer without meaning anything else.
"""
from __future__ import annotations

from numbers import Integral

import torch
from torch import Tensor

NORM_EPS = 1e-12   # a row of zeros has no direction: its cosine with anything is 0


def nearest_tokens(weight: Tensor, token_id: int, k: int = 10) -> list[tuple[int, float]]:
    """The ``k`` tokens whose embedding rows are most similar to ``token_id``'s, most similar first:
    ``[(id, cosine), …]``, the token itself left out.

    cos(i, j) = e_i · e_j / (max(‖e_i‖, ε) · max(‖e_j‖, ε))   for the rows e of ``weight`` [V, D]
    (ε = NORM_EPS, so a row of zeros has cosine 0 with everything). Ties rank the lower id first
    (a stable sort). ``k`` larger than V − 1 gives all the other tokens. Computed in float64 on the
    CPU: one matrix-vector product, V × D multiply-adds (GPT-2's 50,257 × 768: ~40 M, a few ms).

    ValueError for a ``token_id`` outside 0 … V−1 or a ``k`` that is not a whole number ≥ 1.
    """
    if weight.dim() != 2:
        raise ValueError(f"weight must be an embedding table [V, D], got shape {tuple(weight.shape)}")
    V = weight.shape[0]
    if not isinstance(token_id, Integral) or isinstance(token_id, bool) or not 0 <= token_id < V:
        raise ValueError(f"token_id must be an integer in [0, {V - 1}], got {token_id!r}")
    if not isinstance(k, Integral) or isinstance(k, bool) or k < 1:
        raise ValueError(f"k must be a whole number ≥ 1, got {k!r}")
    e = weight.detach().to("cpu", torch.float64)
    unit = e / e.norm(dim=-1, keepdim=True).clamp_min(NORM_EPS)
    cos = unit @ unit[int(token_id)]                                   # [V]
    cos[int(token_id)] = -float("inf")                                 # not its own neighbour
    order = torch.sort(cos, descending=True, stable=True).indices[:min(int(k), V - 1)]
    return [(int(i), float(cos[i])) for i in order]
