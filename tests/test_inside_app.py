"""The "Forward pass" tab's callbacks as the app calls them (tiny random checkpoints): every
view returns JSON-ready numbers, has an api_name, and bad input gets a message while the app serves on."""
import json
from pathlib import Path

import gradio as gr
import pytest
import torch

from app_checkpoints import make_checkpoints
from scratchformer.app import blocks as ui
from scratchformer.app import inside_tab as X
from scratchformer.app.bank import TRANSFORMER, ModelBank
from scratchformer.app.events import bound

TEXT = "ROMEO:\nBut soft, what light through yonder window breaks?"
API = ["inside_walkthrough", "inside_logit_lens", "inside_ablation", "inside_head_worth", "inside_heads",
       "inside_lstm_step", "inside_lstm_ablation"]


@pytest.fixture(scope="module")
def ckpt_dir(tmp_path_factory) -> Path:
    return make_checkpoints(tmp_path_factory.mktemp("ckpts"))


@pytest.fixture(scope="module")
def bank(ckpt_dir) -> ModelBank:
    return ModelBank.load(ckpt_dir)


CALLS = {
    "inside_walkthrough": (X.inside_walkthrough, (TEXT, 10, 2, 1, 0.8, 5, 0.9)),
    "inside_logit_lens": (X.inside_logit_lens, (TEXT,)),
    "inside_ablation": (X.inside_ablation, (TEXT, ["L1 H2"], ["FFN 2"], "mean", 10)),
    "inside_head_worth": (X.inside_head_worth, (TEXT, "zero")),
    "inside_heads": (X.inside_heads, (TEXT,)),
    "inside_lstm_step": (X.inside_lstm_step, (TEXT, 10, 2, 3)),
    "inside_lstm_ablation": (X.inside_lstm_ablation, (TEXT, 1, "0, 4", True, 10)),
}


@pytest.mark.parametrize("name", API)
def test_every_view_returns_its_numbers_as_json(bank, name):
    fn, args = CALLS[name]
    out = bound(fn, bank)(*args)
    numbers = out[-1]
    assert json.loads(json.dumps(numbers, allow_nan=False)) == numbers   # plain JSON, no NaN


def test_heads_table_of_a_text_without_repeats_has_no_nan(bank):
    grid, table, rows = bound(X.inside_heads, bank)("abc")
    assert rows[0]["same"] is None and "—" in table
    json.dumps(rows, allow_nan=False)


def test_every_view_has_an_api_name(ckpt_dir):
    demo = ui.build_demo(ckpt_dir)
    names = {getattr(f, "api_name", None) for f in demo.fns.values()}
    assert set(API) <= names


def test_walkthrough_caption_and_figures_follow_the_choices(bank):
    note, diagram, formulas, vectors, attn, ffn, out, n = bound(X.inside_walkthrough, bank)(TEXT, 10, 2, 1, 0, 0, 1)
    assert n["position"] == 10 and n["char"] == TEXT[10] and "Position 10" in formulas
    assert "greedy picks" in formulas and n["final"]["sampling"]["kept"] >= 1
    assert len(attn.data[0].x) == 11                      # the keys 0…10 a causal query may see
    assert "block 2: attention" in diagram and "#fde68a" in diagram
    assert list(vectors.data[0].customdata[0][:4]) == pytest.approx(n["embedding"]["token"][:4])


def test_ablation_side_by_side_and_nothing_switched_off(bank):
    note, text, fig, cmp = bound(X.inside_ablation, bank)(TEXT, [], [], "zero", 10)
    assert cmp["loss_increase"] == 0 and "Switched off:** nothing" in text
    note, text, fig, cmp = bound(X.inside_ablation, bank)(TEXT, ["L1 H1", "L2 H2"], [], "zero", 10)
    assert "heads L1H1, L2H2 (zero)" in text and cmp["intact"]["loss"] != cmp["ablated"]["loss"]
    assert len(cmp["intact"]["continuation"]) == len(cmp["ablated"]["continuation"]) == 10


@pytest.mark.parametrize("name,args,message", [
    ("inside_walkthrough", ("", 0, 1, 1, 1, 0, 1), "empty"),
    ("inside_walkthrough", (TEXT, 500, 1, 1, 1, 0, 1), "position 500 is outside the text"),
    ("inside_walkthrough", (TEXT, 1, 3, 1, 1, 0, 1), r"layer must be in 1…2"),
    ("inside_walkthrough", (TEXT, 1, 1, 5, 1, 0, 1), r"head must be in 1…2"),
    ("inside_walkthrough", (TEXT, 1.5, 1, 1, 1, 0, 1), "position must be a whole number"),
    ("inside_ablation", (TEXT, ["L3 H1"], [], "zero", 10), "layer 3 does not exist"),
    ("inside_ablation", (TEXT, ["L1 H9"], [], "zero", 10), "head 9 of layer 1 does not exist"),
    ("inside_ablation", (TEXT, ["head one"], [], "zero", 10), "not understood"),
    ("inside_ablation", (TEXT, ["L1 H1", "L1 H2", "L2 H1", "L2 H2"], ["FFN 1", "FFN 2"], "zero", 10),
     "every head and every feed-forward"),
    ("inside_ablation", (TEXT, [], [], "half", 10), "mode must be one of"),
    ("inside_ablation", ("a", [], [], "zero", 10), "at least two characters"),
    ("inside_lstm_step", (TEXT, 1, 1, 99), r"unit must be in 0…15"),
    ("inside_lstm_ablation", (TEXT, 1, "x, y", False, 10), "units must be numbers"),
    ("inside_lstm_ablation", (TEXT, 1, "40", False, 10), "units are 0…15"),
])
def test_bad_input_gets_a_message_and_the_app_serves_on(bank, name, args, message):
    fn = CALLS[name][0]
    with pytest.raises(gr.Error, match=message):
        bound(fn, bank)(*args)
    bound(X.inside_logit_lens, bank)(TEXT)                 # and the next request works


def test_requests_leave_the_shared_model_unchanged(bank):
    model = bank.get(TRANSFORMER).model
    before = {k: v.clone() for k, v in model.state_dict().items()}
    for name in ("inside_ablation", "inside_head_worth", "inside_walkthrough"):
        fn, args = CALLS[name]
        bound(fn, bank)(*args)
    assert not model.training
    assert all(torch.equal(v, model.state_dict()[k]) for k, v in before.items())
