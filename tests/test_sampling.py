"""Temperature, top-k, top-p and the Step record, on hand-made distributions."""
import math

import pytest
import torch

from scratchformer.inference.choices import MAX_NEW_TOKENS
from scratchformer.inference.sampling import (SamplingSettings, filter_masks, filter_top_k, filter_top_p,
                                              make_generator, renormalize, sample_step, validate_max_new_tokens)


def kept(mask):
    return mask.nonzero().flatten().tolist()


# ------------------------------------------------------------------------------------------ top-k

def test_top_k_keeps_the_k_most_likely():
    probs = torch.tensor([0.05, 0.4, 0.1, 0.25, 0.2])
    assert kept(filter_top_k(probs, 1)) == [1]
    assert kept(filter_top_k(probs, 3)) == [1, 3, 4]


def test_top_k_ties_at_kth_value_broken_by_token_id():
    probs = torch.tensor([0.1, 0.3, 0.3, 0.3])
    assert kept(filter_top_k(probs, 2)) == [1, 2]      # exactly k kept, lower ids first
    assert kept(filter_top_k(probs, 1)) == [1]
    probs = torch.tensor([0.3, 0.1, 0.3, 0.3])
    assert kept(filter_top_k(probs, 2)) == [0, 2]


def test_top_k_off_for_zero_and_k_at_least_vocab():
    probs = torch.tensor([0.1, 0.2, 0.7])
    for k in (0, 3, 10):
        assert filter_top_k(probs, k).all()


# ------------------------------------------------------------------------------------------ top-p

def test_top_p_boundary_exactly_reached():
    probs = torch.tensor([0.5, 0.3, 0.2])
    assert kept(filter_top_p(probs, 0.8)) == [0, 1]     # 0.5 + 0.3 = 0.8 ≥ 0.8: two tokens
    assert kept(filter_top_p(probs, 0.81)) == [0, 1, 2]
    assert kept(filter_top_p(probs, 0.5)) == [0]
    assert kept(filter_top_p(probs, 0.51)) == [0, 1]


def test_top_p_boundary_after_float_rounding():
    # in float32, 0.7 + 0.2 = 0.89999998 < 0.9; the tolerance still counts it as reaching 0.9
    probs = torch.tensor([0.2, 0.7, 0.1])
    assert kept(filter_top_p(probs, 0.9)) == [0, 1]


def test_top_p_unsorted_input_and_ties():
    probs = torch.tensor([0.2, 0.5, 0.3])
    assert kept(filter_top_p(probs, 0.8)) == [1, 2]
    probs = torch.tensor([0.25, 0.25, 0.25, 0.25])
    assert kept(filter_top_p(probs, 0.5)) == [0, 1]     # ties ranked by token id


def test_top_p_towards_zero_is_greedy_and_one_is_off():
    probs = torch.tensor([0.2, 0.45, 0.35])
    for p in (0.0, 1e-9, 0.3):
        assert kept(filter_top_p(probs, p)) == [1]
    assert filter_top_p(probs, 1.0).all()
    tiny_tail = torch.softmax(torch.tensor([10.0, 0.0, -30.0, -60.0]), -1)
    assert filter_top_p(tiny_tail, 1.0).all()           # p = 1 keeps even negligible tokens


def test_one_sort_masks_agree_with_the_two_filters():
    # filter_masks is sample_step's fast path: the same masks as top-k, then top-p on the rest
    g = torch.Generator().manual_seed(7)
    cases = [torch.softmax(torch.randn(65, generator=g) * s, -1).double() for s in (0.1, 1.0, 3.0, 10.0)]
    cases += [torch.tensor([0.1, 0.3, 0.3, 0.3]).double(), torch.tensor([0.5, 0.3, 0.2]).double(),
              torch.tensor([0.25] * 4).double()]
    for probs in cases:
        V = probs.numel()
        for k in (0, 1, 2, 3, 5, 40, V, V + 3):
            for p in (0.0, 1e-9, 0.3, 0.5, 0.8, 0.9, 0.95, 0.999999, 1.0):
                keep_k = filter_top_k(probs, k)
                keep_p = filter_top_p(renormalize(probs, keep_k), p) & keep_k
                fast_k, fast_p = filter_masks(probs, k, p)
                assert torch.equal(fast_k, keep_k), (probs, k, p)
                assert torch.equal(fast_p, keep_p), (probs, k, p)


# ---------------------------------------------------------------------------------- sample_step

def logits_of(probs):
    return torch.log(torch.tensor(probs))


def test_filtered_distribution_sums_to_one_and_matches_masks():
    g = make_generator(0)
    z = torch.randn(65, generator=torch.Generator().manual_seed(3))
    for T, k, p in [(1.0, 0, 1.0), (0.7, 10, 1.0), (1.3, 0, 0.6), (0.9, 5, 0.5), (2.0, 1, 1.0)]:
        s = sample_step(z, SamplingSettings(T, k, p), g)
        assert math.isclose(float(s.probs_filtered.sum()), 1.0, abs_tol=1e-9)
        assert math.isclose(float(s.probs_temperature.sum()), 1.0, abs_tol=1e-9)
        removed = s.cut_by_top_k | s.cut_by_top_p
        assert (s.probs_filtered[removed] == 0).all()
        assert (s.probs_filtered[~removed] > 0).all()
        assert not (s.cut_by_top_k & s.cut_by_top_p).any()
        assert s.token_prob == pytest.approx(float(s.probs_filtered[s.token_id]))
        assert not removed[s.token_id]
        assert s.probs_filtered.shape == s.cut_by_top_k.shape == s.logits.shape == (65,)
        expected = torch.softmax(z.double() / T, -1)
        torch.testing.assert_close(s.probs_temperature, expected)
        if k:
            assert int((~s.cut_by_top_k).sum()) == k


def test_top_k_then_top_p_on_the_renormalised_rest():
    # after temperature 1: [0.4, 0.3, 0.2, 0.1]; top-k 3 leaves [0.4, 0.3, 0.2] / 0.9
    # = [0.444, 0.333, 0.222]; top-p 0.7 then keeps two tokens (0.444 < 0.7 ≤ 0.778)
    s = sample_step(logits_of([0.4, 0.3, 0.2, 0.1]), SamplingSettings(1.0, 3, 0.7), make_generator(0))
    assert kept(s.cut_by_top_k) == [3]
    assert kept(s.cut_by_top_p) == [2]                  # token 3 is not counted again
    torch.testing.assert_close(s.probs_filtered, torch.tensor([4 / 7, 3 / 7, 0, 0], dtype=torch.float64))


def test_temperature_changes_the_distribution():
    z = logits_of([0.5, 0.3, 0.2])
    cold = sample_step(z, SamplingSettings(0.5, 0, 1.0), make_generator(0)).probs_temperature
    hot = sample_step(z, SamplingSettings(2.0, 0, 1.0), make_generator(0)).probs_temperature
    assert cold[0] > 0.5 > hot[0]                       # T < 1 sharpens, T > 1 flattens
    torch.testing.assert_close(cold, torch.softmax(z.double() * 2, -1))


def test_temperature_zero_is_greedy():
    z = torch.tensor([0.1, 2.0, 2.0, -1.0])            # tie: the lower id wins
    for seed in range(5):
        s = sample_step(z, SamplingSettings(0.0, 0, 1.0), make_generator(seed))
        assert s.token_id == 1 and s.token_prob == 1.0 and s.greedy
        torch.testing.assert_close(s.probs_filtered, torch.tensor([0, 1, 0, 0], dtype=torch.float64))
        torch.testing.assert_close(s.probs_temperature, torch.softmax(z.double(), -1))
    s = sample_step(z, SamplingSettings(0.0, 2, 0.5), make_generator(0))    # filters shown, argmax survives them
    assert s.token_id == 1 and kept(s.cut_by_top_k) == [0, 3] and kept(s.cut_by_top_p) == [2]


def test_k_one_and_tiny_p_are_greedy_at_any_temperature():
    z = torch.randn(30, generator=torch.Generator().manual_seed(1))
    best = int(z.argmax())
    for seed in range(10):
        assert sample_step(z, SamplingSettings(1.5, 1, 1.0), make_generator(seed)).token_id == best
        assert sample_step(z, SamplingSettings(1.5, 0, 1e-6), make_generator(seed)).token_id == best
        assert sample_step(z, SamplingSettings(1.5, 0, 0.0), make_generator(seed)).token_id == best


def test_tiny_temperature_stays_finite():
    s = sample_step(torch.tensor([1.0, 3.0, 2.0]), SamplingSettings(1e-300, 0, 1.0), make_generator(0))
    assert s.token_id == 1 and torch.isfinite(s.probs_temperature).all()


def test_sampling_follows_the_filtered_distribution():
    z = logits_of([0.5, 0.3, 0.15, 0.05])
    g = make_generator(123)
    counts = torch.zeros(4)
    for _ in range(3000):
        counts[sample_step(z, SamplingSettings(1.0, 3, 1.0), g).token_id] += 1
    assert counts[3] == 0
    freq = counts / counts.sum()
    torch.testing.assert_close(freq, torch.tensor([0.5, 0.3, 0.15, 0]) / 0.95, atol=0.03, rtol=0)


def test_same_seed_same_tokens_and_global_rng_untouched():
    z = torch.randn(65, generator=torch.Generator().manual_seed(0))
    torch.manual_seed(1)
    before = torch.get_rng_state()
    a = [sample_step(z, SamplingSettings(1.0, 0, 1.0), g).token_id for g in [make_generator(7)] for _ in range(50)]
    assert torch.equal(torch.get_rng_state(), before)
    torch.manual_seed(999)                              # the global seed does not matter
    g = make_generator(7)
    b = [sample_step(z, SamplingSettings(1.0, 0, 1.0), g).token_id for _ in range(50)]
    assert a == b
    g = make_generator(8)
    assert [sample_step(z, SamplingSettings(1.0, 0, 1.0), g).token_id for _ in range(50)] != a


# ---------------------------------------------------------------------------------- validation

@pytest.mark.parametrize("kwargs, name", [
    (dict(temperature=-0.1), "temperature"),
    (dict(temperature=float("nan")), "temperature"),
    (dict(temperature=float("inf")), "temperature"),
    (dict(temperature="1"), "temperature"),
    (dict(top_k=-1), "top_k"),
    (dict(top_k=2.5), "top_k"),
    (dict(top_k=True), "top_k"),
    (dict(top_p=-0.01), "top_p"),
    (dict(top_p=1.01), "top_p"),
    (dict(top_p=float("nan")), "top_p"),
    (dict(temperature=None), "temperature"),
    (dict(top_k=None), "top_k"),
    (dict(top_p=None), "top_p"),
])
def test_bad_settings_rejected_with_their_name_and_range(kwargs, name):
    with pytest.raises(ValueError, match=name) as e:
        SamplingSettings(**kwargs)
    assert any(ch.isdigit() for ch in str(e.value))     # the allowed range is stated


@pytest.mark.parametrize("n", [0, MAX_NEW_TOKENS + 1, 10.0, None, True])
def test_bad_max_new_tokens_rejected(n):
    with pytest.raises(ValueError, match="max_new_tokens") as e:
        validate_max_new_tokens(n)
    assert str(MAX_NEW_TOKENS) in str(e.value)


def test_good_edge_values_accepted_and_settings_are_frozen():
    SamplingSettings(0.0, 0, 0.0)
    s = SamplingSettings(100.0, 40.0, 1.0)          # a whole float top_k (from a slider) is fine
    assert s.top_k == 40 and isinstance(s.top_k, int)
    validate_max_new_tokens(1)
    validate_max_new_tokens(MAX_NEW_TOKENS)
    with pytest.raises(AttributeError):
        s.temperature = 2.0                           # a request's settings cannot change mid-way


@pytest.mark.parametrize("seed", [-1, 2**63, 1.5, "3", None])
def test_bad_seed_rejected(seed):
    with pytest.raises(ValueError, match="seed"):
        make_generator(seed)


def test_renormalize():
    probs = torch.tensor([0.5, 0.3, 0.2])
    torch.testing.assert_close(renormalize(probs, torch.tensor([True, False, True])),
                               torch.tensor([0.5 / 0.7, 0.0, 0.2 / 0.7]))
