"""Continuous batching (scratchformer/inference/batching.py and the modules beside it: batched.py,
batch_sampling.py, batch_streams.py): a stream served in a batch with other
streams yields what generate_stream yields alone — the same tokens, text and context windows, the
same sampling record within 1e-5 — whatever runs beside it (other settings, other lengths, a KV
cache refilled mid-batch, rows that leave); the batched passes equal the models' own forward passes;
the batched sampler equals sample_step bit for bit; closed streams free their rows; a full scheduler
says so. Tiny random models, and the shipped checkpoints when they are there."""
import threading
import time
from pathlib import Path

import pytest
import torch

from scratchformer import BertLM, TransformerConfig
from scratchformer.inference.batch_sampling import SHARED_BYTES, race_is_multinomial, sample_rows
from scratchformer.inference.batched import BatchedKVCache, batched_gpt_step, batched_lstm_step
from scratchformer.inference.batching import DecodeScheduler, DecodeWorker, SchedulerBusy
from scratchformer.inference.generation import generate_stream, refill_keep
from scratchformer.inference.sampling import SamplingSettings, make_generator, sample_step
from scratchformer.model.attention import KVCache
from scratchformer.model.fast import fast_decoder

from test_generation import BLOCK, TOK, tiny_gpt, tiny_lstm   # the same tiny models

CHECKPOINTS = Path(__file__).resolve().parents[1] / "checkpoints"


# a mix of visitors: greedy next to hot, top-k 1 next to off, top-p 0.5 next to off, short and long
# prompts (one longer than the block, one just under it: its cache fills after a few tokens)
MIX = [
    ("to be or not", SamplingSettings(0.0), 40, 1),
    ("the", SamplingSettings(2.0), 35, 2),
    ("", SamplingSettings(1.0, top_k=1), 20, 3),
    ("hello there, friend", SamplingSettings(0.8, top_p=0.5), 45, 4),
    ("a" * 14, SamplingSettings(1.0, top_k=0, top_p=1.0), 30, 5),           # refill after 2 tokens
    ("the quick brown fox jumps over", SamplingSettings(0.7, top_k=5, top_p=0.9), 25, 6),
    ("why?", SamplingSettings(1.3, top_k=3), 50, 7),
    ("x", SamplingSettings(0.0, top_k=1, top_p=0.5), 12, 8),
]


def alone(model, tokenizer, prompt, settings, n, seed):
    return list(generate_stream(model, tokenizer, prompt, settings=settings, max_new_tokens=n, seed=seed))


def in_threads(fn, args_list, timeout: float = 120):
    """``fn(*args)`` for every args, each in a thread of its own, all started together → results."""
    out, errors = [None] * len(args_list), []
    barrier = threading.Barrier(len(args_list))

    def run(i):
        try:
            barrier.wait()
            out[i] = fn(*args_list[i])
        except Exception as e:   # noqa: BLE001
            errors.append(e)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(args_list))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout)
    assert not errors, errors
    return out


def read_all_concurrently(streams):
    """Each stream read by a thread of its own, all at once (as the app's visitors do)."""
    return in_threads(list, [(s,) for s in streams], timeout=60)


def assert_same_steps(close, name, got, ref, atol=1e-5):
    assert [g.token_id for g in got] == [r.token_id for r in ref], name
    assert "".join(g.text for g in got) == "".join(r.text for r in ref)
    for g, r in zip(got, ref):
        assert (g.index, g.context_start, g.context_len) == (r.index, r.context_start, r.context_len), name
        assert g.prompt_ids == r.prompt_ids and g.step.settings == r.step.settings
        close(f"{name} logits", g.step.logits, r.step.logits, atol)
        close(f"{name} probs after temperature", g.step.probs_temperature, r.step.probs_temperature, atol)
        close(f"{name} probs filtered", g.step.probs_filtered, r.step.probs_filtered, atol)
        assert abs(g.step.token_prob - r.step.token_prob) <= atol
        assert torch.equal(g.step.cut_by_top_k, r.step.cut_by_top_k)
        assert torch.equal(g.step.cut_by_top_p, r.step.cut_by_top_p)
        assert g.step.logits.dtype == torch.float32 and g.step.probs_filtered.dtype == torch.float64


# ----------------------------------------------------------------------- the batched passes

@pytest.mark.parametrize("pos, norm_first", [("learned", True), ("sinusoidal", False)])
def test_batched_gpt_step_equals_the_models_own_pass_row_by_row(close, pos, norm_first):
    """Rows of lengths 0 … block_size − 1 in one pass, one of them riding along: each moving row's
    logits are the model's own cached pass on that row alone; a rider's cache is left untouched."""
    model = tiny_gpt(pos, norm_first, seed=3)
    g = torch.Generator().manual_seed(0)
    lengths = [0, 5, BLOCK - 1, 9, 1, 12]
    moving = [True, True, True, False, True, True]
    seqs = [torch.randint(0, TOK.vocab_size, (n + 1,), generator=g).tolist() for n in lengths]
    batch = BatchedKVCache(model, max_rows=8)
    batch.ensure_rows(len(seqs))
    expected = []
    with torch.no_grad():
        for r, seq in enumerate(seqs):
            cache = KVCache(len(model.layers), capacity=BLOCK)
            if len(seq) > 1:
                model(torch.tensor([seq[:-1]]), cache=cache)
                batch.store(r, cache)
            expected.append(model(torch.tensor([seq[-1:]]), cache=cache).logits[0, -1])
        rider_before = [k[3, :, :lengths[3]].clone() for k in batch.k]
        logits = batched_gpt_step(fast_decoder(model), batch, [s[-1] for s in seqs], lengths, moving)
    for r, m in enumerate(moving):
        if m:
            close(f"batched GPT step row {r} ({pos})", logits[r], expected[r])
    for before, k in zip(rider_before, batch.k):
        assert torch.equal(k[3, :, :lengths[3]], before)


def test_batched_lstm_step_equals_the_models_own_pass(close):
    model = tiny_lstm(seed=2)
    g = torch.Generator().manual_seed(1)
    n = 5
    h = torch.randn(2, 8, 32, generator=g)
    c = torch.randn(2, 8, 32, generator=g)
    tokens = torch.randint(0, TOK.vocab_size, (n,), generator=g).tolist()
    moving = [True, False, True, True, True]
    with torch.no_grad():
        out = model(torch.tensor(tokens)[:, None], state=(h[:, :n].clone(), c[:, :n].clone()))
        h0, c0 = h.clone(), c.clone()
        logits = batched_lstm_step(model, tokens, h, c, moving)
    for r in range(n):
        if moving[r]:
            close("batched LSTM step logits", logits[r], out.logits[r, -1])
            close("batched LSTM step h", h[:, r], out.state[0][:, r])
            close("batched LSTM step c", c[:, r], out.state[1][:, r])
        else:
            assert torch.equal(h[:, r], h0[:, r]) and torch.equal(c[:, r], c0[:, r])
    assert torch.equal(h[:, n:], h0[:, n:])


# ------------------------------------------------------------------------------- the sampler

def test_sample_rows_is_sample_step_bit_for_bit():
    assert race_is_multinomial()   # this torch draws by the exponential race: the fast path is tested
    g = torch.Generator().manual_seed(7)
    logits = torch.randn(12, 40, generator=g) * 3
    logits[3, :4] = 5.0            # ties at the top: top-k and greedy tie rules
    settings = [SamplingSettings(0.0), SamplingSettings(2.0), SamplingSettings(1.0, top_k=1),
                SamplingSettings(1.0, top_k=0, top_p=0.5), SamplingSettings(0.5, top_k=7, top_p=0.8),
                SamplingSettings(1.0, top_k=100), SamplingSettings(1e-3), SamplingSettings(0.0, top_k=3, top_p=0.2),
                SamplingSettings(1.0, top_p=0.0), SamplingSettings(0.9, top_k=2, top_p=1.0),
                SamplingSettings(3.0, top_p=0.95), SamplingSettings(1.0, top_k=39, top_p=0.99)]
    ours_gen = [make_generator(100 + r) for r in range(12)]
    ref_gen = [make_generator(100 + r) for r in range(12)]
    for _ in range(5):             # several draws: the generators must stay in step
        ours = sample_rows(logits, settings, ours_gen)
        for r, step in enumerate(ours):
            ref = sample_step(logits[r], settings[r], ref_gen[r])
            assert step.token_id == ref.token_id and step.token_prob == ref.token_prob
            for name in ("logits", "probs_temperature", "probs_filtered", "cut_by_top_k", "cut_by_top_p"):
                assert torch.equal(getattr(step, name), getattr(ref, name)), (r, name)
                ours_t = getattr(step, name)   # a view of a small batch (at most SHARED_BYTES)
                assert ours_t.untyped_storage().nbytes() <= SHARED_BYTES
            assert step.settings is settings[r]
        logits = logits.roll(1, dims=1)
    for a, b in zip(ours_gen, ref_gen):
        assert torch.equal(a.get_state(), b.get_state())


def test_sample_rows_copies_the_rows_of_a_large_batch():
    """A Step of a large vocabulary holds a copy of its own row, not the whole batch (a Step kept by a
    reader must not keep 32 rows of GPT-2's scores alive); a small batch's rows are views of it."""
    n, vocab = 4, SHARED_BYTES // 8 // 4 + 1          # probabilities are float64: just over SHARED_BYTES
    logits = torch.randn(n, vocab, generator=torch.Generator().manual_seed(0))
    settings = [SamplingSettings(1.0, top_k=5)] * n
    ref_gen = [make_generator(r) for r in range(n)]
    for step, r in zip(sample_rows(logits, settings, [make_generator(r) for r in range(n)]), range(n)):
        ref = sample_step(logits[r], settings[r], ref_gen[r])
        assert step.token_id == ref.token_id and torch.equal(step.probs_filtered, ref.probs_filtered)
        for name in ("logits", "probs_temperature", "probs_filtered", "cut_by_top_k", "cut_by_top_p"):
            t = getattr(step, name)
            assert t.untyped_storage().nbytes() == t.numel() * t.element_size(), name
    small = sample_rows(logits[:, :40], settings, [make_generator(r) for r in range(n)])
    assert small[0].logits.untyped_storage().data_ptr() == small[1].logits.untyped_storage().data_ptr()


# ------------------------------------------------------------------ batched ≡ alone, end to end

@pytest.mark.parametrize("kind", ["gpt", "lstm"])
def test_batched_streams_equal_generate_stream_alone(close, kind):
    """Eight visitors at once, mixed settings and prompt lengths, each read by its own thread: every
    one gets exactly what generate_stream gives it alone; the GPT's caches refill mid-batch."""
    model = tiny_gpt(seed=5) if kind == "gpt" else tiny_lstm(seed=5)
    with DecodeScheduler(model, TOK, max_rows=8) as scheduler:
        streams = [scheduler.stream(p, settings=s, max_new_tokens=n, seed=seed) for p, s, n, seed in MIX]
        got = read_all_concurrently(streams)
        steps = scheduler.steps
    refs = [alone(model, TOK, p, s, n, seed) for p, s, n, seed in MIX]
    for (prompt, *_), g, r in zip(MIX, got, refs):
        assert_same_steps(close, f"{kind} {prompt!r}", g, r)
    assert steps < sum(n for _, _, n, _ in MIX) / 2           # the rows really were batched
    if kind == "gpt":
        refills = [i for g in got for i in range(1, len(g)) if g[i].context_len < g[i - 1].context_len]
        assert len(refills) >= 8                             # many refills, while other rows ran
        assert all(g[i].context_len == refill_keep(BLOCK) for g in got
                   for i in range(1, len(g)) if g[i].context_len < g[i - 1].context_len)


@pytest.mark.parametrize("kind", ["gpt", "lstm"])
def test_visitors_who_arrive_together_are_read_in_one_pass_each_as_alone(close, kind):
    """Requests admitted in the same step with prompts of one length are prefilled in one pass (and the
    GPT's rows that fill their caches in the same step are refilled in one pass); each row still gets
    exactly what generate_stream gives it alone. The first prefill is held until every request waits,
    so the others are admitted together."""
    model = tiny_gpt(seed=7) if kind == "gpt" else tiny_lstm(seed=7)
    prompts = ["to be", "or no", "hello", "abcde", "the", "why?", "x" * 5]     # five of length 5
    settings = [SamplingSettings(0.9), SamplingSettings(0.0), SamplingSettings(1.5, top_k=3),
                SamplingSettings(0.7, top_p=0.8), SamplingSettings(1.0), SamplingSettings(2.0),
                SamplingSettings(0.5, top_k=1)]
    with DecodeScheduler(model, TOK, max_rows=8) as scheduler:
        batch, passes, gate = scheduler._batch, [], threading.Event()       # noqa: SLF001
        prefill, refill = batch.prefill, batch.refill

        def held_prefill(rows, indices):
            gate.wait(10)
            passes.append(("prefill", len(rows)))
            return prefill(rows, indices)

        def counted_refill(rows, indices):
            passes.append(("refill", len(rows)))
            return refill(rows, indices)

        batch.prefill, batch.refill = held_prefill, counted_refill
        first = scheduler.stream("q", settings=SamplingSettings(1.0), max_new_tokens=30, seed=99)
        assert wait_for(lambda: scheduler.waiting == 0)                  # the worker holds the first prefill
        streams = [scheduler.stream(p, settings=s, max_new_tokens=30, seed=i)
                   for i, (p, s) in enumerate(zip(prompts, settings))]
        gate.set()
        got = read_all_concurrently([first, *streams])
    assert passes[0] == ("prefill", 1)
    assert ("prefill", 5) in passes and ("prefill", 1) in passes[1:]                  # "to be" … "xxxxx" together
    assert sum(n for what, n in passes if what == "prefill") == 1 + len(prompts)
    if kind == "gpt":                                     # BLOCK 16: the five fill their caches in one step
        assert ("refill", 5) in passes or ("refill", 6) in passes
    assert_same_steps(close, f"{kind} first", got[0], alone(model, TOK, "q", SamplingSettings(1.0), 30, 99))
    for i, (p, s) in enumerate(zip(prompts, settings)):
        assert_same_steps(close, f"{kind} {p!r}", got[i + 1], alone(model, TOK, p, s, 30, i))


@pytest.mark.parametrize("name", ["gpt-shakespeare", "lstm-shakespeare"])
def test_shipped_checkpoints_batched_equal_alone(close, name):
    if not (CHECKPOINTS / name / "model.safetensors").exists():
        pytest.skip(f"checkpoints/{name} is not there")
    from scratchformer.checkpoint import load_checkpoint
    loaded = load_checkpoint(CHECKPOINTS / name)
    model, tok = loaded.model.eval(), loaded.tokenizer
    prompts = [("ROMEO:\n", SamplingSettings(0.8, top_p=0.95), 1), ("", SamplingSettings(0.0), 2),
               ("First Citizen:\nBefore we proceed any further, hear me speak.\n" * 2,   # 118 chars: refill
                SamplingSettings(2.0, top_k=1), 3),
               ("To be, or not to be", SamplingSettings(1.0, top_k=10, top_p=0.5), 4),
               ("JULIET:\nO Romeo", SamplingSettings(1.2), 5)]
    with DecodeScheduler(model, tok) as scheduler:
        got = read_all_concurrently([scheduler.stream(p, settings=s, max_new_tokens=60, seed=seed)
                                     for p, s, seed in prompts])
    for (p, s, seed), g in zip(prompts, got):
        # the trained models' logits reach ±20: float32 rounding of a 32-row pass is ~1e-5 there
        assert_same_steps(close, f"{name} {p[:8]!r}", g, alone(model, tok, p, s, 60, seed), atol=1e-4)
        for a, b in zip(g, alone(model, tok, p, s, 60, seed)):
            close(f"{name} probabilities", a.step.probs_filtered, b.step.probs_filtered, 1e-5)


# -------------------------------------------------------------------------- rows come and go

def wait_for(condition, timeout=10.0):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if condition():
            return True
        time.sleep(0.005)
    return False


@pytest.mark.parametrize("how", ["close", "drop"])
def test_a_stream_stopped_early_frees_its_row_and_the_others_go_on(close, how):
    model = tiny_gpt(seed=1)
    with DecodeScheduler(model, TOK, max_rows=4, max_ahead=2) as scheduler:
        streams = [scheduler.stream(p, settings=s, max_new_tokens=200, seed=seed) for p, s, _, seed in MIX[:3]]
        first = [next(s) for s in streams]
        assert wait_for(lambda: scheduler.running == 3)
        if how == "close":
            streams[1].close()
            with pytest.raises(StopIteration):
                next(streams[1])
            streams[1] = None
        else:
            streams[1] = None      # dropped and garbage collected: the row is freed too
        assert wait_for(lambda: scheduler.running == 2, timeout=2.0)
        rest = [[f] + list(s) for f, s in zip(first, streams) if s is not None]
        assert wait_for(lambda: scheduler.running == 0)
    kept = [MIX[0], MIX[2]]
    for (p, s, _, seed), got in zip(kept, rest):
        assert_same_steps(close, f"after a row left {p!r}", got, alone(model, TOK, p, s, 200, seed))


def test_busy_past_the_cap_says_how_many_wait_and_to_retry():
    model = tiny_lstm()
    with DecodeScheduler(model, TOK, max_rows=2, max_waiting=1, max_ahead=1) as scheduler:
        running = [scheduler.stream("a", max_new_tokens=2000, seed=i) for i in range(2)]
        assert wait_for(lambda: scheduler.running == 2)
        waiting = scheduler.stream("b", max_new_tokens=5)
        assert scheduler.waiting == 1
        with pytest.raises(SchedulerBusy, match=r"2 running .*1 waiting.*retry") as err:
            scheduler.stream("c", max_new_tokens=5)
        assert isinstance(err.value, ValueError)
        running[0].close()         # a row frees: the waiting one gets it and finishes
        assert len(list(waiting)) == 5
        running[1].close()


def test_arguments_and_models_are_checked_before_anything_runs():
    scheduler = DecodeScheduler(tiny_gpt(), TOK)
    try:
        for kwargs, word in [({"max_new_tokens": 0}, "max_new_tokens"), ({"seed": -1}, "seed"),
                             ({"settings": {"temperature": 1}}, "settings")]:
            with pytest.raises(ValueError, match=word):
                scheduler.stream("hi", **kwargs)
        with pytest.raises(ValueError, match="prompt"):
            scheduler.stream(b"hi")
        assert scheduler.waiting == 0 and scheduler.running == 0
    finally:
        scheduler.close()
    assert not scheduler.alive
    with pytest.raises(RuntimeError, match="closed"):
        scheduler.stream("hi")
    cfg = TransformerConfig(model_type="bert", vocab_size=TOK.vocab_size, block_size=BLOCK, n_layer=1,
                            n_head=2, n_embd=16)
    with pytest.raises(ValueError, match="bert"):
        DecodeScheduler(BertLM(cfg).eval(), TOK)
    with pytest.raises(ValueError, match="eval"):
        DecodeScheduler(tiny_gpt().train(), TOK)
    with pytest.raises(ValueError, match="max_rows"):
        DecodeScheduler(tiny_gpt(), TOK, max_rows=0)


def test_an_error_goes_to_its_stream_and_the_worker_serves_the_others(close):
    model = tiny_gpt(seed=4)
    scheduler = DecodeScheduler(model, TOK)
    batch = scheduler._batch                     # noqa: SLF001  inject a failure into one prefill
    prefill = batch.prefill

    def failing_prefill(rows, indices):
        if any(row.request.prompt_ids == TOK.encode("boom") for row in rows):
            raise RuntimeError("the prefill failed")
        return prefill(rows, indices)

    batch.prefill = failing_prefill
    with scheduler:
        good = scheduler.stream("to be", settings=SamplingSettings(0.9), max_new_tokens=30, seed=9)
        bad = scheduler.stream("boom", max_new_tokens=30)
        with pytest.raises(RuntimeError, match="the prefill failed"):
            next(bad)
        assert_same_steps(close, "beside a failure", list(good),
                          alone(model, TOK, "to be", SamplingSettings(0.9), 30, 9))
        assert len(list(scheduler.stream("still serving", max_new_tokens=3))) == 3


def test_tokens_are_handed_over_a_few_at_a_time_and_the_first_at_once(close):
    """A row's GenSteps go to its reader together (at most handover_s after the first of them was
    made, or the reader's own pace): fewer wake-ups of the readers, the same records. The first token
    goes at once, and never more than max_ahead // 2 wait (the row would pause for steps not given)."""
    model = tiny_gpt(seed=8)
    settings = SamplingSettings(0.9)
    ref = alone(model, TOK, "to be", settings, 40, 3)
    for handover_s, pace, most_at_once in ((0.0, None, 1), (60.0, None, 16), (0.0, 60.0, 16), (60.0, 0.0, 1)):
        with DecodeScheduler(model, TOK, handover_s=handover_s) as scheduler:   # max_ahead 32
            stream = scheduler.stream("to be", settings=settings, max_new_tokens=40, seed=3)
            if pace is not None:
                stream.pace(pace)
            got = [next(stream)]
            assert len(stream._buffer) == 0                 # noqa: SLF001  the first came alone, at once
            got.append(next(stream))
            grouped = len(stream._buffer) + 1               # noqa: SLF001  handed over with the second
            got += list(stream)
        assert grouped == most_at_once, (handover_s, pace)
        assert_same_steps(close, f"handover {handover_s}, pace {pace}", got, ref)


def test_closing_the_scheduler_ends_open_streams_with_an_error():
    scheduler = DecodeScheduler(tiny_lstm(), TOK, max_ahead=1)
    stream = scheduler.stream("a", max_new_tokens=2000)
    next(stream)
    scheduler.close()
    with pytest.raises(RuntimeError, match="closed"):
        for _ in stream:
            pass


def test_one_worker_serves_both_models_of_a_pair(close):
    gpt, lstm = tiny_gpt(seed=6), tiny_lstm(seed=6)
    worker = DecodeWorker()
    pair = [DecodeScheduler(gpt, TOK, worker=worker), DecodeScheduler(lstm, TOK, worker=worker)]
    settings = SamplingSettings(0.8, top_p=0.95)
    streams = [s.stream(p, settings=settings, max_new_tokens=40, seed=seed)
               for seed, p in enumerate(["to be", "", "hello"]) for s in pair]
    got = read_all_concurrently(streams)
    for i, (seed, p) in enumerate((seed, p) for seed, p in enumerate(["to be", "", "hello"]) for _ in pair):
        model = gpt if i % 2 == 0 else lstm
        assert_same_steps(close, f"shared worker {p!r}", got[i], alone(model, TOK, p, settings, 40, seed))
    assert worker.alive
    for s in pair:
        s.close()
    assert wait_for(lambda: not worker.alive)


def test_the_time_a_row_waits_for_a_slow_reader_is_not_its_own():
    """elapsed_s counts the stream's own time: a reader 50 ms a token behind pauses its row, and those
    waits (between steps too: the worker idles when every row waits) are left out."""
    import time
    with DecodeScheduler(tiny_lstm(), TOK, max_ahead=1, handover_s=0.0) as scheduler:
        t0 = time.perf_counter()
        steps = []
        for g in scheduler.stream("to be", max_new_tokens=12, seed=1):
            steps.append(g)
            time.sleep(0.05)
        wall = time.perf_counter() - t0
    assert wall > 0.6 and steps[-1].elapsed_s < 0.3 * wall
    assert all(a.elapsed_s <= b.elapsed_s for a, b in zip(steps, steps[1:]))


def test_records_are_in_order_with_growing_time():
    with DecodeScheduler(tiny_gpt(), TOK) as scheduler:
        steps = list(scheduler.stream("to be", max_new_tokens=20, seed=1))
    assert [s.index for s in steps] == list(range(20))
    assert all(a.elapsed_s <= b.elapsed_s for a, b in zip(steps, steps[1:]))
    assert all(s.prompt_ids is steps[0].prompt_ids for s in steps)
