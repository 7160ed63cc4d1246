"""Any step of a finished generation, shown again from a few numbers instead of stored tensors.

A :class:`~.sampling.Step` holds distributions over the whole vocabulary (a few KB each, ~3 KB of
memory per token with PyTorch's per-tensor overhead). A generation keeps instead what a replay needs
(:class:`GenerationRecord`: the token ids and, per step, where the model's context started and its
length: 12 bytes per token), and :func:`replay_step` recomputes step k:

    logits = model(ids[start_k : start_k + len_k]) at the last position   the context step k saw
    step   = sample_step(logits, settings)          temperature → top-k → top-p, the same code
    token  = ids[n_prompt + k − 1]                  the token drawn then, and its probability in π

The generator read those logits through a KV cache (the LSTM: through its carried state); a full pass
over the same context is the same function, equal up to float rounding (tests/test_session_memory.py
checks the distributions to 1e-5). The random draw is not repeated: the token is read from the ids.
"""
from __future__ import annotations

import dataclasses
from array import array
from dataclasses import dataclass, field

import torch
from torch import nn

from .generation import GenStep
from .sampling import SamplingSettings, Step, sample_step


def _ints() -> array:
    return array("i")      # 4 bytes per number (a list of ints costs 8 per entry, 36 past 256)


@dataclass
class GenerationRecord:
    """What one generation keeps to replay any of its steps: ids and a few numbers, no tensors.

    ids       the prompt's ids as the model read them, then each generated token's id
    n_prompt  how many of ``ids`` are the prompt's
    starts    step k (1-based) saw ``ids[starts[k-1] : starts[k-1] + lens[k-1]]``
    lens      (:attr:`GenStep.context_start` and :attr:`GenStep.context_len`)
    settings  the sampling settings, and ``seed`` the generator's seed (same seed, same ids)
    """

    settings: SamplingSettings
    seed: int
    ids: array = field(default_factory=_ints)
    n_prompt: int = 0
    starts: array = field(default_factory=_ints)
    lens: array = field(default_factory=_ints)

    def add(self, g: GenStep) -> None:
        """Record one generated token (the first one brings the prompt's ids)."""
        if not self.starts:
            self.ids.extend(g.prompt_ids)
            self.n_prompt = len(g.prompt_ids)
        self.ids.append(g.token_id)
        self.starts.append(g.context_start)
        self.lens.append(g.context_len)

    @property
    def n_steps(self) -> int:
        return len(self.starts)

    @property
    def generated(self) -> list[int]:
        """The generated tokens' ids, in order."""
        return self.ids[self.n_prompt:].tolist()

    def context(self, k: int) -> list[int]:
        """The ids the model saw at step ``k`` (1-based)."""
        self._check(k)
        start = self.starts[k - 1]
        return self.ids[start:start + self.lens[k - 1]].tolist()

    def token_id(self, k: int) -> int:
        """The token chosen at step ``k`` (1-based)."""
        self._check(k)
        return self.ids[self.n_prompt + k - 1]

    def _check(self, k: int) -> None:
        if not 1 <= k <= self.n_steps:
            raise ValueError(f"step must be in 1…{self.n_steps}, got {k!r}")


def replay_step(model: nn.Module, record: GenerationRecord, k: int) -> Step:
    """Step ``k`` (1-based) of ``record`` recomputed: ``model`` over exactly the context it saw, then
    the recorded settings (:func:`~.sampling.sample_step`); the token is the one chosen then, with its
    probability in the filtered distribution. ``model``: the one that generated (only read)."""
    ids = torch.tensor([record.context(k)], device=next(model.parameters()).device)
    with torch.no_grad():
        logits = model(ids).logits[0, -1]
    step = sample_step(logits, record.settings)          # its draw (a fresh generator) is discarded
    token = record.token_id(k)
    return dataclasses.replace(step, token_id=token, token_prob=float(step.probs_filtered[token]))
