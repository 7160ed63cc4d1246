"""Watch it learn (scratchformer/inference/learning.py, app/learn_tab.py): every number the tab shows
at a training step is recomputed here another way from that step's snapshot, on tiny random models
with snapshots written by the test."""
import json
import math
import os

import pytest
import torch

from app_checkpoints import make_checkpoints, make_word_checkpoints
from scratchformer.app import blocks as ui
from scratchformer.app.bank import LSTM_NAME, SMALL_PAIR, TRANSFORMER, WORD_PAIR, ModelBank
from scratchformer.app.inspect_tabs import chars_per_token
from scratchformer.app.learn_tab import learning_history, learning_step, steps_of, trainings
from scratchformer.checkpoint import CheckpointError, load_checkpoint
from scratchformer.inference import learning as L
from scratchformer.inference.generation import generate_stream
from scratchformer.inference.head_stats import head_numbers
from scratchformer.snapshots import SNAPSHOT_DIR, load_snapshot, save_snapshot

STEPS = [0, 4, 40]


def add_snapshots(folder, steps=STEPS, names=("gpt-shakespeare", "lstm-shakespeare")):
    """Snapshots of each model of ``folder`` at ``steps``: the model with its weights moved a little
    further each step (so each step's model is different), with made-up losses that fall."""
    for name in names:
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
    assert steps_of(bank) == [(s, s) for s in STEPS] and trainings(bank) == [SMALL_PAIR]
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


def test_a_slider_move_reads_no_snapshot_index_again_until_one_changes(bank, monkeypatch):
    """The pairs and their steps are asked for on every slider move: each index is read once, and again
    only when it is rewritten."""
    import scratchformer.app.learn_tab as tab
    read = []
    real = tab.read_snapshots
    monkeypatch.setattr(tab, "read_snapshots", lambda folder: read.append(folder) or real(folder))
    learning_step(bank, 0)
    before = len(read)
    for k in (1, 2, 0, 1):
        learning_step(bank, k)
    assert len(read) == before
    index = bank.slots[LSTM_NAME].folder / SNAPSHOT_DIR / "snapshots.json"
    stat = index.stat()
    os.utime(index, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000))   # as if rewritten
    assert steps_of(bank) == [(s, s) for s in STEPS]
    assert read[before:] == [bank.slots[LSTM_NAME].folder]


@pytest.mark.parametrize("value, says", [(3, "snapshot must be in 0…2"), (-1, "snapshot must be in 0…2"),
                                         (None, "snapshot must be"), ("x", "snapshot must be"),
                                         (float("nan"), "snapshot must be")])
def test_a_bad_step_is_refused_by_name(bank, value, says):
    with pytest.raises(ValueError, match=says):
        learning_step(bank, value)


def test_the_page_has_the_tab_with_a_slider_over_the_steps(bank):
    app = ui.build_app(bank=bank)
    fn = next(f for f in app.demo.fns.values() if f.api_name == "learning_step")
    slider, training = fn.inputs
    assert (slider.minimum, slider.maximum, slider.value) == (0, 2, 2)
    assert training.value == SMALL_PAIR and not training.visible        # one pair with snapshots: no choice
    assert "learn" in {row.tab_id for row in app.links.rows}


def test_without_snapshots_the_tab_says_how_to_make_them(tmp_path):
    bank = ModelBank.load(make_checkpoints(tmp_path), device="cpu")
    assert steps_of(bank) == [] and trainings(bank) == []
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


WORD_T_STEPS, WORD_L_STEPS = [0, 3, 30], [0, 5, 50]


@pytest.fixture(scope="module")
def word_bank(tmp_path_factory):
    """Both pairs with snapshots; the word pair's two trainings at different steps (as shipped:
    2,500 steps for its Transformer, 4,500 for its LSTM)."""
    folder = add_snapshots(make_checkpoints(tmp_path_factory.mktemp("learn-words")))
    make_word_checkpoints(folder)
    for name, steps in (("gpt-shakespeare-bpe", WORD_T_STEPS), ("lstm-shakespeare-bpe", WORD_L_STEPS)):
        add_snapshots(folder, steps, names=(name,))
    for name in ("gpt-shakespeare-bpe", "lstm-shakespeare-bpe"):    # 3.5 nats per token = 2.5 bits per character
        path = folder / name / "metrics.json"
        path.write_text(json.dumps(json.loads(path.read_text()) | {"bits_per_char": 2.5}))
    return ModelBank.load(folder, device="cpu")


def test_the_word_pair_shows_each_model_at_its_own_kth_snapshot(word_bank):
    assert trainings(word_bank) == [SMALL_PAIR, WORD_PAIR]
    assert steps_of(word_bank, WORD_PAIR) == list(zip(WORD_T_STEPS, WORD_L_STEPS))
    c = chars_per_token(word_bank.slots["Transformer (words)"].metrics)
    assert c == pytest.approx(3.5 / (2.5 * math.log(2)))
    out = learning_step(word_bank, 1, WORD_PAIR)
    t = {v.step: v for v in learning_history(word_bank.slots["Transformer (words)"].folder)}[3]
    l = {v.step: v for v in learning_history(word_bank.slots["LSTM (words)"].folder)}[5]
    assert out.caption.startswith("**Snapshot 2 of 3** · Transformer at step 3 of 30, LSTM at step 5 of 50")
    # losses in bits per character: nats per token ÷ characters per token ÷ ln 2
    assert (f"Transformer {t.val_loss / c / math.log(2):.2f}, LSTM {l.val_loss / c / math.log(2):.2f} "
            "bits per character") in out.caption
    assert out.transformer_sample == t.sample and out.lstm_sample == l.sample
    assert [s.x0 for s in out.curves.layout.shapes] == pytest.approx([t.tokens * c, l.tokens * c])
    assert [a.text for a in out.curves.layout.annotations] == ["Transformer, step 3", "LSTM, step 5"]
    assert "LSTM at step 5" in out.lstm_gates.layout.title.text
    assert out.lstm_pca.layout.title.text.startswith("LSTM embeddings at step 5")
    assert len(out.transformer_pca.data[0].x) + sum(len(d.x) for d in out.transformer_pca.data[1:]) >= 320
    # the character pair is unchanged beside it
    assert learning_step(word_bank, 1).caption.startswith("**Step 4 of 40**")


@pytest.mark.parametrize("training", ["GPT-2 (words)", "large (GPU-trained)", "", None, 3, "x" * 5000])
def test_a_training_without_snapshots_is_refused_by_name(word_bank, training):
    with pytest.raises(ValueError, match=r"training must be one of \['small \(CPU-trained\)', 'words \(BPE\)'\]") as e:
        learning_step(word_bank, 0, training)
    assert len(str(e.value)) < 200


def test_the_page_offers_the_choice_when_both_pairs_have_snapshots(word_bank):
    app = ui.build_app(bank=word_bank)
    fn = next(f for f in app.demo.fns.values() if f.api_name == "learning_step")
    slider, training = fn.inputs
    assert training.visible and [c[1] for c in training.choices] == [SMALL_PAIR, WORD_PAIR]
    link = app.links.parse("tab=learn&step=1&training=words%20(BPE)")
    assert link.notes == [] and link.values["training"] == WORD_PAIR
    bad = app.links.parse("tab=learn&training=GPT-2")
    assert any("training must be one of" in n for n in bad.notes)
