"""Turning next-token logits into a chosen token: temperature → top-k → top-p, then a random draw.

The order and meaning follow the usual convention (Hugging Face ``generate``):

1. **temperature** T:  p_T = softmax(z / T). T < 1 sharpens the distribution, T > 1 flattens it,
   T = 0 means greedy decoding (always the argmax).
2. **top-k** k: keep the k most likely tokens; k = 0 (or k ≥ vocabulary size) means off.
3. **top-p** (nucleus) p: keep the smallest set of most likely tokens whose cumulative probability
   is ≥ p — always at least one token. p = 1 means off; p = 0 keeps only the most likely token.
   It is applied to the distribution that top-k left, renormalised.
4. The kept tokens' probabilities are renormalised to sum to 1 and one token is drawn with
   ``torch.multinomial`` from a ``torch.Generator`` made for the request (:func:`make_generator`),
   never the global random state: the same seed and settings give the same tokens whatever else runs.

:func:`sample_step` returns a :class:`Step` record with everything a person may want to see: the
distribution after temperature, after filtering, and which tokens each filter removed.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from numbers import Integral, Real
from typing import Optional

import torch
from torch import Tensor

from .choices import MAX_NEW_TOKENS, MAX_SEED  # 1…2000 tokens; seeds 0…2⁶³−1 (checked below)

TOP_P_TOLERANCE = 1e-6     # a cumulative probability within this of p counts as having reached p


@dataclass
class Step:
    """One sampling step laid open. Every tensor covers the whole vocabulary ``[V]`` and is on the CPU.

    (probabilities are float64, the logits in the model's float32)

    token_id           the chosen token
    token_prob         its probability in the final, filtered distribution (``probs_filtered``)
    logits             the raw scores z the model gave
    probs_temperature  softmax(z / T), the distribution after temperature. For T = 0 (greedy) this
                       shows softmax(z), i.e. T = 1, since z / 0 is undefined
    probs_filtered     the distribution actually sampled from: zero outside the kept tokens, sums to 1.
                       For T = 0 it is one-hot on the argmax
    cut_by_top_k       True for tokens that top-k removed
    cut_by_top_p       True for tokens that top-p removed (only tokens that survived top-k count)
    settings           the :class:`SamplingSettings` used (``step.temperature`` etc. read them)

    For T = 0 the two filters are still evaluated on ``probs_temperature`` so their effect can be
    shown; greedy decoding then picks the argmax, which every filter keeps.
    """

    token_id: int
    token_prob: float
    logits: Tensor
    probs_temperature: Tensor
    probs_filtered: Tensor
    cut_by_top_k: Tensor
    cut_by_top_p: Tensor
    settings: "SamplingSettings"

    @property
    def temperature(self) -> float:
        return self.settings.temperature

    @property
    def top_k(self) -> int:
        return self.settings.top_k

    @property
    def top_p(self) -> float:
        return self.settings.top_p

    @property
    def greedy(self) -> bool:
        """Whether this step was greedy (temperature 0)."""
        return self.temperature == 0


# ------------------------------------------------------------------------------------- validation

def _is_real(x) -> bool:
    return isinstance(x, Real) and not isinstance(x, bool)


def _check_settings(temperature, top_k, top_p) -> None:
    """Raise ``ValueError`` naming the setting and its allowed range when one is invalid."""
    if not _is_real(temperature) or not math.isfinite(temperature) or temperature < 0:
        raise ValueError(f"temperature must be a finite number ≥ 0 (0 = greedy), got {temperature!r}")
    if (not _is_real(top_k) or not math.isfinite(top_k) or top_k != int(top_k) or top_k < 0):
        raise ValueError(f"top_k must be a whole number ≥ 0 (0 = off), got {top_k!r}")
    if not _is_real(top_p) or not 0.0 <= top_p <= 1.0:  # NaN fails both comparisons
        raise ValueError(f"top_p must be a number in [0, 1] (1 = off), got {top_p!r}")


@dataclass(frozen=True)
class SamplingSettings:
    """temperature → top-k → top-p, checked once, here, when the settings are made.

    temperature  a finite number ≥ 0 (0 = greedy)
    top_k        a whole number ≥ 0 (0 = off); a whole float such as 40.0 (from a slider) is accepted
    top_p        a number in [0, 1] (1 = off)

    Invalid values raise ``ValueError`` naming the setting and its range. Frozen: a request's settings
    cannot change half-way through its generation.
    """

    temperature: float = 1.0
    top_k: int = 0
    top_p: float = 1.0

    def __post_init__(self):
        _check_settings(self.temperature, self.top_k, self.top_p)
        object.__setattr__(self, "temperature", float(self.temperature))
        object.__setattr__(self, "top_k", int(self.top_k))
        object.__setattr__(self, "top_p", float(self.top_p))


def validate_max_new_tokens(max_new_tokens) -> None:
    """Raise ``ValueError`` unless ``max_new_tokens`` is an integer in [1, MAX_NEW_TOKENS]."""
    if (not isinstance(max_new_tokens, Integral) or isinstance(max_new_tokens, bool)
            or not 1 <= max_new_tokens <= MAX_NEW_TOKENS):
        raise ValueError(f"max_new_tokens must be an integer in [1, {MAX_NEW_TOKENS}], got {max_new_tokens!r}")


def validate_seed(seed) -> None:
    """Raise ``ValueError`` unless ``seed`` is an integer in [0, MAX_SEED]."""
    if not isinstance(seed, Integral) or isinstance(seed, bool) or not 0 <= seed <= MAX_SEED:
        raise ValueError(f"seed must be an integer in [0, 2**63 - 1], got {seed!r}")


def make_generator(seed: int) -> torch.Generator:
    """A CPU ``torch.Generator`` seeded with ``seed``: one per request, so requests never share randomness."""
    validate_seed(seed)
    return torch.Generator(device="cpu").manual_seed(int(seed))


# ----------------------------------------------------------------------------------------- filters

def filter_top_k(probs: Tensor, k: int) -> Tensor:
    """Keep-mask ``[V]`` (True = kept) of the k most likely tokens; k = 0 or k ≥ V keeps all.

    Ties at the k-th value: tokens are ranked by a *stable* descending sort, so among equal
    probabilities the lower token id ranks first and **exactly k tokens are kept** — e.g. with
    probabilities [0.1, 0.3, 0.3, 0.3] and k = 2, tokens 1 and 2 are kept and token 3 is cut.
    """
    V = probs.size(-1)
    k = int(k)
    if k == 0 or k >= V:
        return torch.ones(V, dtype=torch.bool, device=probs.device)
    order = torch.sort(probs, descending=True, stable=True).indices
    keep = torch.zeros(V, dtype=torch.bool, device=probs.device)
    keep[order[:k]] = True
    return keep


def filter_top_p(probs: Tensor, p: float) -> Tensor:
    """Keep-mask ``[V]`` of the smallest set of most likely tokens whose cumulative probability is ≥ p.

    Sort the probabilities in descending order (stable: ties ranked by token id) and let
    C_r = π_1 + … + π_r be the cumulative sum. Token of rank r is kept iff C_{r-1} < p, i.e. iff the
    tokens ranked above it do not yet reach p. The most likely token is always kept (so p = 0 is
    greedy) and p = 1 keeps everything. Sums are taken in float64, and a C_{r-1} within
    ``TOP_P_TOLERANCE`` of p counts as reaching p, so float rounding does not flip a boundary case:
    [0.5, 0.3, 0.2] with p = 0.8 keeps exactly two tokens.
    """
    V = probs.size(-1)
    if p >= 1.0:
        return torch.ones(V, dtype=torch.bool, device=probs.device)
    sorted_probs, order = torch.sort(probs.double(), descending=True, stable=True)
    cum_before = torch.cumsum(sorted_probs, dim=-1) - sorted_probs   # C_{r-1}
    keep_sorted = cum_before < p - TOP_P_TOLERANCE
    keep_sorted[0] = True
    keep = torch.zeros(V, dtype=torch.bool, device=probs.device)
    keep[order[keep_sorted]] = True
    return keep


def renormalize(probs: Tensor, keep: Tensor) -> Tensor:
    """π'_i = π_i · [i kept] / Σ_j π_j · [j kept] — the same as a softmax over the kept logits."""
    kept = probs * keep
    return kept / kept.sum()


def filter_masks(probs: Tensor, k: int, p: float) -> tuple[Tensor, Tensor]:
    """``(keep_k, keep_p)`` = (filter_top_k(probs, k), filter_top_p(renormalize(probs, keep_k), p) ∧ keep_k)
    with one sort instead of two: the path :func:`sample_step` takes once per generated token.

    Renormalising the k kept tokens divides them all by the same sum, which keeps their order, so
    the stable descending order of ``probs`` ranks them for both filters: top-k keeps ranks < k, top-p
    keeps rank r < k iff the renormalised mass of the ranks before it is below p (the same rule and
    tolerance as :func:`filter_top_p`). tests/test_sampling.py checks it against the two filters.
    """
    V = probs.size(-1)
    k = V if int(k) == 0 or int(k) >= V else int(k)
    if k == V and p >= 1.0:
        everything = torch.ones(V, dtype=torch.bool, device=probs.device)
        return everything, everything
    sorted_probs, order = torch.sort(probs.double(), descending=True, stable=True)
    kept_order = order[:k]
    keep_k = torch.zeros(V, dtype=torch.bool, device=probs.device)
    keep_k[kept_order] = True
    if p >= 1.0:
        return keep_k, keep_k
    top = sorted_probs[:k] / sorted_probs[:k].sum()               # renormalised, in rank order
    keep_sorted = torch.cumsum(top, dim=-1) - top < p - TOP_P_TOLERANCE   # C_{r-1} < p
    keep_sorted[0] = True
    keep_p = torch.zeros(V, dtype=torch.bool, device=probs.device)
    keep_p[kept_order[keep_sorted]] = True
    return keep_k, keep_p


# -------------------------------------------------------------------------------------- one step

def sample_step(logits: Tensor, settings: SamplingSettings = SamplingSettings(),
                generator: Optional[torch.Generator] = None) -> Step:
    """Choose the next token from ``logits`` [V]; return the :class:`Step` record.

    p_T = softmax((z − max z) / T)            (subtracting max z changes nothing but avoids overflow)
    keep_k = filter_top_k(p_T, k)
    keep_p = filter_top_p(renormalize(p_T, keep_k), p) ∧ keep_k
    π = renormalize(p_T, keep_p)
    token ~ Categorical(π) via torch.multinomial(π, 1, generator=generator);  T = 0: token = argmax z
    (the lowest id among equal maxima, which top-k's tie rule also keeps).

    ``generator`` must be a CPU generator (:func:`make_generator`); without one a fresh generator
    seeded with 0 is used, so the global random state is never read or changed.
    """
    temperature, top_k, top_p = settings.temperature, settings.top_k, settings.top_p
    z = logits.detach().reshape(-1).float().cpu()
    z_shifted = z.double() - z.max()   # float64: a tiny T (1e-300) must not round to 0 and give 0/0
    probs_t = torch.softmax(z_shifted / (temperature if temperature > 0 else 1.0), dim=-1)

    keep_k, keep_p = filter_masks(probs_t, top_k, top_p)   # = the two filters, one sort

    if temperature == 0:
        token_id = int(torch.argmax(z))  # first maximal index
        probs_f = torch.zeros_like(probs_t)
        probs_f[token_id] = 1.0
    else:
        probs_f = renormalize(probs_t, keep_p)
        if generator is None:
            generator = make_generator(0)
        token_id = int(torch.multinomial(probs_f, 1, generator=generator))
    return Step(token_id=token_id, token_prob=float(probs_f[token_id]), logits=z,
                probs_temperature=probs_t, probs_filtered=probs_f, cut_by_top_k=~keep_k,
                cut_by_top_p=keep_k & ~keep_p, settings=settings)
