"""Links that reproduce a view: the page's URL carries the settings a person chose.

    http://127.0.0.1:7860/?tab=attention&text=JULIET%3A%0AO+Romeo&causal=0&layer=2&head=3

How it works, in three parts:

* **Writing the URL.** Each tab declares its settings (:meth:`LinkRow.share`): URL names and the
  controls that hold them. In the page, moving a control of the open tab or opening a tab rewrites
  the URL's query with that tab's settings (``history.replaceState``: nothing reloads), and the
  tab's "Copy link" button puts the URL on the clipboard and in a box beside it (``page.js``).
* **Reading it.** When a page opens with a query, :func:`parse_query` checks every value the way
  the app checks its inputs (a range for numbers, a list for choices, a length for texts), and what
  it cannot use is *ignored with a note* shown on the page: a malformed link never breaks the page.
  The valid values are set into the controls and the tab is opened.
* **Showing the view.** Then the linked tab's own callback runs on those values (:class:`LinkRow`'s
  ``view``): the same view as the person who made the link saw, and for generation the same text
  (same prompt, settings and seed → same text).

:func:`parse_query` is a plain function of strings (tested without a server); the rest wires it to
Gradio. Links cost nothing to visitors who open the bare page: the page only asks the server to
read a link when its URL has a query.
"""
from __future__ import annotations

import contextvars
import json
import math
from dataclasses import dataclass, field
from typing import Any, Callable, Optional, Sequence
from urllib.parse import parse_qsl

import gradio as gr

from .events import GENERATE_CONCURRENCY, friendly
from .policy import NOTE_MARK, md_text, range_text
from .zerogpu import gpu_task

MAX_LINK_TEXT = 2000        # a text in a link keeps at most this many characters (the prompt limit)
MAX_LINK_LENGTH = 20_000    # characters of a whole query; a longer one is read up to here

_current: contextvars.ContextVar[Optional["SharedLinks"]] = contextvars.ContextVar("links", default=None)


# ------------------------------------------------------------------------------ reading a link (pure)

@dataclass(frozen=True)
class Setting:
    """One setting a link may carry: its URL name and what values it accepts.

    ``kind``: "text" (at most ``max_chars``; ``keep`` "start" or "end" when longer), "number"
    (``lo``…``hi``; ``whole``: integers only), "bool" (1/0, true/false, on/off, yes/no), "choice"
    (one of ``choices``), "choices" (a comma-separated subset of ``choices``)."""

    name: str
    kind: str
    lo: Optional[float] = None
    hi: Optional[float] = None
    whole: bool = False
    choices: tuple = ()
    max_chars: int = MAX_LINK_TEXT
    keep: str = "start"

    def parse(self, raw: str) -> tuple[Any, Optional[str]]:
        """(value, note): the value to use, and a note when it was changed (a text cropped).
        ValueError, naming the setting and what it accepts, when it cannot be used."""
        if self.kind == "text":
            if len(raw) <= self.max_chars:
                return raw, None
            kept = raw[:self.max_chars] if self.keep == "start" else raw[-self.max_chars:]
            which = "first" if self.keep == "start" else "last"
            return kept, (f"{self.name}: the link's text has {len(raw):,} characters; "
                          f"kept the {which} {self.max_chars:,}")
        if self.kind == "bool":
            low = raw.strip().lower()
            if low in ("1", "true", "on", "yes"):
                return True, None
            if low in ("0", "false", "off", "no"):
                return False, None
            raise ValueError(f"{self.name} must be 1 or 0 (true/false), got {_short(raw)}")
        if self.kind == "choice":
            if raw in self.choices:
                return raw, None
            raise ValueError(f"{self.name} must be one of {', '.join(map(str, self.choices))}; got {_short(raw)}")
        if self.kind == "choices":
            picked = [c.strip() for c in raw.split(",") if c.strip()]
            bad = [c for c in picked if c not in self.choices]
            if bad:
                raise ValueError(f"{self.name} may only list {', '.join(map(str, self.choices))}; got {_short(bad[0])}")
            return list(dict.fromkeys(picked)), None
        if self.kind == "number":
            try:
                value = float(raw)
            except ValueError:
                value = math.nan
            ok = math.isfinite(value) and (not self.whole or value == int(value))
            ok = ok and (self.lo is None or value >= self.lo) and (self.hi is None or value <= self.hi)
            if not ok:
                lo = _plain(self.lo)
                hi = _plain(self.hi)
                raise ValueError(f"{self.name} must be {range_text(lo, hi, self.whole)}, got {_short(raw)}")
            return (int(value) if self.whole else value), None
        raise AssertionError(f"unknown setting kind {self.kind!r}")


def _plain(x):
    return None if x is None else (int(x) if float(x) == int(x) else x)


def _short(raw) -> str:
    text = repr(raw)
    return text if len(text) <= 40 else text[:39] + "…'"


@dataclass
class LinkState:
    """What a link asked for: the tab (None: no tab named or none usable), the usable values by
    setting name, and notes on everything ignored or changed."""

    tab: Optional[str] = None
    values: dict = field(default_factory=dict)
    notes: list = field(default_factory=list)


def parse_query(query: str, tabs: dict[str, Sequence[Setting]], default_tab: str) -> LinkState:
    """Read a URL query (``"?tab=attention&layer=2"`` or without the ``?``) against ``tabs``
    (tab id → the settings it accepts). Never raises: what cannot be used is left out with a note.

    * no ``tab``: the settings are read for ``default_tab`` (the first tab);
    * an unknown tab: a note, and the page opens as usual (nothing else is read);
    * an unknown setting, a repeated one (the last wins), a bad value: a note each;
    * a query longer than :data:`MAX_LINK_LENGTH` characters is read up to there.
    """
    state = LinkState()
    if not isinstance(query, str):
        return state
    query = query.lstrip("?")
    if len(query) > MAX_LINK_LENGTH:
        state.notes.append(f"the link is {len(query):,} characters long; only its first "
                           f"{MAX_LINK_LENGTH:,} were read")
        query = query[:MAX_LINK_LENGTH]
    try:
        pairs = parse_qsl(query, keep_blank_values=True, errors="replace")
    except ValueError as e:   # e.g. more fields than parse_qsl allows
        state.notes.append(f"the link could not be read ({e})")
        return state
    raw: dict[str, str] = {}
    for key, value in pairs:
        if key in raw:
            state.notes.append(f"{key} appears more than once in the link; the last value was used")
        raw[key] = value
    tab = raw.pop("tab", None)
    if tab is None:
        tab = default_tab
        if not raw:
            return state
    elif tab not in tabs:
        state.notes.append(f"tab {_short(tab)} is not a tab of this page (tabs: {', '.join(tabs)}); "
                           "opened the first tab")
        return state
    state.tab = tab
    settings = {s.name: s for s in tabs[tab]}
    for key, value in raw.items():
        setting = settings.get(key)
        if setting is None:
            known = ", ".join(settings) or "none"
            state.notes.append(f"{_short(key)} is not a setting of the {tab} tab (its settings: {known}); ignored")
            continue
        try:
            state.values[key], note = setting.parse(value)
        except ValueError as e:
            state.notes.append(f"{e}; ignored")
            continue
        if note:
            state.notes.append(note)
    return state


def setting_for(name: str, component, **overrides) -> Setting:
    """The :class:`Setting` a control implies: a text box → text, a checkbox → bool, a radio →
    choice, a checkbox group → choices, a slider → its range (whole numbers when its step is), a
    number box → its minimum/maximum/precision. ``overrides`` replace any field."""
    if isinstance(component, gr.Textbox):
        kw = dict(kind="text")
    elif isinstance(component, gr.Checkbox):
        kw = dict(kind="bool")
    elif isinstance(component, gr.CheckboxGroup):
        kw = dict(kind="choices", choices=tuple(c[1] for c in component.choices))
    elif isinstance(component, gr.Radio):
        kw = dict(kind="choice", choices=tuple(c[1] for c in component.choices))
    elif isinstance(component, gr.Slider):
        whole = float(component.step) == int(component.step) and float(component.minimum) == int(component.minimum)
        kw = dict(kind="number", lo=component.minimum, hi=component.maximum, whole=whole)
    elif isinstance(component, gr.Number):
        kw = dict(kind="number", lo=component.minimum, hi=component.maximum, whole=component.precision == 0)
    else:
        raise TypeError(f"a link cannot carry a {type(component).__name__}")
    kw.update(overrides)
    return Setting(name, **kw)


# --------------------------------------------------------------------------------- wiring it to Gradio

@dataclass
class LinkRow:
    """One tab's share row ("Copy link" and the link box) and, once :meth:`share` is called, the
    settings its links carry and the view a link opens."""

    tab_id: str
    tab: Any
    button: Any
    box: Any
    settings: list = field(default_factory=list)       # [(Setting, component)]
    view: Optional[Callable] = None
    outputs: list = field(default_factory=list)

    def share(self, settings: Sequence[tuple], view: Optional[Callable] = None, outputs: Sequence = ()) -> None:
        """The tab's linkable settings, ``[(url_name, component) or (url_name, component, {overrides})]``,
        and ``view(**values) -> outputs`` (a function or a generator of updates): what a link to this
        tab shows, from the link's values on top of the controls' defaults."""
        for item in settings:
            name, component, *extra = item
            self.settings.append((setting_for(name, component, **(extra[0] if extra else {})), component))
        self.view, self.outputs = view, list(outputs)

    @property
    def names(self) -> list[str]:
        return [s.name for s, _ in self.settings]

    def defaults(self) -> dict:
        return {s.name: c.value for s, c in self.settings}


def link_row(tab_id: str, tab) -> LinkRow:
    """Add a tab's "Copy link" button and link box here (inside ``tab``) and return its row; outside
    :class:`SharedLinks` (a tab built on its own) the row is made but wired to nothing."""
    with gr.Row(elem_classes="share-row"):
        button = gr.Button("Copy link to this view", size="sm", scale=0, min_width=220,
                           elem_id=f"{tab_id}-copy-link")
        box = gr.Textbox(show_label=False, container=False, interactive=False, scale=4,
                         placeholder="the link to exactly this view appears here", elem_id=f"{tab_id}-link")
    row = LinkRow(tab_id, tab, button, box)
    links = _current.get()
    if links is not None:
        links.rows.append(row)
    return row


def _js_names(row: LinkRow) -> str:
    return json.dumps({"tab": row.tab_id, "names": row.names, "kinds": [s.kind for s, _ in row.settings]})


class SharedLinks:
    """Every tab's link row, collected while the tabs are built and wired by :meth:`attach`."""

    def __init__(self):
        self.rows: list[LinkRow] = []

    def __enter__(self):
        self._token = _current.set(self)
        return self

    def __exit__(self, *exc):
        _current.reset(self._token)

    def settings(self) -> dict[str, list[Setting]]:
        return {row.tab_id: [s for s, _ in row.settings] for row in self.rows}

    def parse(self, query) -> LinkState:
        return parse_query(query, self.settings(), self.rows[0].tab_id if self.rows else "")

    def attach(self, demo: gr.Blocks, tabs: gr.Tabs, note: gr.Markdown, after=None) -> None:
        """Wire the URL writer and copy buttons of every row, and reading a link when a page opens
        (after ``after``, the event that fills the default views, so the link's views come last);
        ``note`` shows what a link asked for that could not be used."""
        if not self.rows:
            return
        for row in self.rows:
            spec = _js_names(row)
            controls = [c for _, c in row.settings]
            # opening a tab: this tab's settings go into the URL
            row.tab.select(None, controls, None, js=f"(...v) => window.sfLinks && window.sfLinks.write({spec}, v, true)",
                           api_visibility="private", queue=False, show_progress="hidden")
            if controls:
                # moving one of its controls: the same (page.js ignores a tab that is not the open one).
                # A text box writes the URL when it loses focus or on Enter, not per keystroke: each
                # keystroke already runs the tab's views, and one more event per key cost ~40 ms of the
                # page's time to redraw the heatmap (benchmarks/live.py)
                triggers = [t for c in controls
                            for t in ([c.blur, c.submit] if isinstance(c, gr.Textbox) else [c.change])]
                gr.on(triggers, None, controls, None,
                      js=f"(...v) => window.sfLinks && window.sfLinks.write({spec}, v, false)",
                      api_visibility="private", queue=False, show_progress="hidden")
            row.button.click(None, controls, [row.box],
                             js=f"(...v) => window.sfLinks ? window.sfLinks.copy({spec}, v) : window.location.href",
                             api_visibility="private", queue=False)

        # Reading a link: page.js clicks this hidden button when the page's URL has a query.
        apply = gr.Button("apply link", visible="hidden", elem_id="sf-apply-link")
        query = gr.Textbox(visible="hidden", elem_id="sf-link-query")
        state = gr.State(None)
        rows = {row.tab_id: row for row in self.rows}
        all_controls = [c for row in self.rows for _, c in row.settings]
        views = [c for row in self.rows for c in row.outputs]

        def apply_link(q):
            link = self.parse(q)
            updates = []
            for row in self.rows:
                for s, _ in row.settings:
                    ok = row.tab_id == link.tab and s.name in link.values
                    updates.append(gr.update(value=link.values[s.name]) if ok else gr.skip())
            # the notes go to the page's note (link_note); this event is not queued, and Gradio shows a
            # gr.Warning toast only from a queued event
            message = ""
            if link.notes:
                message = (f"{NOTE_MARK}**This link was opened with changes:**\n\n"
                           + "\n".join(f"- {md_text(n)}" for n in link.notes))
            selected = gr.Tabs(selected=link.tab) if link.tab else gr.skip()
            return [selected, message, link, *updates]

        def show_linked(link: Optional[LinkState]):
            """The linked tab's view from the link's values on top of its controls' defaults."""
            row = rows.get(link.tab) if link else None
            if row is None or row.view is None:
                # one answer that changes nothing: a generator that yields nothing makes Gradio send
                # None to every output, which emptied the views the page opened with
                yield [gr.skip()] * len(views)
                return
            values = {**row.defaults(), **link.values}
            start = views.index(row.outputs[0])
            result = row.view(**values)
            updates = result if hasattr(result, "__next__") else [result]
            for update in updates:
                out = [gr.skip()] * len(views)
                out[start:start + len(row.outputs)] = list(update)
                yield out

        read_query = "() => [window.sfLinks ? window.sfLinks.initialQuery : window.location.search]"
        trigger = apply.click(apply_link, [query], [tabs, note, state, *all_controls], js=read_query,
                              api_visibility="private", queue=False)
        if views:   # a model call, possibly a whole generation: in the generate group, like Generate
            trigger.success(gpu_task(friendly(show_linked)), [state], views, api_visibility="private",
                            concurrency_id="generate", concurrency_limit=GENERATE_CONCURRENCY,
                            show_progress="minimal")
        trigger.then(None, [query], None, js="() => { window.sfLinks && window.sfLinks.opened(); return []; }",
                     api_visibility="private", queue=False)
        hook = after.then if after is not None else demo.load
        tab_ids = json.dumps([row.tab_id for row in self.rows])
        hook(None, None, None, js=f"() => {{ window.sfLinks && window.sfLinks.start({tab_ids}); return []; }}",
             api_visibility="private", queue=False)
