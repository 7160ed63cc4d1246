"""The app's callbacks called directly (no server): tiny random-weight checkpoints, real code paths."""
import subprocess
import sys
import threading
import time
from pathlib import Path

import gradio as gr
import numpy as np
import pytest
import torch

from app_checkpoints import CHARS, GPT_CONFIG, make_checkpoints
from scratchformer import views
from scratchformer.app import blocks as ui
from scratchformer.app import events, live_tab
from scratchformer.app.arrival import ArrivalViews, after_defaults, on_arrival
from scratchformer.app import generate_tab as G
from scratchformer.app import inspect_tabs as I
from scratchformer.app.bank import LANGUAGE_MODELS, MODELS, ModelBank, configure_torch
from scratchformer.app.policy import prepare_text
from scratchformer.inference.replay import replay_step
from scratchformer.tokenizers import CharTokenizer

SETTINGS = dict(temperature=0.9, top_k=0, top_p=0.95, max_new_tokens=12, seed=3)


@pytest.fixture(scope="module")
def ckpt_dir(tmp_path_factory) -> Path:
    return make_checkpoints(tmp_path_factory.mktemp("ckpts"))


@pytest.fixture(scope="module")
def bank(ckpt_dir) -> ModelBank:
    return ModelBank.load(ckpt_dir)          # the GPU when there is one, as the app does


def run_generate(bank, prompt="ROMEO:\n", **kw):
    s = {**SETTINGS, **kw}
    generate = events.bound(G.generate, bank)            # as the app calls it: errors become gr.Error
    return list(generate(prompt, s["temperature"], s["top_k"], s["top_p"], s["max_new_tokens"], s["seed"]))


def z(plot):
    return np.asarray(plot.data[0].z, dtype=float)


# ------------------------------------------------------------------------------------------ generate

def test_generate_streams_both_models_token_by_token(bank, monkeypatch):
    monkeypatch.setattr(G, "STREAM_INTERVAL_S", 0.0)             # an update after every token pair
    outs = run_generate(bank)
    first, last = outs[0], outs[-1]
    assert first[0] == "" and first[2] == "" and "bits/char" in first[1] and "Transformer" in first[4]
    assert len(outs) == SETTINGS["max_new_tokens"] + 1          # the start, then one per token pair
    assert [len(o[0]) for o in outs[1:]] == list(range(1, 13))   # one character more each time
    assert len(last[0]) == len(last[2]) == 12
    assert "12 tokens" in last[1] and "tokens/s" in last[1] and "generating" not in last[1]
    steps = last[6]
    assert set(steps) == set(LANGUAGE_MODELS) and steps["LSTM"].record.n_steps == 12
    assert bank.get("Transformer").tokenizer.decode(steps["Transformer"].record.generated) == last[0]


def test_generate_updates_the_page_at_most_every_interval(bank, monkeypatch):
    every = run_generate(bank, max_new_tokens=40)
    monkeypatch.setattr(G, "STREAM_INTERVAL_S", 0.0)
    each = run_generate(bank, max_new_tokens=40)
    monkeypatch.setattr(G, "STREAM_INTERVAL_S", 3600.0)
    ends = run_generate(bank, max_new_tokens=40)
    assert len(each) == 41 and len(ends) == 3 and 3 <= len(every) <= 41   # the start, the first token, the end
    texts = [o[0] for o in every[1:]]
    assert all(a == b[:len(a)] and len(a) < len(b) for a, b in zip(texts, texts[1:]))  # growing
    assert every[-1][0] == each[-1][0] == ends[-1][0] and len(ends[-1][0]) == 40        # the same text


def test_many_streams_at_once_share_the_update_budget(bank, monkeypatch):
    # one stream alone updates every STREAM_INTERVAL_S; with 32 streams writing each updates 32 times
    # less often (the server's update budget is shared), and the text is the same
    assert G.STREAMING.count == 0 and G.FULL_RATE_STREAMS == 1
    assert G.STREAMING.interval_s() == G.STREAM_INTERVAL_S
    with G.STREAMING:
        assert G.STREAMING.interval_s() == G.STREAM_INTERVAL_S          # alone: the full rate
        with G.STREAMING:
            assert G.STREAMING.interval_s() == 2 * G.STREAM_INTERVAL_S
    assert G.STREAMING.count == 0
    monkeypatch.setattr(G, "STREAM_INTERVAL_S", 0.002)
    alone = run_generate(bank, max_new_tokens=300)
    monkeypatch.setattr(G.STREAMING, "count", 31)                     # 31 other streams are writing
    crowded = run_generate(bank, max_new_tokens=300)
    assert G.STREAMING.count == 31                                    # this one left when it ended
    assert abs(G.STREAMING.interval_s() - 0.002 * 31 / G.FULL_RATE_STREAMS) < 1e-12
    assert len(crowded) < len(alone) and crowded[-1][0] == alone[-1][0] and len(alone[-1][0]) == 300
    monkeypatch.setattr(G.STREAMING, "count", 0)
    with pytest.raises(Exception):
        run_generate(bank, temperature=-1)
    assert G.STREAMING.count == 0                                     # a refused request counts nothing


def test_generate_is_reproducible_per_seed(bank):
    a, b, c = (run_generate(bank, seed=s)[-1] for s in (7, 7, 8))
    assert a[0] == b[0] and a[2] == b[2]
    assert (a[0], a[2]) != (c[0], c[2])


@pytest.mark.parametrize("field,value,message", [
    ("temperature", -1.0, "temperature"), ("temperature", float("nan"), "temperature"),
    ("top_k", 2.5, "top_k"), ("top_k", -3, "top_k"), ("top_p", 1.5, "top_p"),
    ("max_new_tokens", 0, "max_new_tokens"), ("max_new_tokens", 10**9, "max_new_tokens"),
    ("seed", -1, "seed"), ("seed", 1.5, "seed")])
def test_generate_rejects_bad_settings_with_a_message_naming_them(bank, field, value, message):
    with pytest.raises(gr.Error, match=message):
        run_generate(bank, **{field: value})


def test_generate_accepts_empty_emoji_and_huge_prompts_with_a_note(bank):
    # each note is also a toast: gr.Warning, which outside a Gradio event is a Python UserWarning
    with pytest.warns(UserWarning, match="The prompt is empty"):
        empty = run_generate(bank, prompt="")[-1]
    assert "empty" in empty[5] and len(empty[0]) == 12
    with pytest.warns(UserWarning, match="Characters outside the vocabulary were replaced"):
        emoji = run_generate(bank, prompt="Hello 😀 wörld ß")[-1]
    assert "replaced" in emoji[5] and "😀" in emoji[5] and len(emoji[2]) == 12
    with pytest.warns(UserWarning) as toasts:
        huge = run_generate(bank, prompt="a" * 100_000)[-1]
    said = [str(w.message) for w in toasts]
    assert any("The text had 100,000 characters" in m for m in said)
    assert any("the Transformer reads the last 64 of the prompt's 2,000 tokens (its context length)" in m for m in said)
    assert "100,000" in huge[5] and "context length" in huge[5] and len(huge[0]) == 12


def test_why_token_replays_a_step_of_the_last_generation(bank):
    last = run_generate(bank)[-1]
    steps = last[6]
    fig, caption = G.why_token(bank, steps, "LSTM", 5)
    chosen = replay_step(bank.get("LSTM").model, steps["LSTM"].record, 5)   # = the generation's (test_session_memory)
    assert chosen.token_id == steps["LSTM"].record.generated[4]
    assert f"step 5 of 12" in caption and f"{chosen.token_prob:.3f}" in caption
    np.testing.assert_allclose(views.as_figure(fig).data[0].y, chosen.probs_temperature.numpy(), rtol=1e-6)
    with pytest.raises(gr.Error, match="step must be in 1…12"):
        events.friendly(G.why_token)(bank, steps, "LSTM", 13)
    with pytest.raises(gr.Error, match="generate some text first"):
        events.friendly(G.why_token)(bank, None, "LSTM", 1)


# ------------------------------------------------------------------------------------------ attention

def test_attention_with_and_without_the_causal_mask(bank):
    text = "To be, or not to be"
    note, grid, head, avg, diff, compare = I.attention(bank, text, True, 2, 1, False)
    assert note == "" and len(grid.data) == GPT_CONFIG["n_layer"] * GPT_CONFIG["n_head"]
    on = z(head)
    assert on.shape == (len(text), len(text))
    assert np.allclose(np.triu(on, 1), 0) and np.allclose(on.sum(1), 1, atol=1e-5)
    np.testing.assert_allclose(z(avg).sum(1), 1, atol=1e-5)
    off = z(I.attention(bank, text, False, 2, 1, False)[2])
    assert not np.allclose(np.triu(off, 1), 0)                      # the future is visible
    np.testing.assert_allclose(z(diff), off - on, atol=1e-5)
    assert "mask on" in compare and "mask off" in compare and "bits/char" in compare
    # the top prediction per position, counted: the number of changes the caption gives is true
    traced_on = I._traced(bank.get("Transformer"), bank.get("Transformer").tokenizer.encode(text), causal=True)
    traced_off = I._traced(bank.get("Transformer"), bank.get("Transformer").tokenizer.encode(text), causal=False)
    changed = int((traced_on.trace.logits[0].argmax(-1) != traced_off.trace.logits[0].argmax(-1)).sum())
    assert f"**{changed} of {len(text)}** top predictions change" in compare


def test_the_attention_comparison_keeps_a_hostile_text_as_text(tmp_path):
    from app_checkpoints import make_word_checkpoints
    from scratchformer.app.bank import WORD_PAIR
    words = ModelBank.load(make_word_checkpoints(make_checkpoints(tmp_path)), device="cpu").for_pair(WORD_PAIR)
    text = "```\n<img src=x onerror=alert(1)>"        # the BPE reads every character of it
    *_, compare = I.attention(words, text, True, 1, 1, False)
    assert "<img" not in compare and "`" not in compare and "&lt;" in compare and "&#96;" in compare


def test_attention_toggles_and_sliders_redraw_only_their_part(bank):
    text = "O Romeo, Romeo!"
    grid, head, avg = I.attention_view(bank, text, False, 1, 2, True)
    assert np.isnan(z(head)[:, 0]).all()                             # first token hidden
    head2, diff2 = I.attention_head(bank, text, True, 1, 2, False)
    full = I.attention(bank, text, True, 1, 2, False)
    np.testing.assert_allclose(z(head2), z(full[2]), atol=1e-6)
    np.testing.assert_allclose(z(diff2), z(full[4]), atol=1e-6)


@pytest.mark.parametrize("args,message", [
    (("", True, 1, 1, False), "empty"), ((None, True, 1, 1, False), "empty"),
    (("abc", True, 0, 1, False), "layer must be in 1…2"), (("abc", True, 1, 9, False), "head must be in 1…2"),
    (("abc", True, 1.5, 1, False), "layer must be in 1…2 \\(a whole number\\)")])
def test_attention_bad_input_gives_a_clear_error(bank, args, message):
    with pytest.raises(gr.Error, match=message):
        events.bound(I.attention, bank)(*args)


def test_analysis_crops_long_text_and_reports_unknown_characters(bank):
    note, *_ = I.attention(bank, "x" * 100_000, True, 1, 1, False)
    assert "100,000 characters" in note and f"reads {GPT_CONFIG['block_size']}" in note
    with pytest.warns(UserWarning, match="Characters outside the vocabulary"):   # the toast (gr.Warning)
        note, *_ = events.bound(I.attention, bank)("a 😀 b", True, 1, 1, False)
    assert "replaced" in note and "😀" in note


# ----------------------------------------------------------------------------- embeddings, LSTM, models

def test_embeddings_hidden_states_and_lstm_views(bank):
    from scratchformer.app import embeddings_tab as E
    emb_t, emb_l, sinus, learned = E.embedding_tables(bank)
    assert sum(len(t.x) for t in emb_l.data) == sum(len(t.x) for t in emb_t.data) == 65
    assert z(sinus).shape == (GPT_CONFIG["block_size"], GPT_CONFIG["n_embd"])
    np.testing.assert_allclose(z(learned), bank.get("Transformer").model.embed.pos.emb.weight.cpu().numpy(), rtol=1e-6)
    note, fig = E.hidden_states(bank, "Hark!")
    assert z(fig).shape == (GPT_CONFIG["n_layer"] + 1, 5)
    note, fig, units = I.lstm_inside(bank, "\"Hark,\" he said.\n", 2, 4)
    assert len(fig.data) == 4 and z(fig).shape == (4, 17) and units.count("unit ") == 4
    with pytest.raises(gr.Error, match="units must be in"):
        events.bound(I.lstm_inside, bank)("abc", 1, 1000)


def test_models_table_lists_size_loss_and_hardware(bank):
    table = I.models_table(bank)
    assert "3.500 nats/character" in table and "test \\(lstm\\)" in table and "2 layers × 2 heads" in table


# ----------------------------------------------------------------------------------- broken models

def test_a_broken_checkpoint_leaves_the_other_model_working(ckpt_dir, tmp_path):
    broken = make_checkpoints(tmp_path)
    (broken / "gpt-shakespeare" / "model.safetensors").write_bytes(b"not safetensors")
    bank = ModelBank.load(broken, device="cpu")
    assert not bank.available("Transformer") and bank.available("LSTM")
    assert "model.safetensors" in bank.slots["Transformer"].error
    last = run_generate(bank)[-1]
    assert "⚠️" in last[1] and "could not be loaded" in last[1] and len(last[2]) == 12
    with pytest.raises(gr.Error, match="could not be loaded"):
        events.bound(I.attention, bank)("abc", True, 1, 1, False)
    demo = ui.build_demo(bank=bank)                    # the page builds and says why
    assert "Transformer is unavailable" in demo.config["components"][0]["props"]["value"]


def test_a_missing_checkpoint_folder_is_reported(tmp_path):
    bank = ModelBank.load(tmp_path, device="cpu")
    assert "does not exist" in bank.slots["LSTM"].error
    with pytest.raises(gr.Error, match="no model could be loaded"):
        events.friendly(G.generate)(bank, "a", 1.0, 0, 1.0, 5, 0).__next__()


def test_the_page_is_laid_out_before_torch_is_imported(ckpt_dir):
    """build_demo reads only the checkpoints' configs: no torch before the server is up (it takes ~1 s)."""
    code = ("import sys; from scratchformer.app.blocks import build_app; app = build_app(sys.argv[1]); "
            "assert 'torch' not in sys.modules, 'torch imported'; "
            "assert not app.bank.ready and app.bank.offered('Transformer')")
    res = subprocess.run([sys.executable, "-c", code, str(ckpt_dir)], capture_output=True, text=True,
                         cwd=Path(__file__).resolve().parents[1], timeout=120)
    assert res.returncode == 0, res.stderr[-2000:]


def test_weights_that_fail_after_the_layout_are_reported_by_name_and_early_requests_wait(tmp_path):
    broken = make_checkpoints(tmp_path)
    (broken / "gpt-shakespeare" / "model.safetensors").write_bytes(b"not safetensors")   # the config is fine
    app = ui.build_app(broken)
    bank = app.bank
    assert not bank.ready and bank.offered("Transformer")          # laid out from its config
    # a request that comes before the weights: it waits for them, then gets the reason
    with pytest.raises(gr.Error, match="gpt-shakespeare.*model.safetensors"):
        events.bound(I.attention, bank)("abc", True, 1, 1, False)
    assert bank.ready and bank.available("LSTM") and not bank.offered("Transformer")
    # the page's header and the Transformer's panels say why, with the default views
    values = dict(zip([c._id for c in app.arrival.outputs], app.arrival.payload()))
    header = next(c for c in app.arrival.outputs if c.elem_id == "header")
    assert "Transformer is unavailable" in values[header._id]
    notes = [v for c, v in zip(app.arrival.outputs, app.arrival.payload())
             if "model-missing" in (c.elem_classes or []) and isinstance(v, dict) and v.get("visible")]
    assert notes and all("Transformer is unavailable" in n["value"] and "model\\.safetensors" in n["value"]
                         for n in notes)
    app.demo.close()


def test_events_wait_while_the_default_views_are_computed():
    """A visitor who acts before the page's defaults arrive must not see them overwrite the result:
    model events wait for the defaults while they are being computed (never when nobody started them)."""
    release, order = threading.Event(), []

    def slow_default():
        release.wait(30)
        order.append("defaults")
        return "default"

    def stream():
        order.append("stream")
        yield 1

    with ArrivalViews() as views:
        on_arrival([gr.Textbox()], slow_default)
        event, streamed = after_defaults(lambda: order.append("event")), after_defaults(stream)
    event()
    assert order == ["event"]                                  # not started: nothing to wait for
    views.start()
    threads = [threading.Thread(target=event), threading.Thread(target=lambda: list(streamed()))]
    for t in threads:
        t.start()
    time.sleep(0.3)
    assert order == ["event"]                                  # both wait for the defaults
    release.set()
    for t in threads:
        t.join(30)
    assert order[:2] == ["event", "defaults"] and sorted(order[2:]) == ["event", "stream"]


def test_the_first_screen_is_sent_first_and_the_other_tabs_are_computed_after_it():
    """The header and the first tab come in a page-load answer of their own; the other tabs' views
    are computed only once that answer is on its way (or when something needs them), so they do not
    compete with the first page's loading."""
    calls = []

    def view(name):
        return lambda: calls.append(name) or name

    with ArrivalViews() as views:
        on_arrival([gr.Markdown()], view("header"))
        on_arrival([gr.Textbox(), gr.Textbox()], lambda: calls.append("first tab") or ("a", "b"))
        views.mark_first_screen()
        on_arrival([gr.Textbox()], view("other tab"))
    views.start()
    assert views.payload(0) == ["header", "a", "b"]
    deadline = time.time() + 30
    while len(calls) < 3 and time.time() < deadline:
        time.sleep(0.01)
    assert calls == ["header", "first tab", "other tab"]          # the rest, after the first screen went
    assert views.payload(1) == ["other tab"] and views.payload() == ["header", "a", "b", "other tab"]
    assert calls == ["header", "first tab", "other tab"]          # each computed once

    # nobody opened the page: the other tabs wait, until a model event needs them (it waits for them)
    calls.clear()
    with ArrivalViews() as views:
        on_arrival([gr.Markdown()], view("header"))
        views.mark_first_screen()
        on_arrival([gr.Textbox()], view("other tab"))
        event = after_defaults(lambda: calls.append("event"))
    views.start()
    time.sleep(0.3)
    assert calls == ["header"]
    event()
    assert calls == ["header", "other tab", "event"]

    # the page-load events: the first screen on load, the other tabs right after it
    with gr.Blocks() as demo, ArrivalViews() as views:
        first = gr.Textbox()
        on_arrival([first], view("first"))
        views.mark_first_screen()
        other = gr.Textbox()
        on_arrival([other], view("other"))
        views.attach(demo)
    load = next(f for f in demo.fns.values() if any(t[1] == "load" for t in f.targets))
    then = next(f for f in demo.fns.values() if f.trigger_after == load._id)
    assert [o._id for o in load.outputs] == [first._id] and [o._id for o in then.outputs] == [other._id]
    assert all(f.api_visibility == "private" and not f.queue for f in (load, then))


# ------------------------------------------------------------------------------------------ the demo

SHIPPED = Path(__file__).resolve().parents[1] / "checkpoints"


@pytest.mark.skipif(not all((SHIPPED / f / "model.safetensors").exists() for f in (MODELS[n].folder for n in LANGUAGE_MODELS)),
                    reason="the trained checkpoints are not in checkpoints/")
def test_the_shipped_checkpoints_load_and_answer():
    shipped = ModelBank.load(SHIPPED)
    for name in LANGUAGE_MODELS:
        assert shipped.available(name), shipped.slots[name].error
    note, grid, *_ = I.attention(shipped, "ROMEO:\nWhat light?", True, 1, 1, False)
    assert len(grid.data) == shipped.get("Transformer").config.n_layer * shipped.get("Transformer").config.n_head
    assert len(run_generate(shipped, max_new_tokens=5)[-1][2]) == 5

def test_every_event_is_named_bounded_and_only_computes_the_latest_input(bank):
    demo = ui.build_demo(bank=bank)
    fns = list(demo.fns.values())
    names = {f.api_name for f in fns}
    assert {"generate", "why_token", "attention", "attention_view", "attention_head", "embedding_tables",
            "hidden_states", "lstm_gates"} <= names
    assert all(f.api_name for f in fns if f.api_visibility != "private")
    # the MCP tools (gr.api: no trigger, JSON out) are in the same groups, generate in its own
    tools = {f.api_name: f for f in fns if f.api_name and f.api_name.startswith("tool_")}
    assert {n: f.concurrency_id for n, f in tools.items()} == {"tool_generate": "generate", "tool_train_pair": "train", **{
        n: "live" for n in tools if n not in ("tool_generate", "tool_train_pair")}} and len(tools) == 6
    api = [f for f in fns if f.api_name and f.api_visibility != "private" and f.api_name not in tools]
    # a live training has a group of its own (its own line of trainings waits inside: live_tab.QUEUE);
    # a second click while it runs is ignored (once); Stop is not queued behind anything
    train, stop = (next(f for f in api if f.api_name == n) for n in ("train_live", "stop_live"))
    assert (train.concurrency_id, train.concurrency_limit, train.trigger_mode) == (
        "train", live_tab.RUNNING + live_tab.WAITING, "once") and not train.preprocess
    assert stop.queue and stop.concurrency_id == "live_control" and stop.concurrency_limit is None and not stop.preprocess
    api = [f for f in api if f not in (train, stop)]
    # generation has a group of its own, so nobody waits behind other people's keystrokes
    assert {f.api_name for f in api if f.concurrency_id == "generate"} == {"generate"}
    assert all(f.concurrency_id == "live" and f.concurrency_limit == events.MODEL_CONCURRENCY
               for f in api if f.api_name != "generate")
    # stale keystrokes collapse into the latest; raw values reach our checks (messages name the setting)
    assert all(f.trigger_mode == "always_last" and not f.preprocess for f in api)
    # typing, keyboard moves of sliders: `input` triggers, not only `release`
    # typing and deleting: the chosen head first, the other attention views right after (private
    # events of the page, in the same group and mode as the API's)
    typed, rest = (next(f for f in fns if f.api_name == n) for n in ("attention_typed", "attention_rest"))
    assert any(t[1] == "change" for t in typed.targets) and rest.trigger_after == typed._id
    assert all(f.concurrency_id == "live" and f.trigger_mode == "always_last" for f in (typed, rest))
    head = next(f for f in api if f.api_name == "attention_head")
    assert {t[1] for t in head.targets} == {"input"}                  # sliders: pointer and keyboard


def test_a_hidden_view_catches_up_when_its_tab_opens_by_one_event_per_trigger(bank):
    """A view computed nothing while its tab was hidden; opening one of its tabs computes it. Where the
    view's own event already fires on that tab's select, no catch-up event does too: two events of the
    same outputs on one trigger raced in the browser, and Gradio 6.31 then showed their progress for
    good (a frozen "0.1s" over the Forward pass tab's views)."""
    demo = ui.build_demo(bank=bank)
    fns = {f.api_name: f for f in demo.fns.values() if f.api_name}
    caught_up = {n.removesuffix("_shown") for n in fns if n.endswith("_shown")}
    assert {"attention", "generate", "inside_logit_lens", "lstm_gates", "hidden_states"} <= caught_up
    for name in caught_up:
        shared = {tuple(t) for t in fns[name + "_shown"].targets} & {tuple(t) for t in fns[name].targets}
        assert not shared, f"{name} and its catch-up event both fire on {shared}"
        assert fns[name + "_shown"].outputs == fns[name].outputs
    # the Forward pass walk fires on both of its tabs' selects itself: no catch-up event of its own
    assert "inside_walkthrough" in fns and "inside_walkthrough" not in caught_up
    assert sum(t[1] == "select" for t in fns["inside_walkthrough"].targets) == 2


def test_torch_threads_fit_the_machine():
    n = configure_torch(concurrency=2)
    assert 1 <= n <= 4 and torch.get_num_threads() == n


def test_prepare_text_keeps_the_start_or_the_end():
    t = CharTokenizer(list(CHARS))
    assert prepare_text("abcdef", t, 3).text == "abc"
    assert prepare_text("abcdef", t, 3, keep="end").text == "def"
    assert prepare_text("wait…", t, 10).text == "wait..."    # the tokenizer's normalisation
    with pytest.raises(ValueError, match="empty"):
        prepare_text("", t, 3)


# ------------------------------------------------------------------------------ the model pairs

def test_the_large_pair_is_offered_only_when_both_checkpoints_load_and_is_chosen_per_request(tmp_path):
    from app_checkpoints import make_checkpoints
    from scratchformer.app.bank import LARGE_PAIR, SMALL_PAIR
    folder = make_checkpoints(tmp_path)
    small = ModelBank.load(folder, device="cpu")
    assert small.pairs() == [SMALL_PAIR] and "Transformer (large)" not in small.slots   # optional: no warning
    with pytest.raises(ValueError, match="model pair must be one of"):
        small.for_pair(LARGE_PAIR)
    big = dict(n_layer=3, n_head=2, n_embd=24, block_size=64, vocab_size=65, model_type="gpt")
    make_checkpoints(tmp_path / "large", gpt=big, lstm=dict(model_type="lstm", vocab_size=65, n_embd=8, hidden=24,
                                                             n_layer=2, block_size=64))
    (tmp_path / "large" / "gpt-shakespeare").rename(folder / "gpt-shakespeare-large")
    (tmp_path / "large" / "lstm-shakespeare").rename(folder / "lstm-shakespeare-large")
    bank = ModelBank.load(folder, device="cpu")
    assert bank.pairs() == [SMALL_PAIR, LARGE_PAIR]
    view = bank.for_pair(LARGE_PAIR)
    assert view.get("Transformer").config.n_layer == 3 and view.get("LSTM").config.hidden == 24
    assert bank.get("Transformer").config.n_layer == 2                  # the shared bank is unchanged
    G.STREAM_INTERVAL_S, interval = 0.0, G.STREAM_INTERVAL_S
    try:
        *_, last = G.generate(bank, "ab", 0.0, 0, 1.0, 4, 0, None, LARGE_PAIR)
        *_, last_small = G.generate(bank, "ab", 0.0, 0, 1.0, 4, 0, None, SMALL_PAIR)
    finally:
        G.STREAM_INTERVAL_S = interval
    rec = last.steps["Transformer"]
    assert rec.pair == LARGE_PAIR and rec.record.n_steps == 4
    # the replay reads the pair that wrote the steps: its attention has the large model's 3 layers
    attn, _ = G.why_attention(bank, last.steps, "Transformer", 2, 3)
    assert "layer 3" in views.as_figure(attn).layout.title.text
    with pytest.raises(ValueError, match="watch layer"):
        G.why_attention(bank, last_small.steps, "Transformer", 2, 3)          # the small GPT has 2 layers


def test_a_stream_postprocessed_in_its_own_thread_sends_what_gradio_would():
    # events.postprocessed applies each output's own postprocess where the values are computed (the
    # generate stream, postprocess=False): Gradio's postprocess_data then gives the same as it gives
    # for the raw values with its own postprocessing
    import asyncio

    import plotly.graph_objects as go
    from gradio.state_holder import SessionState

    with gr.Blocks() as demo:
        outs = [gr.Markdown(), gr.HTML(), gr.Plot(), gr.Slider(1, 10), gr.State(), gr.Textbox(), gr.Radio(["a", "b"])]
        button = gr.Button()
        raw_event = button.click(lambda: None, None, outs)
        own_event = button.click(lambda: None, None, outs, postprocess=False)
    fig = go.Figure(go.Heatmap(z=[[1, 2], [3, 4]]))
    values = ("  **bold** <b>x</b>\n    indented", "<i>html</i>", fig, gr.update(maximum=20, value=7), {"kept": 1},
              "text", "b")

    def served(event, vals):
        fn = demo.fns[event["id"]]
        return asyncio.run(demo.postprocess_data(fn, list(vals), SessionState(demo)))

    def stream():
        yield values
        yield tuple(gr.skip() if i in (0, 3) else v for i, v in enumerate(values))

    own = list(events.postprocessed(stream, outs)())
    assert [served(raw_event, values), served(raw_event, list(stream())[1])] == \
           [served(own_event, own[0]), served(own_event, own[1])]
    assert isinstance(own[0][2], dict) and own[0][4] == {"kept": 1}           # a plot's data; a State as it is
    assert events.postprocessed(lambda: "*x*", outs[:1])() == outs[0].postprocess("*x*")


def test_a_light_session_has_what_gradios_own_has_but_the_configs(tmp_path):
    """blocks.light_sessions: a new session skips the config of every component (used only by the
    deep-link route, which the Guard refuses). Made from the same page, it must have every attribute
    Gradio's own SessionState.__init__ sets, with equal values; a Gradio that adds one fails here."""
    from gradio.state_holder import SessionState
    demo = ui.build_demo(make_checkpoints(tmp_path))
    assert SessionState.gradio_init is not SessionState.__init__
    light = SessionState(demo)
    full = SessionState.__new__(SessionState)
    SessionState.gradio_init(full, demo)
    assert set(vars(light)) == set(vars(full))
    assert len(full.config_values) > 50 and dict(light.config_values) == {}
    for name in set(vars(full)) - {"blocks_config", "config_values"}:
        assert getattr(light, name) == getattr(full, name), name
    assert light.blocks_config.blocks == full.blocks_config.blocks
    assert light.blocks_config is not demo.default_config          # a copy, as Gradio's
    # what Gradio does later works on a light session, and keeps no config: a state value set, a
    # component's value changed (without making its config: get_config is not called)
    state = next(b for b in demo.blocks.values() if isinstance(b, gr.State))
    light[state._id] = {"kept": 1}
    assert light[state._id] == {"kept": 1}
    box = next(b for b in demo.blocks.values() if isinstance(b, gr.Textbox))
    calls = []
    box.get_config = lambda *a, **k: calls.append(1) or {}
    light._update_value_in_config(box._id, "typed")          # every output of every update does this
    assert calls == [] and dict(light.config_values) == {} and list(light.components) == []
    light._update_config(box._id)                            # a property update (gr.update) still makes one
    assert calls == [1] and dict(light.config_values) == {}


def test_generations_run_as_many_at_once_as_a_batch_holds_when_batched(monkeypatch):
    from scratchformer.app.bank import BATCH_ROWS
    monkeypatch.delenv("SCRATCHFORMER_GENERATE_CONCURRENCY", raising=False)
    monkeypatch.delenv("SCRATCHFORMER_BATCHING", raising=False)
    assert events.generate_concurrency() == BATCH_ROWS
    monkeypatch.setenv("SCRATCHFORMER_BATCHING", "0")
    assert events.generate_concurrency() == 2
    monkeypatch.setenv("SCRATCHFORMER_GENERATE_CONCURRENCY", "5")
    assert events.generate_concurrency() == 5


def test_freeze_after_takes_the_objects_of_start_up_out_of_the_collectors_passes():
    """After the default views, everything made so far moves to the collector's permanent generation:
    its later passes (a full one took 0.21 s of a busy server) walk only what requests made since."""
    import gc
    from scratchformer.app.blocks import freeze_after

    class Made:
        pass

    before = Made()
    arrival = ArrivalViews()            # never started: its defaults are "done" at once
    try:
        # (the count itself is not compared again: frozen objects that die leave the count, and another
        # app of this test session, started earlier, may freeze at any time: both happened in ci-like runs)
        assert freeze_after(arrival) > 0
        after = Made()
        tracked = {id(o) for o in gc.get_objects()}
        assert id(before) not in tracked and id(after) in tracked
    finally:
        gc.unfreeze()
    assert any(o is before for o in gc.get_objects())


def test_the_prompts_surprise_is_computed_once_per_model_and_prompt(bank, monkeypatch):
    """Visitors who generate from the same prompt share its surprise strip (one traced pass per model),
    and the strip is the one the traced pass gives."""
    import scratchformer.inference.traced as traced
    from scratchformer.app.bank import TRANSFORMER
    calls = []
    real = traced.run_traced
    monkeypatch.setattr(traced, "run_traced", lambda *a, **k: calls.append(list(a[2])) or real(*a, **k))
    loaded = bank.get(TRANSFORMER)
    window = loaded.tokenizer.encode("To be, or not")
    G._SURPRISE.clear()
    first = run_generate(bank, "To be, or not")[-1]
    assert calls.count(window) == len(first.steps) == 2        # one pass per model that writes
    again = run_generate(bank, "To be, or not", seed=5)[-1]
    assert calls.count(window) == 2 and again.surprise == first.surprise
    ref = real(loaded.model, loaded.tokenizer, window)
    pieces, bits, per_char = G.prompt_surprise(loaded, window)
    assert pieces == ref.pieces and bits[1:] == ref.bits[1:] and per_char == ref.bits_per_char   # bits[0]: NaN
    other = loaded.tokenizer.encode("another prompt")
    run_generate(bank, "another prompt")
    assert calls.count(other) == 2
    for n in range(G.SURPRISE_PROMPTS + 3):   # at most SURPRISE_PROMPTS remembered per model
        G.prompt_surprise(loaded, window[:1] + [n % loaded.tokenizer.vocab_size] * (n + 1))
    assert len(G._SURPRISE[loaded.model]) == G.SURPRISE_PROMPTS
