"""What every tab shows when the page opens: its default example, computed once and sent as is.

A tab builder calls :func:`on_arrival` with the components to fill and a function of no arguments
that computes their values (the tab's own callback on its default inputs). :func:`build_app
<scratchformer.app.blocks.build_app>` collects them in one :class:`ArrivalViews`, and page-load
events send them to each new page: first what is on screen when it opens (the header and the first
tab), then the other tabs' views, so the first screen does not wait for views nobody sees yet.

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
    """The default examples of every tab: registered while the tabs are built, computed once.

    Two parts: the first screen (the header and the tab open on arrival, see
    :meth:`mark_first_screen`) and the other tabs. The first screen's views are computed first. The
    other tabs' views are computed once the first page has been sent its first screen, so that they
    do not compete with that page's loading on a small machine (2 cores shared with the browser:
    first views 3.27 → 3.04 s, medians of 8 starts), or at once when anything else needs them (their
    page-load answer, a model event)."""

    def __init__(self):
        self.entries: list[tuple[list, Callable[[], Sequence]]] = []
        self.split: Optional[int] = None     # entries[:split] are on the first screen (None: all are)
        self._values: list[Optional[list]] = [None, None]
        self._lock = threading.Lock()
        self._started = False
        self._ready = [threading.Event(), threading.Event()]   # each part is computed (or failed)
        self._go_on = threading.Event()      # the other tabs' views may be computed now

    def __enter__(self):
        self._token = _current.set(self)
        return self

    def __exit__(self, *exc):
        _current.reset(self._token)

    def mark_first_screen(self) -> None:
        """The views registered so far are the ones on screen when the page opens: they are computed
        first and sent in a page-load answer of their own, before the other tabs' views."""
        self.split = len(self.entries)

    def _parts(self) -> tuple[list, list]:
        split = len(self.entries) if self.split is None else self.split
        return self.entries[:split], self.entries[split:]

    @property
    def outputs(self) -> list:
        return [c for outs, _ in self.entries for c in outs]

    @staticmethod
    def _compute(entries: list) -> list:
        values = []
        for outs, fn in entries:
            try:
                result = fn()
                if len(outs) == 1 and not isinstance(result, (tuple, list)):
                    result = (result,)
                values += [_payload(c, v) for c, v in zip(outs, result, strict=True)]
            except Exception:  # a default that cannot be drawn must not keep the others off the page
                log.exception("default view of %s could not be computed", [getattr(c, "elem_id", c) for c in outs])
                values += [gr.skip()] * len(outs)
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
            for part, entries in enumerate(self._parts()):
                if part == 1:
                    self._go_on.wait()
                self._values[part] = self._compute(entries)
                self._ready[part].set()
        finally:
            for ready in self._ready:
                ready.set()

    def wait(self) -> None:
        """Wait while the defaults are being computed; return at once when they are done or were never
        started (an API client that never opened the page computes nothing it does not ask for).

        Why events wait: the page-load answers carry the defaults, and they come only once they are
        computed (seconds, on the first visit after a start). A visitor who generates or types before
        that would see their result overwritten by the defaults when they arrive. Waiting here, the
        event runs once they are ready, and its answer comes after theirs."""
        if self._started:
            self._go_on.set()
            self._ready[1].wait()

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

    def payload(self, part: Optional[int] = None) -> list:
        """What a new page gets: the cached values (computed the first time they are asked for); all
        of them, or ``part`` 0 (the first screen's) or 1 (the other tabs')."""
        self.start()
        values = []
        for p in ((0, 1) if part is None else (part,)):
            if p == 1:
                self._go_on.set()     # asked for: compute them now if not yet begun
            self._ready[p].wait()
            n = sum(len(outs) for outs, _ in self._parts()[p])
            values += self._values[p] if self._values[p] is not None else [gr.skip()] * n
        self._go_on.set()             # the first screen is on its way: the other tabs' views may come now
        return values

    def attach(self, demo: gr.Blocks):
        """The page-load events (private: not API endpoints): the first screen's views, then the
        other tabs' views. Returns the last (None when no tab registered a default)."""
        event = None
        for part, entries in enumerate(self._parts()):
            outputs = [c for outs, _ in entries for c in outs]
            if not outputs:
                continue

            def defaults(part=part, many=len(outputs) > 1):
                values = self.payload(part)
                return values if many else values[0]

            hook = demo.load if event is None else event.then
            event = hook(defaults, None, outputs, queue=False, postprocess=False, show_progress="hidden",
                         api_visibility="private")
        return event
