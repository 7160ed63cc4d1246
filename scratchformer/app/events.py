"""How the tabs wire widgets to plain functions: concurrency groups, live events, one error policy.

* :func:`model_event`: an event (one API endpoint, ``api_name``) in the "live" concurrency group
  (every view that follows typing: at most ``MODEL_CONCURRENCY`` run at once) or, for generation,
  the "generate" group (``GENERATE_CONCURRENCY``), so a person who presses Generate never waits behind
  other people's keystrokes. Every event is ``trigger_mode="always_last"``: while a browser's request
  runs, its further keystrokes collapse into one request for the latest value (never one queued per
  keystroke). The queue itself is bounded in ``app.py``.
* Events skip Gradio's preprocessing (``preprocess=False``): sliders and number boxes send their raw
  value and the callbacks check it (:mod:`.policy`), so an empty, NaN or out-of-range value gets a
  message naming the setting and its range instead of Gradio's generic error.
* :func:`friendly` / :func:`bound`: what a person can cause (``ValueError``) becomes a ``gr.Error``
  with its message; anything else a short error and a log line. The server keeps serving.
* The generate stream postprocesses its own updates (:func:`postprocessed`), in the thread that
  computed them, instead of Gradio's event loop sending each output to a thread of its own.
"""
from __future__ import annotations

import functools
import html
import inspect
import logging
import os
from typing import Callable

import gradio as gr

from .arrival import after_defaults, on_arrival
from .bank import BATCH_ROWS, ModelBank, batching_on
from .policy import MAX_MESSAGE_CHARS, NotesMd, md_text, notes_md, visible_controls
from .zerogpu import gpu_task

log = logging.getLogger("scratchformer.app")

MODEL_CONCURRENCY = int(os.environ.get("SCRATCHFORMER_CONCURRENCY", "2"))


def generate_concurrency() -> int:
    """How many generations run at once: $SCRATCHFORMER_GENERATE_CONCURRENCY, else as many as one decode
    batch holds (``BATCH_ROWS``, 32) when generations are batched (:func:`~.bank.batching_on`: the
    streams running at once advance together, one batched pass per token, so 32 cost little more than
    2 and nobody waits in Gradio's queue for a free slot), else 2 (each generation decodes alone, and
    more at once would only share the same two cores)."""
    value = os.environ.get("SCRATCHFORMER_GENERATE_CONCURRENCY", "").strip()
    return int(value) if value else (BATCH_ROWS if batching_on() else 2)


GENERATE_CONCURRENCY = generate_concurrency()
LATEX = [{"left": "$$", "right": "$$", "display": True}, {"left": "$", "right": "$", "display": False}]


def model_event(triggers: list, fn: Callable, inputs: list, outputs: list, api_name: str, group: str = "live",
                **kwargs):
    """One event (one API endpoint, ``api_name``) fired by any of ``triggers``: in concurrency group
    ``group`` ("live": at most MODEL_CONCURRENCY at once; "generate": GENERATE_CONCURRENCY), only the
    latest trigger of a browser computed (always_last), raw input values (the callback checks them).
    On a ZeroGPU Space ``fn`` runs under ``@spaces.GPU`` (:func:`~scratchformer.app.zerogpu.gpu_task`).
    While the page's default views are being computed, the event waits for them
    (:meth:`~scratchformer.app.arrival.ArrivalViews.wait` says why)."""
    if group == "generate":             # a stream: many updates of many outputs (see postprocessed)
        fn, kwargs = postprocessed(fn, outputs), {**kwargs, "postprocess": False}
    return gr.on(triggers, page_only(after_defaults(gpu_task(fn))), inputs, outputs,
                 **_event_settings(api_name, group, kwargs))


def postprocessed(fn: Callable, outputs: list) -> Callable:
    """``fn`` (a function or a generator function) whose every result is what Gradio would send: each
    output component's own ``postprocess`` applied here, by the thread that computed the values, for an
    event registered with ``postprocess=False``.

    Gradio 6.31 postprocesses an event's outputs one at a time, each in a worker thread awaited from its
    event loop (``anyio.to_thread.run_sync``). For the generate stream that is 16 thread hops per
    update; with 32 visitors streaming at once, py-spy found the server's event loop holding the GIL
    94% of the time, mostly in that machinery, while the decoding thread waited for it. The same
    ``postprocess`` of the same component, called here, gives the same values. Left as they are:
    ``gr.State`` values and property updates (``gr.update``/``gr.skip()``: Gradio handles those
    itself), except an update's ``value``, postprocessed like any value."""
    from gradio.data_classes import GradioModel, GradioRootModel

    def value(block, v):
        if block.stateful:
            return v
        if isinstance(v, dict) and v.get("__type__") == "update":
            return {**v, "value": value(block, v["value"])} if "value" in v else v
        v = block.postprocess(v)
        return v.model_dump() if isinstance(v, (GradioModel, GradioRootModel)) else v

    def results(r):
        if len(outputs) == 1:
            return value(outputs[0], r)
        return tuple(value(block, v) for block, v in zip(outputs, r))

    if inspect.isgeneratorfunction(fn):
        def run(*args, **kwargs):
            for r in fn(*args, **kwargs):
                yield results(r)
    else:
        def run(*args, **kwargs):
            return results(fn(*args, **kwargs))
    functools.update_wrapper(run, fn)
    return run


def model_then(event, fn: Callable, inputs: list, outputs: list, api_name: str, **kwargs):
    """Like :func:`model_event`, run after ``event`` succeeds (``event.then``): a view that follows
    a faster one (the attention tab's other plots after the head typed into)."""
    return event.then(page_only(after_defaults(gpu_task(fn))), inputs, outputs,
                      **_event_settings(api_name, "live", kwargs))


def page_only(fn: Callable) -> Callable:
    """Mark ``fn`` (an event of the page) as no MCP tool; it stays an API endpoint for gradio_client.

    The page's events return figures, HTML and Markdown for the page; agents get the JSON tools of
    :mod:`.mcp_tools` instead. Gradio 6.31 has no per-event MCP switch (``api_visibility`` would
    also take the endpoint out of gradio_client's API): its MCP server offers every public endpoint
    whose function has no ``_mcp_type`` or ``_mcp_type == "tool"`` (``gr.tool``, ``gr.resource``
    and ``gr.prompt`` set it), so any other value keeps the event off the MCP tool list.
    tests/test_mcp.py checks the list, so a Gradio that changes this rule fails there."""
    fn._mcp_type = "page"
    return fn


def _event_settings(api_name: str, group: str, kwargs: dict) -> dict:
    limit = GENERATE_CONCURRENCY if group == "generate" else MODEL_CONCURRENCY
    kwargs.setdefault("show_progress", "minimal" if group == "live" else "full")
    return dict(api_name=api_name, concurrency_id=group, concurrency_limit=limit, trigger_mode="always_last",
                preprocess=False, **kwargs)


def live_triggers(*components) -> list:
    """What makes a view follow a control: any edit of a text box (``change``: Gradio's ``input``
    misses deletions; the app never sets these texts itself), Enter, moving a slider with the pointer
    or the keyboard (``input``; ``release`` alone misses keyboard moves), ticking a box or choosing
    an option (``input``: not fired when the app itself updates the control)."""
    triggers = []
    for c in components:
        if isinstance(c, gr.Textbox):
            triggers += [c.change, c.submit]
        else:
            triggers.append(c.input)
    return triggers


def model_missing(bank: ModelBank, name: str) -> bool:
    """When model ``name`` is not offered (its checkpoint is missing, or its config is broken or of the
    wrong kind), say why on the page and return True: the caller leaves its panel out.

    Otherwise the panel is laid out from the config before the weights are loaded (see
    :mod:`.bank`), with a hidden note that the page's default views fill in should the weights
    then fail to load."""
    if bank.offered(name):
        note = gr.Markdown(visible=False, elem_classes="model-missing")
        on_arrival([note], lambda: unavailable_note(bank, name))
        return False
    gr.Markdown(_unavailable_md(bank, name), elem_classes="model-missing")
    return True


def _unavailable_md(bank: ModelBank, name: str) -> str:
    return f"⚠️ **{name} is unavailable:** {md_text(bank.slots[name].error or '')}"


def unavailable_note(bank: ModelBank, name: str) -> dict:
    """The note of a panel once the weights are loaded: shown with the reason when they failed,
    unchanged otherwise."""
    if bank.available(name):
        return gr.skip()
    return gr.update(value=_unavailable_md(bank, name), visible=True)


def md(text: str, **kwargs) -> gr.Markdown:
    """Markdown with LaTeX: $$…$$ on its own line, $…$ inline."""
    return gr.Markdown(text, latex_delimiters=LATEX, **kwargs)


def friendly(fn: Callable) -> Callable:
    """Turn what a person can cause (ValueError: bad text, bad numbers, a missing model) into a
    ``gr.Error`` with the message; anything else into a short error and a log line. The server keeps
    serving either way and no traceback reaches the page."""

    def convert(e: Exception) -> gr.Error:
        if isinstance(e, gr.Error):
            return e
        if isinstance(e, ValueError):   # the page shows the message as HTML: escaped, and cut short
            return gr.Error(public_message(str(e)), print_exception=False)
        log.exception("unexpected error in %s", fn.__name__)
        return gr.Error(f"Something went wrong ({type(e).__name__}); the error was logged.",
                        print_exception=False)

    if inspect.isgeneratorfunction(fn):
        @functools.wraps(fn)
        def gen_wrapper(*args, **kwargs):
            try:
                yield from fn(*args, **kwargs)
            except Exception as e:
                raise convert(e) from None
        return gen_wrapper

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except Exception as e:
            raise convert(e) from None
    return wrapper


def public_message(text: str) -> str:
    """A message for the page's toasts (which Gradio renders as HTML): escaped, at most
    MAX_MESSAGE_CHARS characters."""
    if len(text) > MAX_MESSAGE_CHARS:
        text = text[:MAX_MESSAGE_CHARS] + "…"
    return html.escape(visible_controls(text), quote=False)   # quotes are harmless in a toast's text


def warn(notes: list[str]) -> str:
    """Show each note as a toast (gr.Warning) and return them as Markdown for the page."""
    for n in notes:
        gr.Warning(public_message(n))
    return notes_md(notes)


def toast_notes(result):
    """A callback's result whose first item is notes Markdown (:class:`~.policy.NotesMd`): pop each
    note up as a warning too."""
    if isinstance(result, tuple) and result and isinstance(result[0], NotesMd):
        for n in result[0].notes:
            gr.Warning(public_message(n))
    return result


def bound(fn: Callable, bank: ModelBank) -> Callable:
    """``fn`` with the bank as its first argument and the error policy applied (a plain function
    with the remaining parameters, which is what Gradio inspects)."""
    if inspect.isgeneratorfunction(fn):
        def call(*args):
            yield from fn(bank, *args)
    else:
        def call(*args):
            return toast_notes(fn(bank, *args))
    functools.update_wrapper(call, fn)
    call.__signature__ = inspect.Signature(list(inspect.signature(fn).parameters.values())[1:])
    return friendly(call)


def on_pair(fn: Callable) -> Callable:
    """``fn(bank, *values)`` run on the models of the pair chosen at the top of the page (characters,
    words, …: :data:`~.bank.PAIRS`), which comes as one more value, the last: ``(bank, *values, pair)``.
    The shared bank is not changed: :meth:`~.bank.ModelBank.for_pair` lends the pair's models the
    Transformer and LSTM roles for this call only."""
    if inspect.isgeneratorfunction(fn):
        def run(bank, *values):
            *values, pair = values
            yield from fn(bank.for_pair(pair), *values)
    else:
        def run(bank, *values):
            *values, pair = values
            return fn(bank.for_pair(pair), *values)
    functools.update_wrapper(run, fn)
    pair = inspect.Parameter("pair", inspect.Parameter.POSITIONAL_OR_KEYWORD, default=None)
    run.__signature__ = inspect.Signature([*inspect.signature(fn).parameters.values(), pair])
    del run.__wrapped__     # inspect.signature must see the new signature, not follow fn's
    return run


def forget_session(demo: gr.Blocks, also: tuple = ()) -> Callable:
    """An unload callback: when a page is closed, drop its whole session at once (its gr.State
    values through their delete callbacks, and the copy of every value it was sent, plots included,
    that Gradio keeps per session for an hour otherwise). Each of ``also`` is called with the
    session's id first (the Train live tab stops the page's training and drops its models)."""

    def forget(request: gr.Request):
        holder = getattr(demo, "state_holder", None)
        session = getattr(request, "session_hash", None)
        for callback in also if session else ():
            callback(session)
        if holder is None or session is None or session not in holder.session_data:
            return
        holder.delete_state(session)
        with holder.lock:
            holder.session_data.pop(session, None)
            holder.time_last_used.pop(session, None)

    return forget
