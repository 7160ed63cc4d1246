"""What each attention head does on a text, in numbers, and a one-line description read off them.

For a head's weights α [T, T] (row i: where query i looks) over a text x_0 … x_{T−1}, averaged over
the queries that can show the pattern:

    previous   (1/(T−1)) Σ_{i≥1} α_{i,i−1}                    share on the character just before
    first      (1/(T−1)) Σ_{i≥1} α_{i,0}                      share on the first character (a "sink")
    self       (1/T) Σ_i α_{i,i}                              share on the character itself
    same       mean over queries i with an earlier x_j = x_i (j < i) of Σ_{j<i, x_j=x_i} α_{i,j}
                                                              share on earlier copies of the same character
    local      (1/T) Σ_i Σ_{i−2 ≤ j ≤ i} α_{i,j}              share within the last 3 characters
    key_char   the character c with the largest (1/T) Σ_i Σ_{j: x_j = c} α_{i,j}, and that share
    distance   (1/T) Σ_i Σ_j α_{i,j} |i − j|                  mean attention distance, in characters
    entropy    (1/T) Σ_i −Σ_j α_{i,j} log₂ α_{i,j}            bits (0: one key only)

The description names the strongest pattern with its number ("mostly looks one character back: 81%"):
a share ≥ 50% is "mostly", then a key character drawing ≥ 40%, then a head staying within the last
3 characters (≥ 60%), then a share ≥ 30% is "often", else how widely it spreads. There is never a
description without the numbers it came from.
"""
from __future__ import annotations

from typing import Sequence

import torch
from torch import Tensor

STRONG = 0.5     # a share at least this large is "mostly"
NOTABLE = 0.3    # … at least this large is "often"
KEY_CHAR = 0.4   # one key character drawing this share is named
LOCAL = 0.6      # this share within the last 3 characters is "stays local"


def head_numbers(weights: Tensor, ids: Sequence[int]) -> dict:
    """The six numbers of the module docstring for one head's weights [T, T] over ``ids``."""
    w = weights.detach().double().cpu()
    T = w.size(0)
    x = torch.tensor(list(ids))
    i = torch.arange(T)
    out = {"previous": float("nan"), "first": float("nan"), "same": float("nan")}
    if T > 1:
        out["previous"] = float(w[i[1:], i[1:] - 1].mean())
        out["first"] = float(w[1:, 0].mean())
    earlier_same = (x[:, None] == x[None, :]) & (i[None, :] < i[:, None])      # [query, key]
    has = earlier_same.any(1)
    if has.any():
        out["same"] = float((w * earlier_same)[has].sum(1).mean())
    out["self"] = float(w.diagonal().mean())
    offset = i[:, None] - i[None, :]
    out["local"] = float((w * ((offset >= 0) & (offset <= 2))).sum(1).mean())
    by_char = torch.zeros(int(x.max()) + 1, dtype=w.dtype).index_add_(0, x, w.sum(0)) / T
    out["key_char_id"] = int(by_char.argmax())
    out["key_char_share"] = float(by_char.max())
    out["distance"] = float((w * (i[:, None] - i[None, :]).abs()).sum(1).mean())
    out["entropy"] = float(-(w * torch.log2(w.clamp_min(1e-300))).sum(1).mean())
    return out


def describe_head(n: dict, key_char: str = "", unit: str = "character") -> str:
    """One line from :func:`head_numbers` (the rule is in the module docstring); ``key_char``: how
    to show the token ``n["key_char_id"]``; ``unit``: what a token is ("character", or "token" for a
    BPE model, whose "previous token" may be the previous word). Every claim carries its number."""
    pct = lambda v: f"{100 * v:.0f}%"   # noqa: E731
    named = {"previous": f"looks one {unit} back", "first": f"parks on the first {unit} (a sink)",
             "self": f"looks at the {unit} itself", "same": f"looks at earlier copies of the same {unit}"}
    shares = {k: v for k, v in n.items() if k in named and v == v}     # drop NaN
    if shares:
        k, v = max(shares.items(), key=lambda kv: kv[1])
        if v >= STRONG:
            return f"mostly {named[k]}: {pct(v)}"
        if key_char and n["key_char_share"] >= KEY_CHAR:
            return f"mostly looks at {key_char!r} {unit}s: {pct(n['key_char_share'])}"
        if n["local"] >= LOCAL:
            return (f"stays within the last 3 {unit}s ({pct(n['local'])}): itself {pct(n['self'])}, "
                    f"one back {pct(n['previous'])}")
        if v >= NOTABLE:
            return (f"often {named[k]} ({pct(v)}); otherwise spread, mean distance "
                    f"{n['distance']:.1f} {unit}s")
    return f"spreads its attention: mean distance {n['distance']:.1f} {unit}s, entropy {n['entropy']:.2f} bits"


def head_table(attn: Sequence[Tensor], ids: Sequence[int], tokenizer) -> list[dict]:
    """Every head of every layer (``attn``: L tensors [H, T, T] of one text): the numbers and the
    description, with 1-based ``layer`` and ``head``; a share that is undefined on this text (no
    earlier copy of any character, a one-character text) is None."""
    rows = []
    for l, a in enumerate(attn):
        for h in range(a.size(0)):
            n = head_numbers(a[h], ids)
            n["key_char"] = tokenizer.token_text(n["key_char_id"])
            described = describe_head(n, n["key_char"], tokenizer.unit)
            n = {k: None if isinstance(v, float) and v != v else v for k, v in n.items()}   # JSON: no NaN
            rows.append({"layer": l + 1, "head": h + 1, **n, "description": described})
    return rows
