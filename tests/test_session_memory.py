"""What a session keeps of a generation is small (ids and a few numbers, no tensors), and "why this
token" recomputed from it shows the generation's own numbers. Tiny random-weight checkpoints."""
import pickle

import gradio as gr
import numpy as np
import pytest
import torch
from gradio_client import Client

from app_checkpoints import make_checkpoints, serve
from scratchformer import views
from scratchformer.app import blocks as ui
from scratchformer.app import generate_tab as G
from scratchformer.app.bank import LSTM_NAME, TRANSFORMER, ModelBank
from scratchformer.inference.generation import generate_stream
from scratchformer.inference.replay import GenerationRecord, replay_step
from scratchformer.inference.sampling import SamplingSettings, renormalize

PROMPT = "JULIET:\nO Romeo, Romeo! wherefore art thou Romeo?\nDe"      # 50 characters


@pytest.fixture(scope="module")
def ckpt_dir(tmp_path_factory):
    return make_checkpoints(tmp_path_factory.mktemp("ckpts"))


@pytest.fixture(scope="module")
def bank(ckpt_dir):
    return ModelBank.load(ckpt_dir, device="cpu")


@pytest.mark.parametrize("name", [TRANSFORMER, LSTM_NAME])
@pytest.mark.parametrize("settings", [SamplingSettings(0.8, 20, 0.9), SamplingSettings(1.3, 5, 0.6),
                                      SamplingSettings(0.0, 0, 1.0)], ids=["k20-p0.9", "k5-p0.6", "greedy"])
def test_a_replayed_step_is_the_generations_own(bank, name, settings):
    """Every step of a 60-token generation (the GPT's 64-position KV cache refills twice on the way),
    kept whole here, against the replay from the record: distributions after temperature, after
    top-k and after top-p, the filters' cuts, the token and its probability."""
    loaded = bank.get(name)
    steps = list(generate_stream(loaded.model, loaded.tokenizer, PROMPT, settings=settings,
                                 max_new_tokens=60, seed=5))
    record = GenerationRecord(settings, 5)
    for g in steps:
        record.add(g)
    if name == TRANSFORMER:
        assert len(set(record.starts)) > 2, "the cache did not refill twice: make the run longer"
    for k, g in enumerate(steps, 1):
        want, got = g.step, replay_step(loaded.model, record, k)
        for t in ("probs_temperature", "probs_filtered"):
            torch.testing.assert_close(getattr(got, t), getattr(want, t), atol=1e-5, rtol=0)
        after_k = [renormalize(s.probs_temperature, ~s.cut_by_top_k) for s in (got, want)]
        torch.testing.assert_close(after_k[0], after_k[1], atol=1e-5, rtol=0)
        assert torch.equal(got.cut_by_top_k, want.cut_by_top_k) and torch.equal(got.cut_by_top_p, want.cut_by_top_p)
        assert got.token_id == want.token_id and abs(got.token_prob - want.token_prob) <= 1e-5
        assert got.settings == want.settings


def tensors_in(obj, seen=None) -> int:
    """How many tensors ``obj`` holds, however deep."""
    seen = set() if seen is None else seen
    if id(obj) in seen:
        return 0
    seen.add(id(obj))
    if isinstance(obj, torch.Tensor):
        return 1
    if isinstance(obj, dict):
        return sum(tensors_in(v, seen) for v in obj.values())
    if isinstance(obj, (list, tuple)):
        return sum(tensors_in(v, seen) for v in obj)
    return tensors_in(vars(obj), seen) if hasattr(obj, "__dict__") else 0


def test_the_session_keeps_ids_and_numbers_after_2000_tokens(bank, monkeypatch):
    monkeypatch.setattr(G, "STREAM_INTERVAL_S", 3600.0)      # no page updates on the way but the first
    *_, last = G.generate(bank, PROMPT, 0.8, 0, 0.95, 2000, 0)
    kept = last.steps
    assert tensors_in(kept) == 0
    for name in (TRANSFORMER, LSTM_NAME):
        rec = kept[name].record
        assert rec.n_steps == 2000 and len(rec.ids) == len(PROMPT) + 2000
    size = len(pickle.dumps(kept))
    assert size < 64_000, size             # 12 bytes a token and model: ~48 KB (it was ~5 MB of Steps)


def test_why_this_token_replayed_later_shows_what_the_generation_showed(bank):
    """The generation's last update draws "why this token" from the Step at hand; a later call
    recomputes it from what the session kept: the same figure, caption and context."""
    *_, last = G.generate(bank, PROMPT, 0.9, 10, 0.9, 30, 2)
    plot, caption = G.why_token(bank, last.steps, TRANSFORMER, 30)
    assert caption == last.why_caption
    for a, b in zip(views.as_figure(plot).data, views.as_figure(last.why_plot).data):
        np.testing.assert_allclose(np.asarray(a.y, float), np.asarray(b.y, float), atol=1e-6)
    attn, context = G.why_attention(bank, last.steps, TRANSFORMER, 30, None)
    assert context == last.why_context
    np.testing.assert_allclose(np.asarray(views.as_figure(attn).data[0].z),
                               np.asarray(views.as_figure(last.why_attention).data[0].z), atol=1e-6)
    # the LSTM's steps, replayed over the whole text so far
    plot, caption = G.why_token(bank, last.steps, LSTM_NAME, 7)
    assert "LSTM, step 7 of 30." in caption


def test_the_step_slider_of_a_one_token_generation_is_valid():
    one = G.step_slider(1, 1)
    assert one["maximum"] > 1 and one["value"] == 1 and one["interactive"] is False
    gr.Slider(1, 200, 200, step=1, **{k: v for k, v in one.items() if k != "__type__"}, render=False)
    many = G.step_slider(40, 7)
    assert (many["maximum"], many["value"], many["interactive"]) == (40, 7, True)


def test_a_one_token_generation_through_the_server(ckpt_dir):
    demo = ui.build_demo(ckpt_dir)
    try:
        client = Client(serve(demo), verbose=False)
        out = client.predict("ROMEO:\n", 0.8, 0, 0.95, 1, 0, api_name="/generate")
        assert len(out[0]) == len(out[2]) == 1 and "1 tokens" in out[1]
        plot, caption = client.predict(TRANSFORMER, 1, api_name="/why_token")
        assert "step 1 of 1." in caption
    finally:
        demo.close()
