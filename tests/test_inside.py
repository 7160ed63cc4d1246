"""Inside one forward pass: every number of the walkthrough, the logit lens, the ablations and the head
statistics, recomputed another way (PyTorch's modules with copied weights, a model copy with weights
edited, plain loops)."""
import copy
import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from scratchformer.inference.head_stats import describe_head, head_numbers, head_table
from scratchformer.inference.inside import logit_lens, walkthrough
from scratchformer.inference.interventions import compare, greedy_continuation, head_worth, make_ablation
from scratchformer.inference.lstm_inside import lstm_step
from scratchformer.tokenizers import CharTokenizer
from scratchformer.inference.sampling import SamplingSettings
from scratchformer.model import GPT, LSTMLM, Ablation, LSTMConfig, Probe, TransformerConfig

ITOS = [chr(ord("a") + i) for i in range(26)] + list(" .,\n")
V = len(ITOS)
TOK = CharTokenizer(ITOS)


@pytest.fixture(scope="module")
def gpt():
    torch.manual_seed(0)
    m = GPT(TransformerConfig(vocab_size=V, block_size=48, n_layer=3, n_head=4, n_embd=32)).eval()
    with torch.no_grad():   # non-trivial LayerNorm parameters, so that γ and β are really exercised
        for mod in m.modules():
            if isinstance(mod, nn.LayerNorm):
                mod.weight.uniform_(0.5, 1.5)
                mod.bias.uniform_(-0.2, 0.2)
    return m


@pytest.fixture(scope="module")
def lstm():
    torch.manual_seed(1)
    return LSTMLM(LSTMConfig(vocab_size=V, n_embd=8, hidden=12, n_layer=2)).eval()


@pytest.fixture(scope="module")
def ids():
    torch.manual_seed(2)
    return torch.randint(0, V, (40,)).tolist()


def torch_layer(block) -> nn.TransformerEncoderLayer:
    """PyTorch's own pre-norm encoder layer with our block's weights copied in."""
    D = block.norm1.normalized_shape[0]
    theirs = nn.TransformerEncoderLayer(D, block.self_attn.n_head, block.ff.linear1.out_features, dropout=0.0,
                                        activation="gelu", batch_first=True, norm_first=True).eval()
    a = block.self_attn
    with torch.no_grad():
        theirs.self_attn.in_proj_weight.copy_(torch.cat([a.q_proj.weight, a.k_proj.weight, a.v_proj.weight]))
        theirs.self_attn.in_proj_bias.copy_(torch.cat([a.q_proj.bias, a.k_proj.bias, a.v_proj.bias]))
        theirs.self_attn.out_proj.load_state_dict(a.out_proj.state_dict())
        theirs.linear1.load_state_dict(block.ff.linear1.state_dict())
        theirs.linear2.load_state_dict(block.ff.linear2.state_dict())
        theirs.norm1.load_state_dict(block.norm1.state_dict())
        theirs.norm2.load_state_dict(block.norm2.state_dict())
    return theirs


# ------------------------------------------------------------------------------------------ walkthrough

def test_walkthrough_final_logits_are_the_forward_pass(gpt, ids, close):
    x = torch.tensor([ids])
    with torch.no_grad():
        plain = gpt(x).logits[0]                      # the fast (fused) path
        traced = gpt(x, trace=True).logits[0]         # the path that returns the weights
    for t in (0, 17, len(ids) - 1):
        w = walkthrough(gpt, ids, t, TOK)
        logits = torch.tensor(w.numbers["final"]["logits"])
        assert torch.equal(logits, traced[t])
        close("walkthrough logits vs plain forward", logits, plain[t], atol=1e-5)
        assert w.numbers["final"]["loss"] == (pytest.approx(float(-F.log_softmax(plain[t].double(), -1)[ids[t + 1]]),
                                                             abs=1e-5) if t + 1 < len(ids) else None)


def test_every_stage_equals_pytorch_modules(gpt, ids, close):
    t = 23
    n = walkthrough(gpt, ids, t, TOK, SamplingSettings(0.7, 5, 0.9)).numbers
    T, D, H = len(ids), 32, 4
    d = D // H
    vec = lambda v: torch.tensor(v, dtype=torch.float32)   # noqa: E731
    x = gpt.token_embedding_table()[ids] + gpt.position_table()[:T]          # [T, D]
    close("inside: token row", vec(n["embedding"]["token"]), gpt.token_embedding_table()[ids[t]].detach())
    close("inside: position row", vec(n["embedding"]["position"]), gpt.position_table()[t].detach())
    close("inside: x0", vec(n["embedding"]["x0"]), x[t].detach())
    causal = torch.ones(T, T, dtype=torch.bool).triu(1)    # PyTorch's convention: True = may NOT attend
    with torch.no_grad():
        for l, block in enumerate(gpt.layers):
            L = n["layers"][l]
            ln = nn.LayerNorm(D)
            ln.load_state_dict(block.norm1.state_dict())
            y = ln(x)
            var, mean = torch.var_mean(x[t], unbiased=False)
            assert L["ln1"]["mean"] == pytest.approx(float(mean), abs=1e-6)
            assert L["ln1"]["spread"] == pytest.approx(math.sqrt(float(var) + 1e-5), rel=1e-5)
            close("inside: LN1 vs nn.LayerNorm", vec(L["ln1"]["output"]), y[t])
            close("inside: LN1 normalised", vec(L["ln1"]["normalised"]) * block.norm1.weight + block.norm1.bias, y[t])
            mha = torch_layer(block).self_attn
            attn_out, weights = mha(y[None], y[None], y[None], attn_mask=causal, average_attn_weights=False)
            q, k, v = F.linear(y, mha.in_proj_weight, mha.in_proj_bias).split(D, dim=-1)
            for h in range(H):
                hd, cols = L["heads"][h], slice(h * d, (h + 1) * d)
                close("inside: q", vec(hd["q"]), q[t, cols])
                close("inside: k", vec(hd["k"]), k[t, cols])
                close("inside: v", vec(hd["v"]), v[t, cols])
                assert hd["keys"] == list(range(t + 1))
                scores = [float(q[t, cols] @ k[j, cols]) / math.sqrt(d) for j in range(t + 1)]
                close("inside: scores", vec(hd["scores"]), torch.tensor(scores), atol=1e-4)
                close("inside: weights vs nn.MultiheadAttention", vec(hd["weights"]), weights[0, h, t, :t + 1])
                close("inside: softmax(scores)", vec(hd["weights"]), torch.softmax(torch.tensor(scores), -1))
                close("inside: head output Σαv", vec(hd["output"]), weights[0, h, t, :t + 1] @ v[:t + 1, cols])
            close("inside: attention output vs nn.MultiheadAttention", vec(L["attn_out"]), attn_out[0, t])
            close("inside: concat·W^O", F.linear(vec(L["concat"]), mha.out_proj.weight, mha.out_proj.bias),
                  attn_out[0, t])
            mid = x + attn_out[0]
            close("inside: residual after attention", vec(L["resid_mid"]), mid[t])
            ln2 = F.layer_norm(mid, (D,), block.norm2.weight, block.norm2.bias, block.norm2.eps)
            close("inside: LN2 vs F.layer_norm", vec(L["ln2"]["output"]), ln2[t])
            pre = F.linear(ln2[t], block.ff.linear1.weight, block.ff.linear1.bias)
            close("inside: FFN pre-activation", vec(L["ff_pre"]), pre)
            close("inside: FFN activation (F.gelu)", vec(L["ff_act"]), F.gelu(pre))
            assert L["firing"] == int((F.gelu(pre) > 0).sum()) == int((pre > 0).sum())
            close("inside: FFN output", vec(L["ff_out"]), F.linear(F.gelu(pre), block.ff.linear2.weight,
                                                                   block.ff.linear2.bias))
            x = torch_layer(block)(x[None], src_mask=causal)[0]          # PyTorch's whole layer
            close("inside: residual after FFN vs nn.TransformerEncoderLayer", vec(L["resid_post"]), x[t])
        final = F.layer_norm(x, (D,), gpt.ln_f.weight, gpt.ln_f.bias, gpt.ln_f.eps)
        close("inside: final LayerNorm", vec(n["final"]["ln"]["output"]), final[t])
        logits = final[t] @ gpt.token_embedding_table().T
        close("inside: logits (tied head)", vec(n["final"]["logits"]), logits)
    close("inside: probs", vec(n["final"]["probs"]), torch.softmax(logits, -1))
    s = n["final"]["sampling"]
    p_t = torch.softmax(logits.double() / 0.7, -1)
    close("inside: after temperature", torch.tensor(s["after_temperature"]), p_t)
    assert 1 <= s["kept"] <= 5 and abs(sum(s["after_filters"]) - 1) < 1e-9


def test_diagram_shapes(gpt, ids):
    shapes = walkthrough(gpt, ids, 0, TOK).numbers["shapes"]
    assert shapes[0]["shape"] == [40, 32] and shapes[-1]["shape"] == [40, V]
    assert len(shapes) == 2 + 2 * 3 and shapes[1]["inner"] == [4, 40, 8] and shapes[2]["inner"] == [40, 128]


# ----------------------------------------------------------------------------------------- logit lens

def test_logit_lens_applies_the_final_layernorm(gpt, ids, close):
    lens = logit_lens(gpt, ids, TOK)
    assert lens["final_layernorm_applied"] and len(lens["rows"]) == 4
    with torch.no_grad():
        tr = gpt(torch.tensor([ids]), trace=True).trace
        for l, h in enumerate(tr.hidden_states):
            p = torch.softmax(F.layer_norm(h[0], (32,), gpt.ln_f.weight, gpt.ln_f.bias) @ gpt.token_embedding_table().T, -1)
            assert lens["top"][l] == [ITOS[i] for i in p.argmax(-1).tolist()]
            close("logit lens p(next)", torch.tensor(lens["p_next"][l][:-1]),
                  p[:-1].gather(1, torch.tensor(ids[1:])[:, None])[:, 0])
            assert lens["p_next"][l][-1] is None
    assert lens["top"][-1] == [ITOS[i] for i in tr.logits[0].argmax(-1).tolist()]   # the model's own output


# ------------------------------------------------------------------------------------------- ablations

def test_ablating_nothing_changes_nothing(gpt, lstm, ids):
    x = torch.tensor([ids])
    with torch.no_grad():
        for m in (gpt, lstm):
            assert torch.equal(m(x).logits, m(x, probe=Probe(ablation=Ablation())).logits)
            assert torch.equal(m(x, trace=True).logits, m(x, probe=Probe(weights=True, ablation=Ablation())).logits)
    cmp = compare(gpt, ids, TOK, make_ablation(gpt, ids), n_new=5)
    assert cmp["loss_increase"] == 0 and cmp["changed"] == 0
    assert cmp["intact"]["continuation"] == cmp["ablated"]["continuation"]


def _without_head_columns(model, l: int, h: int, fill=None):
    """A copy of the model whose W^O ignores head h of layer l (the head's output × 0); with ``fill``
    (the head's replacement [d_head]) that constant's contribution goes into W^O's bias."""
    m = copy.deepcopy(model)
    out = m.layers[l].self_attn.out_proj
    d = out.in_features // m.config.n_head
    cols = slice(h * d, (h + 1) * d)
    with torch.no_grad():
        if fill is not None:
            out.bias += out.weight[:, cols] @ fill
        out.weight[:, cols] = 0
    return m


@pytest.mark.parametrize("mode", ["zero", "mean"])
def test_head_ablation_equals_a_model_with_that_head_cut_out(gpt, ids, mode, close):
    ab = make_ablation(gpt, ids, heads=[(1, 2)], mode=mode)
    fill = None
    x = torch.tensor([ids])
    with torch.no_grad():
        if mode == "mean":
            heads = gpt(x, probe=Probe(full=True)).trace.layers[1]["heads"][0, 2]            # [T, d_head]
            fill = heads.mean(0)
            close("mean ablation value", ab.head_values[1][2], fill)
        ref = _without_head_columns(gpt, 1, 2, fill)(x).logits
        close(f"{mode}-ablated head vs edited copy", gpt(x, probe=Probe(ablation=ab)).logits, ref, atol=1e-5)


def test_ffn_off_equals_a_model_without_that_block(gpt, ids, close):
    m = copy.deepcopy(gpt)
    with torch.no_grad():
        m.layers[0].ff.linear2.weight.zero_()
        m.layers[0].ff.linear2.bias.zero_()
        x = torch.tensor([ids])
        ffn_off = Probe(ablation=Ablation(ffn_off=frozenset({0})))
        close("FFN off vs zeroed copy", gpt(x, probe=ffn_off).logits, m(x).logits)


def test_head_worth_is_each_head_alone(gpt, ids):
    worth = head_worth(gpt, ids)
    x = torch.tensor([ids])
    with torch.no_grad():
        base = F.cross_entropy(gpt(x).logits[0, :-1], x[0, 1:])
        for l, h in ((0, 0), (2, 3)):
            ref = F.cross_entropy(_without_head_columns(gpt, l, h)(x).logits[0, :-1], x[0, 1:]) - base
            assert worth["grid"][l][h] == pytest.approx(float(ref), abs=1e-5)
    assert worth["intact_loss"] == pytest.approx(float(base), abs=1e-5)


def test_greedy_continuation_with_cache_equals_argmax_of_full_passes(gpt, ids):
    ab = make_ablation(gpt, ids, heads=[(0, 1)], ffn=[2])
    out, read = greedy_continuation(gpt, ids, 8, ab)
    ctx = ids[-read:]
    with torch.no_grad():
        for tok in out:
            assert tok == int(gpt(torch.tensor([ctx]), probe=Probe(ablation=ab)).logits[0, -1].argmax())
            ctx.append(tok)
    assert read == 48 - 8


def test_the_intact_continuation_and_a_shared_first_pass_equal_plain_passes(gpt, lstm, ids):
    # the intact GPT decodes through the fast decoder and the LSTM's losses come from the
    # continuation's own first pass: the same tokens and numbers as plain full passes give
    from scratchformer.inference.interventions import _side
    tok = TOK
    for model in (gpt, lstm):
        out, read = greedy_continuation(model, ids, 8)
        ctx = ids[-read:]
        with torch.no_grad():
            for t in out:
                assert t == int(model(torch.tensor([ctx])).logits[0, -1].argmax())
                ctx.append(t)
        for ablation in (None, make_ablation(model, ids, lstm_units=[(0, 2)]) if model is lstm else None):
            side = _side(model, ids, tok, ablation, 5)
            with torch.no_grad():
                logits = model(torch.tensor([ids]), probe=Probe(ablation=ablation or Ablation())).logits[0]
            ref = F.cross_entropy(logits[:-1], torch.tensor(ids[1:]))
            assert side["loss"] == pytest.approx(float(ref), abs=1e-5)
            assert side["top"] == tok.pieces(logits.argmax(-1).tolist())


def test_lstm_silenced_units_and_emptied_cell_equal_a_loop_over_nn_lstmcell(lstm, ids, close):
    ab = Ablation(lstm_units={0: (1, 5)}, lstm_cells_off=frozenset({1}))
    cells = []
    for c in lstm.lstm.cells:
        ref = nn.LSTMCell(c.ih.in_features, c.hidden_size)
        with torch.no_grad():
            ref.weight_ih.copy_(c.ih.weight), ref.weight_hh.copy_(c.hh.weight)
            ref.bias_ih.copy_(c.ih.bias), ref.bias_hh.copy_(c.hh.bias)
        cells.append(ref)
    keep = torch.ones(12)
    keep[[1, 5]] = 0
    with torch.no_grad():
        inp = lstm.embed(torch.tensor(ids))
        for l, ref in enumerate(cells):
            h = c = torch.zeros(12)
            outs = []
            for x in inp:
                h, c = ref(x[None], (h[None], (c * 0 if l == 1 else c)[None]))
                h, c = h[0], c[0]
                if l == 0:
                    h, c = h * keep, c * keep
                outs.append(h)
            inp = torch.stack(outs)
        ref_logits = lstm.lm_head(inp)
        close("LSTM ablation vs nn.LSTMCell loop", lstm(torch.tensor([ids]), probe=Probe(ablation=ab)).logits[0],
              ref_logits)


def test_the_shared_model_is_unchanged_by_ablation_requests(gpt, lstm, ids):
    before = {id(m): ({k: v.clone() for k, v in m.state_dict().items()}, m.training) for m in (gpt, lstm)}
    compare(gpt, ids, TOK, make_ablation(gpt, ids, heads=[(0, 0), (2, 1)], ffn=[1], mode="mean"), n_new=5)
    head_worth(gpt, ids, "mean")
    compare(lstm, ids, TOK, make_ablation(lstm, ids, lstm_units=[(1, 3)], lstm_cells=[0]), n_new=5)
    walkthrough(gpt, ids, 3, TOK)
    for m in (gpt, lstm):
        state, training = before[id(m)]
        assert m.training == training
        assert all(torch.equal(v, m.state_dict()[k]) for k, v in state.items())
    with torch.no_grad():   # and an intact request right after is the intact model
        assert torch.equal(gpt(torch.tensor([ids])).logits, copy.deepcopy(gpt)(torch.tensor([ids])).logits)


@pytest.mark.parametrize("kwargs,message", [
    (dict(heads=[(3, 0)]), "layer 4 does not exist"),
    (dict(heads=[(0, 4)]), "head 5 of layer 1 does not exist"),
    (dict(ffn=[7]), "layer 8 does not exist"),
    (dict(mode="half"), "mode must be one of"),
    (dict(heads=[(l, h) for l in range(3) for h in range(4)], ffn=[0, 1, 2]), "every head and every feed-forward"),
    (dict(lstm_units=[(0, 1)]), "no LSTM units"),
])
def test_bad_ablations_say_what_exists(gpt, ids, kwargs, message):
    with pytest.raises(ValueError, match=message):
        make_ablation(gpt, ids, **kwargs)


def test_bad_positions_and_texts(gpt, lstm, ids):
    with pytest.raises(ValueError, match=r"position must be .* 0…39"):
        walkthrough(gpt, ids, 40, TOK)
    with pytest.raises(ValueError, match="empty"):
        logit_lens(gpt, [], TOK)
    with pytest.raises(ValueError, match="at most 48"):
        walkthrough(gpt, list(range(25)) * 2, 0, TOK)
    with pytest.raises(ValueError, match="unit must be in 0…11"):
        lstm_step(lstm, ids, 0, 0, 12, TOK)
    with pytest.raises(ValueError, match="units are 0…11"):
        make_ablation(lstm, ids, lstm_units=[(0, 12)])
    with pytest.raises(ValueError, match="whole LSTM"):
        make_ablation(lstm, ids, lstm_units=[(l, u) for l in range(2) for u in range(12)], lstm_cells=[0, 1])


# ---------------------------------------------------------------------------------------------- heads

def test_head_numbers_on_known_patterns():
    T = 6
    prev = torch.zeros(T, T)
    prev[0, 0] = 1
    prev[torch.arange(1, T), torch.arange(T - 1)] = 1
    n = head_numbers(prev, [0, 1, 2, 3, 4, 5])
    assert n["previous"] == 1 and n["first"] == pytest.approx(0.2) and n["distance"] == pytest.approx(5 / 6)
    assert n["entropy"] == 0 and describe_head(n) == "mostly looks one character back: 100%"
    sink = torch.zeros(T, T)
    sink[:, 0] = 1
    assert describe_head(head_numbers(sink, [0, 1, 2, 3, 4, 5])) == "mostly parks on the first character (a sink): 100%"
    uniform = torch.tril(torch.ones(T, T))
    uniform = uniform / uniform.sum(1, keepdim=True)
    n = head_numbers(uniform, [0, 1, 0, 1, 0, 1])
    assert n["entropy"] == pytest.approx(sum(math.log2(i + 1) for i in range(T)) / T)
    # same character earlier: rows 2..5 have earlier copies; row i puts weight on its copies j < i
    assert n["same"] == pytest.approx(sum(len(range(i % 2, i, 2)) / (i + 1) for i in range(2, T)) / 4)


def test_head_numbers_match_plain_loops(gpt, ids):
    with torch.no_grad():
        attn = [a[0] for a in gpt(torch.tensor([ids]), trace=True).trace.self_attn]
    rows = head_table(attn, ids, TOK)
    T = len(ids)
    for r in rows[::5]:
        w = attn[r["layer"] - 1][r["head"] - 1].double().tolist()
        prev = sum(w[i][i - 1] for i in range(1, T)) / (T - 1)
        dist = sum(w[i][j] * abs(i - j) for i in range(T) for j in range(T)) / T
        ent = sum(-p * math.log2(p) for row in w for p in row if p > 0) / T
        same = [sum(w[i][j] for j in range(i) if ids[j] == ids[i]) for i in range(T) if ids[i] in ids[:i]]
        assert r["previous"] == pytest.approx(prev) and r["distance"] == pytest.approx(dist)
        assert r["entropy"] == pytest.approx(ent) and r["same"] == pytest.approx(sum(same) / len(same))
        assert any(s in r["description"] for s in ("%", "bits", "characters"))


# ------------------------------------------------------------------------------------------------ LSTM

def test_lstm_step_equals_nn_lstm(lstm, ids, close):
    t, layer, unit = 9, 1, 4
    s = lstm_step(lstm, ids, t, layer, unit, TOK)
    ref = nn.LSTM(8, 12, num_layers=2, batch_first=True)
    with torch.no_grad():
        for k, c in enumerate(lstm.lstm.cells):
            getattr(ref, f"weight_ih_l{k}").copy_(c.ih.weight), getattr(ref, f"weight_hh_l{k}").copy_(c.hh.weight)
            getattr(ref, f"bias_ih_l{k}").copy_(c.ih.bias), getattr(ref, f"bias_hh_l{k}").copy_(c.hh.bias)
        out, _ = ref(lstm.embed(torch.tensor([ids[:t + 1]])))
        _, (h_prev, c_prev) = ref(lstm.embed(torch.tensor([ids[:t]])))
        _, (h_t, c_t) = ref(lstm.embed(torch.tensor([ids[:t + 1]])))
    assert s["h"] == pytest.approx(float(out[0, t, unit]), abs=1e-5)
    assert s["c"] == pytest.approx(float(c_t[layer, 0, unit]), abs=1e-5)
    assert s["c_prev"] == pytest.approx(float(c_prev[layer, 0, unit]), abs=1e-5)
    assert s["c"] == pytest.approx(s["f"] * s["c_prev"] + s["i"] * s["g"], abs=1e-6)
    assert s["h"] == pytest.approx(s["o"] * math.tanh(s["c"]), abs=1e-6)
    for k in "ifo":
        assert s[k] == pytest.approx(1 / (1 + math.exp(-s["z"][k])), abs=1e-6)
    assert s["g"] == pytest.approx(math.tanh(s["z"]["g"]), abs=1e-6)
    assert len(s["over_text"]["c"]) == len(ids) and s["over_text"]["c"][t] == s["c"]
