"""One sampling step: the distribution after temperature, and after top-k and top-p, with what each filter cut.

A vocabulary of at most :data:`~.common.SMALL_VOCAB` (100) tokens (the 65 characters) is drawn whole, one bar per
token in id order. A larger one (a BPE's thousands of tokens, GPT-2's 50,257) cannot be: thousands of
bars are unreadable and heavy to send. Then the :data:`TOP_SHOWN` most likely tokens after temperature
are drawn, most likely first (and the chosen token after them when it is not among them), and one
more bar, "the other k tokens", stands for all the rest: its height is their exact share of the
panel's distribution, 1 − Σ(bars shown), so each panel's bars still sum to 1, and its hover says how
many of them top-k and top-p cut and the probability those carried.
"""
from __future__ import annotations

import copy
import functools
from typing import NamedTuple, Sequence

import numpy as np
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from .common import (vocab_label, CHOSEN, CUT_K, CUT_P, KEPT, LAYOUT, SMALL_VOCAB, PlainFigure, display_token,
                     figure_of, plotly_text, to_numpy)

TOP_SHOWN = 30        # how many of the most likely tokens a large vocabulary shows
OTHERS = "#4a5568"    # the bar that stands for every token not shown


def distribution_figure(step, texts: Sequence[str], title: str = "",
                        plain: bool = False) -> "go.Figure | PlainFigure":
    """The next-token distribution for one sampling ``Step``, in two panels.

    Top: p_T = softmax(z / T) after temperature. Bottom: the distribution actually sampled from after
    top-k and top-p; tokens a filter removed are drawn at their p_T height as ghost bars (grey: cut by
    top-k, amber: cut by top-p) so a person sees what was cut; the chosen token is orange.

    A vocabulary of more than :data:`~.common.SMALL_VOCAB` tokens shows its :data:`TOP_SHOWN` most likely
    tokens (by p_T; the chosen one always) and one bar for all the others, of height
    1 − Σ(shown) in each panel (see the module docstring). ``texts[i]``: token i's text. ``plain``: as a
    :class:`~.common.PlainFigure` (the generate tab's "why this token" at a generation's end).
    """
    if len(step.probs_temperature) > SMALL_VOCAB:
        return _top_tokens_figure(step, texts, title, plain)
    return _whole_vocabulary_figure(step, texts, title, plain)


def _labels(texts: Sequence[str], ids) -> list[str]:
    """Each token's text made visible and escaped for plotly (its id when ``texts`` lacks it)."""
    return [plotly_text(display_token(texts[i]) if i < len(texts) else str(i)) for i in ids]


def _subplot_titles(step) -> tuple[str, str]:
    temp_label = "T = 0 (greedy; shown at T = 1)" if step.temperature == 0 else f"T = {step.temperature:g}"
    return (f"after temperature: p = softmax(z / T), {temp_label}",
            f"after top-k = {step.top_k or 'off'} and top-p = {step.top_p:g}: the distribution sampled from")


@functools.lru_cache(maxsize=1)
def _two_rows_layout() -> dict:
    """The layout ``make_subplots`` gives two rows that share the x axis (their axes, domains and
    title slots), made once: ``make_subplots`` costs about 12 ms a call, and a figure built by
    ``add_trace(row=…)`` and ``update_xaxes`` another 30 ms, paid at the end of every generation."""
    fig = make_subplots(rows=2, cols=1, shared_xaxes=True, vertical_spacing=0.12, subplot_titles=("top", "bottom"))
    return fig.update_layout(**LAYOUT).layout.to_plotly_json()


def _two_rows(titles: tuple[str, str], top: list, bottom: list, xaxes: dict, yaxes: dict, plain: bool = False,
              **layout) -> "go.Figure | PlainFigure":
    """A figure of two rows sharing the x axis, as ``make_subplots(rows=2, cols=1, shared_xaxes=True)``
    would give, with the page's :data:`~.common.LAYOUT`, in one construction: ``top`` and ``bottom``
    are the rows' traces (dicts of trace properties with a ``type``), ``xaxes`` / ``yaxes`` what both
    rows' axes get, ``layout`` the rest; ``plain``: a :class:`~.common.PlainFigure`."""
    lay = {k: copy.deepcopy(v) for k, v in _two_rows_layout().items() if k != "template"}   # the default
    for annotation, text in zip(lay["annotations"], titles):
        annotation["text"] = text
    for axis in ("xaxis", "xaxis2"):
        lay[axis].update(copy.deepcopy(xaxes))
    for axis in ("yaxis", "yaxis2"):
        lay[axis].update(copy.deepcopy(yaxes))
    lay.update(layout)
    return figure_of(dict(data=[*(dict(t, xaxis="x", yaxis="y") for t in top),
                                *(dict(t, xaxis="x2", yaxis="y2") for t in bottom)], layout=lay), plain)


def _marker(colour: str, pattern=None) -> dict:
    """A bar's marker: its colour, and its hatching (``pattern``: "/", "x") when it has one."""
    return dict(color=colour) if pattern is None else dict(color=colour, pattern=dict(shape=pattern))


def _whole_vocabulary_figure(step, texts: Sequence[str], title: str, plain: bool) -> "go.Figure | PlainFigure":
    """Every token of a small vocabulary, in id order."""
    p_t = to_numpy(step.probs_temperature)
    p_f = to_numpy(step.probs_filtered)
    cut_k = np.asarray(step.cut_by_top_k.cpu(), dtype=bool)
    cut_p = np.asarray(step.cut_by_top_p.cpu(), dtype=bool)
    V = len(p_t)
    labels = _labels(texts, range(V))
    x = np.arange(V)
    chosen = int(step.token_id)
    kept = ~(cut_k | cut_p)
    kept_not_chosen = kept.copy()
    kept_not_chosen[chosen] = False
    hover = "%{customdata}: %{y:.4f}<extra>%{fullData.name}</extra>"
    cd = np.array(labels, dtype=object)

    top, bottom = [], []

    def bars(mask, y, name, colour, pattern=None):
        bottom.append(dict(type="bar", x=x[mask], y=y[mask], name=name, marker=_marker(colour, pattern),
                           customdata=cd[mask], width=0.8, hovertemplate=hover, showlegend=True, legendgroup=name))

    top_colour = np.where(np.arange(V) == chosen, CHOSEN, KEPT)
    top.append(dict(type="bar", x=x, y=p_t, marker=dict(color=top_colour.tolist()), customdata=cd, width=0.8,
                    hovertemplate=hover, name="after temperature", showlegend=False))
    bars(kept_not_chosen, p_f, "kept", KEPT)
    bars(np.arange(V) == chosen, p_f, f"chosen: {labels[chosen]!r} (p = {step.token_prob:.3f})", CHOSEN)
    bars(cut_k, p_t, "cut by top-k (height: p after temperature)", CUT_K, pattern="/")
    bars(cut_p, p_t, "cut by top-p (height: p after temperature)", CUT_P, pattern="x")
    for mask, name, colour in ((cut_k, "cut by top-k", CUT_K), (cut_p, "cut by top-p", CUT_P)):
        # a mark on the axis under every cut token: most cut tokens are far too unlikely for a bar
        bottom.append(dict(type="scatter", x=x[mask], y=np.zeros(int(mask.sum())), mode="markers", cliponaxis=False,
                           name="axis mark: " + name,
                           marker=dict(symbol="x-thin", size=7, line=dict(width=2, color=colour)),
                           customdata=cd[mask], hovertemplate="%{customdata}: cut<extra></extra>",
                           showlegend=False, legendgroup=name + " (height: p after temperature)"))
    return _two_rows(_subplot_titles(step), top, bottom, plain=plain,
                     xaxes=dict(tickmode="array", tickvals=x.tolist(), ticktext=labels, tickangle=0,
                                tickfont=dict(size=10, family="monospace"), range=[-0.7, V - 0.3]),
                     yaxes=dict(title=dict(text="probability"), rangemode="tozero"),
                     height=480, barmode="overlay", bargap=0.15,
                     title=dict(text=plotly_text(title), x=0.01), legend=dict(orientation="h", y=-0.12, x=0))


def shown_tokens(probs_temperature, chosen: int, n: int = TOP_SHOWN) -> list[int]:
    """The ids a large vocabulary's figure draws, in order: the ``n`` most likely after temperature
    (most likely first; ties by lower id, as top-k ranks them), then ``chosen`` if it is not among
    them."""
    p_t = np.asarray(probs_temperature, dtype=np.float64)
    ids = np.argsort(-p_t, kind="stable")[:n].tolist()
    return ids if chosen in ids else ids + [chosen]


class Others(NamedTuple):
    """The tokens a large vocabulary's figure does not draw, summed up (see :func:`others`)."""

    count: int                # how many
    rest_temperature: float   # 1 − Σ_shown p_T: their share after temperature
    rest_filtered: float      # 1 − Σ_shown π: their share of the distribution sampled from
    cut_k: int                # how many of them top-k cut …
    mass_k: float             # … and the p_T they carried
    cut_p: int                # how many of them top-p cut …
    mass_p: float             # … and the p_T they carried

    @property
    def name(self) -> str:
        return f"the other {self.count:,} tokens"

    @property
    def cuts(self) -> str:
        """What the filters did to them, in words (for a hover)."""
        kept = self.count - self.cut_k - self.cut_p
        return (f"top-k cut {self.cut_k:,} of them (they had p = {self.mass_k:.4f} after temperature), "
                f"top-p cut {self.cut_p:,} (p = {self.mass_p:.4f}); {kept:,} kept")


def others(step, shown) -> Others:
    """The tokens of ``step``'s vocabulary that are not in ``shown`` (ids): their count, their share
    of each distribution as 1 − Σ(shown) (so the shown bars and theirs sum to 1 exactly), and how
    many of them each filter cut, with the probability after temperature those carried."""
    p_t = step.probs_temperature.detach().cpu().double().numpy()
    p_f = step.probs_filtered.detach().cpu().double().numpy()
    rest = np.ones(len(p_t), dtype=bool)
    rest[np.asarray(list(shown), dtype=np.int64)] = False
    cut_k = np.asarray(step.cut_by_top_k.cpu(), dtype=bool) & rest
    cut_p = np.asarray(step.cut_by_top_p.cpu(), dtype=bool) & rest
    return Others(int(rest.sum()), max(0.0, 1.0 - float(p_t[~rest].sum())), max(0.0, 1.0 - float(p_f[~rest].sum())),
                  int(cut_k.sum()), float(p_t[cut_k].sum()), int(cut_p.sum()), float(p_t[cut_p].sum()))


def _top_tokens_figure(step, texts: Sequence[str], title: str, plain: bool) -> "go.Figure | PlainFigure":
    """A large vocabulary: its :data:`TOP_SHOWN` most likely tokens and one bar for the others."""
    p_t = step.probs_temperature.detach().cpu().double().numpy()
    p_f = step.probs_filtered.detach().cpu().double().numpy()
    cut_k = np.asarray(step.cut_by_top_k.cpu(), dtype=bool)
    cut_p = np.asarray(step.cut_by_top_p.cpu(), dtype=bool)
    V, chosen = len(p_t), int(step.token_id)
    ids = np.array(shown_tokens(p_t, chosen), dtype=np.int64)
    n = len(ids)
    rank = np.empty(V, dtype=np.int64)
    rank[np.argsort(-p_t, kind="stable")] = np.arange(1, V + 1)
    labels = _labels(texts, ids.tolist())
    x = np.arange(n)
    cd = np.array([f"{lab} (id {i}, rank {rank[i]:,})" for lab, i in zip(labels, ids)], dtype=object)
    hover = "%{customdata}: %{y:.4f}<extra>%{fullData.name}</extra>"

    # the others: every token not drawn, as one bar of height 1 − Σ(shown) in each panel
    o = others(step, ids)
    k, rest_t, rest_f, other_name = o.count, o.rest_temperature, o.rest_filtered, o.name
    other_hover_t = f"{other_name}: p = {rest_t:.4f} in all after temperature<br>{o.cuts}"
    other_hover_f = f"{other_name}: p = {rest_f:.4f} in all of the distribution sampled from<br>{o.cuts}"

    is_chosen = ids == chosen
    kept = ~(cut_k[ids] | cut_p[ids])
    top, bottom = [], []

    def bars(mask, y, name, colour, pattern=None):
        bottom.append(dict(type="bar", x=x[mask], y=y[ids][mask], name=name,
                           marker=_marker(colour, pattern), customdata=cd[mask], width=0.8,
                           hovertemplate=hover, legendgroup=name))

    top.append(dict(type="bar", x=x, y=p_t[ids], marker=dict(color=np.where(is_chosen, CHOSEN, KEPT).tolist()),
                    customdata=cd, width=0.8, hovertemplate=hover, name="after temperature", showlegend=False))
    top.append(dict(type="bar", x=[n], y=[rest_t], name=other_name + " (after temperature)",
                    marker=dict(color=OTHERS), customdata=[other_hover_t], width=0.8,
                    hovertemplate="%{customdata}<extra></extra>", showlegend=False))
    bars(kept & ~is_chosen, p_f, "kept", KEPT)
    ticks = [vocab_label(texts, i) for i in ids]
    bars(is_chosen, p_f, f"chosen: {ticks[int(np.flatnonzero(is_chosen)[0])]!r} (p = {step.token_prob:.3f})", CHOSEN)
    bars(cut_k[ids], p_t, "cut by top-k (height: p after temperature)", CUT_K, pattern="/")
    bars(cut_p[ids], p_t, "cut by top-p (height: p after temperature)", CUT_P, pattern="x")
    bottom.append(dict(type="bar", x=[n], y=[rest_f], name=other_name, marker=dict(color=OTHERS),
                       customdata=[other_hover_f], width=0.8, hovertemplate="%{customdata}<extra></extra>"))
    for cut, count, name, colour in ((cut_k, o.cut_k, "cut by top-k", CUT_K), (cut_p, o.cut_p, "cut by top-p", CUT_P)):
        # a mark on the axis under every cut token (most are far too unlikely for a bar), and under
        # the others' bar when a filter cut some of them
        mask = cut[ids]
        xs, tips = x[mask].tolist(), [f"{c}: cut" for c in cd[mask]]
        if count:
            xs.append(n)
            tips.append(f"{count:,} of {other_name}: {name}")
        bottom.append(dict(type="scatter", x=xs, y=[0.0] * len(xs), mode="markers", cliponaxis=False,
                           name="axis mark: " + name,
                           marker=dict(symbol="x-thin", size=7, line=dict(width=2, color=colour)),
                           customdata=tips, hovertemplate="%{customdata}<extra></extra>",
                           showlegend=False, legendgroup=name + " (height: p after temperature)"))
    return _two_rows(_subplot_titles(step), top, bottom, plain=plain,
                     xaxes=dict(tickmode="array", tickvals=[*x.tolist(), n], ticktext=[*ticks, f"other {k:,}"],
                                tickangle=-45, tickfont=dict(size=10, family="monospace"), range=[-0.7, n + 0.7]),
                     yaxes=dict(title=dict(text="probability"), rangemode="tozero"),
                     height=520, barmode="overlay", bargap=0.15,
                     title=dict(text=plotly_text(title), x=0.01), legend=dict(orientation="h", y=-0.3, x=0))
