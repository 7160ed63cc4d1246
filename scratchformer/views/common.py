"""What every figure shares: the look, labels for characters, a message figure.

The views are pure functions from tensors, Traces and sampling Steps to plotly figures (or HTML), one
module per topic. Nothing in them runs a model or touches Gradio; every function can be called in a
test or a notebook. Figures are kept light because the app sends them to a browser: attention matrices go out as float32
arrays (plotly encodes numpy arrays compactly), the small per-head heatmaps are average-pooled when
the text is long, and no figure carries per-cell text annotations except where a person reads them.
"""
from __future__ import annotations

import base64
import html
import re
from typing import Sequence

import numpy as np
import plotly.colors as pcolors
import plotly.graph_objects as go
import plotly.io as pio
from torch import Tensor

from ..tokenizers.base import display_token

# The look every figure shares. ticklabeloverflow "allow": otherwise plotly measures every tick
# label once drawn, to hide those past the figure's edge (none are: the margins hold them). Our axes
# carry a label per character; that measuring was 0.15 s of the page's first drawing (2-core machine,
# benchmarks/live.py). It lives in plotly's default template (plotly's own, with this added), made
# once here: given to each figure as ``update_layout(template=…)`` it was merged into a new copy of
# the whole template, validated, at every figure: 3–10 ms of Python a figure, most of the time a
# generation's end spends drawing (benchmarks/serving.py --server). tests/test_views.py checks that
# every figure the views make uses only TRACE_TYPES.
_AXIS = dict(ticklabeloverflow="allow")


TRACE_TYPES = ("bar", "heatmap", "scatter")   # the only kinds of trace the views draw


def _template() -> go.layout.Template:
    """plotly's own template, less its defaults for kinds of trace we never draw (a figure carries its
    template: 7.1 KB, 3.6 KB without them; each figure copies it when it is made), with ``_AXIS``."""
    plotly = pio.templates["plotly"].to_plotly_json()
    template = go.layout.Template(layout=plotly["layout"],
                                  data={kind: plotly["data"][kind] for kind in TRACE_TYPES})
    template.layout.xaxis.update(_AXIS)
    template.layout.yaxis.update(_AXIS)
    return template


pio.templates["scratchformer"] = _template()
pio.templates.default = "scratchformer"
LAYOUT = dict(font=dict(family="sans-serif", size=12), paper_bgcolor="white", plot_bgcolor="white",
              margin=dict(l=50, r=20, t=50, b=40))

KEPT, CHOSEN, CUT_K, CUT_P = "#2b6cb0", "#dd6b20", "#a0aec0", "#d69e2e"
ATTN_SCALE = "Viridis"
# the same colours as plotly.py writes them into a figure (a figure as plain data, PlainFigure, is not
# expanded by plotly.py; plotly.js's own "Viridis" is close to it but not the same)
_VIRIDIS = pcolors.sequential.Viridis
ATTN_SCALE_STOPS = [[i / (len(_VIRIDIS) - 1), colour] for i, colour in enumerate(_VIRIDIS)]
GRID_MAX_CELLS = 48   # the small per-head heatmaps are pooled to at most this many rows/columns
# A vocabulary up to this size (the 65 characters, with their special tokens) is drawn whole, a bar or
# a label per token; a larger one (a byte-level BPE has at least 256 tokens, GPT-2 50,257) as its most
# likely tokens and one bar for the rest (views/sampling.py, views/watch.py).
SMALL_VOCAB = 100


# ----------------------------------------------------------------------------- text for plotly

# plotly draws its strings (tick labels, hover text, titles, legend names, text on points) as a
# subset of HTML: tags such as <b>, <br>, <a href>, <span style> and the entities &name; &#123;
# &#x1F;. "&" followed by a letter or "#" is the only "&" it can read as the start of an entity.
_PLOTLY_AMP = re.compile(r"&(?=[#A-Za-z])")


def plotly_text(s) -> str:
    """``s`` as plotly shows it literally, never as markup: ``<`` → ``&lt;``, ``>`` → ``&gt;``, and
    ``&`` → ``&amp;`` where it could begin an entity (before a letter or ``#``), so the BPE token
    ``&amp;`` shows as ``&amp;`` and ``<b>x</b>`` as ``<b>x</b>``. A lone ``&`` (tiny Shakespeare's
    "&c" has one) needs nothing and stays as it is, so the figure's JSON and CSV stay readable.

    For every string from a token or a person that goes into a figure: labels, hover data, titles,
    trace names. (plotly's LaTeX, ``$…$``, needs MathJax on the page; the app loads none.)
    """
    s = _PLOTLY_AMP.sub("&amp;", str(s))
    return s.replace("<", "&lt;").replace(">", "&gt;")


SHORT_LABEL = 16   # characters of a token's label on an axis or a point of a large vocabulary (hover: all)


def short_label(label: str, n: int = SHORT_LABEL) -> str:
    """A visible token label (before :func:`plotly_text`) cut to ``n`` characters, the last one "…",
    so a long token (GPT-2 has tokens of 60 dashes) does not push the plot aside."""
    return label if len(label) <= n else label[:n - 1] + "…"


def code_md(token: str) -> str:
    """A token's text made visible, as inline code inside Markdown that may also hold LaTeX: an
    HTML ``<code>`` element with ``<``, ``>``, ``&``, backticks and ``$`` as entities (a backtick
    cannot end the code span, a ``$`` cannot start a formula, ``<img`` stays text)."""
    text = html.escape(display_token(token)).replace("`", "&#96;").replace("$", "&#36;")
    return f"<code>{text}</code>"


def vocab_label(texts: Sequence[str], i: int) -> str:
    """The tick label of vocabulary entry ``i``: its text made visible, cut (:func:`short_label`),
    escaped for plotly; its id when ``texts`` has no entry for it."""
    return plotly_text(short_label(display_token(texts[i]) if i < len(texts) else str(i)))


def to_numpy(x) -> np.ndarray:
    """A float32 numpy copy of a tensor / list (CPU)."""
    if isinstance(x, Tensor):
        return x.detach().float().cpu().numpy()
    return np.asarray(x, dtype=np.float32)


def figure(title: str, height: int, **layout) -> go.Figure:
    """An empty figure with the shared look, a title (plain text: shown as written) and a height in pixels."""
    fig = go.Figure()
    fig.update_layout(**LAYOUT, title=dict(text=plotly_text(title), x=0.01), height=height, **layout)
    return fig


def export_name(fig, name: str):
    """Name ``fig`` (a ``go.Figure`` or a :class:`PlainFigure`) for downloads (``layout.meta.export``):
    the page saves it as ``name``.png / .svg / .csv / .json (e.g. ``attention_L2H3_causal``). Returns ``fig``."""
    if isinstance(fig, PlainFigure):
        fig["layout"]["meta"] = {"export": name}
    else:
        fig.layout.meta = {"export": name}
    return fig


# ----------------------------------------------------------------------------- figures as plain data

_TYPED = {"float32": "f4", "float64": "f8", "int8": "i1", "int16": "i2", "int32": "i4",
          "uint8": "u1", "uint16": "u2", "uint32": "u4"}


def typed_array(a: np.ndarray):
    """A numeric numpy array as plotly.js reads arrays in a figure's JSON, its "typed array spec":
    ``{"dtype": "f4", "bdata": <the bytes in base64>, "shape": "5, 40"}`` (plotly.py sends arrays so:
    4 bytes a float32 instead of about 20 characters of text). Integers that fit go as 32 bits (plotly.js
    reads no 64-bit ones); any other array as a list."""
    if a.dtype.kind in "iu" and a.dtype.itemsize == 8 and a.size and -2**31 <= a.min() and a.max() < 2**31:
        a = a.astype(np.int32)
    dtype = _TYPED.get(str(a.dtype))
    if dtype is None or a.size == 0:
        return a.tolist()
    spec = {"dtype": dtype, "bdata": base64.b64encode(np.ascontiguousarray(a).tobytes()).decode("ascii")}
    if a.ndim > 1:
        spec["shape"] = ", ".join(str(n) for n in a.shape)
    return spec


def _typed(x):
    """``x`` (a figure's dicts and lists) with every numpy array as :func:`typed_array`."""
    if isinstance(x, np.ndarray):
        return typed_array(x)
    if isinstance(x, dict):
        return {k: _typed(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_typed(v) for v in x]
    return x


class PlainFigure(dict):
    """A plotly figure as plain data, ``{"data": [trace dicts], "layout": {...}}``: what plotly.js
    draws, without plotly.py's figure objects.

    ``go.Figure(spec)`` checks every property's name and value as it builds its objects: 2.6–16 ms of
    Python for one of the generate tab's figures, which are redrawn as the models write (32 visitors
    at once: a fifth of the server's GIL time with their serialisation, py-spy on benchmarks/serving.py
    --server). The figures the generate tab streams are built as this instead (0.15–1.7 ms, serialised
    included; docs/serving.md, "2026-12-07, night"): Gradio's ``gr.Plot`` sends what :meth:`to_json`
    gives, the JSON ``go.Figure(spec).to_json()`` would give, template included (tests/test_views.py
    builds each as a ``go.Figure``, so an unknown property still fails a test, and compares the two).
    :meth:`figure` gives the checked ``go.Figure`` for a notebook or a test.
    """

    def to_json(self) -> str:
        layout = _typed(self.get("layout", {}))
        layout.setdefault("template", _template_json())
        return pio.to_json({"data": _typed(self.get("data", [])), "layout": layout}, validate=False)

    def figure(self) -> go.Figure:
        return go.Figure(self)


_TEMPLATE_JSON: dict = {}


def _template_json() -> dict:
    """The default template as plain data (what a ``go.Figure`` puts in its layout), made once."""
    if not _TEMPLATE_JSON:
        _TEMPLATE_JSON.update(pio.templates[pio.templates.default].to_plotly_json())
    return _TEMPLATE_JSON


def as_figure(fig) -> go.Figure:
    """``fig`` as a ``go.Figure``: a :class:`PlainFigure` built and checked by plotly.py, a figure as it is."""
    return fig.figure() if isinstance(fig, PlainFigure) else fig


def figure_of(spec: dict, plain: bool = False):
    """``spec`` (``{"data": […], "layout": {…}}``) as a checked ``go.Figure``, or as a
    :class:`PlainFigure` when ``plain``."""
    return PlainFigure(spec) if plain else go.Figure(spec)


def message_figure(text: str, height: int = 200) -> go.Figure:
    """An empty figure that only says ``text`` (a model that is missing, nothing typed yet…)."""
    fig = figure("", height)
    fig.add_annotation(text=html.escape(text), showarrow=False, x=0.5, y=0.5, xref="paper",
                       yref="paper", font=dict(size=14, color="#555"))
    fig.update_xaxes(visible=False)
    fig.update_yaxes(visible=False)
    return fig


# ----------------------------------------------------------------------------- characters on an axis

def token_axis(chars: Sequence[str]) -> tuple[list[str], list[str]]:
    """Unique category names ("12 e") for hover, and short tick labels (the tokens' texts, made
    visible), both escaped for plotly (:func:`plotly_text`): a token ``<b`` shows as ``<b``."""
    ticks = [plotly_text(display_token(c)) for c in chars]
    return [f"{i} {t}" for i, t in enumerate(ticks)], ticks


def token_ticks(names: Sequence[str], ticks: Sequence[str], step: int) -> dict:
    """Axis settings showing every ``step``-th character. type="category": plotly would otherwise
    read names such as "3 9" (position 3, character 9) as the number 39. ``names`` and ``ticks`` as
    :func:`token_axis` makes them (already escaped for plotly)."""
    return dict(type="category", tickmode="array", tickvals=list(names[::step]), ticktext=list(ticks[::step]),
                tickangle=0, tickfont=dict(family="monospace", size=10))


def char_span(c: str, colour: str, tip: str) -> str:
    """One token's text (a character, or a piece of a word) in a coloured text, with a tooltip; its
    spaces kept, line breaks shown (⏎) and kept as <br>."""
    label = html.escape(c.replace("\n", "⏎").replace("\t", "⇥"))
    br = "<br>" if c.endswith("\n") else ""
    return (f'<span title="{html.escape(tip)}" style="background:{colour};color:#111;'
            f'white-space:pre">{label}</span>{br}')
