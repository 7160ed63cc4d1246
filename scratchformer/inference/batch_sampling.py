"""Sampling every row of a batch at once, each row with its own settings and generator.

:func:`sample_rows` gives, bit for bit, the :class:`~scratchformer.inference.sampling.Step` records that
:func:`~scratchformer.inference.sampling.sample_step` gives row by row, with one softmax, one sort and
one cumulative sum for all the rows. The draw (:func:`draw_rows`) is the exponential race that
``torch.multinomial`` itself uses, each row's noise taken from its own generator;
:func:`race_is_multinomial` checks once, on the running torch, that the two agree.
"""
from __future__ import annotations

from typing import Optional

import torch
from torch import Tensor

from .sampling import TOP_P_TOLERANCE, SamplingSettings, Step, make_generator


def _race(probs: Tensor, generators: list[torch.Generator]) -> list[int]:
    """The exponential race for every row: token_r = argmax_i π_ri / e_ri,  e_ri ~ Exp(1) drawn from
    generator r (one noise vector per row, then one division and one argmax for all rows)."""
    noise = torch.empty_like(probs)
    for row, generator in zip(noise.unbind(0), generators):
        row.exponential_(generator=generator)
    return torch.argmax(probs / noise, dim=-1).tolist()


_RACE_IS_MULTINOMIAL: Optional[bool] = None


def race_is_multinomial() -> bool:
    """Whether this torch's ``multinomial(π, 1, generator=g)`` draws by the exponential race (it does
    since PyTorch 1.7: ``argmax(π / q)``, q ~ Exp(1) from g): the same tokens from the same generator
    state. Checked once, on a few draws; if not, :func:`draw_rows` calls multinomial row by row."""
    global _RACE_IS_MULTINOMIAL
    if _RACE_IS_MULTINOMIAL is None:
        probs = torch.softmax(torch.linspace(-4.0, 4.0, 97, dtype=torch.float64), dim=0)
        probs[::7] = 0.0
        probs = probs / probs.sum()
        g1, g2 = make_generator(20251205), make_generator(20251205)
        theirs = [int(torch.multinomial(probs, 1, generator=g1)) for _ in range(16)]
        ours = [_race(probs[None], [g2])[0] for _ in range(16)]
        _RACE_IS_MULTINOMIAL = ours == theirs and torch.equal(g1.get_state(), g2.get_state())
    return _RACE_IS_MULTINOMIAL


def draw_rows(probs: Tensor, generators: list[torch.Generator]) -> list[int]:
    """One token per row of ``probs`` [n, V] (each row a distribution), row r drawn with
    ``generators[r]``: the tokens ``torch.multinomial(probs[r], 1, generator=generators[r])`` gives,
    and the generators left in the same state.

    ``torch.multinomial`` draws one sample by the exponential race (the Gumbel-max trick after exp):
    token = argmax_i π_i / e_i with e_i ~ Exp(1), which picks i with probability π_i. Drawing each
    row's noise from its own generator and racing all rows in one division and one argmax gives the
    same tokens with far fewer calls than n multinomial calls (:func:`race_is_multinomial` checks it
    on this torch). Rows that are not valid distributions go to multinomial, which says why.
    """
    if not race_is_multinomial() or not bool(torch.isfinite(probs).all()) or bool((probs < 0).any()):
        return [int(torch.multinomial(p, 1, generator=g)) for p, g in zip(probs, generators)]
    return _race(probs, generators)


def sample_rows(logits: Tensor, settings: list[SamplingSettings],
                generators: list[torch.Generator]) -> list[Step]:
    """:func:`~scratchformer.inference.sampling.sample_step` for every row of ``logits`` [n, V], row r
    with its own ``settings[r]`` and ``generators[r]``: ``sample_rows(…)[r]`` is the :class:`Step`
    that ``sample_step(logits[r], settings[r], generators[r])`` returns, bit for bit
    (tests/test_batching.py), with one softmax, one sort and one cumulative sum for all the rows
    instead of n of each. Row by row, as in sample_step:

        p_T   = softmax((z − max z) / T)            (T = 1 for a greedy row, only shown)
        rank  = the stable descending order of p_T
        top-k keeps rank < k                       (k = V when off)
        top-p keeps rank r < k iff C_{r−1} < p − tolerance, C the cumulative sum of p_T over the
              kept ranks renormalised by their sum; rank 0 always
        π     = p_T · keep / Σ p_T · keep;  token ~ multinomial(π, generator)   (:func:`draw_rows`)
        greedy (T = 0): token = argmax z, π one-hot on it

    Only the random noise stays a loop: each row has its own generator. The kept mass of a row with both
    filters on is summed on that row alone (a sum over its k values rounds as sample_step's does).
    A Step's tensors are views of its row when the batch's probabilities are small (at most
    :data:`SHARED_BYTES`: 32 rows of a character model's 65 take 16 KB), else copies of the row,
    so that a Step kept never holds a large batch (32 rows of GPT-2's 50,257 take 13 MB).
    """
    z = logits.detach().float().cpu()
    n, V = z.shape
    temperature = torch.tensor([s.temperature if s.temperature > 0 else 1.0 for s in settings],
                               dtype=torch.float64)
    probs_t = torch.softmax((z.double() - z.max(dim=-1, keepdim=True).values) / temperature[:, None], dim=-1)
    ks = [V if s.top_k == 0 or s.top_k >= V else s.top_k for s in settings]
    sorted_probs, order = torch.sort(probs_t, dim=-1, descending=True, stable=True)
    keep_k_sorted = torch.arange(V)[None, :] < torch.tensor(ks)[:, None]          # rank < k
    keep_p_sorted = keep_k_sorted.clone()
    nucleus = [r for r, s in enumerate(settings) if s.top_p < 1.0]
    if nucleus:
        every = len(nucleus) == n
        mass = sorted_probs.sum(dim=-1)                    # a row's whole mass: the kept one when k = V
        kept_mass = mass if every else mass[nucleus]
        with_k = [(i, r) for i, r in enumerate(nucleus) if ks[r] < V]
        if with_k:                                         # top-k on too: the mass of the k kept, row by row
            kept_mass = kept_mass.clone()
            for i, r in with_k:
                kept_mass[i] = sorted_probs[r, :ks[r]].sum()
        top = (sorted_probs if every else sorted_probs[nucleus]) / kept_mass[:, None]   # renormalised
        limit = torch.tensor([settings[r].top_p - TOP_P_TOLERANCE for r in nucleus], dtype=torch.float64)
        reach = (torch.cumsum(top, dim=-1) - top) < limit[:, None]       # C_{r-1} < p
        reach[:, 0] = True
        if every:
            keep_p_sorted &= reach
        else:
            keep_p_sorted[nucleus] = reach & keep_k_sorted[nucleus]
    keep_k = torch.zeros(n, V, dtype=torch.bool).scatter_(-1, order, keep_k_sorted)
    keep_p = torch.zeros(n, V, dtype=torch.bool).scatter_(-1, order, keep_p_sorted)
    kept = probs_t * keep_p
    probs_f = kept / kept.sum(dim=-1, keepdim=True)
    greedy = [r for r, s in enumerate(settings) if s.temperature == 0]
    token_ids = [0] * n
    if greedy:
        best = torch.argmax(z[greedy], dim=-1)                 # the first maximal index, per row
        probs_f[greedy] = torch.zeros(len(greedy), V, dtype=torch.float64).scatter_(-1, best[:, None], 1.0)
        for r, t in zip(greedy, best.tolist()):
            token_ids[r] = t
    drawn = [r for r, s in enumerate(settings) if s.temperature > 0]
    if drawn:
        rows = probs_f if len(drawn) == n else probs_f[drawn]
        for r, t in zip(drawn, draw_rows(rows, [generators[r] for r in drawn])):
            token_ids[r] = t
    token_probs = probs_f.gather(1, torch.tensor(token_ids)[:, None])[:, 0].tolist()
    share = probs_t.numel() * probs_t.element_size() <= SHARED_BYTES     # the largest of the five
    rows = zip(*(_rows_of(x, share) for x in (z, probs_t, probs_f, ~keep_k, keep_k & ~keep_p)))
    return [Step(token_id=t, token_prob=p, logits=lz, probs_temperature=lt, probs_filtered=lf,
                 cut_by_top_k=ck, cut_by_top_p=cp, settings=s)
            for t, p, (lz, lt, lf, ck, cp), s in zip(token_ids, token_probs, rows, settings)]


SHARED_BYTES = 1 << 18   # batch probabilities up to 256 KB are shared by the rows' Steps (views); larger: copied


def _rows_of(x: Tensor, share: bool) -> tuple[Tensor, ...]:
    """The rows of ``x`` [n, V]: views when ``share``, else a copy each. (The copies cost one operation
    per row and tensor, 160 a step for 32 rows: about a third of :func:`sample_rows`' time.)"""
    rows = x.unbind(0)
    return rows if share else tuple(t.clone() for t in rows)
