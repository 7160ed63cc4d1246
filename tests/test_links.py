"""Links: reading a URL query the way the page does (every tab's settings, checked like any input),
and what a link opens (the linked tab's own view on the link's values). No browser here; the browser
side (writing the URL, copy, a fresh page opening it) is tests/test_browser_share.py."""
import math

import pytest
import torch

from app_checkpoints import make_checkpoints
from test_app_seq2seq import make_encoder_checkpoints
from scratchformer.app import blocks as ui
from scratchformer.app.generate_tab import generate
from scratchformer.app.inspect_tabs import attention
from scratchformer.app.links import MAX_LINK_LENGTH, MAX_LINK_TEXT, Setting


@pytest.fixture(scope="module")
def app(tmp_path_factory):
    app = ui.build_app(make_encoder_checkpoints(make_checkpoints(tmp_path_factory.mktemp("c"))))
    yield app
    app.demo.close()


def test_every_tab_has_a_link_row_and_its_settings(app):
    settings = app.links.settings()
    # (the "compare" tab, characters vs words, needs the word pair, which these checkpoints lack)
    assert list(settings) == ["generate", "attention", "inside", "embeddings", "tokenizer", "lstm", "seq2seq",
                              "gpt-vs-bert", "models"]
    names = {tab: [s.name for s in ss] for tab, ss in settings.items()}
    assert names["generate"] == ["prompt", "temperature", "top_k", "top_p", "max_new_tokens", "seed", "layer",
                                 "pair", "model", "step"]
    # every tab of language models carries the page's choice of models (characters, words)
    assert names["attention"] == ["text", "causal", "layer", "head", "hide_first", "pair"]
    assert names["inside"] == ["text", "position", "block", "head", "temperature", "top_k", "top_p", "pair"]
    assert names["lstm"] == ["text", "layer", "units", "pair"]
    assert names["models"] == []
    # the ranges come from the controls: the tiny GPT has 2 layers and 2 heads
    layer = next(s for s in settings["attention"] if s.name == "layer")
    assert (layer.kind, layer.lo, layer.hi, layer.whole) == ("number", 1, 2, True)
    temperature = next(s for s in settings["generate"] if s.name == "temperature")
    assert (temperature.lo, temperature.hi, temperature.whole) == (0, 2, False)


def test_a_valid_link_is_read_exactly(app):
    link = app.links.parse("?tab=attention&text=To%20be%0Aor&causal=0&layer=2&head=1&hide_first=true")
    assert link.tab == "attention" and link.notes == []
    assert link.values == {"text": "To be\nor", "causal": False, "layer": 2, "head": 1, "hide_first": True}
    link = app.links.parse("tab=generate&prompt=ROMEO%3A&temperature=0.35&top_k=5&top_p=0.9&max_new_tokens=40"
                            "&seed=12345678901234&model=LSTM&step=3")
    assert link.notes == []
    assert link.values == {"prompt": "ROMEO:", "temperature": 0.35, "top_k": 5, "top_p": 0.9, "max_new_tokens": 40,
                           "seed": 12345678901234, "model": "LSTM", "step": 3}
    assert isinstance(link.values["top_k"], int) and isinstance(link.values["temperature"], float)


@pytest.mark.parametrize("query, note", [
    ("tab=nonsense&layer=2", "tab 'nonsense' is not a tab of this page"),
    ("tab=attention&layer=9", "layer must be in 1…2 (a whole number), got '9'"),
    ("tab=attention&layer=1.5", "layer must be in 1…2 (a whole number), got '1.5'"),
    ("tab=attention&head=-1", "head must be in 1…2 (a whole number), got '-1'"),
    ("tab=attention&layer=nan", "layer must be in 1…2"),
    ("tab=attention&layer=inf", "layer must be in 1…2"),
    ("tab=attention&layer=", "layer must be in 1…2 (a whole number), got ''"),
    ("tab=attention&causal=maybe", "causal must be 1 or 0 (true/false), got 'maybe'"),
    ("tab=attention&colour=red", "'colour' is not a setting of the attention tab"),
    ("tab=generate&temperature=3", "temperature must be in 0…2, got '3'"),
    ("tab=generate&seed=-4", "seed must be in 0…9223372036854775807 (a whole number), got '-4'"),
    ("tab=generate&model=GPT-5", "model must be one of Transformer, LSTM; got 'GPT-5'"),
    ("tab=seq2seq&method=guess", "method must be one of greedy, sample, beam; got 'guess'"),
    ("tab=models&layer=2", "'layer' is not a setting of the models tab (its settings: none)"),
    ("tab=attention&layer=1&layer=2", "layer appears more than once in the link; the last value was used"),
])
def test_what_a_link_cannot_use_is_ignored_with_a_note(app, query, note):
    link = app.links.parse(query)
    assert any(note in n for n in link.notes), link.notes
    assert "layer" not in link.values or link.values["layer"] in (1, 2)


def test_bad_values_leave_the_good_ones(app):
    link = app.links.parse("tab=attention&layer=7&head=2&causal=x&text=hi")
    assert link.tab == "attention"
    assert link.values == {"head": 2, "text": "hi"}
    assert len(link.notes) == 2


def test_garbage_never_raises(app):
    for query in ["%", "%%%zz&&==&", "tab", "=&=", "tab=%ZZ", "?" * 50, "a=" + "%" * 1000, "\x00\x01",
                  "tab=attention&text=%ED%A0%80", "tab=generate&" + "x=1&" * 2000, None, 42]:
        link = app.links.parse(query)
        assert isinstance(link.notes, list)


def test_no_query_and_no_tab(app):
    assert app.links.parse("").tab is None and app.links.parse("").notes == []
    link = app.links.parse("prompt=KING")          # no tab: the first tab's settings
    assert link.tab == "generate" and link.values == {"prompt": "KING"}


def test_long_texts_and_links_are_cropped_with_a_note(app):
    long = "a" * (MAX_LINK_TEXT + 500)
    link = app.links.parse(f"tab=attention&text={long}")
    assert link.values["text"] == "a" * MAX_LINK_TEXT
    assert any("kept the first 2,000" in n for n in link.notes)
    link = app.links.parse(f"tab=generate&prompt=b{long}")   # a prompt keeps its end, as the app does
    assert link.values["prompt"] == "a" * MAX_LINK_TEXT
    assert any("kept the last 2,000" in n for n in link.notes)
    link = app.links.parse("tab=attention&text=" + "c" * (MAX_LINK_LENGTH * 2))
    assert any("only its first 20,000 were read" in n for n in link.notes)


def test_setting_kinds_directly():
    s = Setting("heads", "choices", choices=("L1 H1", "L1 H2"))
    assert s.parse("L1 H2,L1 H1,L1 H2") == (["L1 H2", "L1 H1"], None)
    with pytest.raises(ValueError, match="heads may only list"):
        s.parse("L9 H9")
    n = Setting("alpha", "number", lo=0, hi=2)
    assert n.parse("1e-1") == (0.1, None)
    for bad in ["1e400", "-0.1", "0x1", "one"]:
        with pytest.raises(ValueError, match=r"alpha must be in 0…2"):
            n.parse(bad)
    assert not math.isnan(Setting("x", "number").parse("-1e300")[0])


def _run(fn, *args):
    """Call a Gradio-wired function the way the page does, outside a request (gr.Warning is a no-op)."""
    result = fn(*args)
    return list(result) if hasattr(result, "__next__") else [result]


def test_a_link_opens_the_same_attention_view_as_the_tab(app):
    row = next(r for r in app.links.rows if r.tab_id == "attention")
    link = app.links.parse("tab=attention&text=KING%20RICHARD&causal=0&layer=2&head=2")
    values = {**row.defaults(), **link.values}
    shown = row.view(**values)
    direct = attention(app.bank, "KING RICHARD", False, 2, 2, False)
    assert shown.head.to_json() == direct.head.to_json()
    assert shown.head.layout.meta["export"] == "attention_L2H2_nomask"
    # and those are the model's own weights
    loaded = app.bank.get("Transformer")
    ids = torch.tensor([loaded.tokenizer.encode("KING RICHARD")])
    weights = loaded.model(ids, causal=False, trace=True).trace.self_attn[1][0, 1]
    z = torch.tensor(shown.head.data[0].z, dtype=torch.float32)
    assert torch.allclose(z, weights.float(), atol=1e-6)


def test_a_generate_link_writes_the_same_text_and_opens_the_step(app):
    row = next(r for r in app.links.rows if r.tab_id == "generate")
    link = app.links.parse("tab=generate&prompt=KING%3A%0A&temperature=0.9&top_k=10&seed=5&max_new_tokens=12"
                            "&model=LSTM&step=4")
    values = {**row.defaults(), **link.values}
    updates = list(row.view(**values))
    texts = [u.transformer_text for u in updates if isinstance(u.transformer_text, str)]
    direct = list(generate(app.bank, "KING:\n", 0.9, 10, 0.95, 12, 5))[-1]
    assert texts[-1] == direct.transformer_text and len(direct.transformer_text) == 12
    last = updates[-1]
    assert last.why_model == "LSTM" and last.why_step["value"] == 4
    assert "LSTM, step 4 of 12" in last.why_caption
    # a step past the end of the generation shows its last step
    values["step"] = 500
    assert list(row.view(**values))[-1].why_step["value"] == 12
