"""Continuous batching: many visitors' generations of one model advanced together, one token per step.

:func:`~scratchformer.inference.generation.generate_stream` runs one request alone: every token is
one forward pass over a batch of one. These models are small, so such a pass spends its time on
calling things, not on arithmetic, and a pass over 32 rows costs little more than a pass over one.
A :class:`DecodeScheduler` serves many streams of one model from one worker thread:

    stream()  ──▶  waiting ──admit──▶  prefill (one pass per prompt length) ──▶ row of the batch
                                                                          │
    each step:  every running row ──one batched pass──▶ logits [rows, V] ──sample_rows──▶ GenSteps
                (rows whose cache is full are re-read first, together: generation.py's refill policy)
                                                                          │
    a row leaves when it has its max_new_tokens, or at once when its reader closes or drops its stream

The pieces, one idea a module:

* :mod:`.batched`: the batched passes and their cache (the maths: a key mask for rows of different
  lengths), tested equal to the models' own passes row by row;
* :mod:`.batch_sampling`: :func:`~.batch_sampling.sample_rows`, every row's ``sample_step`` at once,
  bit for bit;
* :mod:`.batch_streams`: a request, its row, and the :class:`~.batch_streams.GenerationStream` a reader
  iterates; :class:`~.batch_streams.SchedulerBusy`;
* this module: the :class:`DecodeScheduler` (who runs, who waits, who leaves) and the
  :class:`DecodeWorker` thread that runs the steps.

Each row keeps everything of its own: its prompt and tokens, its cache rows (the GPT's keys and
values, the LSTM's (h, c)), its position, its :class:`~scratchformer.inference.sampling.SamplingSettings`,
its ``torch.Generator`` (``make_generator(seed)``, as generate_stream makes it) and its stop. So a
stream yields the same :class:`~scratchformer.inference.generation.GenStep` records as
``generate_stream`` with the same arguments: the same tokens and text, the same context window, the
``Step`` within float rounding (tests/test_batching.py: 1e-5), whatever else runs in the batch.

One thread, not one per model: torch lets go of the GIL inside each operation, and decoding is
made of tiny operations, so two busy threads mostly hand the GIL to each other. A
:class:`DecodeWorker` runs the steps of several schedulers (the app's GPT and LSTM) in turn.

Bounded and fair to strangers: at most ``max_rows`` streams run and ``max_waiting`` wait; one more is
refused with :class:`SchedulerBusy` (a ``ValueError`` saying how many wait, and to retry). A reader that
falls ``max_ahead`` tokens behind pauses its row (memory stays bounded); a row paused and unread for
``abandon_after_s`` is dropped. An error while serving a row goes to that row's reader as an exception;
the worker goes on serving the others.
"""
from __future__ import annotations

import atexit
import collections
import threading
import time
import weakref
from typing import Optional

import torch
from torch import Tensor, nn

from ..model.registry import family
from .batch_sampling import sample_rows
from .batch_streams import END, GenerationStream, Request, Row, SchedulerBusy, fail
from .batched import GPTBatch, LSTMBatch, same_length
from .generation import START_TEXT, GenStep
from .sampling import SamplingSettings, Step, make_generator, validate_max_new_tokens

__all__ = ["DecodeScheduler", "DecodeWorker", "GenerationStream", "SchedulerBusy"]


# -------------------------------------------------------------------------------- the worker

class DecodeWorker:
    """The one thread that does the model work of one or more scheduler (:class:`DecodeScheduler`), one step
    of each in turn.

    Why share a thread: torch lets go of Python's GIL inside every operation, and these models'
    operations are tiny (tens of microseconds), so two threads that each run many small operations
    hand the GIL back and forth at every one and, on a small machine, run slower side by side than
    one after the other (docs/serving.md has the numbers). The two models of the app's pair share
    one worker::

        worker = DecodeWorker()
        gpt = DecodeScheduler(gpt_model, tokenizer, worker=worker)
        lstm = DecodeScheduler(lstm_model, tokenizer, worker=worker)

    A scheduler made without one gets a worker of its own. The thread (a daemon) starts with the first
    scheduler and ends when the last one is closed.
    """

    def __init__(self, name: str = "decode"):
        self.name = name
        self.cond = threading.Condition(threading.Lock())   # guards every attached scheduler's queue
        self._schedulers: list["DecodeScheduler"] = []
        self._thread: Optional[threading.Thread] = None

    @property
    def alive(self) -> bool:
        thread = self._thread
        return thread is not None and thread.is_alive()

    def attach(self, scheduler: "DecodeScheduler") -> None:
        with self.cond:
            self._schedulers.append(scheduler)
            if self._thread is None:
                self._thread = threading.Thread(target=self._work, daemon=True, name=self.name)
                self._thread.start()
                _LIVE_WORKERS.add(self)

    def stop(self, timeout: float = 2.0) -> None:
        """Close every scheduler on this worker and wait (up to ``timeout``) for the thread to end."""
        with self.cond:
            for s in self._schedulers:
                s._closing = True                                                               # noqa: SLF001
            self.cond.notify_all()
            thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout)

    def _work(self) -> None:
        while True:
            with self.cond:
                while self._schedulers and not any(s._has_work() for s in self._schedulers):  # noqa: SLF001
                    self.cond.wait()
                for s in [s for s in self._schedulers if s._closing]:                          # noqa: SLF001
                    self._schedulers.remove(s)
                    s._shut_down()                                                              # noqa: SLF001
                if not self._schedulers:
                    self._thread = None    # a scheduler attached later starts a new thread
                    return
                plans = [(s, s._admit()) for s in self._schedulers]                            # noqa: SLF001
            progressed = False
            for s, admitted in plans:
                progressed |= s._serve(admitted)                                                # noqa: SLF001
            with self.cond:
                for s, _ in plans:
                    s._n_running = len(s._rows)                                                 # noqa: SLF001
                if not progressed:          # every row waits for its reader (or nothing to do)
                    self.cond.wait(0.05)


_LIVE_WORKERS: "weakref.WeakSet[DecodeWorker]" = weakref.WeakSet()


@atexit.register
def _stop_live_workers() -> None:
    """At interpreter exit, let each worker finish its step: a daemon thread killed inside a torch
    call can abort the process ("terminate called without an active exception")."""
    for worker in list(_LIVE_WORKERS):
        worker.stop(timeout=1.0)


# ------------------------------------------------------------------------------ the scheduler

class DecodeScheduler:
    """Serve many generation streams of one model (a GPT with a KV cache, or an LSTM) in one batch.

    ``model`` in eval mode, never changed; ``tokenizer`` its tokenizer. ``max_rows``: streams decoded
    together at most; ``max_waiting``: requests that may wait for a row (more → :class:`SchedulerBusy`).
    ``max_ahead``: GenSteps a stream may hold unread before its row pauses; ``abandon_after_s``: a row
    paused and unread that long is dropped (its reader gets an error if it comes back).
    ``handover_s``: a row's GenSteps are handed to its reader together, at most this long after the
    first of them was made (the first token of a stream, the last, and an error at once). A reader
    woken at every step costs the worker the GIL 2 × rows times per step; the page draws at most every
    40 ms (generate_tab.STREAM_INTERVAL_S), so 20 ms of grouping is not seen. A reader that draws less
    often says so with :meth:`GenerationStream.pace <.batch_streams.GenerationStream.pace>` (its row then
    waits that long instead); a row hands over at least every ``max_ahead // 2`` GenSteps, so that it
    never pauses for steps its reader was not given.

    One worker thread does all the model's work: ``worker`` (a :class:`DecodeWorker` shared with other
    schedulers) or, by default, one of its own. :meth:`stream` may be called from any thread.
    :meth:`close` detaches the scheduler (streams still open get an error).
    """

    def __init__(self, model: nn.Module, tokenizer, max_rows: int = 32, max_waiting: int = 64, *,
                 max_ahead: int = 32, abandon_after_s: float = 60.0, handover_s: float = 0.02,
                 worker: Optional[DecodeWorker] = None):
        for name, value in (("max_rows", max_rows), ("max_ahead", max_ahead)):
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"{name} must be a whole number ≥ 1, got {value!r}")
        if not isinstance(max_waiting, int) or isinstance(max_waiting, bool) or max_waiting < 0:
            raise ValueError(f"max_waiting must be a whole number ≥ 0, got {max_waiting!r}")
        if model.training:
            raise ValueError("put the model in eval mode (model.eval()) before serving it")
        decoding = family(model.config.model_type).decoding
        if decoding == "kv_cache":
            self._batch = GPTBatch(model, max_rows)
        elif decoding == "state":
            self._batch = LSTMBatch(model, max_rows)
        else:
            raise ValueError(f"cannot batch-decode a {model.config.model_type!r} model (decoding "
                             f"{decoding!r}); batching serves a GPT with a KV cache or an LSTM")
        self.model, self.tokenizer = model, tokenizer
        self.max_rows, self.max_waiting = max_rows, max_waiting
        self.max_ahead, self.abandon_after_s, self.handover_s = max_ahead, abandon_after_s, handover_s
        self._worker = worker if worker is not None else DecodeWorker(f"decode-{model.config.model_type}")
        self._cond = self._worker.cond
        self._waiting: collections.deque[Request] = collections.deque()
        self._rows: list[Row] = []        # the worker's only
        self._n_running = 0                # len(self._rows), published under the lock
        self._closing = False
        self._closed = threading.Event()
        self.steps = 0                     # batched passes run (for benchmarks and tests)
        self._texts: dict[int, str] = {}   # token id → its text (the worker's only)
        self._worker.attach(self)

    # ------------------------------------------------------------------ what readers call

    @property
    def running(self) -> int:
        """Streams in the batch now."""
        return self._n_running

    @property
    def waiting(self) -> int:
        """Requests waiting for a row."""
        return len(self._waiting)

    @property
    def alive(self) -> bool:
        """Whether this scheduler is served (not closed, its worker running)."""
        return not self._closed.is_set() and self._worker.alive

    def stream(self, prompt: str, *, settings: SamplingSettings = SamplingSettings(),
               max_new_tokens: int = 200, seed: int = 0) -> GenerationStream:
        """Queue one generation; an iterator of the ``max_new_tokens`` :class:`GenStep` records that
        ``generate_stream(model, tokenizer, prompt, settings=…, max_new_tokens=…, seed=…)`` yields.

        Arguments are checked here, before anything is queued (``ValueError`` naming the parameter),
        as generate_stream does. :class:`SchedulerBusy` when ``max_rows`` run and ``max_waiting``
        wait already.
        """
        validate_max_new_tokens(max_new_tokens)
        generator = make_generator(seed)   # checks the seed
        if not isinstance(prompt, str):
            raise ValueError(f"prompt must be text (a str), got {type(prompt).__name__}")
        if not isinstance(settings, SamplingSettings):
            raise ValueError(f"settings must be a SamplingSettings, got {type(settings).__name__}")
        prompt_ids = self.tokenizer.encode(prompt) or self.tokenizer.encode(START_TEXT)
        request = Request(prompt_ids, settings, max_new_tokens, generator)
        with self._cond:
            if self._closing or self._closed.is_set():
                raise RuntimeError("this decode scheduler is closed")
            running, waiting = self._n_running, len(self._waiting)
            if running + waiting >= self.max_rows + self.max_waiting:
                raise SchedulerBusy(
                    f"too many generations at once: {running} running (at most {self.max_rows}) and "
                    f"{waiting} waiting (at most {self.max_waiting}); please retry in a few seconds")
            self._waiting.append(request)
            self._cond.notify_all()
        return GenerationStream(self, request)

    def close(self, timeout: float = 5.0) -> None:
        """Stop serving (the worker finishes its current step first); streams not finished get a
        RuntimeError. The worker's thread ends when no scheduler is left on it."""
        with self._cond:
            if self._closed.is_set():
                return
            self._closing = True
            self._cond.notify_all()
        self._closed.wait(timeout)

    def __enter__(self) -> "DecodeScheduler":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def _cancel(self, request: Request) -> None:
        with self._cond:
            request.cancelled = True
            try:
                self._waiting.remove(request)
            except ValueError:
                pass                       # running: the worker drops it at its next step

    def _wake(self) -> None:
        with self._cond:
            self._cond.notify_all()

    # ------------------------------------------------------------------ the worker

    def _has_work(self) -> bool:
        """(under the worker's lock) Whether the worker has anything to do for this scheduler."""
        return bool(self._waiting or self._rows or self._closing)

    def _admit(self) -> list[Request]:
        """(under the worker's lock) The waiting requests that get a row at this step."""
        admitted = []
        while self._waiting and len(self._rows) + len(admitted) < self.max_rows:
            request = self._waiting.popleft()
            if not request.cancelled:
                admitted.append(request)
        return admitted

    def _serve(self, admitted: list[Request]) -> bool:
        """(the worker's thread, no lock) One step; whether any row moved. An error of ours here
        goes to every stream of this scheduler, and the worker goes on."""
        try:
            with torch.no_grad():
                return self._iteration(admitted)
        except Exception as e:
            for row in self._rows:
                self._hand_over(row, force=True)
                fail(row.request, e, "the decode scheduler failed")
            for request in admitted:
                fail(request, e, "the decode scheduler failed")
            self._rows = []
            return True

    def _shut_down(self) -> None:
        """(under the worker's lock) Closed: every stream not finished hears of it."""
        error = RuntimeError("the decode scheduler was closed before this generation ended")
        for row in self._rows:
            self._hand_over(row, force=True)
        for request in [row.request for row in self._rows] + list(self._waiting):
            request.out.put(error)
        self._waiting.clear()
        self._rows, self._n_running = [], 0
        self._closed.set()

    def _remove(self, index: int) -> None:
        """Row ``index`` leaves; the last row takes its place (rows stay 0 … n−1, no gaps)."""
        last = len(self._rows) - 1
        if index != last:
            self._batch.move(last, index, self._rows[last])
            self._rows[index] = self._rows[last]
        self._rows.pop()

    def _iteration(self, admitted: list[Request]) -> bool:
        """One step of every row: refills, one batched pass, new rows' prefills, sampling.
        Returns whether any row moved."""
        t0 = time.perf_counter()
        rows = self._rows
        # 1. rows whose reader went away leave now
        for i in reversed(range(len(rows))):
            if rows[i].request.cancelled:
                self._remove(i)
        # 2. who moves: a row whose reader is max_ahead behind pauses; full caches are re-read (together)
        logits: dict[int, Tensor] = {}          # id(row) → logits [V] of its next token
        moving, failed, full = [], [], []
        for i, row in enumerate(rows):
            request = row.request
            request.paused = row.emitted - request.read >= self.max_ahead
            if request.paused and row.paused_since is None:
                row.paused_since = t0
            elif not request.paused and row.paused_since is not None:   # the time it waited is not its own
                row.paused_s += t0 - row.paused_since
                row.paused_since = None
            if request.paused:
                self._hand_over(row, force=True)        # all it may read, before it waits for its reader
                moving.append(False)
                if t0 - request.last_read > self.abandon_after_s:
                    failed.append((row, ValueError(f"generation dropped: nothing was read for "
                                                   f"{self.abandon_after_s:g} s")))
                continue
            moving.append(not self._batch.needs_refill(row))
            if not moving[-1]:
                full.append(i)
        if full:                                # full caches re-read, all in one pass
            try:
                logits.update(zip([id(rows[i]) for i in full], self._batch.refill([rows[i] for i in full], full)))
            except Exception as e:
                failed += [(rows[i], e) for i in full]
        # 3. one batched pass over every row (paused and refilled rows ride along, unchanged)
        if any(moving):
            try:
                out = self._batch.step(rows, moving)
                self.steps += 1
                for row, m, row_logits in zip(rows, moving, out):
                    if m:
                        logits[id(row)] = row_logits
            except Exception as e:
                failed += [(row, RuntimeError(f"a batched decoding step failed: {e}"))
                           for row, m in zip(rows, moving) if m]
        # 4. new requests: their prompts read (one pass per prompt length), then they join the batch
        new = [Row(request, list(request.prompt_ids)) for request in admitted]
        for group in same_length(new, self._batch.window):
            group = [new[j] for j in group]
            try:
                out = self._batch.prefill(group, list(range(len(rows), len(rows) + len(group))))
            except Exception as e:
                for row in group:
                    fail(row.request, e)
                continue
            logits.update(zip([id(row) for row in group], out))
            rows += group
        # 5. sample every row that has logits, each with its own settings and generator
        if logits:
            order = [row for row in rows if id(row) in logits]
            try:
                steps = sample_rows(torch.stack([logits[id(row)] for row in order]),
                                    [row.request.settings for row in order],
                                    [row.request.generator for row in order])
            except Exception as e:
                failed += [(row, e) for row in order]
                steps = []
            now = time.perf_counter()
            for row, step in zip(order, steps):
                try:
                    self._emit(row, step, now)
                except Exception as e:
                    failed.append((row, e))
        t1 = time.perf_counter()
        # 6. what each reader may read now goes over; finished and failed rows leave
        gone = {id(row) for row, _ in failed}
        for row in rows:
            self._hand_over(row, t1, force=id(row) in gone)
        for row, e in failed:
            fail(row.request, e)
        for i in reversed(range(len(rows))):
            row = rows[i]
            if id(row) in gone or row.emitted >= row.request.max_new_tokens or row.request.cancelled:
                self._remove(i)
        return bool(logits) or bool(failed)

    def _emit(self, row: Row, step: Step, now: float) -> None:
        """Append the row's sampled token and its GenStep to what goes to the reader (and the end,
        after the last one)."""
        request = row.request
        context_len = len(row.seq) - row.start
        row.seq.append(step.token_id)
        row.emitted += 1
        if not row.pending:
            row.pending_since = now
        row.pending.append(GenStep(index=row.emitted - 1, token_id=step.token_id, text=self._text(step.token_id),
                                   step=step, elapsed_s=now - request.submitted - row.paused_s,
                                   prompt_ids=request.prompt_ids, context_start=row.start,
                                   context_len=context_len))
        if row.emitted >= request.max_new_tokens:
            row.pending.append(END)

    def _hand_over(self, row: Row, now: float = 0.0, force: bool = False) -> None:
        """Put the row's pending GenSteps into its reader's queue, as one list, when one is the stream's
        first or last, when the oldest waited ``handover_s`` (or the reader's own pace), when they are
        ``max_ahead // 2``, or when ``force``d."""
        pending = row.pending
        wait = row.request.pace_s
        if pending and (force or row.emitted == 1 or pending[-1] is END or len(pending) >= self.max_ahead // 2
                        or now - row.pending_since >= (self.handover_s if wait is None else wait)):
            row.request.out.put(pending)
            row.pending = []

    def _text(self, token_id: int) -> str:
        """``tokenizer.decode([token_id])``, remembered (at most one entry per token of the vocabulary)."""
        text = self._texts.get(token_id)
        if text is None:
            text = self._texts[token_id] = self.tokenizer.decode([token_id])
        return text

