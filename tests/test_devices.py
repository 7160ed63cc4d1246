"""The same checks on every device this machine has (the ``device`` fixture: CPU, and CUDA when present).

On the CPU these repeat what other files test; their point is the CUDA run, where kernels, dtypes
and the fused attention path differ: the models must still match PyTorch's modules, the KV cache
must still equal a full pass, and the app's numbers must equal the CPU's within float tolerance.
"""
import pytest
import torch
from torch import nn

from scratchformer.inference.generation import generate_stream
from scratchformer.inference.sampling import SamplingSettings
from scratchformer.inference.traced import run_traced
from scratchformer.model.attention import KVCache, MultiHeadAttention
from scratchformer.model.config import LSTMConfig, TransformerConfig
from scratchformer.model.lstm import LSTMLM
from scratchformer.model.probe import LayerProbe, Probe
from scratchformer.model.transformer import GPT
from scratchformer.tokenizers import CharTokenizer

TOK = CharTokenizer(list("\n !',.:;?abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"))
needs_cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device on this machine")


def tiny_gpt(device, seed=0):
    torch.manual_seed(seed)
    cfg = TransformerConfig(vocab_size=TOK.vocab_size, block_size=32, n_layer=2, n_head=2, n_embd=32)
    return GPT(cfg).to(device).eval()


def tiny_lstm(device, seed=0):
    torch.manual_seed(seed)
    return LSTMLM(LSTMConfig(vocab_size=TOK.vocab_size, n_embd=16, hidden=32, n_layer=2)).to(device).eval()


@pytest.mark.parametrize("need_weights", [True, False], ids=["manual", "fused"])
def test_mha_matches_torch_on_device(device, need_weights, close):
    torch.manual_seed(0)
    d, h, T = 32, 4, 9
    ref = nn.MultiheadAttention(d, h, batch_first=True).to(device).eval()
    ours = MultiHeadAttention(d, h).to(device).eval()
    with torch.no_grad():
        w_q, w_k, w_v = ref.in_proj_weight.chunk(3)
        b_q, b_k, b_v = ref.in_proj_bias.chunk(3)
        for lin, w, b in [(ours.q_proj, w_q, b_q), (ours.k_proj, w_k, b_k), (ours.v_proj, w_v, b_v),
                          (ours.out_proj, ref.out_proj.weight, ref.out_proj.bias)]:
            lin.weight.copy_(w)
            lin.bias.copy_(b)
    x = torch.randn(2, T, d, device=device)
    future = torch.ones(T, T, dtype=torch.bool, device=device).triu(1)      # PyTorch: True = blocked
    theirs, _ = ref(x, x, x, attn_mask=future, need_weights=False)
    out, w = ours(x, causal=True, probe=LayerProbe(weights=need_weights))
    close(f"MultiHeadAttention on {device.type}", out, theirs, atol=2e-5)
    assert out.device.type == device.type


def test_lstm_matches_torch_on_device(device, close):
    torch.manual_seed(0)
    ours = LSTMLM(LSTMConfig(vocab_size=TOK.vocab_size, n_embd=8, hidden=16, n_layer=2)).to(device)
    ref = nn.LSTM(8, 16, num_layers=2, batch_first=True).to(device)
    with torch.no_grad():
        for l, cell in enumerate(ours.lstm.cells):
            getattr(ref, f"weight_ih_l{l}").copy_(cell.ih.weight)
            getattr(ref, f"bias_ih_l{l}").copy_(cell.ih.bias)
            getattr(ref, f"weight_hh_l{l}").copy_(cell.hh.weight)
            getattr(ref, f"bias_hh_l{l}").copy_(cell.hh.bias)
    x = torch.randn(3, 11, 8, device=device)
    for record in (False, True):                       # the fast (hand-written BPTT) and traced paths
        out, (h, c), _ = ours.lstm(x, probe=Probe(weights=record))
        r_out, (r_h, r_c) = ref(x)
        close(f"LSTM on {device.type}", out, r_out, atol=2e-5)
        close(f"LSTM h on {device.type}", h, r_h, atol=2e-5)


def test_kv_cache_equals_full_pass_on_device(device):
    model = tiny_gpt(device)
    ids = torch.randint(0, TOK.vocab_size, (1, 20), device=device)
    with torch.no_grad():
        full = model(ids).logits
        cache = KVCache(len(model.layers))
        step = [model(ids[:, :12], cache=cache).logits]
        for t in range(12, 20):
            step.append(model(ids[:, t:t + 1], cache=cache).logits)
    torch.testing.assert_close(torch.cat(step, dim=1), full, atol=1e-4, rtol=0)


@pytest.mark.parametrize("make", [tiny_gpt, tiny_lstm], ids=["gpt", "lstm"])
def test_same_seed_same_text_on_device(device, make):
    model = make(device)
    kw = dict(settings=SamplingSettings(1.0, 10, 0.95), max_new_tokens=20, seed=7)
    a = "".join(s.text for s in generate_stream(model, TOK, "to be", **kw))
    b = "".join(s.text for s in generate_stream(model, TOK, "to be", **kw))
    assert a == b and len(a) == 20


# ------------------------------------------------------------------------------ CUDA against the CPU

@needs_cuda
@pytest.mark.parametrize("make", [tiny_gpt, tiny_lstm], ids=["gpt", "lstm"])
def test_cuda_numbers_equal_the_cpu_numbers(make):
    """What the app shows (attention weights, per-character surprise, next-token distributions) is
    the same on CUDA as on the CPU within float tolerance, for the same weights."""
    cpu = make("cpu")
    gpu = make("cuda")
    gpu.load_state_dict(cpu.state_dict())
    ids = TOK.encode("ROMEO: but soft, what light")
    a = run_traced(cpu, TOK.itos, ids)
    b = run_traced(gpu, TOK.itos, ids)
    torch.testing.assert_close(b.trace.logits, a.trace.logits, atol=1e-4, rtol=1e-4)
    for wa, wb in zip(a.trace.self_attn, b.trace.self_attn):
        torch.testing.assert_close(wb, wa, atol=1e-5, rtol=1e-4)
    for g in a.trace.gates:
        torch.testing.assert_close(b.trace.gates[g], a.trace.gates[g], atol=1e-5, rtol=1e-4)
    assert a.bits[1:] == pytest.approx(b.bits[1:], abs=1e-3)
    greedy = dict(settings=SamplingSettings(0.0), max_new_tokens=30, seed=0)
    steps_a = list(generate_stream(cpu, TOK, "to be", **greedy))
    steps_b = list(generate_stream(gpu, TOK, "to be", **greedy))
    for sa, sb in zip(steps_a, steps_b):
        torch.testing.assert_close(sb.step.probs_temperature, sa.step.probs_temperature, atol=1e-5, rtol=1e-4)


@needs_cuda
def test_bf16_autocast_training_steps_lower_the_loss_on_cuda():
    model = tiny_gpt("cuda").train()
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3)
    ids = torch.randint(0, TOK.vocab_size, (8, 33), device="cuda")
    x, y = ids[:, :-1], ids[:, 1:]
    losses = []
    for _ in range(30):
        with torch.autocast("cuda", dtype=torch.bfloat16):
            loss = model(x, y).loss
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < losses[0] - 0.5
