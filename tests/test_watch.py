"""The watch panel and "why this token" show the model's own attention, over exactly the context the
generator gave it: recomputed here from the text, and checked against the step's own distribution."""
import json

import pytest
import torch

from app_checkpoints import make_checkpoints
from scratchformer import views
from scratchformer.app import generate_tab
from scratchformer.app.bank import TRANSFORMER, ModelBank
from scratchformer.app.generate_tab import generate, why_attention
from scratchformer.inference.generation import refill_keep
from scratchformer.inference.replay import replay_step
from scratchformer.inference.sampling import SamplingSettings, sample_step


@pytest.fixture(scope="module")
def bank(tmp_path_factory):
    return ModelBank.load(make_checkpoints(tmp_path_factory.mktemp("c")), device="cpu")


@pytest.fixture(scope="module")
def run(bank):
    """A generation long enough for the KV cache (64 positions) to refill: 50 + 60 characters."""
    prompt = "JULIET:\nO Romeo, Romeo! wherefore art thou Romeo?\nDe"
    # an update per token pair, each with the watch panel (not kept to a share of the time)
    saved = generate_tab.STREAM_INTERVAL_S, generate_tab.WATCH_SHARE
    generate_tab.STREAM_INTERVAL_S, generate_tab.WATCH_SHARE = 0.0, 1.0
    try:
        updates = list(generate(bank, prompt, 1.0, 0, 1.0, 60, 3, 2))
    finally:
        generate_tab.STREAM_INTERVAL_S, generate_tab.WATCH_SHARE = saved
    return prompt, updates


def heat_z(fig_json: str):
    return json.loads(fig_json)["data"][0]


def test_the_context_is_the_refilled_window_and_its_logits_are_the_steps_own(bank, run):
    prompt, updates = run
    rec = updates[-1].steps[TRANSFORMER].record
    loaded = bank.get(TRANSFORMER)
    block = loaded.config.block_size
    text = prompt + updates[-1].transformer_text
    starts, lens = rec.starts, rec.lens
    assert starts[0] == 0 and lens[0] == len(prompt)
    refilled = [k for k in range(1, len(starts)) if starts[k] != starts[k - 1]]
    assert refilled, "the cache never refilled: make the run longer"
    k = refilled[0]
    assert lens[k] == refill_keep(block) and starts[k] == len(prompt) + k - refill_keep(block)
    for k in (0, refilled[0], refilled[0] + 3, len(starts) - 1):
        step = replay_step(loaded.model, rec, k + 1)     # the generation's own (tests/test_session_memory.py)
        # the context, rebuilt from the characters (not from the stored ids)
        ids = loaded.tokenizer.encode(text[starts[k]:starts[k] + lens[k]])
        with torch.no_grad():
            out = loaded.model(torch.tensor([ids]), trace=True)
        logits = out.logits[0, -1]
        again = sample_step(logits, SamplingSettings(1.0, 0, 1.0), torch.Generator().manual_seed(0))
        torch.testing.assert_close(again.probs_temperature, step.probs_temperature, atol=1e-5, rtol=0)
        # … and the attention the app shows for that step is that pass's, per head of layer 2
        fig, context = why_attention(bank, updates[-1].steps, TRANSFORMER, k + 1, 2)
        z = torch.tensor(views.as_figure(fig).data[0].z)
        want = out.trace.self_attn[1][0, :, -1, :]
        torch.testing.assert_close(z[:-1], want, atol=1e-6, rtol=0)
        torch.testing.assert_close(z[-1], want.mean(0), atol=1e-6, rtol=0)    # the average row
        torch.testing.assert_close(z.sum(-1), torch.ones(len(z)), atol=1e-5, rtol=0)
        assert f"characters {starts[k] + 1}…{starts[k] + lens[k]}" in context
    # a plain crop of the last block_size characters is NOT what the model saw after the refill
    k = refilled[0] + 3
    crop = loaded.tokenizer.encode(text[:len(prompt) + k][-block:])
    with torch.no_grad():
        plain = torch.softmax(loaded.model(torch.tensor([crop])).logits[0, -1], -1)
    assert (plain - replay_step(loaded.model, rec, k + 1).probs_temperature).abs().max() > 1e-4


def sent(plot):
    """A figure the stream sent serialised (generate_tab._sent), as a figure again."""
    import plotly.io as pio
    return pio.from_json(plot.plot)


def test_the_watch_panel_follows_every_generated_character(run):
    _, updates = run
    streamed = [u for u in updates[1:-1]]
    assert len(streamed) == 59
    titles = [sent(u.watch_attention).layout.title.text for u in streamed]
    # the first text is sent at once, before any drawing: the panel still says it is coming
    assert not (titles[0] or "").startswith("step") and streamed[0].transformer_text
    assert titles[1].startswith("step 2:") and titles[-1].startswith("step 59:")
    assert all("layer 2" in t for t in titles[1:])
    dists = [sent(u.watch_distribution).data[0].x for u in streamed[1:6]]
    assert all(abs(sum(d) - 1) < 1.0 for d in dists)     # the top characters of a distribution


def test_a_costly_watch_panel_is_redrawn_a_share_of_the_time(bank, monkeypatch):
    """Every update carries the text; the watch panel, when it costs more than a token (GPT-2 re-reads
    its whole context), only every so often: at most WATCH_SHARE of the generation's time."""
    import time
    slow = generate_tab._watch

    def watch(*args):
        time.sleep(0.02)
        return slow(*args)
    monkeypatch.setattr(generate_tab, "_watch", watch)
    monkeypatch.setattr(generate_tab, "STREAM_INTERVAL_S", 0.0)
    first, *updates, last = list(generate(bank, "ROMEO:", 1.0, 0, 1.0, 60, 3, 2))
    # an update not drawn sends the last drawing again (the same object; first: a placeholder)
    drawn = {id(u.watch_attention) for u in updates} - {id(first.watch_attention)}
    assert len(updates) == 59 and 1 <= len(drawn) < 30


def test_the_watch_panels_share_shrinks_when_many_stream():
    """A quarter of the time for the panels while up to 4 stream, then less (8: an eighth), never
    under WATCH_SHARE_BUSY: with 32 visitors the text comes first."""
    streaming = generate_tab.Streaming()
    shares = {}
    for n in (1, 2, 4, 8, 13, 32, 200):
        streaming.count = n
        shares[n] = streaming.watch_share()
    assert shares[1] == shares[4] == generate_tab.WATCH_SHARE == 0.25
    assert shares[8] == 0.125 and shares[32] == shares[200] == generate_tab.WATCH_SHARE_BUSY
    assert list(shares.values()) == sorted(shares.values(), reverse=True)
