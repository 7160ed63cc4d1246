"""The app's generations served by continuous batching (ModelBank.stream, scratchformer/app/bank.py):
many visitors at once get exactly the texts generate_stream writes alone; one scheduler per loaded
model, shared by the per-request banks of for_pair; a full scheduler reaches the person as a clear
message; a generation stopped early (a client that left) frees its row at once; and
SCRATCHFORMER_BATCHING=0 turns it all off. Tiny random-weight checkpoints (tests/app_checkpoints.py)."""
import time

import gradio as gr
import pytest

from app_checkpoints import make_checkpoints, make_word_checkpoints
from test_batching import in_threads    # all started together, each in a thread of its own
from scratchformer.app import bank as bank_module
from scratchformer.app import mcp_tools as T
from scratchformer.app.bank import LSTM_NAME, TRANSFORMER, WORD_PAIR, WORD_TRANSFORMER, ModelBank
from scratchformer.app.events import friendly
from scratchformer.app.generate_tab import generate as generate_callback
from scratchformer.inference.batching import DecodeScheduler
from scratchformer.inference.generation import generate_stream
from scratchformer.inference.sampling import SamplingSettings

# The app's notes ("the prompt is empty…") are also toasts (gr.Warning), which outside a request
# Gradio turns into Python warnings: expected here, where the callbacks are called directly.
pytestmark = pytest.mark.filterwarnings("ignore::UserWarning:gradio.helpers")

# visitors: (prompt, temperature, top_k, top_p, max_new_tokens, seed); greedy beside hot, filters on
# and off, prompts longer than the tiny GPT's block (64) so that caches refill while others run
VISITORS = [("ROMEO:\n", 0.8, 0, 0.95, 90, 1), ("", 0.0, 0, 1.0, 40, 2), ("To be, or not to be", 1.5, 5, 1.0, 70, 3),
            ("First Citizen:\n" * 6, 1.0, 0, 0.5, 60, 4), ("O", 0.9, 20, 0.9, 100, 5),
            ("JULIET:\nO Romeo, Romeo! wherefore art thou Romeo?", 1.2, 0, 1.0, 80, 6),
            ("a", 0.7, 3, 0.8, 30, 7), ("KING HENRY:\n" * 3, 1.0, 0, 1.0, 120, 8)]


@pytest.fixture(scope="module")
def ckpt_dir(tmp_path_factory):
    return make_checkpoints(tmp_path_factory.mktemp("ckpts"))


@pytest.fixture
def bank(ckpt_dir, monkeypatch):
    monkeypatch.delenv(bank_module.BATCHING_ENV, raising=False)
    b = ModelBank.load(ckpt_dir, device="cpu", models={n: bank_module.MODELS[n] for n in (TRANSFORMER, LSTM_NAME)})
    yield b
    b.schedulers.close()


def alone(bank, name, prompt, temperature, top_k, top_p, n, seed):
    """What generate_stream writes for one model, alone (the app's texts before batching)."""
    loaded = bank.get(name)
    return "".join(g.text for g in generate_stream(loaded.model, loaded.tokenizer, prompt or "\n",
                                                   settings=SamplingSettings(temperature, top_k, top_p),
                                                   max_new_tokens=n, seed=seed))


def wait_for(condition, timeout=10.0):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if condition():
            return True
        time.sleep(0.005)
    return False


def schedulers(bank) -> list[DecodeScheduler]:
    return [s for _, s in bank.schedulers._by_model.values() if s is not None]   # noqa: SLF001


def app_texts(bank, visitor):
    prompt, temperature, top_k, top_p, n, seed = visitor
    *_, last = generate_callback(bank, prompt, temperature, top_k, top_p, n, seed)
    return last.transformer_text, last.lstm_text


# ------------------------------------------------------------------------ the same texts, at once

def test_concurrent_app_generations_write_what_each_writes_alone(bank):
    """Eight visitors of the Generate tab and eight of the generate tool at once: every text is the one
    generate_stream writes alone, and the rows really were decoded together."""
    expected = [tuple(alone(bank, name, *v) for name in (TRANSFORMER, LSTM_NAME)) for v in VISITORS]
    tab = in_threads(app_texts, [(bank, v) for v in VISITORS])
    tool = in_threads(lambda v: T.generate(bank, *v), [(v,) for v in VISITORS])
    assert tab == expected
    assert [(out["transformer"], out["lstm"]) for out in tool] == expected
    served = schedulers(bank)
    assert len(served) == 2                               # one per loaded model, not one per request
    tokens = 2 * sum(v[4] for v in VISITORS)              # per model: the tab's and the tool's
    assert all(s.steps < tokens / 2 for s in served)      # batched: far fewer passes than tokens
    assert len({id(s._worker) for s in served}) == 1      # noqa: SLF001  one worker thread for both


def test_batching_off_writes_the_same_texts_without_a_scheduler(bank, monkeypatch):
    on = [app_texts(bank, v) for v in VISITORS[:3]]
    monkeypatch.setenv(bank_module.BATCHING_ENV, "0")
    fresh = ModelBank.load(bank.checkpoint_dir, device="cpu",
                           models={n: bank_module.MODELS[n] for n in (TRANSFORMER, LSTM_NAME)})
    assert [app_texts(fresh, v) for v in VISITORS[:3]] == on
    assert T.generate(fresh, *VISITORS[0])["lstm"] == on[0][1]
    assert schedulers(fresh) == []


def test_the_pairs_banks_share_one_scheduler_per_loaded_model(tmp_path, monkeypatch):
    monkeypatch.delenv(bank_module.BATCHING_ENV, raising=False)
    folder = make_word_checkpoints(make_checkpoints(tmp_path))
    bank = ModelBank.load(folder, device="cpu", models={n: bank_module.MODELS[n] for n in
                                                        (TRANSFORMER, LSTM_NAME, WORD_TRANSFORMER, bank_module.WORD_LSTM)})
    try:
        words = [bank.for_pair(WORD_PAIR) for _ in range(3)]          # one per request, as the app makes them
        texts = in_threads(lambda b, seed: "".join(g.text for g in b.stream(TRANSFORMER, "ROMEO:", SamplingSettings(),
                                                                            20, seed)),
                           [(b, seed) for seed, b in enumerate(words)])
        assert all(b.schedulers is bank.schedulers for b in words)
        assert texts == [alone(bank, WORD_TRANSFORMER, "ROMEO:", 1.0, 0, 1.0, 20, seed) for seed in range(3)]
        gpt = bank.schedulers.get(bank.get(WORD_TRANSFORMER))
        assert gpt is bank.schedulers.get(words[0].get(TRANSFORMER))   # keyed by the model, not the role
        assert gpt.model is bank.get(WORD_TRANSFORMER).model
        assert len(schedulers(bank)) == 1                             # only the word Transformer wrote
        bank.stream(TRANSFORMER, "hi", SamplingSettings(), 2, 0).close()
        assert len(schedulers(bank)) == 2                             # the character Transformer: its own
    finally:
        bank.schedulers.close()


# ------------------------------------------------------------------------------ busy, and leaving

def test_a_full_scheduler_reaches_the_person_as_a_message(ckpt_dir, monkeypatch):
    monkeypatch.delenv(bank_module.BATCHING_ENV, raising=False)
    monkeypatch.setattr(bank_module, "BATCH_ROWS", 1)
    monkeypatch.setattr(bank_module, "BATCH_WAITING", 0)
    bank = ModelBank.load(ckpt_dir, device="cpu", models={n: bank_module.MODELS[n] for n in (TRANSFORMER, LSTM_NAME)})
    try:
        holder = bank.stream(LSTM_NAME, "ROMEO:", SamplingSettings(), 2000, 0)   # takes the LSTM's only row
        next(holder)
        with pytest.raises(gr.Error, match=r"too many generations at once.*retry"):
            list(friendly(generate_callback)(bank, "ROMEO:", 0.8, 0, 0.95, 20, 0))
        with pytest.raises(gr.Error, match=r"too many generations at once.*retry"):
            T.bind(T.generate, bank)("ROMEO:", 0.8, 0, 0.95, 20, 0, "characters")
        # the Transformer's stream, opened before the LSTM's was refused, was closed: no row stays behind
        gpt = bank.schedulers.get(bank.get(TRANSFORMER))
        assert wait_for(lambda: gpt.running == 0 and gpt.waiting == 0)
        holder.close()
        lstm = bank.schedulers.get(bank.get(LSTM_NAME))
        assert wait_for(lambda: lstm.running == 0)
        out = T.generate(bank, "ROMEO:", 0.8, 0, 0.95, 20, 0)      # the row is free again
        assert out["lstm"] == alone(bank, LSTM_NAME, "ROMEO:", 0.8, 0, 0.95, 20, 0)
    finally:
        bank.schedulers.close()


def test_closing_the_apps_generator_frees_its_rows_at_once(bank):
    """What Gradio does when a client disconnects mid-stream: it closes the generator."""
    gen = generate_callback(bank, "ROMEO:\n", 0.8, 0, 0.95, 2000, 0)
    next(gen)                          # the streams are open: both rows are served
    next(gen)
    served = schedulers(bank)
    # (running is published after the worker's step that admitted the row, and the row's first token
    # can reach this reader before that: wait for it rather than read it once)
    assert len(served) == 2 and wait_for(lambda: all(s.running + s.waiting == 1 for s in served), timeout=2.0)
    gen.close()
    assert wait_for(lambda: all(s.running == 0 and s.waiting == 0 for s in served), timeout=2.0)
