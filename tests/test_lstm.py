"""Our hand-written LSTM against nn.LSTM / nn.LSTMCell, and the LSTM language model's state and trace."""
import pytest
import torch
from torch import nn

from scratchformer.model.config import LSTMConfig
from scratchformer.model.lstm import LSTM, LSTMLM, LSTMCell

D = torch.float64


def copy_cell(ours: LSTMCell, w_ih, w_hh, b_ih, b_hh) -> None:
    with torch.no_grad():
        ours.ih.weight.copy_(w_ih)
        ours.hh.weight.copy_(w_hh)
        ours.ih.bias.copy_(b_ih)
        ours.hh.bias.copy_(b_hh)


def copy_lstm(ours: LSTM, theirs: nn.LSTM) -> None:
    for k, cell in enumerate(ours.cells):
        copy_cell(cell, *(getattr(theirs, f"{n}_l{k}") for n in ("weight_ih", "weight_hh", "bias_ih", "bias_hh")))


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
@pytest.mark.parametrize("given_state", [False, True])
def test_lstm_matches_torch(given_state, dtype, close):
    torch.manual_seed(0)
    theirs = nn.LSTM(5, 7, num_layers=2, batch_first=True, dtype=dtype)
    ours = LSTM(5, 7, num_layers=2).to(dtype)
    copy_lstm(ours, theirs)
    g = torch.Generator().manual_seed(1)
    x = torch.randn(3, 6, 5, generator=g).to(dtype)
    state = tuple(torch.randn(2, 3, 7, generator=g).to(dtype) for _ in range(2)) if given_state else None
    out, (h, c), rec = ours(x, state)
    ref, (rh, rc) = theirs(x, state)
    suffix = "" if dtype == D else " (float32)"
    close("LSTM outputs vs nn.LSTM" + suffix, out, ref)
    close("LSTM final h vs nn.LSTM" + suffix, h, rh)
    close("LSTM final c vs nn.LSTM" + suffix, c, rc)
    assert rec is None


def test_lstm_cell_matches_torch(close):
    torch.manual_seed(2)
    theirs = nn.LSTMCell(4, 6, dtype=D)
    ours = LSTMCell(4, 6).to(D)
    copy_cell(ours, theirs.weight_ih, theirs.weight_hh, theirs.bias_ih, theirs.bias_hh)
    g = torch.Generator().manual_seed(3)
    x, h, c = (torch.randn(2, n, dtype=D, generator=g) for n in (4, 6, 6))
    for _ in range(3):  # a few steps, feeding the state back
        (h, c), (rh, rc) = ours(x, (h, c)), theirs(x, (h, c))
        close("LSTMCell h vs nn.LSTMCell", h, rh)
        close("LSTMCell c vs nn.LSTMCell", c, rc)


def _lm(seed=0):
    torch.manual_seed(seed)
    return LSTMLM(LSTMConfig(vocab_size=11, n_embd=6, hidden=8, n_layer=2)).to(D).eval()


def test_lstmlm_state_carries_across_calls():
    model = _lm()
    ids = torch.randint(0, 11, (2, 9), generator=torch.Generator().manual_seed(4))
    whole = model(ids)
    first = model(ids[:, :4])
    second = model(ids[:, 4:], state=first.state)
    assert torch.allclose(torch.cat([first.logits, second.logits], dim=1), whole.logits, atol=1e-12)
    for a, b in zip(second.state, whole.state):
        assert torch.allclose(a, b, atol=1e-12)
    # without the carried state the continuation is different: the state really matters
    assert not torch.allclose(model(ids[:, 4:]).logits, second.logits, atol=1e-6)
    assert whole.state[0].shape == (2, 2, 8)


def test_lstmlm_trace_gates_obey_the_cell_equations():
    model = _lm(1)
    ids = torch.randint(0, 11, (2, 5), generator=torch.Generator().manual_seed(5))
    g0 = torch.Generator().manual_seed(6)
    state = tuple(torch.randn(2, 2, 8, dtype=D, generator=g0) for _ in range(2))
    out = model(ids, state=state, trace=True)
    tr = out.trace
    assert set(tr.gates) == {"i", "f", "g", "o"}
    for name, gate in tr.gates.items():
        assert gate.shape == (2, 2, 5, 8), name  # [L, B, T, hidden]
    assert tr.cell_states.shape == (2, 2, 5, 8)
    assert len(tr.hidden_states) == 3 and tr.hidden_states[0].shape == (2, 5, 6)
    i, f, g, o = (tr.gates[k] for k in "ifgo")
    assert ((i > 0) & (i < 1) & (f > 0) & (f < 1) & (o > 0) & (o < 1)).all() and (g.abs() < 1).all()
    c = tr.cell_states
    c_prev = torch.cat([state[1][:, :, None], c[:, :, :-1]], dim=2)  # c_{t-1}, starting from c_0
    assert torch.allclose(c, f * c_prev + i * g, atol=1e-12)          # c_t = f ⊙ c_{t-1} + i ⊙ g
    h = torch.stack(tr.hidden_states[1:])
    assert torch.allclose(h, o * torch.tanh(c), atol=1e-12)            # h_t = o ⊙ tanh(c_t)
    assert torch.allclose(out.state[1], c[:, :, -1]) and torch.allclose(out.state[0], h[:, :, -1])
    # tracing (the step-by-step path) and the fast path (hand-written BPTT) compute the same thing
    assert torch.allclose(out.logits, model(ids, state=state).logits, atol=1e-12)


def test_lstmlm_rejects_non_causal_and_config_round_trips():
    model = _lm()
    with pytest.raises(ValueError, match="causal"):
        model(torch.zeros(1, 3, dtype=torch.long), causal=False)
    cfg = LSTMConfig(vocab_size=11, hidden=8)
    assert LSTMConfig.from_dict(cfg.to_dict()) == cfg
    with pytest.raises(ValueError, match="unknown"):
        LSTMConfig.from_dict({**cfg.to_dict(), "n_heads": 2})


def test_hand_written_bptt_matches_autograd_through_the_step_loop():
    """LSTMLayerFunction's backward (BPTT by hand) equals autograd differentiating LSTMCell.step."""
    from scratchformer.model.fast.lstm_bptt import LSTMLayerFunction
    torch.manual_seed(0)
    B, T, H = 3, 6, 4
    args = [torch.randn(B, T, 4 * H, dtype=torch.float64, requires_grad=True),
            torch.randn(4 * H, H, dtype=torch.float64, requires_grad=True),
            torch.randn(4 * H, dtype=torch.float64, requires_grad=True),
            torch.randn(B, H, dtype=torch.float64, requires_grad=True),
            torch.randn(B, H, dtype=torch.float64, requires_grad=True)]
    assert torch.autograd.gradcheck(LSTMLayerFunction.apply, args)

    model = LSTMLM(LSTMConfig(vocab_size=11, n_embd=6, hidden=8, n_layer=2)).double()
    ids = torch.randint(0, 11, (2, 7))
    fast = model(ids, ids)                      # LSTMLayerFunction
    fast.loss.backward()
    g_fast = {n: p.grad.clone() for n, p in model.named_parameters()}
    model.zero_grad()
    slow = model(ids, ids, trace=True)          # autograd through LSTMCell.step
    slow.loss.backward()
    assert torch.allclose(fast.loss, slow.loss, atol=1e-12)
    for n, p in model.named_parameters():
        assert torch.allclose(g_fast[n], p.grad, atol=1e-10), n
