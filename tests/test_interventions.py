"""head_worth's batched passes (every head of a layer in one batch, the layers before it read once) give
the numbers of its definition: one plain forward pass of the model per head, with that head ablated."""
import pytest
import torch

from scratchformer.inference import interventions as I
from scratchformer.model import GPT, TransformerConfig
from scratchformer.model.probe import LayerProbe
from scratchformer.model.transformer import BertLM

V = 29


def model(cls=GPT, dtype=torch.float64, seed=0, **kw):
    torch.manual_seed(seed)
    cfg = dict(vocab_size=V, block_size=32, n_layer=3, n_head=4, n_embd=16) | kw
    m = cls(TransformerConfig(**cfg))
    with torch.no_grad():           # non-zero biases and norms away from 1/0, so that each one counts
        for p in m.parameters():
            p.add_(0.1 * torch.randn_like(p))
    return m.to(dtype).eval()


IDS = torch.randint(0, V, (21,), generator=torch.Generator().manual_seed(1)).tolist()
SHAPES = {
    "gpt": dict(),
    "gpt2": dict(activation="gelu_tanh", pos="learned", tie_weights=True),
    "post-norm": dict(norm_first=False, activation="relu", bias=False),
    "sinusoidal": dict(pos="sinusoidal", scale_embeddings=True, tie_weights=False),
}


@pytest.mark.parametrize("mode", ["zero", "mean"])
@pytest.mark.parametrize("shape", list(SHAPES))
def test_batched_head_worth_equals_one_pass_per_head(shape, mode):
    m = model(**SHAPES[shape])
    batched = I.head_worth(m, IDS, mode)
    each = I.head_worth_one_at_a_time(m, IDS, mode)
    assert batched["mode"] == each["mode"] == mode
    assert batched["intact_loss"] == each["intact_loss"]
    assert len(batched["grid"]) == 3 and all(len(r) == 4 for r in batched["grid"])
    torch.testing.assert_close(torch.tensor(batched["grid"]), torch.tensor(each["grid"]), rtol=0, atol=1e-6)
    assert max(abs(w) for r in each["grid"] for w in r) > 1e-3          # the heads do matter here


def test_float32_and_a_bidirectional_encoder():
    m = model(dtype=torch.float32)
    torch.testing.assert_close(torch.tensor(I.head_worth(m, IDS)["grid"]),
                               torch.tensor(I.head_worth_one_at_a_time(m, IDS)["grid"]), rtol=0, atol=1e-5)
    bert = model(BertLM)             # no causal mask: every position sees every other
    assert I._batchable(bert)
    torch.testing.assert_close(torch.tensor(I.head_worth(bert, IDS, "mean")["grid"]),
                               torch.tensor(I.head_worth_one_at_a_time(bert, IDS, "mean")["grid"]),
                               rtol=0, atol=1e-6)


@pytest.mark.parametrize("budget", [1, 3 * (len(IDS) - 1) * V])
def test_rows_are_taken_in_groups_under_the_logits_budget(monkeypatch, budget):
    """Groups of 1 row (a budget smaller than one row's logits) and of 3 rows (4 heads: 3 + 1)."""
    m = model()
    want = I.head_worth_one_at_a_time(m, IDS, "mean")["grid"]
    monkeypatch.setattr(I, "WORTH_LOGITS_BUDGET", budget)
    torch.testing.assert_close(torch.tensor(I.head_worth(m, IDS, "mean")["grid"]), torch.tensor(want),
                               rtol=0, atol=1e-6)


def test_each_row_has_exactly_its_own_head_switched_off():
    """Row r of a layer's batch = that layer run with head r ablated through the model's own Probe."""
    m = model()
    x = torch.tensor([IDS])
    with torch.no_grad():
        stream, _, _ = m.embed(x)
        stream = m.layers[0](stream, causal=True)
        means = torch.randn(4, 4, dtype=torch.float64)
        rows = I._Products(m.layers[1]).each_head_off(stream, True, means)
        for r in range(4):
            one = m.layers[1](stream, causal=True, probe=LayerProbe(heads_off=(r,), head_values=means))
            torch.testing.assert_close(rows[r:r + 1], one, rtol=0, atol=1e-12)


@pytest.mark.parametrize("norm_first", [True, False])
def test_the_rows_pass_is_the_layer_own_forward(norm_first):
    """_Products(layer)(x): the layer's function for many rows, every product laid out for oneDNN
    (float32: equal to the layer's forward up to rounding), pre-norm and post-norm."""
    cfg = TransformerConfig(model_type="gpt", vocab_size=V, block_size=32, n_layer=2, n_head=4, n_embd=16,
                            norm_first=norm_first, activation="relu" if norm_first else "gelu")
    torch.manual_seed(3)
    layer = GPT(cfg).eval().layers[1]
    x = torch.randn(5, 12, 16)
    with torch.no_grad():
        torch.testing.assert_close(I._Products(layer)(x, True), layer(x, causal=True), rtol=0, atol=2e-6)
        torch.testing.assert_close(I._Products(layer)(x, False), layer(x, causal=False), rtol=0, atol=2e-6)


def test_models_it_cannot_batch_take_one_pass_per_head():
    class Custom(GPT):            # a forward of its own: the batched pass would not be its function
        def forward(self, *a, **kw):
            return super().forward(*a, **kw)
    m = model(Custom)
    assert not I._batchable(m) and not I._batchable(model().train())
    assert I.head_worth(m, IDS) == I.head_worth_one_at_a_time(m, IDS)


def test_the_model_is_only_read():
    m = model()
    before = {k: v.clone() for k, v in m.state_dict().items()}
    I.head_worth(m, IDS, "mean")
    assert not m.training
    assert all(torch.equal(v, m.state_dict()[k]) for k, v in before.items())
