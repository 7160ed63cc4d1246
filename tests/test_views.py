"""The app's figures, called directly: what they draw must match the tensors they are given."""
import json
import math

import numpy as np
import plotly.graph_objects as go
import pytest
import torch

from scratchformer import views
from scratchformer.inference.traced import surprise_bits
from scratchformer.inference.sampling import SamplingSettings, make_generator, sample_step

ITOS = list("\n !$&',-.3:;?ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz")


def causal_attention(L, H, T, seed=0):
    g = torch.Generator().manual_seed(seed)
    mask = torch.ones(T, T, dtype=torch.bool).tril()
    return [torch.softmax(torch.randn(H, T, T, generator=g).masked_fill(~mask, float("-inf")), -1)
            for _ in range(L)]


def test_display_token_makes_whitespace_visible():
    assert [views.display_token(c) for c in "\n a\t"] == ["⏎", "␣", "a", "⇥"]
    assert views.display_token("\x01") == "\\x01"


def test_surprise_bits_is_minus_log2_of_the_probability_of_each_next_char():
    logits = torch.randn(4, 5, generator=torch.Generator().manual_seed(1))
    ids = [0, 3, 1, 4]
    bits = surprise_bits(logits, ids)
    assert math.isnan(bits[0])
    p = torch.softmax(logits, -1)
    for t in range(1, 4):
        assert bits[t] == pytest.approx(-math.log2(p[t - 1, ids[t]].item()), rel=1e-5)


def test_surprise_html_colours_each_model_and_their_disagreement():
    out = views.surprise_html(list("ab\n"), {"Transformer": [float("nan"), 1.0, 8.0],
                                             "LSTM": [float("nan"), 3.0, 8.0]})
    assert "Transformer" in out and "LSTM" in out and "Disagreement" in out
    assert "mean 4.50 bits/char" in out and "mean 5.50 bits/char" in out
    assert "−2.00" not in out and "-2.00 bits" in out  # d = 1 − 3 on 'b'
    assert "rgb(255,55,55)" in out                      # 8 bits: full red
    assert "<br>" in out                                # the newline breaks the line


def _trace(fig, name_start):
    return [t for t in fig.data if (t.name or "").startswith(name_start)]


def test_distribution_shows_every_token_and_each_filters_cuts():
    logits = torch.randn(len(ITOS), generator=torch.Generator().manual_seed(3)) * 2
    step = sample_step(logits, SamplingSettings(temperature=0.7, top_k=20, top_p=0.6), generator=make_generator(5))
    fig = views.distribution_figure(step, ITOS)
    top = fig.data[0]
    assert len(top.x) == len(ITOS)                                   # the whole vocabulary
    np.testing.assert_allclose(top.y, step.probs_temperature.numpy(), rtol=1e-6)
    (cut_k,), (cut_p,) = _trace(fig, "cut by top-k"), _trace(fig, "cut by top-p")
    assert sorted(cut_k.x) == torch.nonzero(step.cut_by_top_k).flatten().tolist()
    assert sorted(cut_p.x) == torch.nonzero(step.cut_by_top_p).flatten().tolist()
    assert len(cut_k.x) == len(ITOS) - 20 and len(cut_p.x) > 0
    # cut tokens are drawn at their height after temperature, the kept ones sum to 1
    np.testing.assert_allclose(cut_k.y, step.probs_temperature[step.cut_by_top_k].numpy(), rtol=1e-6)
    kept = sum(sum(t.y) for t in _trace(fig, "kept") + _trace(fig, "chosen"))
    assert kept == pytest.approx(1.0)
    (chosen,) = _trace(fig, "chosen")
    assert list(chosen.x) == [step.token_id]
    assert fig.layout.xaxis.ticktext[:2] == ("⏎", "␣")


def test_distribution_of_a_greedy_step_cuts_nothing():
    step = sample_step(torch.randn(len(ITOS)), SamplingSettings(temperature=0, top_k=0, top_p=1.0))
    fig = views.distribution_figure(step, ITOS)
    assert len(_trace(fig, "cut by top-k")[0].x) == 0 and len(_trace(fig, "cut by top-p")[0].x) == 0
    assert "greedy" in fig.layout.annotations[0].text


def test_attention_grid_has_one_panel_per_layer_and_head_and_pools_long_texts():
    attn = causal_attention(L=3, H=2, T=2 * views.GRID_MAX_CELLS)
    fig = views.attention_grid(attn)
    assert len(fig.data) == 6
    z = np.asarray(fig.data[0].z)
    assert z.shape == (views.GRID_MAX_CELLS, views.GRID_MAX_CELLS)
    np.testing.assert_allclose(z[0, 0], attn[0][0, :2, :2].mean().item(), rtol=1e-5)  # 2×2 average
    assert np.nansum(z) * 4 == pytest.approx(2 * views.GRID_MAX_CELLS, rel=1e-4)   # rows still sum to 1
    odd = views.attention_grid(causal_attention(L=1, H=1, T=101))
    assert max(np.asarray(odd.data[0].z).shape) <= views.GRID_MAX_CELLS
    short = views.attention_grid(causal_attention(L=1, H=1, T=10))
    np.testing.assert_allclose(np.asarray(short.data[0].z), causal_attention(1, 1, 10)[0][0].numpy(),
                               rtol=1e-6)


def test_attention_grid_payload_stays_small_for_36_heads_and_128_characters():
    fig = views.attention_grid(causal_attention(L=6, H=6, T=128))
    assert len(fig.to_json()) < 600_000


def test_attention_heatmap_labels_tokens_and_hides_the_first_token():
    chars = list("to be")
    w = causal_attention(1, 1, 5)[0][0]
    fig = views.attention_heatmap(w, chars, title="t")
    z = np.asarray(fig.data[0].z)
    np.testing.assert_allclose(z, w.numpy(), rtol=1e-6)
    assert list(fig.data[0].x) == ["0 t", "1 o", "2 ␣", "3 b", "4 e"]
    hidden = np.asarray(views.attention_heatmap(w, chars, hide_first=True).data[0].z)
    assert np.isnan(hidden[:, 0]).all()
    np.testing.assert_allclose(hidden[:, 1:], w.numpy()[:, 1:], rtol=1e-6)  # not renormalised


def test_attention_diff_uses_a_scale_centred_on_zero():
    d = torch.tensor([[0.5, -0.2], [0.1, 0.0]])
    trace = views.attention_heatmap(d, ["a", "b"], diverging=True).data[0]
    assert trace.zmid == 0 and trace.zmin == -0.5 and trace.zmax == 0.5


def test_pca_keeps_the_distances_of_points_lying_in_a_plane():
    g = torch.Generator().manual_seed(0)
    flat = torch.randn(30, 2, generator=g) * torch.tensor([3.0, 1.0])
    basis, _ = torch.linalg.qr(torch.randn(10, 2, generator=g))          # an orthonormal 2-D plane
    x = flat @ basis.T + 5.0
    coords, frac = views.pca_2d(x)
    def dist(a):
        return (a[:, None] - a[None]).norm(dim=-1)
    torch.testing.assert_close(dist(coords), dist(flat), atol=1e-4, rtol=0)
    assert frac.sum() == pytest.approx(1.0, abs=1e-5) and frac[0] > frac[1]


def test_embedding_pca_labels_every_character():
    fig = views.embedding_pca_figure(torch.randn(len(ITOS), 8), ITOS)
    labels = [c for t in fig.data for c in t.text]
    assert sorted(labels) == sorted(views.display_token(c) for c in ITOS)


def test_positional_and_hidden_state_figures_match_their_inputs():
    pe = torch.randn(16, 8)
    np.testing.assert_allclose(np.asarray(views.positional_figure(pe).data[0].z), pe.numpy(), rtol=1e-6)
    big = torch.randn(1024, 768)               # GPT-2's learned positions: cropped, never averaged
    fig = views.positional_figure(big, title="learned")
    np.testing.assert_allclose(np.asarray(fig.data[0].z), big[:256, :256].numpy(), rtol=1e-6)
    assert fig.layout.title.text.endswith("(shown: the first 256 of 1024 positions × the first 256 of 768 dims)")
    hidden = [torch.ones(3, 4), torch.ones(3, 4) * 2, torch.ones(3, 4) * 2]
    fig = views.hidden_states_figure(hidden, list("abc"))
    np.testing.assert_allclose(np.asarray(fig.data[0].z), [[2] * 3, [4] * 3, [4] * 3], rtol=1e-6)
    np.testing.assert_allclose(np.asarray(fig.data[1].z), [[1] * 3, [0] * 3], atol=1e-6)


def test_lstm_view_picks_the_most_varying_units():
    T, hidden = 12, 6
    cells = torch.zeros(T, hidden)
    cells[:, 4] = torch.linspace(-3, 3, T)      # varies most
    cells[:, 1] = torch.linspace(0, 1, T)
    assert views.top_varying_units(cells, 2) == [4, 1]
    gates = {k: torch.rand(T, hidden) for k in "ifgo"}
    fig = views.lstm_gates_figure(gates, cells, list("hello world!"), [4, 1])
    assert len(fig.data) == 4
    np.testing.assert_allclose(np.asarray(fig.data[1].z), gates["f"][:, [4, 1]].T.numpy(), rtol=1e-6)
    html = views.unit_text_html(list("ab"), torch.tensor([1.0, -1.0]), "unit 4")
    assert "unit 4" in html and "+1.000" in html and "-1.000" in html


def test_learning_curves_draw_train_and_validation_per_model():
    curve = [{"iter": i, "tokens": 100 * (i + 1), "train_loss": 3 - i * 0.1, "val_loss": 3.1 - i * 0.1, "lr": 1e-3}
             for i in range(4)]
    fig = views.learning_curves_figure({"Transformer": curve, "LSTM": curve[:2]})
    names = [t.name for t in fig.data]
    assert names == ["Transformer train", "Transformer val", "LSTM train", "LSTM val"]
    assert list(fig.data[1].y) == pytest.approx([c["val_loss"] / math.log(2) for c in curve])   # bits per char
    # a BPE model: nats per token → bits per character, tokens → characters, by its characters per token
    words = views.learning_curves_figure({"Transformer (words)": curve}, chars_per_token={"Transformer (words)": 2.5})
    assert list(words.data[1].y) == pytest.approx([c["val_loss"] / 2.5 / math.log(2) for c in curve])
    assert list(words.data[1].x) == pytest.approx([c["tokens"] * 2.5 for c in curve])
    empty = views.learning_curves_figure({})
    assert "No learning curves" in json.dumps(empty.to_plotly_json()["layout"]["annotations"])


def test_a_token_in_markdown_is_code_that_cannot_escape():
    from scratchformer.views.common import code_md
    assert code_md("`<img src=x onerror=alert(1)>$x$") == \
        "<code>&#96;&lt;img␣src=x␣onerror=alert(1)&gt;&#36;x&#36;</code>"
    assert code_md(" the\n") == "<code>␣the⏎</code>"


def test_the_logit_lens_cuts_long_tokens_in_a_cell_and_shows_them_whole_on_hover():
    chars = [f" token{i}" for i in range(60)]          # 60 positions: a cell holds 2 characters
    lens = {"text": chars, "rows": ["embedding", "after layer 1"], "p_next": [[0.5] * 60] * 2,
            "top": [chars, chars[::-1]], "top_prob": [[0.25] * 60] * 2}
    heat = views.logit_lens_figure(lens).data[0]
    assert heat.text[0][0] == "␣…" and heat.text[1][0] == "␣…"
    assert list(heat.customdata[0][0]) == ["0.250", "␣token0"] and heat.customdata[1][0][1] == "␣token59"
    assert np.allclose(np.asarray(heat.z, dtype=float), 0.5)


def test_two_rows_equal_plotlys_own_make_subplots():
    """views.sampling builds its two-panel figures from make_subplots' layout, made once (a figure in
    8–20 ms instead of 43): the figure must be the one make_subplots + add_trace(row=…) gives."""
    from plotly.subplots import make_subplots
    from scratchformer.views.common import LAYOUT
    from scratchformer.views.sampling import _two_rows
    top = [dict(type="bar", x=[0, 1, 2], y=[0.2, 0.5, 0.3], name="top", marker=dict(color=["#111", "#222", "#333"]))]
    bottom = [dict(type="bar", x=[0, 2], y=[0.4, 0.6], name="kept", marker=dict(color="#444", pattern=dict(shape="/"))),
              dict(type="scatter", x=[1], y=[0.0], mode="markers", name="axis mark")]
    xaxes = dict(tickmode="array", tickvals=[0, 1, 2], ticktext=["a", "b", "c"], range=[-0.7, 2.7])
    yaxes = dict(title=dict(text="probability"), rangemode="tozero")
    got = _two_rows(("upper <b>title</b>", "lower"), top, bottom, xaxes, yaxes, height=480, barmode="overlay",
                    title=dict(text="t", x=0.01))
    want = make_subplots(rows=2, cols=1, shared_xaxes=True, vertical_spacing=0.12,
                         subplot_titles=("upper <b>title</b>", "lower"))
    for t in top:
        want.add_trace(t, row=1, col=1)
    for t in bottom:
        want.add_trace(t, row=2, col=1)
    want.update_layout(**LAYOUT, height=480, barmode="overlay", title=dict(text="t", x=0.01))
    want.update_xaxes(**xaxes)
    want.update_yaxes(**yaxes)
    assert json.loads(got.to_json()) == json.loads(want.to_json())
    # the cached layout is not changed by a figure made from it
    again = _two_rows(("x", "y"), top, bottom, dict(range=[0, 1]), {}, height=100)
    assert again.layout.xaxis.ticktext is None and got.layout.xaxis.range == (-0.7, 2.7)


def test_figures_draw_only_the_trace_types_the_template_keeps():
    """views.common's template keeps plotly's defaults for TRACE_TYPES only (a figure carries it);
    a kind of trace outside them would be drawn without plotly's look. Every trace made in the package
    (go.Bar(…), or a dict with type="…") must be one of them."""
    import re
    from pathlib import Path
    import scratchformer
    from scratchformer.views.common import TRACE_TYPES
    made = set()
    for path in Path(scratchformer.__file__).parent.rglob("*.py"):
        source = path.read_text()
        made |= {name.lower() for name in re.findall(r"\bgo\.([A-Z]\w*)\(", source) if name != "Figure"}
        made |= set(re.findall(r'dict\(type="(\w+)"', source))
    import plotly.graph_objects as go
    from plotly.basedatatypes import BaseTraceType
    traces = {name.lower() for name in dir(go) if isinstance(getattr(go, name), type)
              and issubclass(getattr(go, name), BaseTraceType)}
    made &= traces                          # (a dict(type="category") is an axis, not a trace)
    assert {"bar", "heatmap"} <= made <= set(TRACE_TYPES), made - set(TRACE_TYPES)


def _decoded(x):
    """A figure's JSON with every typed array ({"dtype", "bdata", "shape"}) as a list of floats: two
    encodings of the same numbers compare equal."""
    import base64
    if isinstance(x, dict):
        if {"dtype", "bdata"} <= set(x):
            a = np.frombuffer(base64.b64decode(x["bdata"]), dtype=np.dtype(x["dtype"].replace("f", "<f")
                                                                             .replace("i", "<i").replace("u", "<u")))
            if "shape" in x:
                a = a.reshape([int(n) for n in x["shape"].split(",")])
            return a.astype(np.float64).tolist()
        return {k: _decoded(v) for k, v in x.items()}
    if isinstance(x, list):
        return [_decoded(v) for v in x]
    return x


@pytest.mark.parametrize("vocab", [65, 500])
def test_plain_figures_are_the_checked_figures(vocab):
    """The generate tab streams its figures as plain data (PlainFigure: plotly.py does not check them,
    7–20× cheaper). Each must be a figure plotly.py accepts (an unknown property or a bad value raises
    here) and must serialise to the JSON the checked go.Figure gives: the same numbers, titles, colours
    and template, so the page draws the same figure."""
    texts = [f"<t{i}>" for i in range(vocab)]
    step = sample_step(torch.randn(vocab) * 3, SamplingSettings(0.8, 10, 0.9), make_generator(3))
    weights = torch.softmax(torch.randn(4, 120), -1)
    cases = [(views.distribution_figure, (step, texts), dict(title="a <b>x</b>")),
             (views.next_char_figure, (step.probs_filtered, texts, step.token_id), dict(title="s", step=step)),
             (views.newest_attention_figure, (weights, [chr(97 + i % 26) for i in range(120)]), dict(title="t"))]
    for make, args, kw in cases:
        checked, plain = make(*args, **kw), views.export_name(make(*args, plain=True, **kw), "x")
        assert isinstance(checked, go.Figure) and isinstance(plain, views.PlainFigure)
        views.export_name(checked, "x")
        assert isinstance(views.as_figure(plain), go.Figure)          # plotly.py checks every property
        assert _decoded(json.loads(plain.to_json())) == _decoded(json.loads(checked.to_json())), make.__name__
        assert json.loads(plain.to_json())["layout"]["template"] == json.loads(checked.to_json())["layout"]["template"]


def test_typed_arrays_carry_the_numbers_exactly():
    from scratchformer.views.common import typed_array
    for a in (np.linspace(0, 1, 7, dtype=np.float32).reshape(7), np.arange(12, dtype=np.int64).reshape(3, 4),
              np.array([0.1, 1e-30, 2.5])):
        spec = typed_array(a)
        assert _decoded(spec) == a.astype(np.float64).tolist()
    assert typed_array(np.array([2 ** 40])) == [2 ** 40]             # too wide for plotly.js: a list
    assert typed_array(np.array(["a", "b"], dtype=object)) == ["a", "b"]
