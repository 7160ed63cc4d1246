"""What a reader and the decode worker share: a request, its row, and the stream that reads it.

A reader's thread calls :meth:`DecodeScheduler.stream <scratchformer.inference.batching.DecodeScheduler.stream>`
and gets a :class:`GenerationStream`; the worker's thread serves the :class:`Request` behind it as a
:class:`Row` of the batch and puts its :class:`~scratchformer.inference.generation.GenStep` records into
the request's queue (``out``) a few at a time (a list: the ones made since the last hand-over), then
:data:`END`, or an exception for the reader to raise. The queue is the only hand-over: the reader
never touches torch state of the batch.
"""
from __future__ import annotations

import collections
import queue
import time
from dataclasses import dataclass, field
from typing import Optional

import torch

from .generation import GenStep
from .sampling import SamplingSettings


class SchedulerBusy(ValueError):
    """Too many generations at once: every row runs and the waiting line is full. Retry later."""


END = object()   # put after a stream's last GenStep


@dataclass
class Request:
    """What a reader asked for; shared by its stream (the reader's thread) and the worker.

    ``cancelled``, ``last_read`` and ``read`` are plain attributes written by one thread and read by
    the other (a single assignment is atomic in Python); ``out`` is the thread-safe hand-over.
    """

    prompt_ids: list[int]
    settings: SamplingSettings
    max_new_tokens: int
    generator: torch.Generator
    out: queue.SimpleQueue = field(default_factory=queue.SimpleQueue)
    submitted: float = field(default_factory=time.perf_counter)
    last_read: float = field(default_factory=time.perf_counter)
    cancelled: bool = False
    paused: bool = False
    read: int = 0               # GenSteps the reader has taken (written by the reader only)
    pace_s: Optional[float] = None   # how long the reader lets its GenSteps wait (None: the scheduler's)


@dataclass
class Row:
    """A running request, as the worker keeps it. Its index in the worker's row list is its row in
    the batch (and in the batched cache)."""

    request: Request
    seq: list[int]              # prompt ids + the ids generated so far
    start: int = 0              # index in seq of the first token the model's window holds (GPT)
    length: int = 0             # positions in the row's cache (GPT); tokens read (LSTM)
    emitted: int = 0            # GenSteps made
    paused_s: float = 0.0       # time spent paused because the reader was behind (not in elapsed_s)
    paused_since: Optional[float] = None   # when the row last paused (None: it is moving)
    pending: list = field(default_factory=list)   # GenSteps made, not yet handed over (the worker's only)
    pending_since: float = 0.0  # when the first of them was made


class GenerationStream:
    """The :class:`GenStep` records of one request served by a :class:`DecodeScheduler`, in order.

    An iterator, like :func:`~scratchformer.inference.generation.generate_stream`'s. ``close()``
    (also when used as a context manager, or when the stream is garbage collected) tells the worker
    to free the row at its next step.
    """

    def __init__(self, scheduler, request: Request):   # scheduler: the DecodeScheduler serving it
        self._scheduler = scheduler
        self._request = request
        self._finished = False
        self._buffer: collections.deque = collections.deque()   # handed over, not yet returned

    def __iter__(self) -> "GenerationStream":
        return self

    def __next__(self) -> GenStep:
        if self._finished:
            raise StopIteration
        request = self._request
        while not self._buffer:
            try:
                item = request.out.get(timeout=0.5)
            except queue.Empty:
                if not self._scheduler.alive:
                    self._finished = True
                    raise RuntimeError("the decode scheduler stopped before this generation ended")
                continue
            if isinstance(item, list):
                self._buffer.extend(item)
            else:
                self._buffer.append(item)
        item = self._buffer.popleft()
        request.last_read = time.perf_counter()
        if item is END:
            self._finished = True
            raise StopIteration
        if isinstance(item, BaseException):
            self._finished = True
            raise item
        request.read += 1
        if request.paused:
            self._scheduler._wake()   # noqa: SLF001  the row can move again
        return item

    def pace(self, seconds: float) -> None:
        """Let the GenSteps wait up to ``seconds`` (at most 1 s) before they are handed over, in one
        piece: a reader that shows them only every so often (a page updated every second while many
        visitors write) is then woken that often, not at every step, and leaves the GIL to the worker.
        The first and last GenSteps still come at once."""
        self._request.pace_s = min(max(float(seconds), 0.0), 1.0)

    def close(self) -> None:
        """Stop: the row leaves the batch at the next step (a waiting request is dropped now)."""
        if not self._finished:
            self._finished = True
            self._scheduler._cancel(self._request)   # noqa: SLF001

    def __enter__(self) -> "GenerationStream":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __del__(self):
        self._request.cancelled = True   # no lock here: the worker drops it at its next step



def fail(request: Request, error: Exception, what: Optional[str] = None) -> None:
    """Hand ``error`` to the request's reader (wrapped in a RuntimeError saying ``what``, if given)."""
    if what is not None:
        wrapped = RuntimeError(f"{what}: {error}")
        wrapped.__cause__ = error
        error = wrapped
    request.out.put(error)
