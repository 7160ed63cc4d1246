"""Streaming generation: KV cache ≡ recompute, the window policy past block_size, the LSTM's carried
state, determinism by seed, and settings checked before anything runs. Tiny random models only."""
import pytest
import torch

from scratchformer import GPT, LSTMLM, BertLM, CharTokenizer, LSTMConfig, TransformerConfig
from scratchformer.inference.sampling import SamplingSettings
from scratchformer.inference.generation import START_TEXT, generate, generate_stream, refill_keep

BLOCK = 16
TOK = CharTokenizer(list("\nabcdefghijklmnopqrstuvwxyz ,.!?"))


def spread_weights(model, seed):
    """Re-draw every weight with a larger spread so logits are peaked (no near-ties for greedy)."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(torch.randn(p.shape, generator=g) * 0.3)
    return model.eval()


def tiny_gpt(pos="learned", norm_first=True, seed=0):
    cfg = TransformerConfig(vocab_size=TOK.vocab_size, block_size=BLOCK, n_layer=2, n_head=2, n_embd=32,
                            pos=pos, norm_first=norm_first)
    return spread_weights(GPT(cfg), seed)


def tiny_lstm(seed=0):
    return spread_weights(LSTMLM(LSTMConfig(vocab_size=TOK.vocab_size, n_embd=16, hidden=32, n_layer=2)), seed)


def sequence_before(steps, i):
    """prompt ids + the ids generated before step i."""
    return steps[i].prompt_ids + [s.token_id for s in steps[:i]]


def recompute_logits(model, ids):
    with torch.no_grad():
        return model(torch.tensor([ids])).logits[0, -1]


# ----------------------------------------------------------------------------- cache ≡ recompute

@pytest.mark.parametrize("pos, norm_first", [("learned", True), ("sinusoidal", False)])
def test_kv_cache_logits_equal_recompute_on_the_same_window_past_block_size(close, pos, norm_first):
    model = tiny_gpt(pos, norm_first)
    steps = list(generate_stream(model, TOK, "to be", max_new_tokens=50, settings=SamplingSettings(temperature=1.0), seed=3))
    assert len(steps) == 50
    refills = 0
    for i, s in enumerate(steps):
        seq = sequence_before(steps, i)
        assert s.context_start + s.context_len == len(seq)          # the window ends at the newest token
        assert 1 <= s.context_len <= BLOCK
        if i and s.context_len < steps[i - 1].context_len:
            refills += 1
            assert s.context_len == refill_keep(BLOCK) == BLOCK // 2
        window = seq[s.context_start:]
        close(f"KV cache vs recompute ({pos})", s.step.logits, recompute_logits(model, window))
    assert refills >= 4                                              # 50 tokens cross block 16 often


def test_refill_policy_by_hand_greedy():
    """An independent, cache-free implementation of the window policy gives the same greedy text."""
    model = tiny_gpt(seed=1)
    prompt = TOK.encode("the quick brown fox jumps")                # longer than BLOCK: cropped
    cached = [s.token_id for s in generate_stream(model, TOK, "the quick brown fox jumps",
                                                  max_new_tokens=50, settings=SamplingSettings(0))]
    seq, start, by_hand = list(prompt), max(0, len(prompt) - BLOCK), []
    for _ in range(50):
        if len(seq) - start > BLOCK:                                 # cache full → keep the last 8
            start = len(seq) - BLOCK // 2
        tok_id = int(recompute_logits(model, seq[start:]).argmax())
        by_hand.append(tok_id)
        seq.append(tok_id)
    assert cached == by_hand


def test_cache_and_recompute_agree_until_the_windows_part():
    """Inside one block both paths see the same window; past it the cache sees a shorter window
    (block//2 … block tokens vs always block), so greedy texts may then differ."""
    model = tiny_gpt(seed=2)
    kw = dict(max_new_tokens=40, settings=SamplingSettings(temperature=0))
    with_cache = list(generate_stream(model, TOK, "be", **kw))
    without = list(generate_stream(model, TOK, "be", use_cache=False, **kw))
    inside = BLOCK - 2 + 1                                           # steps whose context fits in one block
    assert [s.token_id for s in with_cache[:inside]] == [s.token_id for s in without[:inside]]
    for i, s in enumerate(without):                                  # recompute: the last BLOCK tokens
        seq = sequence_before(without, i)
        assert s.context_len == min(BLOCK, len(seq))
        torch.testing.assert_close(s.step.logits, recompute_logits(model, seq[-BLOCK:]), atol=1e-5, rtol=0)
    assert with_cache[inside].context_len == BLOCK // 2 and without[inside].context_len == BLOCK


def test_long_prompt_cropped_to_block_size():
    model = tiny_gpt()
    prompt = "a rather long prompt that is longer than the block"
    first = next(iter(generate_stream(model, TOK, prompt, max_new_tokens=1)))
    assert first.context_len == BLOCK and first.context_start == len(prompt) - BLOCK
    torch.testing.assert_close(first.step.logits, recompute_logits(model, TOK.encode(prompt)[-BLOCK:]),
                               atol=1e-5, rtol=0)


# --------------------------------------------------------------------------------------- LSTM

def test_lstm_stream_equals_one_shot_forward(close):
    model = tiny_lstm()
    steps = list(generate_stream(model, TOK, "hello", max_new_tokens=30, settings=SamplingSettings(temperature=1.0), seed=5))
    full = steps[0].prompt_ids + [s.token_id for s in steps]
    with torch.no_grad():
        one_shot = model(torch.tensor([full[:-1]])).logits[0]             # position t predicts t+1
    for i, s in enumerate(steps):
        assert s.context_start == 0 and s.context_len == len(sequence_before(steps, i))
        close("LSTM carried state vs one-shot", s.step.logits, one_shot[len(s.prompt_ids) - 1 + i])
    reread = [s.token_id for s in generate_stream(model, TOK, "hello", max_new_tokens=30, seed=5,
                                                  use_cache=False)]
    assert reread == full[len(steps[0].prompt_ids):]


# ---------------------------------------------------------------------------------- determinism

@pytest.mark.parametrize("make", [tiny_gpt, tiny_lstm])
def test_same_seed_same_text_whatever_else_runs(make):
    model = make()
    kw = dict(max_new_tokens=30, settings=SamplingSettings(temperature=1.2, top_k=10, top_p=0.95))
    torch.manual_seed(0)
    rng_before = torch.get_rng_state()
    alone_a = generate(model, TOK, "hi", seed=1, **kw)
    alone_b = generate(model, TOK, "hi", seed=2, **kw)
    assert torch.equal(torch.get_rng_state(), rng_before)            # the global RNG is never used
    assert alone_a != alone_b
    torch.manual_seed(12345)
    stream_a = generate_stream(model, TOK, "hi", seed=1, **kw)
    stream_b = generate_stream(model, TOK, "hi", seed=2, **kw)
    a, b = [], []
    for sa, sb in zip(stream_a, stream_b):                           # interleaved step by step
        a.append(sa.text)
        torch.rand(3)                                                # other code using the global RNG
        b.append(sb.text)
    assert "".join(a) == alone_a and "".join(b) == alone_b


# ------------------------------------------------------------------------------ prompts, records

def test_empty_prompt_starts_from_newline_and_unknown_chars_follow_tokenizer():
    model = tiny_gpt()
    s = next(iter(generate_stream(model, TOK, "", max_new_tokens=1)))
    assert s.prompt_ids == TOK.encode(START_TEXT) == [TOK.stoi["\n"]]
    s = next(iter(generate_stream(model, TOK, "Héllo ☃", max_new_tokens=1)))
    assert s.prompt_ids == TOK.encode("Héllo ☃")


def test_records_and_generate_join():
    model = tiny_gpt()
    steps = list(generate_stream(model, TOK, "ab", max_new_tokens=12, settings=SamplingSettings(temperature=0.9), seed=4))
    assert [s.index for s in steps] == list(range(12))
    assert all(s.text == TOK.decode([s.token_id]) and s.step.token_id == s.token_id for s in steps)
    assert all(b.elapsed_s >= a.elapsed_s > 0 for a, b in zip(steps, steps[1:]))
    assert generate(model, TOK, "ab", max_new_tokens=12, settings=SamplingSettings(temperature=0.9), seed=4) == "".join(s.text for s in steps)


def test_model_untouched_and_grad_mode_restored():
    model = tiny_gpt()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    stream = generate_stream(model, TOK, "ab", max_new_tokens=5)
    next(stream)
    assert torch.is_grad_enabled()                                   # caller's mode between tokens
    list(stream)
    assert not model.training
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())


@pytest.mark.parametrize("kwargs, name", [
    (dict(max_new_tokens=0), "max_new_tokens"), (dict(max_new_tokens=10**6), "max_new_tokens"),
    (dict(seed=-5), "seed"),
])
def test_bad_settings_rejected_at_call_time(kwargs, name):
    with pytest.raises(ValueError, match=name):
        generate_stream(tiny_gpt(), TOK, "ab", **kwargs)             # before iterating


def test_non_causal_model_rejected():
    bert = BertLM(TransformerConfig(model_type="bert", vocab_size=TOK.vocab_size, block_size=BLOCK,
                                    n_layer=1, n_head=2, n_embd=16)).eval()
    with pytest.raises(ValueError, match="GPT or an LSTM"):
        generate_stream(bert, TOK, "ab")
