"""The dates task, the encoder-decoder's decoding (greedy, sampled, beam) and the shipped checkpoint."""
import datetime as dt
import itertools
import json
import random
from pathlib import Path

import pytest
import torch

from scratchformer.inference.sampling import SamplingSettings, make_generator
from scratchformer.inference.seq2seq import (beam_search, decode_with_trace, encode_source, greedy_decode,
                                   length_penalty, sample_decode, sequence_logprob)
from scratchformer.training.tasks import (FORMATS, MAX_SOURCE_LEN, TWO_DIGIT_FORMATS, DatesTask, encode_pairs,
                                 format_date, ordinal, split_dates)
from scratchformer.tokenizers import CharTokenizer
from scratchformer.model.trace import Trace
from scratchformer.model.config import TransformerConfig
from scratchformer.model.transformer import Seq2SeqTransformer, shift_right

ROOT = Path(__file__).resolve().parent.parent
CHECKPOINT = ROOT / "checkpoints" / "seq2seq-dates"
SPECIALS = ("<pad>", "<bos>", "<eos>")


# ------------------------------------------------------------------------------------ dates task

def test_dates_are_deterministic_by_seed():
    task = DatesTask()
    assert task.examples("train", 50, seed=3) == task.examples("train", 50, seed=3)
    assert task.examples("train", 50, seed=3) != task.examples("train", 50, seed=4)
    a = task.batch("train", 8, torch.Generator().manual_seed(7))
    b = task.batch("train", 8, torch.Generator().manual_seed(7))
    assert all(torch.equal(x, y) for x, y in zip(a, b))
    assert DatesTask().test_dates == task.test_dates       # the held-out days do not move


def test_train_and_test_days_are_disjoint_and_cover_the_calendar():
    train, test = split_dates()
    assert not set(train) & set(test)
    assert len(train) + len(test) == (dt.date(2099, 12, 31) - dt.date(1900, 1, 1)).days + 1
    assert 0.09 < len(test) / (len(train) + len(test)) < 0.11
    task = DatesTask()
    test_days = {d.isoformat() for d in task.test_dates}
    assert all(t in test_days for _, t in task.held_out(300))
    assert not any(t in test_days for _, t in task.examples("train", 3000, seed=1))


@pytest.mark.parametrize("pattern,expected", [
    ("{Month} {d}, {Y}", "March 4, 1999"), ("{nth} of {Month} {Y}", "4th of March 1999"),
    ("{Weekday}, {Month} {d}, {Y}", "Thursday, March 4, 1999"), ("{Mon}. {d}, {Y}", "Mar. 4, 1999"),
    ("{dd}.{mm}.{Y}", "04.03.1999"),           # dots: day.month.year
    ("{mm}/{dd}/{Y}", "03/04/1999"),           # slashes, year last: month/day/year
    ("{Y}/{mm}/{dd}", "1999/03/04"), ("{mm}/{dd}/{yy}", "03/04/99"), ("{dd}.{mm}.{yy}", "04.03.99"),
])
def test_formats_follow_the_documented_conventions(pattern, expected):
    assert format_date(dt.date(1999, 3, 4), pattern) == expected


def test_cases_two_digit_years_and_ordinals():
    d = dt.date(2005, 11, 22)
    assert format_date(d, "{nth} of {Month} {Y}", "upper") == "22ND OF NOVEMBER 2005"
    assert format_date(d, "{Mon} {d} {Y}", "lower") == "nov 22 2005"
    assert format_date(d, "{dd}.{mm}.{yy}") == "22.11.05"                 # 05 → 2005 (POSIX pivot)
    with pytest.raises(ValueError, match="two-digit"):
        format_date(dt.date(1950, 1, 1), TWO_DIGIT_FORMATS[0])          # 50 would read as 2050
    with pytest.raises(ValueError, match="case"):
        format_date(d, FORMATS[0], "shout")
    assert [ordinal(n) for n in (1, 2, 3, 4, 11, 12, 13, 21, 22, 23, 31)] == \
        ["1st", "2nd", "3rd", "4th", "11th", "12th", "13th", "21st", "22nd", "23rd", "31st"]


def test_sources_fit_the_model_and_use_only_known_characters():
    task = DatesTask()
    longest = dt.date(1999, 9, 22)    # a Wednesday in September, the longest names
    assert max(len(format_date(longest, p)) for p in FORMATS) <= MAX_SOURCE_LEN
    for src, tgt in task.examples("train", 2000, seed=0):
        assert len(src) <= MAX_SOURCE_LEN and len(tgt) == 10
        assert task.tokenizer.decode(task.tokenizer.encode(src)) == src   # no unknown characters


def test_encode_pairs_is_teacher_forcing():
    tok = DatesTask().tokenizer
    pad, bos, eos = (tok.special_id(s) for s in SPECIALS)
    src, tgt_in, targets = encode_pairs([("3 March 1999", "1999-03-03"), ("1.1.1901", "1901-01-01")], tok)
    assert src.shape == (2, 12) and (src[1, 8:] == pad).all()
    assert tok.decode(targets[0]) == "1999-03-03" and targets[0, -1] == eos
    assert torch.equal(tgt_in, shift_right(targets, bos))


# ------------------------------------------------------------------------------- a tiny copy model

def tiny_tokenizer(chars="abcdef"):
    return CharTokenizer(list(chars), specials=SPECIALS)


def tiny_model(tok, seed=0, **kw):
    torch.manual_seed(seed)
    cfg = dict(model_type="seq2seq", vocab_size=tok.vocab_size, block_size=12, n_layer=1, n_head=2,
               n_embd=64, pad_id=tok.special_id("<pad>"), bos_id=tok.special_id("<bos>"),
               eos_id=tok.special_id("<eos>"))
    cfg.update(kw)
    return Seq2SeqTransformer(TransformerConfig(**cfg))


def copy_pairs(rng, n, chars="abcdef"):
    return [(s, s) for s in ("".join(rng.choice(chars) for _ in range(rng.randint(2, 5))) for _ in range(n))]


@pytest.fixture(scope="module")
def copy_model():
    """A 1+1-layer encoder-decoder trained for 80 steps to copy strings of 2–5 characters."""
    tok = tiny_tokenizer()
    model = tiny_model(tok)
    opt = torch.optim.Adam(model.parameters(), lr=2e-3)
    rng = random.Random(0)
    losses = []
    threads = torch.get_num_threads()
    torch.set_num_threads(1)    # tiny matrices: one thread is fastest on a busy machine
    for _ in range(80):
        src, tgt_in, targets = encode_pairs(copy_pairs(rng, 64), tok)
        loss = model(src, tgt_in, targets).loss
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    torch.set_num_threads(threads)
    model.eval()
    return model, tok, losses


def test_tiny_seq2seq_learns_to_copy_in_a_few_dozen_steps(copy_model):
    model, tok, losses = copy_model
    assert sum(losses[-5:]) / 5 < 0.25 * sum(losses[:5]) / 5
    test = copy_pairs(random.Random(99), 100)
    src, _, _ = encode_pairs(test, tok)
    outs = greedy_decode(model, src, max_len=8)
    accuracy = sum(tok.decode(o) == s for o, (s, _) in zip(outs, test)) / len(test)
    assert accuracy >= 0.9
    assert all(o[-1] == model.config.eos_id for o in outs)


def sources(tok, n=12, seed=5):
    return [encode_source(tok, s, 12) for s, _ in copy_pairs(random.Random(seed), n)]


@pytest.mark.parametrize("trained", [True, False])
def test_beam_of_one_is_greedy(copy_model, trained):
    model, tok, _ = copy_model
    if not trained:
        model = tiny_model(tok, seed=3).eval()
    for src in sources(tok):
        greedy = greedy_decode(model, src, max_len=8)[0]
        for alpha in (0.0, 0.6):
            assert beam_search(model, src, beam_size=1, alpha=alpha, max_len=8)[0].ids == greedy


def test_greedy_batch_equals_one_at_a_time(copy_model):
    model, tok, _ = copy_model
    pairs = copy_pairs(random.Random(1), 6)
    batch, _, _ = encode_pairs(pairs, tok)
    assert greedy_decode(model, batch, 8) == [greedy_decode(model, encode_source(tok, s, 12), 8)[0]
                                              for s, _ in pairs]


def test_beam_search_scores_at_least_greedy_and_reports_true_logprobs():
    tok = tiny_tokenizer()
    model = tiny_model(tok, seed=1).eval()   # untrained: a flat, undecided distribution
    for src in sources(tok):
        greedy = greedy_decode(model, src, max_len=6)[0]
        beams = beam_search(model, src, beam_size=4, alpha=0.0, max_len=6)
        assert beams[0].logprob >= sequence_logprob(model, src, greedy) - 1e-5
        for h in beams:
            assert h.logprob == pytest.approx(sequence_logprob(model, src, h.ids), abs=1e-4)
            assert h.score == pytest.approx(h.logprob / length_penalty(len(h.ids), 0.0))
        assert [h.score for h in beams] == sorted((h.score for h in beams), reverse=True)


def test_wide_beam_finds_the_exact_best_output():
    """Vocabulary {a, b} + <eos>, at most 3 tokens: a beam of 32 holds every prefix, so beam search must
    return the most likely of all 1 + 3 + 9 + 8 possible outputs (found here by enumeration)."""
    tok = tiny_tokenizer("ab")
    eos = tok.special_id("<eos>")
    for seed in range(4):
        model = tiny_model(tok, seed=seed, n_embd=16).eval()
        with torch.no_grad():  # sharpen the random model so the outputs differ clearly in probability
            model.lm_head.weight.mul_(40.0)
        src = encode_source(tok, "abba", 12)
        outputs = [list(p) + [eos] for n in range(3) for p in itertools.product([0, 1], repeat=n)]
        outputs += [list(p) for p in itertools.product([0, 1], repeat=3)]
        best = max(sequence_logprob(model, src, o) for o in outputs)
        found = beam_search(model, src, beam_size=32, alpha=0.0, max_len=3)[0]
        assert found.logprob == pytest.approx(best, abs=1e-4)


def test_sampling_temperature_zero_is_greedy_and_seeds_repeat(copy_model):
    model, tok, _ = copy_model
    src = encode_source(tok, "cafe", 12)
    ids, steps = sample_decode(model, src, settings=SamplingSettings(temperature=0), max_len=8)
    assert ids == greedy_decode(model, src, 8)[0] and len(steps) == len(ids)
    hot = dict(settings=SamplingSettings(temperature=3.0, top_k=0, top_p=1.0), max_len=8)
    runs = [sample_decode(model, src, generator=make_generator(s), **hot)[0] for s in range(8)]
    assert runs[0] == sample_decode(model, src, generator=make_generator(0), **hot)[0]
    assert len({tuple(r) for r in runs}) > 1
    ids, steps = sample_decode(model, src, settings=SamplingSettings(temperature=1.0, top_k=1), max_len=8)
    assert ids == greedy_decode(model, src, 8)[0]        # top-k 1 keeps only the argmax
    assert all(s.token_prob == 1.0 for s in steps)


def test_traced_decode_rows_are_what_each_step_saw(copy_model):
    model, tok, _ = copy_model
    result = decode_with_trace(model, tok, "badce", "greedy")
    assert result.output == "badce" and result.out_tokens[-1] == "<eos>"
    tr = result.trace
    T, S = len(result.out_tokens), len(result.src_tokens)
    assert len(tr.cross_attn) == 1 and tr.cross_attn[0].shape == (1, 2, T, S)
    assert len(tr.encoder_self_attn) == 1 and tr.encoder_self_attn[0].shape == (1, 2, S, S)
    assert torch.allclose(tr.cross_attn[0].sum(-1), torch.ones(1, 2, T))
    assert (tr.self_attn[0].triu(1) == 0).all()             # the decoder never looks ahead
    src = encode_source(tok, "badce", 12)
    bos = model.config.bos_id
    with torch.no_grad():
        memory, mask = model.encode(src)
        for t in range(T):   # decode the prefix of step t alone: its last row must match row t
            step_trace = Trace(tokens=None)
            prefix = torch.tensor([[bos] + [tok.stoi[c] for c in result.out_tokens[:t]]])
            model.decode(prefix, memory, mask, trace=step_trace)
            assert torch.allclose(step_trace.cross_attn[0][0, :, -1], tr.cross_attn[0][0, :, t], atol=1e-6)
    assert [s.text for s in result.steps] == result.out_tokens
    assert all(0 < s.prob <= 1 and s.top[0][1] >= s.prob - 1e-6 for s in result.steps)
    beam = decode_with_trace(model, tok, "badce", "beam", beam_size=4)
    assert beam.output == "badce" and beam.beams[0].ids == [tok.stoi[c] for c in beam.out_tokens]
    sampled = decode_with_trace(model, tok, "badce", "sample", settings=SamplingSettings(temperature=0.5), seed=3)
    assert all(s.sampled is not None for s in sampled.steps)


def test_decoding_rejects_bad_requests(copy_model):
    model, tok, _ = copy_model
    src = encode_source(tok, "abc", 12)
    with pytest.raises(ValueError, match="beam_size"):
        beam_search(model, src, beam_size=0)
    with pytest.raises(ValueError, match="alpha"):
        beam_search(model, src, alpha=-1)
    with pytest.raises(ValueError, match="max_len"):
        greedy_decode(model, src, max_len=99)
    with pytest.raises(ValueError, match="source"):
        decode_with_trace(model, tok, "", "greedy")
    with pytest.raises(ValueError, match="source"):
        decode_with_trace(model, tok, "a" * 13, "greedy")
    with pytest.raises(ValueError, match="method"):
        decode_with_trace(model, tok, "abc", "nucleus")
    with pytest.raises(ValueError, match="temperature"):
        decode_with_trace(model, tok, "abc", "sample", settings=SamplingSettings(temperature=-1))


# -------------------------------------------------------------------------------- the shipped model

@pytest.mark.skipif(not (CHECKPOINT / "model.safetensors").exists(),
                    reason="checkpoints/seq2seq-dates is not shipped in this tree")
def test_shipped_checkpoint_meets_its_bar_on_held_out_dates():
    from scratchformer.checkpoint import load_checkpoint
    loaded = load_checkpoint(CHECKPOINT)
    model, tok = loaded.model, loaded.tokenizer
    task = DatesTask()
    pairs = task.held_out(2000)[:200]
    src, _, _ = encode_pairs(pairs, tok)
    outs = greedy_decode(model, src)
    exact = sum(tok.decode(o) == t for o, (_, t) in zip(outs, pairs)) / len(pairs)
    assert exact >= 0.99
    metrics = json.loads((CHECKPOINT / "metrics.json").read_text())
    assert metrics["exact_match"] >= 0.99
    # typed text: stray whitespace is tidied, ambiguous forms follow the documented conventions
    for source, target in [("  2001-9-11 ", "2001-09-11"), ("03.04.1999", "1999-04-03"),
                           ("03/04/1999", "1999-03-04"), ("05/06/07", "2007-05-06")]:
        for method in ("greedy", "beam"):
            assert decode_with_trace(model, tok, source, method).output == target


def test_evaluate_prints_exact_match_as_its_last_json_line(tmp_path, capsys):
    from scratchformer.checkpoint import save_checkpoint
    from scratchformer.training.evaluate import main
    tok = DatesTask().tokenizer
    torch.manual_seed(0)
    model = tiny_model(tok, block_size=40, n_embd=16)
    save_checkpoint(tmp_path / "s2s", model, tok, {"iters": 0})
    main([str(tmp_path / "s2s"), "--max-batches", "1", "--batch-size", "16"])
    last = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert last["model_type"] == "seq2seq" and last["held_out_examples"] == 16
    assert 0.0 <= last["exact_match"] <= 1.0 and last["val_loss"] > 0
