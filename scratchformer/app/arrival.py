"""What every tab shows when the page opens: its default example, computed once and sent as is.

A tab builder calls :func:`on_arrival` with the components to fill and a function of no arguments
that computes their values (the tab's own callback on its default inputs). :func:`build_demo
<scratchformer.app.blocks.build_demo>` collects them in one :class:`ArrivalViews`, and one
``demo.load`` event sends them to each new page.

Cost per visitor: none of the model work. The values are computed ONCE (in a background thread,
started after the server is up or at the first visit, whichever comes first), post-processed once
into what Gradio sends (a figure's JSON, Markdown…), and every page load returns those same objects
(``postprocess=False``, outside the queue): no model call, no figure serialisation, nothing copied
into the visitor's session.
"""
from __future__ import annotations

import contextvars
import functools
import inspect
import logging
import threading
import time
from typing import Callable, Optional, Sequence

import gradio as gr

log = logging.getLogger("scratchformer.app")

_current: contextvars.ContextVar[Optional["ArrivalViews"]] = contextvars.ContextVar("arrival", default=None)


def on_arrival(outputs: Sequence, compute: Callable[[], Sequence]) -> None:
    """Fill ``outputs`` with ``compute()`` (one value per output) when a page opens. Outside
    :class:`ArrivalViews` (a tab built on its own) nothing happens."""
    views = _current.get()
    if views is not None:
        views.entries.append((list(outputs), compute))


def after_defaults(fn: Callable) -> Callable:
    """``fn``, made to wait while the page's default views are being computed (see
    :meth:`ArrivalViews.wait`); ``fn`` itself outside :class:`ArrivalViews`."""
    views = _current.get()
    return fn if views is None else views.after_defaults(fn)


def _payload(component, value):
    """``value`` as Gradio would send it for ``component`` (its postprocess, as plain JSON data)."""
    if isinstance(value, dict) and value.get("__type__") == "update":
        return value
    out = component.postprocess(value)
    return out.model_dump() if hasattr(out, "model_dump") else out


class ArrivalViews:
    """The default examples of every tab: registered while the tabs are built, computed once."""

    def __init__(self):
        self.entries: list[tuple[list, Callable[[], Sequence]]] = []
        self.values: Optional[list] = None
        self.seconds: Optional[float] = None
        self._lock = threading.Lock()
        self._started = False
        self._done = threading.Event()

    def __enter__(self):
        self._token = _current.set(self)
        return self

    def __exit__(self, *exc):
        _current.reset(self._token)

    @property
    def outputs(self) -> list:
        return [c for outs, _ in self.entries for c in outs]

    def compute(self) -> list:
        """Every registered view's payload, in the order of :attr:`outputs`. A view whose
        computation fails keeps its empty value (and the failure is logged)."""
        t0 = time.perf_counter()
        values = []
        for outs, fn in self.entries:
            try:
                result = fn()
                if len(outs) == 1 and not isinstance(result, (tuple, list)):
                    result = (result,)
                values += [_payload(c, v) for c, v in zip(outs, result, strict=True)]
            except Exception:  # a default that cannot be drawn must not keep the others off the page
                log.exception("default view of %s could not be computed", [getattr(c, "elem_id", c) for c in outs])
                values += [gr.skip()] * len(outs)
        self.seconds = time.perf_counter() - t0
        return values

    def start(self) -> None:
        """Compute the defaults in a background thread (once; later calls do nothing)."""
        with self._lock:
            if self._started:
                return
            self._started = True
        threading.Thread(target=self._run, name="scratchformer-defaults", daemon=True).start()

    def _run(self) -> None:
        try:
            self.values = self.compute()
        finally:
            self._done.set()

    def wait(self) -> None:
        """Wait while the defaults are being computed; return at once when they are done or were never
        started (an API client that never opened the page computes nothing it does not ask for).

        Why events wait: the page-load answer carries the defaults, and it comes only once they are
        computed (seconds, on the first visit after a start). A visitor who generates or types before
        that would see their result overwritten by the defaults when they arrive. Waiting here, the
        event runs once they are ready, and its answer comes after theirs."""
        if self._started:
            self._done.wait()

    def after_defaults(self, fn: Callable) -> Callable:
        """``fn`` (a plain or generator function, for Gradio) calling :meth:`wait` first."""
        if inspect.isgeneratorfunction(fn):
            @functools.wraps(fn)
            def stream(*args, **kwargs):
                self.wait()
                yield from fn(*args, **kwargs)
            return stream

        @functools.wraps(fn)
        def call(*args, **kwargs):
            self.wait()
            return fn(*args, **kwargs)
        return call

    def payload(self) -> list:
        """What a new page gets: the cached values (waits for the first computation)."""
        self.start()
        self._done.wait()
        return self.values if self.values is not None else [gr.skip()] * len(self.outputs)

    def attach(self, demo: gr.Blocks):
        """One page-load event filling every registered component (private: not an API endpoint);
        returns it (None when no tab registered a default)."""
        if not self.entries:
            return None
        outputs = self.outputs

        def defaults():
            values = self.payload()
            return values if len(outputs) > 1 else values[0]

        return demo.load(defaults, None, outputs, queue=False, postprocess=False, show_progress="hidden",
                         api_visibility="private")
