"""How the tabs wire widgets to plain functions: one concurrency group for model work, one error policy.

* :func:`model_event`: an event (one API endpoint, ``api_name``) in the shared "models" concurrency
  group, so at most ``MODEL_CONCURRENCY`` forward passes run at once; the queue itself is bounded in
  ``app.py``.
* :func:`friendly` / :func:`bound`: what a person can cause (``ValueError``) becomes a ``gr.Error``
  with its message; anything else a short error and a log line. The server keeps serving.
"""
from __future__ import annotations

import functools
import html
import inspect
import logging
import os
from typing import Callable

import gradio as gr

from .bank import ModelBank
from .policy import NOTE_MARK, notes_md
from .zerogpu import gpu_task

log = logging.getLogger("scratchformer.app")

MODEL_CONCURRENCY = int(os.environ.get("SCRATCHFORMER_CONCURRENCY", "2"))
MODEL_EVENT = dict(concurrency_id="models", concurrency_limit=MODEL_CONCURRENCY)
LATEX = [{"left": "$$", "right": "$$", "display": True}, {"left": "$", "right": "$", "display": False}]
def model_event(triggers: list, fn: Callable, inputs: list, outputs: list, api_name: str):
    """One event (one API endpoint, ``api_name``) fired by any of ``triggers``, in the shared
    "models" concurrency group: at most MODEL_CONCURRENCY of these run at once, the rest queue.
    On a ZeroGPU Space ``fn`` runs under ``@spaces.GPU`` (:func:`~scratchformer.app.zerogpu.gpu_task`)."""
    return gr.on(triggers, gpu_task(fn), inputs, outputs, api_name=api_name, **MODEL_EVENT)


def model_missing(bank: ModelBank, name: str) -> bool:
    """When model ``name`` could not be loaded, say why on the page and return True."""
    if bank.available(name):
        return False
    gr.Markdown(f"⚠️ **{name} is unavailable:** {html.escape(bank.slots[name].error or '')}",
                elem_classes="model-missing")
    return True


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
        if isinstance(e, ValueError):
            return gr.Error(str(e), print_exception=False)
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


def warn(notes: list[str]) -> str:
    """Show each note as a toast (gr.Warning) and return them as Markdown for the page."""
    for n in notes:
        gr.Warning(n)
    return notes_md(notes)


def toast_notes(result):
    """A callback's result whose first item is notes Markdown: pop each note up as a warning too."""
    if isinstance(result, tuple) and result and isinstance(result[0], str):
        for line in result[0].split("\n\n"):
            if line.startswith(NOTE_MARK):
                gr.Warning(html.unescape(line[len(NOTE_MARK):]))
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
