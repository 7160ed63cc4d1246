"""Views over a large vocabulary (a BPE's thousands of tokens), recomputed from the tensors they draw;
token texts escaped for plotly; nearest tokens in an embedding table; the Embeddings tab on the
word pair.

A large vocabulary's distribution shows its most likely tokens and ONE bar for all the others, whose
height is 1 − Σ(shown): here every bar is recomputed from the sampling Step's own tensors.
"""
import json
import math
import re
from pathlib import Path

import gradio as gr
import numpy as np
import pytest
import torch

from scratchformer import views
from scratchformer.inference.neighbours import nearest_tokens
from scratchformer.inference.sampling import SamplingSettings, make_generator, sample_step
from scratchformer.views.common import SMALL_VOCAB, plotly_text, short_label, token_axis
from scratchformer.views.embeddings import LABELLED, neighbours_html
from scratchformer.views.sampling import TOP_SHOWN

V = 2048
HOSTILE = ["<b>x</b>", "&amp;", "</", "<b", "&lt;", "<br>", '<a href="http://evil.invalid">a</a>', "&#60;"]


def vocabulary(n: int = V) -> list[str]:
    """n token texts: the hostile ones first, then words (with their space), bytes, a special last."""
    words = [f" w{i}" if i % 3 else f"tok{i}" for i in range(n)]
    texts = HOSTILE + words[len(HOSTILE):n - 1] + ["<|endoftext|>"]
    return texts[:n]


def logits_favouring(ids, n: int = V, seed: int = 0) -> torch.Tensor:
    """Random logits where ``ids`` (the hostile texts) are among the most likely."""
    z = torch.randn(n, generator=torch.Generator().manual_seed(seed)) * 2
    z[list(ids)] += 10
    return z


def expected_shown(step) -> list[int]:
    """The ids the figure must draw, found independently: the TOP_SHOWN largest p_T (stable), then
    the chosen token if it is not among them."""
    p = step.probs_temperature.numpy()
    ids = sorted(range(len(p)), key=lambda i: (-p[i], i))[:TOP_SHOWN]
    return ids if step.token_id in ids else ids + [step.token_id]


def label(texts, i) -> str:
    return plotly_text(views.display_token(texts[i]))


def tick(texts, i) -> str:
    """A label as an axis or a point of a large vocabulary writes it: cut to 16 characters."""
    return plotly_text(short_label(views.display_token(texts[i])))


def traces(fig, start: str, row: int | None = None):
    out = [t for t in fig.data if (t.name or "").startswith(start)]
    if row is not None:
        axis = "y" if row == 1 else "y2"
        out = [t for t in out if (t.yaxis or "y") == axis]
    return out


def chosen_outside_the_top() -> tuple:
    """A step whose chosen token is not among the TOP_SHOWN most likely (a flat distribution)."""
    z = torch.randn(V, generator=torch.Generator().manual_seed(7)) * 0.1
    for seed in range(200):
        step = sample_step(z, SamplingSettings(temperature=2.0, top_k=0, top_p=1.0), make_generator(seed))
        if step.token_id not in expected_shown(step)[:TOP_SHOWN]:
            return step
    raise AssertionError("no seed chose a token outside the top")


STEPS = {
    "top-k and top-p": lambda: sample_step(logits_favouring(range(8)), SamplingSettings(0.8, 50, 0.9), make_generator(1)),
    "top-k cuts inside the top": lambda: sample_step(logits_favouring(range(8)), SamplingSettings(1.0, 5, 1.0), make_generator(2)),
    "top-p only": lambda: sample_step(logits_favouring(range(8)), SamplingSettings(1.3, 0, 0.5), make_generator(3)),
    "no filter": lambda: sample_step(logits_favouring(range(8)), SamplingSettings(1.0, 0, 1.0), make_generator(4)),
    "greedy": lambda: sample_step(logits_favouring(range(8)), SamplingSettings(0, 20, 0.7)),
    "chosen outside the top": chosen_outside_the_top,
}


# ------------------------------------------------------------------------------ the distribution

@pytest.mark.parametrize("case", list(STEPS))
def test_a_large_distribution_shows_the_top_tokens_and_the_rest_summing_to_one(case):
    step = STEPS[case]()
    texts = vocabulary()
    fig = views.distribution_figure(step, texts, title="Transformer (words)")
    p_t = step.probs_temperature.double().numpy()
    p_f = step.probs_filtered.double().numpy()
    cut_k, cut_p = step.cut_by_top_k.numpy(), step.cut_by_top_p.numpy()
    ids = expected_shown(step)
    n = len(ids)
    x_of = {i: x for x, i in enumerate(ids)}

    # the axis: the shown tokens in order, then the others' bar
    assert list(fig.layout.xaxis2.tickvals or fig.layout.xaxis.tickvals) == list(range(n + 1))
    ticks = list(fig.layout.xaxis2.ticktext or fig.layout.xaxis.ticktext)
    assert ticks[:n] == [tick(texts, i) for i in ids]
    others = V - n
    assert ticks[n] == f"other {others:,}"

    # top panel: p_T of each shown token, then 1 − Σ shown; the bars sum to 1
    (top,) = traces(fig, "after temperature", row=1)
    np.testing.assert_allclose(top.y, p_t[ids], rtol=1e-12)
    (rest_t,) = traces(fig, f"the other {others:,} tokens", row=1)
    assert list(rest_t.x) == [n]
    assert rest_t.y[0] == pytest.approx(1 - p_t[ids].sum(), abs=1e-12)
    assert sum(top.y) + rest_t.y[0] == pytest.approx(1.0, abs=1e-6)

    # bottom panel: kept + chosen + the others' kept share = the distribution sampled from, sums to 1
    kept = traces(fig, "kept", row=2) + traces(fig, "chosen", row=2)
    (rest_f,) = traces(fig, f"the other {others:,} tokens", row=2)
    assert rest_f.y[0] == pytest.approx(1 - p_f[ids].sum(), abs=1e-12)
    assert sum(sum(t.y) for t in kept) + rest_f.y[0] == pytest.approx(1.0, abs=1e-6)
    for t in kept:
        for x, y in zip(t.x, t.y):
            assert y == pytest.approx(p_f[ids[x]], abs=1e-12)

    # the chosen token is drawn, orange, where its id is
    (chosen,) = traces(fig, "chosen", row=2)
    assert list(chosen.x) == [x_of[step.token_id]]
    assert top.marker.color[x_of[step.token_id]] == views.common.CHOSEN

    # cut tokens among the shown ones: ghosts at their height after temperature
    for name, cut in (("cut by top-k", cut_k), ("cut by top-p", cut_p)):
        (ghost,) = traces(fig, name, row=2)
        assert sorted(ids[x] for x in ghost.x) == sorted(i for i in ids if cut[i])
        np.testing.assert_allclose(ghost.y, [p_t[ids[x]] for x in ghost.x], rtol=1e-12)

    # the others' hover: how many of them each filter cut and the p_T they carried
    rest = np.ones(V, bool)
    rest[ids] = False
    n_k, n_p = int((cut_k & rest).sum()), int((cut_p & rest).sum())
    hover = rest_f.customdata[0]
    assert f"top-k cut {n_k:,} of them (they had p = {p_t[cut_k & rest].sum():.4f} after temperature)" in hover
    assert f"top-p cut {n_p:,} (p = {p_t[cut_p & rest].sum():.4f}); {others - n_k - n_p:,} kept" in hover
    marks = {name: traces(fig, "axis mark: " + name)[0] for name in ("cut by top-k", "cut by top-p")}
    assert (n in marks["cut by top-k"].x) == (n_k > 0) and (n in marks["cut by top-p"].x) == (n_p > 0)

    assert len(fig.to_json()) < 60_000           # ~32 bars, not 2,048


def test_the_vocabulary_size_decides_the_view():
    for n, whole in ((65, True), (SMALL_VOCAB, True), (SMALL_VOCAB + 1, False), (320, False)):
        step = sample_step(torch.randn(n), SamplingSettings(1.0, 10, 0.9), make_generator(0))
        fig = views.distribution_figure(step, [f"t{i}" for i in range(n)])
        assert (len(fig.data[0].x) == n) == whole
        assert bool(traces(fig, "the other")) != whole


# ------------------------------------------------------------------------------ the watch panel

@pytest.mark.parametrize("case", ["top-k and top-p", "chosen outside the top", "greedy"])
def test_the_watch_panel_adds_the_chosen_token_and_the_rest(case):
    step = STEPS[case]()
    texts = vocabulary()
    p = step.probs_filtered.double().numpy()
    fig = views.next_char_figure(step.probs_filtered, texts, step.token_id, title="step 3", step=step)
    (bars,) = fig.data
    ids = sorted(range(V), key=lambda i: (-p[i], i))[:12]
    ids = ids if step.token_id in ids else ids + [step.token_id]
    assert list(bars.y) == [f"id {i}" for i in ids] + ["others"]
    np.testing.assert_allclose(bars.x[:-1], p[ids], rtol=1e-12)
    assert bars.x[-1] == pytest.approx(1 - p[ids].sum(), abs=1e-12)
    assert sum(bars.x) == pytest.approx(1.0, abs=1e-6)
    assert bars.marker.color[ids.index(step.token_id)] == views.common.CHOSEN
    assert list(fig.layout.yaxis.ticktext)[:-1] == [f"{tick(texts, i)} " for i in ids]
    assert list(bars.customdata)[:-1] == [f"{label(texts, i)} (id {i})" for i in ids]
    rest = np.ones(V, bool)
    rest[ids] = False
    cut_k = step.cut_by_top_k.numpy() & rest
    assert f"top-k cut {int(cut_k.sum()):,} of them" in bars.customdata[-1]
    # without the step: the same bars, the hover only says their share
    plain = views.next_char_figure(step.probs_filtered, texts, step.token_id).data[0]
    assert list(plain.x) == list(bars.x) and "top-k" not in plain.customdata[-1]


def test_the_watch_panel_of_a_small_vocabulary_is_unchanged():
    probs = torch.softmax(torch.randn(65), -1)
    fig = views.next_char_figure(probs, [chr(65 + i) for i in range(65)], 3)
    assert len(fig.data[0].x) == 12 and "other" not in str(fig.data[0].y)


# ------------------------------------------------------------------------------ escaping for plotly

def test_short_labels_keep_16_characters():
    assert short_label("␣king") == "␣king" and short_label("-" * 60) == "-" * 15 + "…"
    assert plotly_text(short_label("<" * 20)) == "&lt;" * 15 + "…"     # cut before it is escaped


def test_plotly_text_escapes_what_plotly_reads_as_markup():
    assert plotly_text("<b>x</b>") == "&lt;b&gt;x&lt;/b&gt;"
    assert plotly_text("&amp;") == "&amp;amp;"
    assert plotly_text("&#60;") == "&amp;#60;"
    assert plotly_text("</") == "&lt;/"
    assert plotly_text("&") == "&" and plotly_text("a & b") == "a & b"   # no entity can start there
    assert plotly_text("␣king") == "␣king"


def test_token_labels_are_escaped_in_every_figure_json():
    texts = vocabulary()
    step = STEPS["top-k and top-p"]()
    figs = {
        "distribution": views.distribution_figure(step, texts, title="after <b>x</b>"),
        "distribution (small)": views.distribution_figure(
            sample_step(logits_favouring(range(8), n=65), SamplingSettings(1.0, 0, 1.0)), texts[:64] + ["<b"],
            title="<b>x</b>"),
        "watch": views.next_char_figure(step.probs_filtered, texts, step.token_id, title="chose '<b>x</b>'"),
        "watch (small)": views.next_char_figure(torch.softmax(logits_favouring(range(8), n=65), -1), texts[:65], 0),
        "embeddings": views.embedding_pca_figure(torch.randn(V, 8), texts, title="<b>x</b>"),
        "embeddings (small)": views.embedding_pca_figure(torch.randn(65, 8), texts[:65]),
        "attention": views.attention_heatmap(torch.softmax(torch.randn(8, 8), -1), texts[:8], title="<b>x</b>"),
        "newest attention": views.newest_attention_figure(torch.softmax(torch.randn(2, 8), -1), texts[:8]),
        "hidden states": views.hidden_states_figure([torch.randn(8, 4)] * 2, texts[:8]),
    }
    for name, fig in figs.items():
        strings = json.dumps(json.loads(fig.to_json()), ensure_ascii=False)   # as the page receives it
        assert "&lt;b&gt;x&lt;/b&gt;" in strings, name
        # no raw tag or entity of a token anywhere a string of the figure holds
        assert "<b>x</b>" not in strings and '<a href' not in strings, name
        if name not in ("distribution (small)", "watch (small)"):
            assert "&amp;amp;" in strings, name
    names, ticks = token_axis(["<b", "&lt;", "a"])
    assert ticks == ["&lt;b", "&amp;lt;", "a"] and names == ["0 &lt;b", "1 &amp;lt;", "2 a"]


def test_the_other_views_escape_token_labels():
    chars = ["a<b>x</b>", "&amp;", "a"]
    lens = {"text": chars, "rows": ["embedding", "layer 1"], "p_next": [[0.1, 0.2, None]] * 2,
            "top": [chars, chars], "top_prob": [[0.5, 0.5, 0.5]] * 2}
    w = torch.softmax(torch.randn(3, 3), -1)
    figs = [views.logit_lens_figure(lens), views.attention_step_figure(chars, [0, 1, 2], [0.1, 0.2, 0.3], [0.2, 0.3, 0.5], 2),
            views.lstm_gates_figure({k: torch.rand(3, 4) for k in "ifo"}, torch.randn(3, 4), chars, [0, 1]),
            views.cross_attention_heatmap(w, chars, chars, title="<b>x</b>"),
            views.blank_bars_figure({"<b>BERT</b>": [[("a<b>x</b>", 0.5), ("&amp;", 0.2)]]}, 0),
            views.ablation_figure({"text": ["z", *chars[:2]], "intact": {"position_loss": [1.0, 2.0]},
                                   "ablated": {"position_loss": [1.5, 1.0]}})]
    for fig in figs:
        strings = json.dumps(json.loads(fig.to_json()), ensure_ascii=False)
        assert "a&lt;b&gt;x&lt;/b&gt;" in strings and "<b>x</b>" not in strings and "&amp;amp;" in strings


CHROMIUM = Path("/usr/bin/chromium")


def long_hostile_rows() -> torch.Tensor:
    """An embedding table whose hostile tokens have the longest rows (so they are among the labelled)."""
    weight = torch.randn(V, 8, generator=torch.Generator().manual_seed(0))
    weight[:len(HOSTILE)] *= 5
    return weight


@pytest.mark.skipif(not CHROMIUM.exists(), reason="needs Debian's Chromium at /usr/bin/chromium")
def test_a_browser_shows_hostile_token_labels_as_text(tmp_path):
    """plotly.js itself (the plotly package's bundled copy) draws the labels: '<b>x</b>' must be
    shown as those 8 characters, with no <b> or <a> element made from it, in ticks, legend, title,
    text on points and hover."""
    sync_api = pytest.importorskip("playwright.sync_api")
    texts = vocabulary()
    step = STEPS["top-k and top-p"]()
    figs = {"dist": views.distribution_figure(step, texts, title="title <b>x</b>"),
            "emb": views.embedding_pca_figure(long_hostile_rows(), texts, title="title <b>x</b>")}
    page_html = "".join(f'<div id="{k}">{fig.to_html(full_html=False, include_plotlyjs=k == "dist")}</div>'
                        for k, fig in figs.items())
    path = tmp_path / "figs.html"
    path.write_text(f"<html><head><meta charset=\"utf-8\"></head><body>{page_html}</body></html>", encoding="utf-8")
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=["--no-sandbox"])
        page = browser.new_page(viewport={"width": 1400, "height": 1200})
        page.goto(path.as_uri())
        page.wait_for_function("document.querySelectorAll('.main-svg').length >= 4")
        found = page.evaluate("""() => {
            const texts = el => Array.from(document.querySelectorAll(`#${el} svg text`), t => t.textContent);
            const made = Array.from(document.querySelectorAll('svg a, svg b')).length;
            return {dist: texts('dist'), emb: texts('emb'), made: made,
                    bold: Array.from(document.querySelectorAll('svg tspan[style*="bold"]'), t => t.textContent)};
        }""")
        # hover over the first bar of the bottom panel: its hover label shows the token as text
        box = page.locator("#dist .barlayer .point path").first.bounding_box()
        page.mouse.move(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
        page.wait_for_selector("#dist .hoverlayer text")
        hover = page.evaluate("() => Array.from(document.querySelectorAll('#dist .hoverlayer text'), t => t.textContent)")
        browser.close()
    first = label(texts, expected_shown(step)[0])
    assert "<b>x</b>" in found["dist"] and "&amp;" in found["dist"] and "</" in found["dist"]   # ticks
    assert "title <b>x</b>" in found["dist"] and "title <b>x</b>" in found["emb"]                 # titles
    assert any(t.startswith("chosen: ") for t in found["dist"])                                   # legend
    assert "<b>x</b>" in found["emb"]                                 # a labelled point (the longest rows)
    assert any(t.startswith("␣w") for t in found["dist"])             # visible spaces, read as UTF-8
    assert found["made"] == 0 and found["bold"] == []                 # no markup made from a label
    assert any(first.replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&") in h for h in hover), hover


# ------------------------------------------------------------------------------ embeddings

def test_a_large_embedding_plot_has_every_point_and_labels_a_spread_subset():
    g = torch.Generator().manual_seed(0)
    weight = torch.randn(V, 16, generator=g)
    weight[:len(HOSTILE)] *= 5                       # the longest rows: labelled where they land
    texts = vocabulary()
    fig = views.embedding_pca_figure(weight, texts, specials=["<|endoftext|>"])
    points = [t for t in fig.data if t.mode == "markers"]
    ids = sorted(i for t in points for i in t.customdata)
    assert ids == list(range(V))                     # every token is a point …
    for t in points:                                 # … whose hover is its text
        assert list(t.text) == [label(texts, i) for i in t.customdata]
    (words,) = [t for t in fig.data if t.mode == "text"]
    shown = list(words.customdata)
    assert len(shown) <= LABELLED[0] * LABELLED[1] and list(words.text) == [tick(texts, i) for i in shown]
    assert list(words.hovertext) == [label(texts, i) for i in shown]
    # recomputed: in each grid cell over the PCA plane, the token with the longest row
    coords, _ = views.pca_2d(weight)
    xy = coords.numpy().astype(np.float64)
    norm = weight.norm(dim=-1).numpy()
    lo, hi = xy.min(0), xy.max(0)
    best = {}
    for i in range(V):
        c = tuple(min(n - 1, max(0, math.floor((xy[i, d] - lo[d]) / (hi[d] - lo[d]) * n))) for d, n in enumerate(LABELLED))
        if c not in best or (norm[i], -i) > (norm[best[c]], -best[c]):
            best[c] = i
    assert shown == sorted(best.values())
    assert len(fig.to_json()) < 400_000


def test_pca_of_a_long_table_agrees_with_the_svd():
    g = torch.Generator().manual_seed(3)
    x = torch.randn(3000, 12, generator=g) @ torch.randn(12, 12, generator=g) + 4.0   # N > 8·D: the D × D route
    coords, frac = views.pca_2d(x)
    xc = x.double() - x.double().mean(0)
    U, S, Vh = torch.linalg.svd(xc, full_matrices=False)
    np.testing.assert_allclose(coords.abs().numpy(), (xc @ Vh[:2].T).abs().numpy(), atol=2e-4)
    np.testing.assert_allclose(frac.numpy(), ((S ** 2)[:2] / (S ** 2).sum()).numpy(), rtol=1e-5)
    again, _ = views.pca_2d(x.flip(0))                # the same signs whatever the order of the rows
    np.testing.assert_allclose(again.flip(0).numpy(), coords.numpy(), atol=2e-4)


def test_a_small_embedding_plot_still_labels_every_token():
    chars = [chr(33 + i) for i in range(70)]
    fig = views.embedding_pca_figure(torch.randn(70, 8), chars)
    assert sorted(c for t in fig.data for c in t.text) == sorted(plotly_text(c) for c in chars)


def brute_force_neighbours(w: np.ndarray, i: int, k: int) -> list[tuple[int, float]]:
    norms = np.sqrt((w * w).sum(1))
    cos = [(float(w[i] @ w[j] / (max(norms[i], 1e-12) * max(norms[j], 1e-12))), j) for j in range(len(w)) if j != i]
    cos.sort(key=lambda c: (-c[0], c[1]))
    return [(j, c) for c, j in cos[:k]]


@pytest.mark.parametrize("token_id,k", [(0, 10), (5, 1), (7, 500), (3, 39)])
def test_nearest_tokens_matches_a_brute_force_cosine(token_id, k):
    g = torch.Generator().manual_seed(token_id)
    w = torch.randn(40, 6, generator=g)
    w[9] = 0.0                       # a row of zeros: cosine 0 with everything
    w[11] = w[12] * 3                # the same direction: cosine 1 with each other
    w[20] = w[token_id] * 0.5        # the same direction as the token: its nearest
    got = nearest_tokens(w, token_id, k)
    want = brute_force_neighbours(w.double().numpy(), token_id, k)
    assert [i for i, _ in got] == [i for i, _ in want]
    np.testing.assert_allclose([c for _, c in got], [c for _, c in want], atol=1e-12)
    assert token_id not in [i for i, _ in got] and len(got) == min(k, 39)
    assert got[0][0] == 20 and got[0][1] == pytest.approx(1.0)


def test_nearest_tokens_names_a_bad_request():
    w = torch.randn(5, 3)
    for token_id, k in ((5, 3), (-1, 3), (1.5, 3), (0, 0), (0, True)):
        with pytest.raises(ValueError, match="token_id|k must"):
            nearest_tokens(w, token_id, k)


def test_neighbours_html_escapes_every_text():
    out = neighbours_html("nearest to <b>x</b>", [(1, "<script>alert(1)</script>", 0.5), (2, " the", -0.25)],
                          note="'<i>' is 2 tokens")
    assert "<script>" not in out and "&lt;script&gt;" in out and "&lt;b&gt;x&lt;/b&gt;" in out
    assert "&#x27;&lt;i&gt;&#x27;" in out and "␣the" in out and "+0.500" in out and "-0.250" in out


# ------------------------------------------------------------------------------ fill-in-the-blanks

def test_text_probs_gives_the_special_tokens_nothing():
    from scratchformer.inference.blanks import _text_probs   # noqa: the function under test
    from scratchformer.tokenizers import BPETokenizer, CharTokenizer
    for tok in (CharTokenizer(list("abc"), specials=("<mask>", "<pad>")),
                BPETokenizer.train("to be or not to be", 260, specials=("<|endoftext|>",))):
        logits = torch.randn(2, tok.vocab_size + 3)           # a head may be wider than the vocabulary
        special = [i for i in range(tok.vocab_size) if tok.is_special(i)]
        old = logits[..., :tok.vocab_size].float().index_fill(-1, torch.tensor(special), float("-inf"))
        torch.testing.assert_close(_text_probs(logits, tok), torch.softmax(old, -1), rtol=0, atol=0)


# ------------------------------------------------------------------------------ the Embeddings tab

@pytest.fixture(scope="module")
def bank(tmp_path_factory):
    from app_checkpoints import make_checkpoints, make_word_checkpoints
    from scratchformer.app.bank import ModelBank
    folder = make_word_checkpoints(make_checkpoints(tmp_path_factory.mktemp("ckpts")))
    return ModelBank.load(folder, device="cpu")


def test_the_embeddings_tab_follows_the_pair_of_models(bank):
    from scratchformer.app import embeddings_tab as tab
    from scratchformer.app.bank import LSTM_NAME, SMALL_PAIR, TRANSFORMER, WORD_PAIR
    assert WORD_PAIR in bank.pairs()
    with gr.Blocks() as demo:
        pair = gr.Radio(bank.pairs(), value=SMALL_PAIR)
        tab.build_embeddings_tab(bank, pair)
    token_box = next(b for b in demo.blocks.values() if getattr(b, "elem_id", None) == "emb-token")
    assert token_box.value == "k"                    # the character pair: a character
    fns = {f.api_name: f for f in demo.fns.values()}
    for name in ("embedding_tables", "embedding_neighbours", "hidden_states"):
        assert fns[name].inputs[-1] is pair          # the pair is every view's last control
    for name in ("embedding_tables", "hidden_states", "embedding_pair_token"):
        assert (pair._id, "change") in [tuple(t) for t in fns[name].targets], name
    # another pair: the token box starts on that tokenizer's token, then the neighbours follow
    assert fns["embedding_pair_token"].fn(WORD_PAIR) == " the" and fns["embedding_pair_token"].fn(SMALL_PAIR) == "k"
    assert fns["embedding_pair_neighbours"].inputs == fns["embedding_neighbours"].inputs

    words = bank.for_pair(WORD_PAIR)
    word_tok = words.get(TRANSFORMER).tokenizer
    assert tab.default_token(word_tok) == " the" and tab.default_token(bank.get(TRANSFORMER).tokenizer) == "k"

    # the tables: the word models' 320 tokens as points, every one of them
    t_fig, l_fig, *_ = fns["embedding_tables"].fn(WORD_PAIR)
    for fig in (t_fig, l_fig):
        assert sum(len(t.customdata) for t in fig.data if t.mode == "markers") == word_tok.vocab_size
    small_fig = fns["embedding_tables"].fn(SMALL_PAIR)[0]
    assert sum(len(t.x) for t in small_fig.data) == 65

    # nearest tokens, both models, recomputed from their own embedding tables
    notes, t_html, l_html = fns["embedding_neighbours"].fn(" the", WORD_PAIR)
    the = word_tok.encode(" the")[0]
    for name, out in ((TRANSFORMER, t_html), (LSTM_NAME, l_html)):
        table = words.get(name).model.token_embedding_table()
        want = brute_force_neighbours(table.detach().double().numpy(), the, tab.N_NEIGHBOURS)
        rows = re.findall(r'</code></td><td style="text-align:right">(\d+)</td><td style="text-align:right">([+-][\d.]+)</td>', out)
        assert [int(i) for i, _ in rows] == [j for j, _ in want], name
        assert [c for _, c in rows] == [f"{c:+.3f}" for _, c in want] and f"(id {the})" in out
    # a word of several tokens: its last one, said so
    _, t_html, _ = fns["embedding_neighbours"].fn(" king", WORD_PAIR)
    pieces = word_tok.pieces(word_tok.encode(" king"))
    assert len(pieces) == 3 and f"(id {word_tok.encode(' king')[-1]})" in t_html and "is 3 tokens" in t_html
    # the character pair: a character's neighbours; a hostile text is only text
    _, w_html, _ = fns["embedding_neighbours"].fn("<b>k", WORD_PAIR)
    assert "<b>k" not in w_html and "&lt;b&gt;k is 4 tokens" in w_html
    with pytest.warns(UserWarning, match="replaced by"):      # the page's toast (gr.Warning) says so too
        notes, c_html, _ = fns["embedding_neighbours"].fn("<b>k", SMALL_PAIR)
    k = bank.get(TRANSFORMER).tokenizer.encode("k")[0]
    assert "replaced by" in notes and "<b>" not in c_html and f"nearest to k (id {k})" in c_html
    # an empty box asks for a token; a long paste is cropped before it is encoded
    assert "Type a word" in fns["embedding_neighbours"].fn("", WORD_PAIR)[1]
    with pytest.warns(UserWarning, match="2,000 characters"):
        notes, *_ = fns["embedding_neighbours"].fn("x" * 2000, WORD_PAIR)
    assert "2,000 characters" in notes
    note, fig = fns["hidden_states"].fn("to be or not", WORD_PAIR)
    assert len(fig.data[0].x) == len(word_tok.encode("to be or not"))


def test_the_embeddings_tab_without_a_pair_shows_the_character_models(bank):
    from scratchformer.app import embeddings_tab as tab
    with gr.Blocks() as demo:
        tab.build_embeddings_tab(bank)
    fns = {f.api_name: f for f in demo.fns.values()}
    assert [type(c).__name__ for c in fns["embedding_neighbours"].inputs] == ["Textbox"]
    notes, t_html, l_html = fns["embedding_neighbours"].fn("k")
    assert "(id " in t_html and "(id " in l_html
