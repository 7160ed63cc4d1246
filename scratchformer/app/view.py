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
    of what a link accepts (see :func:`~.links.setting_for`), or None when links do not carry it.
    ``shape``: which size of the chosen pair's models the control ranges over (:data:`SHAPES`), so
    that it follows the pair (GPT-2 has 12 layers of 12 heads, the small Transformer 4 of 4)."""

    name: str
    component: Any
    link: Optional[dict] = field(default_factory=dict)
    shape: str = ""


# The sizes a control can range over (ModelBank.shape), and the range each gives:
#   layer, head, lstm_layer   a slider 1…n
#   lstm_unit                 a slider 0…n−1
#   heads                     check boxes "L1 H1" … "Ln Hm" (layer × head)
#   blocks                    check boxes "FFN 1" … "FFN n" (layer)
SHAPES = ("layer", "head", "lstm_layer", "lstm_unit", "heads", "blocks")


def head_choices(n_layer: int, n_head: int) -> list[str]:
    return [f"L{l + 1} H{h + 1}" for l in range(n_layer) for h in range(n_head)]


def block_choices(n_layer: int) -> list[str]:
    return [f"FFN {l + 1}" for l in range(n_layer)]


def shaped(kind: str, shape: dict, value=None):
    """The update that fits a ``kind`` control to a pair's ``shape`` (its range, its value kept when it
    still fits, else the nearest that does); None when the pair has no model for it."""
    if kind in ("heads", "blocks"):
        if "layer" not in shape:
            return None
        choices = head_choices(shape["layer"], shape["head"]) if kind == "heads" else block_choices(shape["layer"])
        return gr.update(choices=choices, value=[v for v in (value or []) if v in choices])
    if kind not in shape:
        return None
    lo, hi = (0, shape[kind] - 1) if kind == "lstm_unit" else (1, shape[kind])
    v = hi if value is None else min(max(value, lo), hi)
    return gr.update(minimum=lo, maximum=max(hi, lo + 1), value=v, interactive=hi > lo)


def _fits(controls: Sequence[Control]) -> list[str]:
    """Browser statements fitting each shaped control's value ``a[i]`` to the chosen pair's sizes ``s``."""
    fits = []
    for i, c in enumerate(controls):
        if c.shape in ("layer", "head", "lstm_layer"):
            fits.append(f"if (s.{c.shape}) a[{i}] = Math.min(Math.max(a[{i}], 1), s.{c.shape});")
        elif c.shape == "lstm_unit":
            fits.append(f"if (s.lstm_unit) a[{i}] = Math.min(Math.max(a[{i}], 0), s.lstm_unit - 1);")
        elif c.shape == "heads":
            fits.append(f"if (s.layer) a[{i}] = (a[{i}] || []).filter(v => {{ const m = /^L(\\d+) H(\\d+)$/.exec(v);"
                        f" return m && +m[1] <= s.layer && +m[2] <= s.head; }});")
        elif c.shape == "blocks":
            fits.append(f"if (s.layer) a[{i}] = (a[{i}] || []).filter(v => {{ const m = /^FFN (\\d+)$/.exec(v);"
                        f" return m && +m[1] <= s.layer; }});")
    return fits


def _tabs(view: View) -> list:
    """The tabs that hold ``view``'s first output, outer first ([] when it has none)."""
    tabs, block = [], getattr(view.outputs[0], "parent", None) if view.outputs else None
    while block is not None:
        if isinstance(block, gr.Tab):
            tabs.insert(0, block)
        block = getattr(block, "parent", None)
    return tabs


def live_shapes() -> dict:
    """The sizes of the pairs a page can train live (:mod:`.live_tab`), by size name."""
    from ..training.live_plan import SIZES
    return {size: dict(layer=v["gpt"][0], head=v["gpt"][1], lstm_layer=v["lstm"][0], lstm_unit=v["lstm"][1])
            for size, v in SIZES.items()}


NOT_SHOWN = ""   # the pair a page sends for a view it does not show now: nothing is computed


def before_js(view: View, bank: ModelBank, catch_up: bool = False) -> Optional[str]:
    """Browser code run before a view of the chosen pair is computed (None when the view has no
    ``pair`` control):

    * its shaped controls' values are fitted to the pair's sizes (the sliders themselves are fitted by
      :func:`follow_pair` at the same time), so a view on a new pair is computed at once;
    * a view whose tab is not on screen is not computed: the pair becomes :data:`NOT_SHOWN`, the server
      draws nothing, and the view is marked stale (``window.sfStale``). Its *catch-up* event
      (``catch_up=True``, fired when one of its tabs is selected) computes it then, if it is stale and
      on screen. Choosing GPT-2 so runs the views of the tab in front, not the views of all ten tabs
      (seconds each on a CPU; a hidden tab's 200-token generation held the others back for 20 s)."""
    import json
    names = [c.name for c in view.controls]
    if "pair" not in names:
        return None
    p, name = names.index("pair"), json.dumps(view.api_name)
    shapes = json.dumps({pair: bank.shape(pair) for pair in bank.pairs()})
    live = json.dumps(live_shapes())       # a pair trained live: "live:<size>:<token>"
    body = [f"const s = ({shapes})[a[{p}]] || ({live})[String(a[{p}]).split(':')[1]] || {{}};",
            *_fits(view.controls)]
    held_by = _tabs(view)
    tabs = [str(t.id) for t in held_by] if all(t.id for t in held_by) else None   # found by their ids
    if tabs:
        body += [f"const shown = {json.dumps(tabs)}.every(id => document.querySelector("
                 "`[role=tab][data-tab-id=\"${id}\"][aria-selected=\"true\"]`));",
                 "const stale = (window.sfStale = window.sfStale || {});"]
        if catch_up:
            body.append(f"if (!shown || !stale[{name}]) {{ a[{p}] = {json.dumps(NOT_SHOWN)}; return a; }} "
                        f"delete stale[{name}];")
        else:
            body.append(f"if (!shown) {{ stale[{name}] = true; a[{p}] = {json.dumps(NOT_SHOWN)}; return a; }} "
                        f"delete stale[{name}];")
    elif catch_up:
        return None
    # the page passes the outputs' values after the inputs (a drawn plot's holds cycles): inputs only
    return f"(...all) => {{ const a = all.slice(0, {len(view.controls)}); " + " ".join(body) + " return a; }"


def _unless_not_shown(compute: Callable, view: View) -> Callable:
    """``compute``, or nothing drawn (every output skipped) when the page does not show the view."""
    p = [c.name for c in view.controls].index("pair")
    skip = gr.skip() if len(view.outputs) == 1 else tuple(gr.skip() for _ in view.outputs)
    if inspect.isgeneratorfunction(compute):
        def stream(bank, *values):
            if values[p] == NOT_SHOWN:
                yield skip
                return
            yield from compute(bank, *values)
        run = stream
    else:
        def run(bank, *values):
            return skip if values[p] == NOT_SHOWN else compute(bank, *values)
    run.__name__, run.__doc__ = getattr(compute, "__name__", "view"), compute.__doc__
    run.__signature__ = inspect.signature(compute)
    return run


_following: set = set()   # (pair id, component id): fitted to the pair already


def follow_pair(controls: Sequence[Control], bank: ModelBank) -> None:
    """Fit the shaped controls to the chosen pair: when the pair changes (their range and value), and
    when a page opens (the default pair's; a control is built with the largest range over the
    pairs, which is what the API accepts). Once per control."""
    pair = next((c.component for c in controls if c.name == "pair"), None)
    todo = [c for c in controls if c.shape and pair is not None and (pair._id, c.component._id) not in _following]
    if not todo:
        return
    _following.update((pair._id, c.component._id) for c in todo)
    comps = [c.component for c in todo]

    def fit(pair_value, *values):
        shape = bank.shape(pair_value)
        updates = [shaped(c.shape, shape, v) or gr.skip() for c, v in zip(todo, values)]
        return updates if len(updates) > 1 else updates[0]     # one output: its value, not a list

    pair.change(fit, [pair, *comps], comps, queue=False, show_progress="hidden", api_visibility="private")
    default = pair.value
    on_arrival(comps, lambda: [shaped(c.shape, bank.shape(default), c.component.value) or gr.skip() for c in todo])


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
    options, compute = dict(view.options), view.compute
    js, catch_up = before_js(view, bank), before_js(view, bank, catch_up=True)
    if js and "js" not in options and view.triggers:
        options["js"] = js
        compute = _unless_not_shown(compute, view)
    event = model_event(list(view.triggers), bound(compute, bank), view.components, list(view.outputs),
                        view.api_name, group=view.group, **options)
    # a hidden view, stale, is computed when one of its tabs is opened: by its own event where that tab's
    # select is one of its triggers, else by a catch-up event (two events of the same outputs on one
    # trigger would race: Gradio 6.31 then left their progress shown for good)
    opened = [t.select for t in _tabs(view) if t.select not in list(view.triggers)]
    if options.get("js") == js and catch_up and opened:
        model_event(opened, bound(compute, bank), view.components, list(view.outputs),
                    f"{view.api_name}_shown", group=view.group,
                    **{**options, "js": catch_up, "api_visibility": "private"})
    follow_pair(view.controls, bank)
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
