"""Every setting a request carries, checked in one place: the page's tabs, its links and the MCP tools
call these functions, so a setting has one range and one message wherever it comes from.

Each function takes the raw value (a slider's float, a number box's None, whatever an API client
sent) and returns it checked, or raises ``ValueError`` naming the setting, its range and what was
sent (the app turns that into a message for the person, see :mod:`.events`).

    temperature     0 … 100        0 = greedy (the page's slider stops at 2)
    top_k           0 … 100,000    0 = off; k ≥ the vocabulary keeps every token
    top_p           0 … 1          1 = off
    seed            0 … 2⁶³−1
    max_new_tokens  1 … 2,000      1 … 300 when a model of the pair is large (GPT-2: :data:`LARGE_MAX_NEW_TOKENS`);
                                   1 … 200 in a tool call (:data:`TOOL_MAX_NEW_TOKENS`)
    layer, head     1 … n          1-based, as the page shows them; returned 0-based
    guesses         1 … 10         fill-in-the-blanks: guesses per blank

No torch here: :func:`sampling` imports the inference code when it is called.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Optional

from ..inference.choices import MAX_NEW_TOKENS, MAX_SEED
from .policy import as_int, as_number, check_index

if TYPE_CHECKING:
    from ..inference.sampling import SamplingSettings

MAX_TEMPERATURE = 100       # past this softmax(z/T) is uniform to float precision for these models
MAX_TOP_K = 100_000         # above any vocabulary here (GPT-2 has 50,257 tokens)
MAX_GUESSES = 10            # fill-in-the-blanks: the most guesses listed per blank


def temperature(value) -> float:
    return float(as_number(value, "temperature", 0, MAX_TEMPERATURE, hint="0 = greedy"))


def top_k(value) -> int:
    return as_int(value, "top_k", 0, MAX_TOP_K, hint="0 = off")


def top_p(value) -> float:
    return float(as_number(value, "top_p", 0, 1, hint="1 = off"))


def seed(value) -> int:
    return as_int(value, "seed", 0, MAX_SEED)


LARGE_MODEL_PARAMS = 20_000_000   # a model this large (GPT-2 small: 124M) costs ~50 ms a token on one core
LARGE_MAX_NEW_TOKENS = 300        # … so it writes at most this many per request: ~15 s of one core


# A tool call (MCP, /tool_generate) answers once, at the end: both models' 2,000 tokens took 17-19 s
# of server time while other hostile calls ran (benchmarks/abuse.py, 2 cores); 200 took 10-14 s there
# (the rest is sharing the decode batch and the cores), 0.6-0.9 s alone with a 2,000-character prompt.
# So a tool call writes at most TOOL_MAX_NEW_TOKENS per model and stops early, with a note, when it
# has taken TOOL_SECONDS (as `max_time` in Hugging Face's generate): what it wrote is then the
# beginning of what an unhurried call writes. The page's Generate streams up to MAX_NEW_TOKENS.
TOOL_MAX_NEW_TOKENS = 200
TOOL_SECONDS = 1.5


def max_new_tokens(value, limit: int = MAX_NEW_TOKENS, why: str = "") -> int:
    return as_int(value, "max_new_tokens", 1, limit, hint=why)


def token_limit(n_params: int, tool: bool = False) -> tuple[int, str]:
    """How many tokens one request may ask for (a model of ``n_params`` parameters; a tool call),
    and why that many, for the message ("" for the plain limit)."""
    if tool:        # lower than the large-model limit too
        return TOOL_MAX_NEW_TOKENS, "the most a tool call writes per model; call again with the text so far for more"
    if n_params >= LARGE_MODEL_PARAMS:
        return LARGE_MAX_NEW_TOKENS, "the most a model of over 20M parameters writes in one request"
    return MAX_NEW_TOKENS, ""


def guesses(value) -> int:
    return as_int(value, "top_k (guesses per blank)", 1, MAX_GUESSES)


def layer(value, n: int, name: str = "layer") -> int:
    """A 1-based layer (1…n) as a 0-based index."""
    return check_index(value, name, n)


def head(value, n: int) -> int:
    """A 1-based head (1…n) as a 0-based index."""
    return check_index(value, "head", n)


def sampling(temperature_, top_k_, top_p_) -> SamplingSettings:
    """temperature → top-k → top-p, each checked, as one :class:`SamplingSettings`."""
    from ..inference.sampling import SamplingSettings
    return SamplingSettings(temperature(temperature_), top_k(top_k_), top_p(top_p_))


@dataclass(frozen=True)
class GenerationRequest:
    """A generation's settings, checked: sampling, length, seed, and the watched layer (0-based; None
    when the model has no layers to watch)."""

    sampling: SamplingSettings
    max_new_tokens: int
    seed: int
    watch_layer: Optional[int]


def generation(temperature_, top_k_, top_p_, max_new_tokens_, seed_, watch_layer=None,
               n_layer: Optional[int] = None, n_params: int = 0, tool: bool = False) -> GenerationRequest:
    """The settings of a generation, checked. ``watch_layer`` (1-based; None = the last) is checked
    against ``n_layer``, the watched model's layers (None: nothing to watch); ``max_new_tokens``
    against the largest model's size ``n_params`` (:func:`token_limit`), and for a tool call
    (``tool``) against :data:`TOOL_MAX_NEW_TOKENS` too."""
    watched = None
    if n_layer is not None:
        watched = n_layer - 1 if watch_layer is None else layer(watch_layer, n_layer, "watch layer")
    return GenerationRequest(sampling(temperature_, top_k_, top_p_),
                             max_new_tokens(max_new_tokens_, *token_limit(n_params, tool)), seed(seed_), watched)
