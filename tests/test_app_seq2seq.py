"""The app's encoder-decoder and GPT-vs-BERT sections: callbacks called directly, then the whole app
through gradio_client. Tiny random-weight checkpoints: the sections must work whatever the weights."""
import json
from pathlib import Path

import gradio as gr
import numpy as np
import pytest
import torch

from app_checkpoints import CHARS, make_checkpoints, serve
from scratchformer.app import blocks as ui  # noqa: E402
from scratchformer.checkpoint import save_checkpoint
from scratchformer.model.registry import build_model
from scratchformer.training.tasks import dates_tokenizer
from scratchformer.tokenizers import CharTokenizer
from scratchformer.model.config import TransformerConfig
from scratchformer.app.bank import ModelBank, ModelUnavailable
from scratchformer.app.seq2seq_tabs import DEFAULT_BLANKS, DEFAULT_SOURCE, decode_dates, fill_in

DECODE = dict(method="greedy", beam_size=3, alpha=0.6, temperature=1.0, top_k=0, top_p=1.0, seed=0,
              layer=1, head=1, step=1)


def make_encoder_checkpoints(folder: Path) -> Path:
    torch.manual_seed(0)
    tok = dates_tokenizer()
    s2s = TransformerConfig(model_type="seq2seq", vocab_size=tok.vocab_size, block_size=40, n_layer=2,
                            n_dec_layer=1, n_head=2, n_embd=16, pos="sinusoidal",
                            pad_id=tok.special_id("<pad>"), bos_id=tok.special_id("<bos>"),
                            eos_id=tok.special_id("<eos>"))
    save_checkpoint(folder / "seq2seq-dates", build_model(s2s).eval(), tok, {"exact_match": 0.0})
    btok = CharTokenizer(list(CHARS), specials=("<mask>",))
    bert = TransformerConfig(model_type="bert", vocab_size=btok.vocab_size, block_size=96, n_layer=2, n_head=2,
                             n_embd=16, mask_id=btok.special_id("<mask>"))
    save_checkpoint(folder / "bert-shakespeare", build_model(bert).eval(), btok, {"masked_char_accuracy": 0.0})
    return folder


@pytest.fixture(scope="module")
def ckpt_dir(tmp_path_factory) -> Path:
    return make_encoder_checkpoints(make_checkpoints(tmp_path_factory.mktemp("ckpts")))


@pytest.fixture(scope="module")
def banks(ckpt_dir):
    bank = ModelBank.load(ckpt_dir, device="cpu")
    return bank, bank   # one bank holds all four models


def decode(enc, source=DEFAULT_SOURCE, **kw):
    s = {**DECODE, **kw}
    return decode_dates(enc, source, *s.values())


# ---------------------------------------------------------------------------- callbacks, directly

@pytest.mark.parametrize("method", ["greedy", "sample", "beam"])
def test_decode_shows_three_kinds_of_attention(banks, method):
    _, enc = banks
    summary, grid, enc_fig, dec_fig, cross_fig, step_md, step_html, n, t = decode(enc, method=method, step=2)
    assert "Output:" in summary and method in summary
    assert ("| beam |" in summary) == (method == "beam")
    src_len = len(DEFAULT_SOURCE)
    assert 1 <= n <= 40 and t == min(2, n)
    assert len(grid.data) == 1 * 2                                   # decoder layers × heads
    assert np.asarray(enc_fig.data[0].z).shape == (src_len, src_len)
    dec = np.asarray(dec_fig.data[0].z, dtype=float)
    assert dec.shape == (n, n) and np.allclose(np.triu(dec, 1), 0)   # masked: never looks ahead
    cross = np.asarray(cross_fig.data[0].z, dtype=float)
    assert cross.shape == (n, src_len) and np.allclose(cross.sum(1), 1, atol=1e-4)
    assert f"Step {t} of {n}" in step_md and step_html.count("<span") == src_len


def test_decode_clips_the_step_and_rejects_bad_settings(banks):
    _, enc = banks
    *_, n, t = decode(enc, step=999)
    assert t == n
    for kw, message in [(dict(method="nucleus"), "method"), (dict(layer=9), "layer"), (dict(head=0), "head"),
                        (dict(beam_size=0, method="beam"), "beam_size"), (dict(seed=-1), "seed"),
                        (dict(temperature=-1.0, method="sample"), "temperature")]:
        with pytest.raises(ValueError, match=message):
            decode(enc, **kw)
    with pytest.raises(ValueError, match="source"):
        decode(enc, source="   ")
    with pytest.raises(ValueError, match="source"):
        decode(enc, source="x" * 41)


def test_fill_in_compares_bert_both_ways_and_gpt(banks):
    bank, enc = banks
    note, table, filled, bars, bert_fig, gpt_fig = fill_in(bank, DEFAULT_BLANKS, 3, False, 1, 1)
    assert table.count("<tr><td>blank") == DEFAULT_BLANKS.count("_") == 3
    assert "BERT (reads both sides)" in table and "causal mask" in table and "GPT" in table
    assert "_" not in filled.split("\n", 1)[1]
    n = len(DEFAULT_BLANKS)
    both = np.asarray(bert_fig.data[0].z, dtype=float)
    assert both.shape == (n, n) and not np.allclose(np.triu(both, 1), 0)
    causal = np.asarray(fill_in(bank, DEFAULT_BLANKS, 3, True, 1, 1)[4].data[0].z, dtype=float)
    assert np.allclose(np.triu(causal, 1), 0)                         # the toggle hides the right
    assert np.allclose(np.triu(np.asarray(gpt_fig.data[0].z, dtype=float), 1), 0)
    with pytest.raises(ValueError, match="blank"):
        fill_in(bank, "no blanks", 3, False, 1, 1)
    with pytest.raises(ValueError, match="top_k"):
        fill_in(bank, "a_", 0, False, 1, 1)
    with pytest.raises(ValueError, match="block_size"):
        fill_in(bank, "a" * 200 + "_", 3, False, 1, 1)


def test_sections_say_when_their_checkpoints_are_missing(tmp_path):
    bank = ModelBank.load(make_checkpoints(tmp_path), device="cpu")
    enc = bank
    with pytest.raises(ModelUnavailable, match="seq2seq-dates"):
        decode(enc)
    with gr.Blocks() as demo:
        from scratchformer.app.seq2seq_tabs import build_gpt_bert_tab, build_seq2seq_tab
        with gr.Tabs():
            build_seq2seq_tab(bank)
            build_gpt_bert_tab(bank)
    assert sum("unavailable" in (getattr(b, "value", "") or "") for b in demo.blocks.values()) == 2


# ------------------------------------------------------------------------------- through the server

@pytest.fixture(scope="module")
def client(ckpt_dir):
    from gradio_client import Client
    demo = ui.build_demo(ckpt_dir)
    url = serve(demo)
    try:
        yield Client(url, verbose=False)
    finally:
        demo.close()


def test_app_serves_the_encoder_decoder(client):
    out = client.predict("Mar 3 1999", "beam", 2, 0.6, 1.0, 0, 1.0, 0, 1, 1, 3, api_name="/seq2seq_decode")
    summary, grid, enc_plot, dec_plot, cross_plot, step_md, step_html, step = out
    assert "Output:" in summary and "| beam |" in summary
    assert "Step 3 of" in step_md and step_html.count("<span") == len("Mar 3 1999")
    assert all(p is not None for p in (grid, enc_plot, dec_plot, cross_plot))
    view = client.predict("Mar 3 1999", "greedy", 2, 0.6, 1.0, 0, 1.0, 0, 1, 2, 1, api_name="/seq2seq_view")
    assert "Step 1 of" in view[5]


def test_app_serves_gpt_vs_bert_and_reports_errors(client):
    note, table, filled, bars, bert_plot, gpt_plot = client.predict("To be, or not to b_", 3, True, 1, 1,
                                                                     api_name="/fill_in")
    assert table.count("<tr><td>blank") == 1 and "GPT" in table and "BERT" in filled
    with pytest.raises(Exception, match="blank"):
        client.predict("nothing to fill", 3, False, 1, 1, api_name="/fill_in")


def test_views_keep_digit_labels_as_categories_and_show_special_tokens():
    from scratchformer import views
    from scratchformer.views import cross_attention_heatmap, token_label
    out = list("1999-03-03") + ["<eos>"]
    fig = cross_attention_heatmap(torch.rand(11, 4), out, list("3 99"), highlight=2)
    # names such as "3 9" must stay categories (plotly would read them as the number 39)
    assert fig.layout.yaxis.type == fig.layout.xaxis.type == "category"
    assert list(fig.layout.yaxis.ticktext) == [token_label(c) for c in out] and token_label("<eos>") == "⟨eos⟩"
    assert fig.layout.shapes[0].y0 == 1.5
    square = views.attention_heatmap(torch.rand(4, 4), list("1 9-"))
    assert square.layout.xaxis.type == square.layout.yaxis.type == "category"
