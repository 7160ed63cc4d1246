"""A view of the app, declared once.

A view is a function of the model bank and some controls' values that fills some outputs: the
attention tab's heatmaps from (text, causal, layer, head, hide_first), a generation from (prompt,
temperature, …). Three things follow from that one declaration (:func:`declare`):

* **its event**: an API endpoint (``api_name``), fired by ``triggers``, with the app's error policy
  and concurrency groups (:func:`~.events.model_event`);
* **its arrival default**: what a new page shows before anyone touches it, computed once on the
  controls' *initial values* (:func:`~.arrival.on_arrival`), so a default is never written twice;
  per-session outputs (``gr.State``) are left out of it, by their type;
* **its link**: the controls a link to its tab carries (``?text=…&layer=2``), each checked against
  the range its control implies, and what a link shows: the same function on the link's values
  (:meth:`~.links.LinkRow.share`).

Events that redraw only part of a view (the attention tab's head slider) stay plain
:func:`~.events.model_event` calls beside it.
"""
from __future__ import annotations

import inspect
from dataclasses import dataclass, field
from typing import Any, Callable, Optional, Sequence

import gradio as gr

from .arrival import on_arrival
from .bank import ModelBank
from .events import bound, live_triggers, model_event, on_pair
from .links import LinkRow


@dataclass(frozen=True)
class Control:
    """One input of a view: its name in a link (``?layer=2``) and its component. ``link``: overrides
    of what a link accepts (see :func:`~.links.setting_for`), or None when links do not carry it."""

    name: str
    component: Any
    link: Optional[dict] = field(default_factory=dict)


@dataclass
class View:
    """One view: ``compute(bank, *values of controls)`` → the values of ``outputs`` (a NamedTuple in
    their order), or a generator of such updates (a stream).

    triggers  what fires its event (none: an API endpoint the page itself never calls)
    group     "live" (follows typing) or "generate" (see :mod:`.events`)
    arrival   True: the page opens on ``compute`` of the controls' initial values; a function of no
              arguments: that instead (returning the same kind of value); False: nothing
    link      True: a link to the tab carries the controls and shows ``compute`` of its values; a
              function ``(**link values) -> outputs`` instead; False: the tab's links do not show it
    linked_only  controls a link carries that the event does not take (they only pick what a link
              shows, for a ``link`` function: the generate tab's "why this token" model and step)
    options   more settings of the event (``show_progress``, ``api_visibility``, ``js``…)
    """

    api_name: str
    compute: Callable
    controls: Sequence[Control]
    outputs: Sequence
    triggers: Sequence = ()
    group: str = "live"
    arrival: bool | Callable = True
    link: bool | Callable = True
    linked_only: Sequence[Control] = ()
    options: dict = field(default_factory=dict)

    @property
    def components(self) -> list:
        return [c.component for c in self.controls]

    def initial_values(self) -> list:
        return [c.component.value for c in self.controls]


def paired(fn: Callable, pair) -> Callable:
    """``fn`` following the page's choice of models ``pair`` (a gr.Radio; None: the character pair
    always): :func:`~.events.on_pair`, whose last value is the pair."""
    return fn if pair is None else on_pair(fn)


def pair_controls(pair) -> list[Control]:
    """The controls to append for :func:`paired` (a link to the tab carries the pair)."""
    return [] if pair is None else [Control("pair", pair)]


def pair_triggers(pair) -> list:
    """Choosing another pair redraws the view."""
    return [] if pair is None else live_triggers(pair)


def last(result):
    """A stream's last update (a plain result as it is)."""
    if inspect.isgenerator(result):
        final = None
        for final in result:
            pass
        return final
    return result


def declare(view: View, bank: ModelBank, share: Optional[LinkRow] = None):
    """Register ``view``'s event, its arrival default and (with ``share``, its tab's link row) its
    link. Returns the event (for ``.then``)."""
    event = model_event(list(view.triggers), bound(view.compute, bank), view.components, list(view.outputs),
                        view.api_name, group=view.group, **view.options)
    if view.arrival:
        # a gr.State belongs to one session: it is no part of what every new page is sent
        shown = [i for i, c in enumerate(view.outputs) if not isinstance(c, gr.State)]
        compute = view.arrival if callable(view.arrival) else (
            lambda: view.compute(bank, *view.initial_values()))

        def default():
            values = last(compute())
            values = values if isinstance(values, (tuple, list)) else (values,)
            return tuple(values[i] for i in shown)
        on_arrival([view.outputs[i] for i in shown], default)
    if view.link and share is not None:
        linked = [c for c in [*view.controls, *view.linked_only] if c.link is not None]
        if callable(view.link):
            show = view.link
        else:
            def show(**values):
                return view.compute(bank, *[values.get(c.name, c.component.value) for c in view.controls])
        share.share([(c.name, c.component, c.link) for c in linked], show, view.outputs)
    return event
