"""Training live (scratchformer/training/live.py, live_process.py, app/live_tab.py): the plans a
person may ask for, the toy tasks' data, the induction score, a short race that lowers the loss, its
process (time, memory, stop, nothing left running), the line of trainings, and the pair that then
belongs to the page (and is freed when the page closes)."""
import gc
import math
import time
import weakref

import pytest
import torch

from scratchformer.training import live
from scratchformer.training.live import LiveRace, encode_all, induction_phase_step, induction_score
from scratchformer.training.live_plan import MAX_TEXT, LivePlan, check_plan
from scratchformer.tokenizers import CharTokenizer

TEXT = ("First Citizen:\nBefore we proceed any further, hear me speak.\n\nAll:\nSpeak, speak.\n\n"
        "First Citizen:\nYou are all resolved rather to die than to famish?\n") * 4


# ------------------------------------------------------------------------------------------ plans

@pytest.mark.parametrize("args, words", [
    (("poetry", "", "tiny", 10, 0), "corpus must be one of"),
    (("shakespeare", "", "huge", 10, 0), "size must be one of"),
    (("shakespeare", "", "tiny", float("nan"), 0), "seconds of training must be from 1 to 120"),
    (("shakespeare", "", "tiny", 1e9, 0), "seconds of training must be from 1 to 120"),
    (("shakespeare", "", "tiny", None, 0), "seconds of training must be a number"),
    (("shakespeare", "", "tiny", 10, -1), "seed must be from 0"),
    (("shakespeare", "", "tiny", 10, "x"), "seed must be a whole number"),
    (("text", "", "tiny", 10, 0), "at least 200 are needed"),
    (("text", "a" * 500, "tiny", 10, 0), "one character ('a') repeated"),
])
def test_a_bad_plan_is_refused_with_a_message_naming_the_value_and_its_range(args, words):
    with pytest.raises(ValueError, match=words.replace("(", r"\(").replace(")", r"\)")):
        check_plan(*args)


def test_a_10_mb_paste_is_refused_before_any_work():
    big = "x y" * (10_000_000 // 3)
    t = time.perf_counter()
    with pytest.raises(ValueError, match=f"at most {MAX_TEXT:,}"):
        check_plan("text", big, "tiny", 10, 0)
    assert time.perf_counter() - t < 0.05          # the length is read, nothing more


def test_a_good_plan_keeps_the_pasted_text_only_for_the_text_corpus():
    assert check_plan("text", TEXT, "small", "30", 3) == LivePlan("text", TEXT, "small", 30.0, 3)
    assert check_plan("shakespeare", TEXT, "tiny", 10, 0).text == ""


# ------------------------------------------------------------------------------------------- data

def test_the_fast_encoding_equals_the_tokenizer():
    tok = CharTokenizer.from_text(TEXT + "é€😀")
    assert encode_all(tok, TEXT + "é€😀").tolist() == tok.encode(TEXT + "é€😀")


@pytest.mark.parametrize("task", ["copy", "reverse"])
def test_copy_and_reverse_count_exactly_the_answer(task):
    corpus = live.Corpus(check_plan(task, "", "tiny", 5, 0))
    x, y = corpus.batch("train", torch.Generator().manual_seed(1), 8)
    n = live.TASK_LEN[task]
    for row_x, row_y in zip(x.tolist(), y.tolist()):
        text = corpus.tokenizer.decode(row_x) + corpus.tokenizer.decode([row_y[-1]])
        letters, answer = text[:n], text[n + 1: 2 * n + 1]
        assert text[n] == "|" and answer == (letters if task == "copy" else letters[::-1])
        counted = [i for i, t in enumerate(row_y) if t != -100]
        assert counted == list(range(n, 2 * n + 1))      # the answer's letters and the newline
        assert corpus.tokenizer.decode([row_y[i] for i in counted]) == answer + "\n"


def test_repeat_rows_are_one_sequence_of_different_letters_written_again_and_again():
    corpus = live.Corpus(check_plan("repeat", "", "tiny", 5, 0))
    x, y = corpus.batch("train", torch.Generator().manual_seed(2), 32)
    periods = set()
    for row_x, row_y in zip(x.tolist(), y.tolist()):
        counted = [i for i, t in enumerate(row_y) if t != -100]
        period = counted[0]                      # the first counted target follows the first L letters
        periods.add(period)
        assert live.REPEAT_MIN <= period <= live.TASK_LEN["repeat"]
        assert len(set(row_x[:period])) == period                     # no letter twice in a sequence
        row = row_x + [row_y[-1]]
        assert all(row[i] == row[i - period] for i in range(period, len(row_x)))
        assert all(row_y[i] == row[i + 1] for i in counted)
    assert len(periods) > 3                     # the length varies, so position alone cannot answer


def test_the_induction_score_is_one_for_a_head_that_looks_right_after_the_earlier_copy():
    L, T = 8, 16
    perfect = torch.zeros(T, T)
    for i in range(T):
        perfect[i, i - L + 1 if i >= L else 0] = 1.0
    assert induction_score(perfect, L, reach=1) == pytest.approx(1.0)
    uniform = torch.tril(torch.ones(T, T))
    uniform = uniform / uniform.sum(-1, keepdim=True)
    # uniform causal attention: 1/(i+1) on each key; the score is the mean of reach/(i+1)
    expected = sum(4 / (i + 1) for i in range(L, 2 * L - 1)) / (L - 1)
    assert induction_score(uniform, L, reach=4) == pytest.approx(expected)
    previous = torch.zeros(T, T)
    for i in range(1, T):
        previous[i, i - 1] = 1.0
    assert induction_score(previous, L) == 0.0           # a previous-token head is not one


def test_the_induction_score_counts_only_attention_that_follows_the_letters():
    """induction = score on repeated text − score on text that does not repeat, at the same positions:
    a head whose attention follows positions alone (a fixed distance back, evenly spread) scores 0;
    one that looks just after the earlier occurrence of the current letter scores near 1."""
    from scratchformer.training.live import INDUCTION_PERIODS, Corpus, induction_contrast
    repeated, control, periods = Corpus(LivePlan(corpus="repeat", size="tiny")).induction_probes()
    assert sorted(set(periods)) == list(INDUCTION_PERIODS) and repeated.shape == control.shape
    P, T = repeated.shape
    for row, L in zip(repeated.tolist(), periods):          # each probe repeats L different letters
        assert len(set(row[:L])) == L and all(row[i] == row[i - L] for i in range(L, T))
    for row in control.tolist():                             # no letter twice among the first 26
        assert len(set(row[:26])) == 26
    gaps = [b - a for a, b in zip(INDUCTION_PERIODS, INDUCTION_PERIODS[1:])]
    assert min(gaps) >= live.INDUCTION_REACH                 # no one distance back counted for two periods

    def weights(look):                                       # look(i, L) → the key query i attends to
        out = torch.zeros(P, T, T)
        for p, L in enumerate(periods):
            for i in range(T):
                out[p, i, look(i, L)] = 1.0
        return out

    even = torch.tril(torch.ones(T, T)).expand(P, T, T)
    even = even / even.sum(-1, keepdim=True)
    induction = weights(lambda i, L: i - L + 1 if i >= L else 0)
    assert induction_contrast(induction, even, periods) == pytest.approx(
        1 - sum(induction_score(e, L) for e, L in zip(even, periods)) / P)
    assert induction_contrast(induction, even, periods) > 0.75
    late = weights(lambda i, L: i - L + 3 if i >= L else 0)          # lands 2 further on: counted too
    assert induction_contrast(late, even, periods) > 0.75
    for k in range(1, T):                                    # by position alone: the same on both texts
        fixed = weights(lambda i, L: max(i - k, 0))
        assert induction_contrast(fixed, fixed, periods) == 0.0
    assert induction_contrast(even, even, periods) == 0.0
    with pytest.raises(ValueError, match="reach < length"):
        induction_score(torch.eye(T), 4)
    with pytest.raises(ValueError, match="2 × length ≤ T"):
        induction_score(torch.eye(T), T // 2 + 1)


def test_the_induction_phase_is_the_first_report_below_half_the_first_loss():
    curve = [{"step": 0, "loss": 3.2}, {"step": 40, "loss": 2.9}, {"step": 90, "loss": 1.5},
             {"step": 130, "loss": 0.2}]
    assert induction_phase_step(curve) == 90
    assert induction_phase_step(curve[:2]) is None


# ------------------------------------------------------------------------------------------- race

def test_both_models_are_about_the_same_size():
    for size, gpt, lstm in live.sizes_table():
        assert 0.8 < gpt / lstm < 1.25, size


def test_a_short_race_lowers_both_losses_and_shares_the_time_fairly():
    torch.set_num_threads(1)
    race = LiveRace(check_plan("text", TEXT, "tiny", 3, 0))
    reports = []
    final = race.run(reports.append)
    assert reports[0].elapsed_s == 0 and reports[-1] is final and final.done
    for name in ("Transformer", "LSTM"):
        curve = final.curves[name]
        assert curve[-1]["loss"] < curve[0]["loss"] - 0.3, name
        assert curve[0]["loss"] == pytest.approx(math.log(race.corpus.tokenizer.vocab_size), abs=0.4)
        assert final.steps[name] > 5
    seconds = [r.seconds for r in race.runners]
    assert abs(seconds[0] - seconds[1]) < 0.25          # turns go to whoever has trained less
    assert set(final.samples) == {"Transformer", "LSTM"} and final.samples["LSTM"]
    assert len(final.attention) == 2 and len(final.attention[0]) == 4      # layers, heads
    assert final.pieces == list(race.corpus.text)


def test_a_text_race_warms_up_then_decays_its_rate_over_the_budget_and_a_toy_task_keeps_it():
    race = LiveRace(check_plan("text", TEXT, "tiny", 10, 0))
    peak, w = live.LANGUAGE_LR["tiny"], live.WARMUP_SHARE
    assert race.lr_at(0.0) < 0.1 * peak and race.lr_at(w) == pytest.approx(peak)
    assert race.lr_at(1.0) == pytest.approx(peak * live.FINAL_LR_SHARE)
    mid = (1 + w) / 2                                     # half way through the decay: the mean of the two
    assert race.lr_at(mid) == pytest.approx(peak * (1 + live.FINAL_LR_SHARE) / 2)
    rates = [race.lr_at(f / 100) for f in range(2, 101)]
    assert all(a >= b for a, b in zip(rates, rates[1:]))  # it only falls after the warm-up
    # the optimizers follow it: a race on a clock that moves 0.5 s per call
    ticks = iter(i * 0.5 for i in range(10_000))
    seen = []
    step = race.step
    race.step = lambda r: (seen.append(r.opt.param_groups[0]["lr"]), step(r))[1]
    race.run(lambda u: None, clock=lambda: next(ticks))
    assert seen and all(lr > 0 for lr in seen) and seen[-1] < seen[1]
    toy = LiveRace(check_plan("copy", "", "tiny", 10, 0))
    assert {toy.lr_at(f) for f in (0.0, 0.5, 1.0)} == {live.LR["tiny"]}


def test_a_stopped_race_says_so_and_reports_once_more():
    race = LiveRace(check_plan("copy", "", "tiny", 30, 0))
    asked = iter([""] * 5 + ["stopped"] * 100)
    t = time.perf_counter()
    final = race.run(lambda u: None, lambda: next(asked))
    assert final.stopped == "stopped" and final.done and time.perf_counter() - t < 5


# ------------------------------------------------------------------------------------------ process

def test_a_race_in_its_own_process_reports_sends_its_models_and_is_gone():
    from scratchformer.training.live_process import LiveProcess
    proc = LiveProcess(check_plan("text", TEXT, "tiny", 3, 0))
    updates = list(proc.updates())
    assert not proc.alive() and proc.error == "" and updates[-1].done
    assert set(proc.state["models"]) == {"Transformer", "LSTM"}
    from scratchformer.app.live_tab import _loaded
    models = _loaded(proc.state)
    ids = torch.tensor([models["Transformer"].tokenizer.encode("First Citizen")])
    for name, loaded in models.items():
        assert not loaded.model.training
        logits = loaded.model(ids).logits[0, -1]
        assert torch.isfinite(logits).all()
    # what it learned is what it reported: its loss on the race's own validation batches
    final = updates[-1].curves["Transformer"][-1]["loss"]
    assert final < updates[0].curves["Transformer"][0]["loss"]


def test_stop_ends_a_process_early_and_keeps_its_models():
    from scratchformer.training.live_process import LiveProcess
    proc = LiveProcess(check_plan("copy", "", "tiny", 60, 0))
    t = time.perf_counter()
    for i, u in enumerate(proc.updates()):
        if i == 1:
            proc.stop()
    assert time.perf_counter() - t < 10 and u.stopped == "stopped" and proc.state is not None
    assert not proc.alive()


def test_the_memory_cap_stops_a_training():
    from scratchformer.training.live_process import LiveProcess
    proc = LiveProcess(check_plan("copy", "", "tiny", 60, 0), memory_mb=1)
    updates = list(proc.updates())
    assert updates[-1].stopped == "memory" and updates[-1].elapsed_s < 5


def test_kill_leaves_nothing_running():
    import os
    from scratchformer.training.live_process import LiveProcess
    proc = LiveProcess(check_plan("repeat", "", "tiny", 60, 0))
    first = next(iter(proc.updates()))
    assert first.elapsed_s == 0
    pid = proc.pid
    proc.kill()
    assert not proc.alive()
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)


# ------------------------------------------------------------------------------------------- app

def test_the_line_of_trainings_holds_its_bound():
    from scratchformer.app.live_tab import Busy, TrainingQueue
    q = TrainingQueue(running=1, waiting=2)
    a, b, c = q.join(), q.join(), q.join()
    assert [q.position(t) for t in (a, b, c)] == [0, 1, 2]
    with pytest.raises(Busy, match="1 training\\(s\\) running and 2 waiting"):
        q.join()
    q.leave(a)
    assert [q.position(t) for t in (b, c)] == [0, 1] and q.wait(c, 0.01) == 1
    d = q.join()
    assert q.position(d) == 2 and len(q) == 3


@pytest.fixture(scope="module")
def small_bank(tmp_path_factory):
    from app_checkpoints import make_checkpoints
    from scratchformer.app.bank import ModelBank
    return ModelBank.load(make_checkpoints(tmp_path_factory.mktemp("live")), device="cpu")


class FakeRequest:
    def __init__(self, session):
        self.session_hash = session


def test_a_trained_pair_belongs_to_its_page_and_is_freed_when_the_page_closes(small_bank):
    from scratchformer.app import bank as bank_module
    from scratchformer.app import live_tab
    before = bank_module.live_pair_count()
    out = list(live_tab.train_live(small_bank, "text", TEXT, "tiny", 2, 0, [("characters", "small (CPU-trained)")],
                                   FakeRequest("page-1")))
    status, *_, pair_update = out[-1]
    assert "Done" in status and "Models" in status
    label, pair_id = pair_update["choices"][-1]
    assert pair_id.startswith("live:tiny:") and pair_update["choices"][0] == ("characters", "small (CPU-trained)")
    assert bank_module.live_pair_count() == before + 1
    lent = small_bank.for_pair(pair_id)
    gpt = lent.get("Transformer")
    assert gpt.config.n_layer == 2 and gpt.tokenizer.vocab_size == len(set(TEXT))
    assert small_bank.shape(pair_id) == dict(layer=2, head=4, lstm_layer=1, lstm_unit=live.SIZES["tiny"]["lstm"][1])
    gone = weakref.ref(gpt.model)
    del gpt, lent
    live_tab.forget("page-1")
    gc.collect()
    assert bank_module.live_pair_count() == before and gone() is None
    with pytest.raises(ValueError, match="train them again"):
        small_bank.for_pair(pair_id)


def test_one_training_per_page_and_a_closed_page_stops_its_training(small_bank):
    from scratchformer.app import live_tab
    gen = live_tab.train_live(small_bank, "copy", "", "tiny", 60, 0, [], FakeRequest("page-2"))
    next(gen)                                   # waiting / starting
    with pytest.raises(ValueError, match="already training"):
        next(live_tab.train_live(small_bank, "copy", "", "tiny", 60, 0, [], FakeRequest("page-2")))
    out = next(gen)
    while live_tab._RUNS["page-2"].process is None:
        out = next(gen)
    t = time.perf_counter()
    live_tab.forget("page-2")
    with pytest.raises(ValueError, match="the training failed"):
        for out in gen:
            pass
    assert time.perf_counter() - t < 5 and "page-2" not in live_tab._RUNS and len(live_tab.QUEUE) == 0


def test_a_bad_plan_reaches_the_page_as_a_message_before_the_line_is_joined(small_bank):
    from scratchformer.app import live_tab
    with pytest.raises(ValueError, match="at least 200"):
        next(live_tab.train_live(small_bank, "text", "short", "tiny", 10, 0, [], FakeRequest("page-3")))
    assert len(live_tab.QUEUE) == 0 and "page-3" not in live_tab._RUNS


def test_stop_writes_nothing_itself_and_the_training_then_says_stopped(small_bank, capsys):
    """Stop's own reply leaves the status alone (a reply that came after the training's last update
    would hide it): the training's stream says "Stopped", with its numbers, and the pair is kept."""
    import gradio as gr

    from scratchformer.app import live_tab
    assert isinstance(live_tab.stop_training(FakeRequest("page-4")), type(gr.skip()))
    assert "No training of this page is running" in capsys.readouterr().out     # gr.Info outside a request
    gen = live_tab.train_live(small_bank, "copy", "", "tiny", 60, 0, [], FakeRequest("page-4"))
    out = next(gen)
    while live_tab._RUNS["page-4"].process is None or not out[0].startswith("**Training**"):
        out = next(gen)
    t = time.perf_counter()
    assert isinstance(live_tab.stop_training(FakeRequest("page-4")), type(gr.skip()))
    statuses = [out[0] for out in gen]
    assert time.perf_counter() - t < 10
    assert statuses[-1].startswith("**Stopped** · ") and "in the **Models** choice" in statuses[-1]
    assert "page-4" not in live_tab._RUNS and len(live_tab.QUEUE) == 0
    live_tab.forget("page-4")
