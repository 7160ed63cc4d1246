"""Watch it learn (scratchformer/inference/learning.py, app/learn_tab.py): every number the tab shows
at a training step is recomputed here another way from that step's snapshot, on tiny random models
with snapshots written by the test."""
import math

import pytest
import torch

from app_checkpoints import make_checkpoints
from scratchformer.app import blocks as ui
from scratchformer.app.bank import LSTM_NAME, TRANSFORMER, ModelBank
from scratchformer.app.learn_tab import learning_history, learning_step, steps_of
from scratchformer.checkpoint import CheckpointError, load_checkpoint
from scratchformer.inference import learning as L
from scratchformer.inference.generation import generate_stream
from scratchformer.inference.head_stats import head_numbers
from scratchformer.snapshots import SNAPSHOT_DIR, load_snapshot, save_snapshot

STEPS = [0, 4, 40]


def add_snapshots(folder, steps=STEPS):
    """Snapshots of each model of ``folder`` at ``steps``: the model with its weights moved a little
    further each step (so each step's model is different), with made-up losses that fall."""
    for name in ("gpt-shakespeare", "lstm-shakespeare"):
        model = load_checkpoint(folder / name).model
        g = torch.Generator().manual_seed(len(name))
        for k, step in enumerate(steps):
            with torch.no_grad():
                for p in model.parameters():
                    p.add_(0.3 * torch.randn(p.shape, generator=g))
            save_snapshot(folder / name, model, step, {"tokens": step * 512, "train_loss": 4.0 - k * 0.5,
                                                       "val_loss": 4.1 - k * 0.5})
    return folder


@pytest.fixture(scope="module")
def bank(tmp_path_factory):
    return ModelBank.load(add_snapshots(make_checkpoints(tmp_path_factory.mktemp("learn"))), device="cpu")


def manual_attention(model, ids, layer: int) -> torch.Tensor:
    """softmax(Q Kᵀ / √d_head + causal mask) of ``layer`` [H, T, T], from the weights, the embeddings
    and the pre-norm LayerNorm, written out here (not through the model's attention code)."""
    x = torch.tensor([ids])
    with torch.no_grad():
        h = model.embed(x)[0]
        for blk in model.layers[:layer]:
            h = blk(h, causal=True)
        blk = model.layers[layer]
        y = blk.norm1(h) if blk.norm_first else h
        a = blk.self_attn
        H = model.config.n_head
        d = model.config.n_embd // H
        q = (y @ a.q_proj.weight.T + a.q_proj.bias).view(len(ids), H, d).transpose(0, 1)
        k = (y @ a.k_proj.weight.T + a.k_proj.bias).view(len(ids), H, d).transpose(0, 1)
        s = q @ k.transpose(1, 2) / math.sqrt(d)
        s = s.masked_fill(torch.ones(len(ids), len(ids)).triu(1).bool(), float("-inf"))
        return s.softmax(-1)


def test_each_step_is_the_snapshot_of_that_step(bank):
    folder = bank.slots[TRANSFORMER].folder
    history = learning_history(folder)
    assert [v.step for v in history] == STEPS and learning_history(folder) is history     # computed once
    for v in history:
        loaded = load_snapshot(folder, v.step)
        again = "".join(g.text for g in generate_stream(loaded.model, loaded.tokenizer, L.PROMPT, settings=L.SETTINGS,
                                                        max_new_tokens=L.NEW_TOKENS, seed=L.SEED))
        assert v.sample == again and len(v.sample) == L.NEW_TOKENS
        ids = loaded.tokenizer.encode(L.TEXT)
        for layer in range(loaded.config.n_layer):
            torch.testing.assert_close(v.attention[layer], manual_attention(loaded.model, ids, layer), atol=3e-6, rtol=0)
            for h in range(loaded.config.n_head):
                w = manual_attention(loaded.model, ids, layer)[h]
                assert v.heads[layer][h]["previous"] == pytest.approx(float(w.diagonal(-1).mean()), abs=1e-6)
                assert v.heads[layer][h] == pytest.approx(head_numbers(v.attention[layer][h], ids), nan_ok=True)
        assert torch.equal(v.embeddings, loaded.model.token_embedding_table())
    samples = {v.sample for v in history}
    assert len(samples) == len(STEPS)                     # each step's model writes its own text
    lstm = learning_history(bank.slots[LSTM_NAME].folder)
    assert [v.step for v in lstm] == STEPS and lstm[0].attention is None


def reference_gates(model, ids):
    """The last layer's gates and cell states of our LSTM language model, from nn.LSTM (our weights
    copied in, one nn.LSTM per layer for the layers' outputs) and PyTorch's documented gate equations
    (i, f, g, o): i = σ(W_ii x + b_ii + W_hi h + b_hi) …, c_t = f ⊙ c_{t−1} + i ⊙ g."""
    with torch.no_grad():
        x = model.embed(torch.tensor([ids]))
        for cell in model.lstm.cells:
            hidden = cell.hh.weight.shape[1]
            ref = torch.nn.LSTM(x.shape[-1], hidden, batch_first=True)
            for name, ours in (("weight_ih_l0", cell.ih.weight), ("weight_hh_l0", cell.hh.weight),
                               ("bias_ih_l0", cell.ih.bias), ("bias_hh_l0", cell.hh.bias)):
                getattr(ref, name).copy_(ours)
            inputs, (x, _) = x, ref(x)
        h_before = torch.cat([torch.zeros(1, 1, hidden), x[:, :-1]], 1)
        pre = inputs @ ref.weight_ih_l0.T + ref.bias_ih_l0 + h_before @ ref.weight_hh_l0.T + ref.bias_hh_l0
        i, f, g, o = pre[0].chunk(4, -1)
        i, f, g, o = i.sigmoid(), f.sigmoid(), g.tanh(), o.sigmoid()
        cells, c = [], torch.zeros(hidden)
        for t in range(len(ids)):
            c = f[t] * c + i[t] * g[t]
            cells.append(c)
    return {"i": i, "f": f, "o": o}, torch.stack(cells)


def test_each_lstm_step_shows_the_gates_of_that_snapshot(bank):
    folder = bank.slots[LSTM_NAME].folder
    for v in learning_history(folder):
        loaded = load_snapshot(folder, v.step)
        gates, cells = reference_gates(loaded.model, loaded.tokenizer.encode(L.TEXT))
        for k in "ifo":
            torch.testing.assert_close(v.gates[k], gates[k], atol=3e-6, rtol=0)
        torch.testing.assert_close(v.cells, cells, atol=3e-6, rtol=0)
    out = learning_step(bank, 0)
    assert "LSTM at step 0" in out.lstm_gates.layout.title.text and len(out.lstm_gates.data) == 4


def test_the_tab_shows_the_step_chosen(bank):
    assert steps_of(bank) == STEPS
    out = learning_step(bank, 1)
    assert out.caption.startswith("**Step 4 of 40** (snapshot 2 of 3) · 2,048 characters seen")
    assert f"Transformer {3.6 / math.log(2):.2f}, LSTM {3.6 / math.log(2):.2f} bits per character" in out.caption
    t = {v.step: v for v in learning_history(bank.slots[TRANSFORMER].folder)}[4]
    assert out.transformer_sample == t.sample
    assert out.lstm_sample == {v.step: v for v in learning_history(bank.slots[LSTM_NAME].folder)}[4].sample
    # the curves: the metrics' curve of each model, the step marked at its characters seen
    assert [(s.x0, s.x1) for s in out.curves.layout.shapes] == [(2048, 2048)]
    val = next(d for d in out.curves.data if d.name == "Transformer val")
    logged = {p["iter"]: p for p in bank.slots[TRANSFORMER].metrics["curve"]}      # steps 0 … 4, every step
    added = {v.step: v for v in learning_history(bank.slots[TRANSFORMER].folder) if v.step not in logged}
    assert list(added) == [40]                                                       # the snapshot past the log
    assert list(val.y) == pytest.approx([p["val_loss"] / math.log(2) for p in logged.values()]
                                        + [added[40].val_loss / math.log(2)])
    assert list(val.x) == [p["tokens"] for p in logged.values()] + [40 * 512]
    # the attention grid: every layer and head of step 4
    cfg = bank.slots[TRANSFORMER].config
    assert len(out.attention.data) == cfg.n_layer * cfg.n_head
    torch.testing.assert_close(torch.tensor(out.attention.data[0].z, dtype=torch.float32), t.attention[0][0],
                               atol=1e-6, rtol=0)
    # each head's numbers over the steps, the step marked
    history = learning_history(bank.slots[TRANSFORMER].folder)
    prev = next(d for d in out.heads.data if d.name == "L2 H1")
    assert list(prev.y) == pytest.approx([v.heads[1][0]["previous"] for v in history])
    assert {s.x0 for s in out.heads.layout.shapes} == {1}
    assert out.transformer_pca.layout.title.text.startswith("Transformer embeddings at step 4")
    assert learning_step(bank, 1) is out                   # drawn once, kept


@pytest.mark.parametrize("value, says", [(3, "snapshot must be in 0…2"), (-1, "snapshot must be in 0…2"),
                                         (None, "snapshot must be"), ("x", "snapshot must be"),
                                         (float("nan"), "snapshot must be")])
def test_a_bad_step_is_refused_by_name(bank, value, says):
    with pytest.raises(ValueError, match=says):
        learning_step(bank, value)


def test_the_page_has_the_tab_with_a_slider_over_the_steps(bank):
    demo = ui.build_demo(bank=bank)
    fn = next(f for f in demo.fns.values() if f.api_name == "learning_step")
    slider = fn.inputs[0]
    assert (slider.minimum, slider.maximum, slider.value) == (0, 2, 2)
    assert "learn" in {row.tab_id for row in demo.links.rows}


def test_without_snapshots_the_tab_says_how_to_make_them(tmp_path):
    bank = ModelBank.load(make_checkpoints(tmp_path), device="cpu")
    assert steps_of(bank) == []
    demo = ui.build_demo(bank=bank)
    assert "learning_step" not in {f.api_name for f in demo.fns.values()}
    with pytest.raises(ValueError, match="no training snapshots"):
        learning_step(bank, 0)


def test_a_broken_snapshot_is_named(tmp_path):
    folder = add_snapshots(make_checkpoints(tmp_path))
    (folder / "lstm-shakespeare" / SNAPSHOT_DIR / "step_000004.safetensors").write_bytes(b"broken")
    bank = ModelBank.load(folder, device="cpu")
    with pytest.raises(CheckpointError, match="step_000004.safetensors: cannot read tensors"):
        learning_step(bank, 0)
