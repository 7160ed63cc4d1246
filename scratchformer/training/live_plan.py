"""What a person asks of a live training (:mod:`.live`), checked before any work: the corpus, the
size, the seconds, the seed, and a pasted text's length. No torch here: the app lays out its Train
live tab from these names before torch is imported."""
from __future__ import annotations

from dataclasses import dataclass

CORPORA = ("shakespeare", "text", "copy", "reverse", "repeat")
TASKS = ("copy", "reverse", "repeat")
MAX_TEXT = 100_000        # characters a pasted corpus may have
MIN_TEXT = 200            # … and at least this many
MAX_BUDGET_S = 120.0      # the longest race

# size → (GPT: layers, heads, d_model; LSTM: layers, hidden units, embedding), chosen so that the two
# models of a size have about the same number of parameters (live.sizes_table() counts them).
SIZES = {"tiny": dict(gpt=(2, 4, 64), lstm=(1, 144, 48)),
         "small": dict(gpt=(4, 4, 128), lstm=(2, 256, 64))}


# ------------------------------------------------------------------------------------- the plan

@dataclass(frozen=True)
class LivePlan:
    """What a person asked for: checked by :func:`check_plan` before any work."""

    corpus: str = "shakespeare"
    text: str = ""                 # the pasted corpus (corpus "text")
    size: str = "tiny"
    budget_s: float = 60.0
    seed: int = 0


def check_plan(corpus, text, size, budget_s, seed) -> LivePlan:
    """A :class:`LivePlan` from raw values, or ValueError naming the value and its allowed range.
    The text's length is checked before anything else is done with it."""
    if corpus not in CORPORA:
        raise ValueError(f"corpus must be one of {CORPORA}, got {str(corpus)[:40]!r}")
    if size not in SIZES:
        raise ValueError(f"size must be one of {tuple(SIZES)}, got {str(size)[:40]!r}")
    try:
        budget = float(budget_s)
    except (TypeError, ValueError):
        raise ValueError(f"seconds of training must be a number from 1 to {MAX_BUDGET_S:.0f}") from None
    if not (1 <= budget <= MAX_BUDGET_S):
        raise ValueError(f"seconds of training must be from 1 to {MAX_BUDGET_S:.0f}, got {budget:g}")
    try:
        seed = int(seed)
    except (TypeError, ValueError, OverflowError):
        raise ValueError("seed must be a whole number from 0 to 2**31-1") from None
    if not (0 <= seed < 2 ** 31):
        raise ValueError(f"seed must be from 0 to 2**31-1, got {seed}")
    text = text or ""
    if corpus == "text":
        if not isinstance(text, str):
            raise ValueError("the pasted text must be text")
        if len(text) > MAX_TEXT:
            raise ValueError(f"the pasted text has {len(text):,} characters; at most {MAX_TEXT:,} are allowed")
        if len(text) < MIN_TEXT:
            raise ValueError(f"the pasted text has {len(text):,} characters; at least {MIN_TEXT} are needed")
        distinct = set(text)
        if len(distinct) < 2:
            raise ValueError(f"the pasted text is one character ({text[0]!r}) repeated: there is nothing "
                             "to learn; paste a text with at least 2 different characters")
    else:
        text = ""
    return LivePlan(corpus, text, size, budget, seed)
