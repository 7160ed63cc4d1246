"""Characters vs words (inference/compare.py, views/compare.py, app/compare_tab.py): the per-character
numbers are the models' own per-token numbers, spread and recomputed here another way."""

import gradio as gr
import numpy as np
import pytest

from app_checkpoints import make_checkpoints, make_word_checkpoints
from scratchformer.app.bank import TRANSFORMER, WORD_TRANSFORMER, ModelBank
from scratchformer.app.compare_tab import build_compare_tab, characters_vs_words
from scratchformer.inference.compare import find_word, per_character, side, token_at, word_spans
from scratchformer.inference.traced import run_traced

TEXT = "JULIET:\nO Romeo, Romeo! wherefore art thou Romeo?"


@pytest.fixture(scope="module")
def bank(tmp_path_factory):
    return ModelBank.load(make_word_checkpoints(make_checkpoints(tmp_path_factory.mktemp("c"))), device="cpu")


def test_a_tokens_value_is_shared_by_its_characters():
    pieces = ["The", " king", "'s", " ", "😀"]
    values = [3.0, 5.0, 1.0, 0.5, 2.0]
    spread = per_character(values, pieces)
    assert len(spread) == len("".join(pieces))
    assert spread[:3] == [1.0, 1.0, 1.0] and spread[3:8] == [1.0] * 5
    assert sum(spread) == pytest.approx(sum(values))
    assert token_at(pieces, 4) == 1 and token_at(pieces, 9) == 2 and token_at(pieces, 10) == 3


def test_find_word_takes_whole_words_only():
    assert find_word("the father's fat", "fat") == 15       # not inside "father"
    assert word_spans("O Romeo, thou") == [(0, 1), (2, 7), (9, 13)]
    with pytest.raises(ValueError, match="not in the text"):
        find_word("abc", "xyz")
    with pytest.raises(ValueError, match="word is empty"):
        find_word("abc", "  ")


def test_a_side_agrees_with_the_traced_pass(bank):
    """bits per character from the spread numbers = TracedText.bits_per_char (Σ bits ÷ characters)."""
    for name in (TRANSFORMER, WORD_TRANSFORMER):
        loaded = bank.get(name)
        traced = run_traced(loaded.model, loaded.tokenizer, loaded.tokenizer.encode(TEXT))
        q = len(traced.pieces) - 1
        row = traced.trace.self_attn[1][0, 0][q, :q + 1].tolist()
        sd = side(traced.pieces, traced.bits, row, q)
        assert sd.bits_per_char == pytest.approx(traced.bits_per_char, rel=1e-6)
        assert sum(sd.attention) == pytest.approx(1.0, abs=1e-5)
        assert len(sd.bits) == len(TEXT)


def test_the_tab_shows_both_models_on_one_axis(bank):
    note, fig, caption = characters_vs_words(bank, TEXT, "wherefore", 2, 1)
    words = bank.get(WORD_TRANSFORMER)
    ids = words.tokenizer.encode(TEXT)
    traced = run_traced(words.model, words.tokenizer, ids)
    bars = {t.name: t for t in fig.data if t.showlegend is not False}
    word_bits = np.array(bars["word Transformer"].y, dtype=float)
    # recompute: token k's bits over its characters
    expected = []
    for b, p in zip(traced.bits, traced.pieces):
        expected += [b / len(p)] * len(p)
    np.testing.assert_allclose(word_bits, np.array(expected, dtype=float), rtol=1e-6)
    q_char = TEXT.index("wherefore") + len("wherefore") - 1
    k = token_at(traced.pieces, q_char)
    attn = [t for t in fig.data if t.showlegend is False and t.name == "word Transformer"][0]
    row = traced.trace.self_attn[1][0, 0][k]
    assert sum(attn.y) == pytest.approx(1.0, abs=1e-5)
    assert sum(attn.y[sum(map(len, traced.pieces[:k])):sum(map(len, traced.pieces[:k + 1]))]) == \
        pytest.approx(float(row[k]), abs=1e-5)
    assert "bits per character" in caption and note == ""


def test_hostile_input_is_refused_or_escaped(bank):
    note, *_ = characters_vs_words(bank, TEXT, "<script>", 1, 1)   # a word not in the text: its last word
    assert "is not in the text" in note and "Romeo" in note and "<script>" not in note
    with pytest.raises(ValueError, match="no word to show"):
        characters_vs_words(bank, "?! ... ;", "x", 1, 1)
    with pytest.raises(ValueError, match="layer must be in 1…2"):
        characters_vs_words(bank, TEXT, "Romeo", 9, 1)
    with pytest.raises(ValueError, match="word must be text of at most 64"):
        characters_vs_words(bank, TEXT, "x" * 65, 1, 1)
    _, fig, caption = characters_vs_words(bank, "<b>x</b> & Romeo <img src=x onerror=alert(1)>", "Romeo", 1, 1)
    assert "<img" not in caption and "<b>x" not in caption
    assert "<b>x" not in str(fig.to_plotly_json())


def test_the_tab_is_built_only_with_a_word_pair(bank, tmp_path):
    with gr.Blocks() as demo:
        build_compare_tab(bank)
    assert any(getattr(fn, "api_name", None) == "characters_vs_words" for fn in demo.fns.values())
    chars_only = ModelBank.load(make_checkpoints(tmp_path), device="cpu")
    with gr.Blocks() as demo:
        build_compare_tab(chars_only)
    assert not any(getattr(fn, "api_name", None) == "characters_vs_words" for fn in demo.fns.values())
