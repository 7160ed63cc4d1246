"""Training: tiny models learn, the schedule and optimizer groups are right, --resume is exact."""
import json
import math
from argparse import Namespace

import pytest
import torch

from scratchformer.training import data as D
from scratchformer.checkpoint import load_checkpoint, read_tensors
from scratchformer.training.train import lr_at, make_optimizer, parse_args, train
from scratchformer.model.config import TransformerConfig
from scratchformer.model.transformer import GPT


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    """The first 30,000 characters of tiny Shakespeare: enough to learn from in a few dozen steps."""
    path = tmp_path_factory.mktemp("data") / "small.txt"
    path.write_text(D.load_corpus()[:30_000], encoding="utf-8")
    return path


def run(corpus, out, *extra):
    args = parse_args(["--out", str(out), "--data", str(corpus), "--block-size", "16", "--batch-size", "16",
                       "--eval-iters", "4", "--threads", "1", "--warmup-iters", "5", "--lr", "1e-2",
                       "--min-lr", "1e-3", "--device", "cpu", *extra])
    return train(args)


def test_split_is_nanogpt_90_10():
    ids = torch.arange(1000)
    train_ids, val_ids = D.split(ids)
    assert len(train_ids) == 900 and len(val_ids) == 100
    assert train_ids[-1] == 899 and val_ids[0] == 900


def test_default_tokenizer_has_the_65_characters():
    tok = D.default_tokenizer()
    assert tok.vocab_size == 65
    assert tok.decode(tok.encode("First Citizen:")) == "First Citizen:"


def test_get_batch_targets_are_inputs_shifted_by_one():
    data = torch.arange(500)
    x, y = D.get_batch(data, 8, 16, torch.Generator().manual_seed(0))
    assert x.shape == y.shape == (8, 16)
    assert torch.equal(y[:, :-1], x[:, 1:])
    assert torch.equal(y[:, -1], x[:, -1] + 1)  # data is 0, 1, 2, … so the next id is +1


def test_sequential_batches_cover_non_overlapping_windows():
    data = torch.arange(101)
    xs = torch.cat([x for x, _ in D.sequential_batches(data, 3, 10)])
    assert xs.shape == (10, 10)
    assert torch.equal(xs.reshape(-1), torch.arange(100))


def test_lr_schedule_warmup_then_cosine():
    a = Namespace(lr=1e-3, min_lr=1e-4, warmup_iters=10, max_iters=110)
    assert lr_at(0, a) == pytest.approx(1e-3 / 11)
    assert lr_at(9, a) == pytest.approx(1e-3 * 10 / 11)
    assert lr_at(10, a) == pytest.approx(1e-3)                  # cosine starts at the peak
    assert lr_at(60, a) == pytest.approx((1e-3 + 1e-4) / 2)     # half way: the mean
    assert lr_at(110, a) == pytest.approx(1e-4)
    assert all(lr_at(i, a) >= lr_at(i + 1, a) for i in range(10, 110))


def test_weight_decay_only_on_matrices():
    model = GPT(TransformerConfig(vocab_size=11, block_size=8, n_layer=1, n_head=2, n_embd=8))
    opt = make_optimizer(model, Namespace(lr=1e-3, weight_decay=0.1, beta1=0.9, beta2=0.99),
                         torch.device("cpu"))
    decay, no_decay = opt.param_groups
    assert decay["weight_decay"] == 0.1 and no_decay["weight_decay"] == 0.0
    assert all(p.dim() >= 2 for p in decay["params"]) and all(p.dim() < 2 for p in no_decay["params"])
    assert len(decay["params"]) + len(no_decay["params"]) == len(list(model.parameters()))


def test_fused_optimizer_matches_the_plain_adamw_loop():
    # make_optimizer picks PyTorch's fused AdamW on the CPU: the same steps as the for-loop version
    args = Namespace(lr=1e-2, weight_decay=0.1, beta1=0.9, beta2=0.99)
    torch.manual_seed(0)
    a = GPT(TransformerConfig(vocab_size=11, block_size=8, n_layer=1, n_head=2, n_embd=8))
    b = GPT(TransformerConfig(vocab_size=11, block_size=8, n_layer=1, n_head=2, n_embd=8))
    b.load_state_dict(a.state_dict())
    fused = make_optimizer(a, args, torch.device("cpu"))
    assert fused.defaults["fused"]
    groups = [{"params": g["params"], "weight_decay": g["weight_decay"]} for g in fused.param_groups]
    by_id = dict(zip(map(id, a.parameters()), b.parameters()))
    groups = [{**g, "params": [by_id[id(p)] for p in g["params"]]} for g in groups]
    plain = torch.optim.AdamW(groups, lr=args.lr, betas=(args.beta1, args.beta2), foreach=False)
    assert not plain.param_groups[0]["fused"]
    ids = torch.randint(0, 11, (4, 9), generator=torch.Generator().manual_seed(1))
    for _ in range(5):
        for model, opt in ((a, fused), (b, plain)):
            opt.zero_grad()
            model(ids[:, :-1], ids[:, 1:]).loss.backward()
            opt.step()
    for (name, p), q in zip(a.named_parameters(), b.parameters()):
        if name.endswith("k_proj.bias"):   # its gradient is 0 up to rounding (softmax ignores a score
            continue                        # added to every key); Adam turns that noise into ±lr steps
        torch.testing.assert_close(p, q, rtol=1e-5, atol=1e-6, msg=name)


@pytest.mark.parametrize("model_args", [
    ["--model", "gpt", "--n-layer", "2", "--n-head", "2", "--n-embd", "32"],
    ["--model", "lstm", "--hidden", "48", "--lstm-embd", "16", "--layers", "1"],
])
def test_tiny_model_loss_falls(corpus, tmp_path, model_args):
    final = run(corpus, tmp_path / "ck", *model_args, "--max-iters", "40", "--eval-interval", "20")
    metrics = json.loads((tmp_path / "ck" / "metrics.json").read_text())
    curve = metrics["curve"]
    assert [c["iter"] for c in curve] == [0, 20, 40]
    assert curve[0]["val_loss"] > 3.9                          # ~uniform over ~60 characters at start
    assert curve[-1]["val_loss"] < curve[0]["val_loss"] - 0.7  # and it learned something
    assert metrics["tokens_seen"] == 40 * 16 * 16 and metrics["iters"] == 40
    assert metrics["bits_per_char"] == pytest.approx(metrics["val_loss"] / math.log(2))
    assert "whole validation split" in metrics["val_loss_method"]
    assert final["val_loss"] == pytest.approx(metrics["val_loss"])
    for key in ("model_type", "params", "train_loss", "batch_size", "block_size", "hardware", "device",
                "wall_time_s", "torch_version", "created_at", "args"):
        assert key in metrics, key
    assert not any(p.requires_grad for p in load_checkpoint(tmp_path / "ck").model.parameters())


def test_split_cuts_the_text_and_matches_the_id_cut_for_characters():
    text = D.load_corpus()[:5000]
    tok = D.default_tokenizer(text)
    by_text = D.split(text, tok)
    by_ids = D.split(D.encode_corpus(text, tok))
    assert all(torch.equal(a, b) for a, b in zip(by_text, by_ids))
    train_text, val_text = D.split_text(text)
    assert train_text + val_text == text and len(train_text) == 4500


def test_a_bpe_model_trains_and_is_measured_in_bits_per_character(corpus, tmp_path):
    """--tokenizer bpe:N trains the BPE on the training split only; the validation loss is per token,
    bits per character = total nats ÷ characters of the scored tokens ÷ ln 2 (recomputed here)."""
    from scratchformer.training.evaluate import evaluate_checkpoint
    from scratchformer.tokenizers import BPETokenizer
    run(corpus, tmp_path / "ck", "--model", "gpt", "--n-layer", "1", "--n-head", "2", "--n-embd", "32",
        "--tokenizer", "bpe:300", "--max-iters", "6", "--eval-interval", "3")
    loaded = load_checkpoint(tmp_path / "ck")
    tok = loaded.tokenizer
    train_text, val_text = D.split_text(corpus.read_text(encoding="utf-8"))
    assert isinstance(tok, BPETokenizer) and tok.vocab_size == 300
    assert tok.to_dict() == BPETokenizer.train(train_text, 300).to_dict()      # from the training split alone
    r = evaluate_checkpoint(tmp_path / "ck", data=corpus)
    val = torch.tensor(tok.encode(val_text))
    n_windows = (len(val) - 1) // 16
    x = torch.stack([val[i * 16:(i + 1) * 16] for i in range(n_windows)])
    y = torch.stack([val[i * 16 + 1:(i + 1) * 16 + 1] for i in range(n_windows)])
    with torch.no_grad():
        nats = torch.nn.functional.cross_entropy(loaded.model(x).logits.flatten(0, 1), y.flatten(), reduction="sum")
    chars = len(tok.decode(y.flatten().tolist()))
    assert r["tokens_scored"] == y.numel() and r["chars_scored"] == chars < 2.5 * y.numel()
    assert r["bits_per_char"] == pytest.approx(nats.item() / chars / math.log(2), rel=1e-5)
    assert r["val_loss"] == pytest.approx(nats.item() / y.numel(), rel=1e-5)


def test_resume_continues_exactly(corpus, tmp_path):
    """0→30 in one run equals 0→15 then --resume 15→30 (constant lr so the schedule is the same)."""
    common = ["--n-layer", "1", "--n-head", "2", "--n-embd", "16", "--eval-interval", "15",
              "--warmup-iters", "0", "--min-lr", "1e-2", "--no-final-eval"]
    run(corpus, tmp_path / "whole", *common, "--max-iters", "30")
    run(corpus, tmp_path / "parts", *common, "--max-iters", "15")
    state = json.loads((tmp_path / "parts" / "train_state.json").read_text())
    assert state["iter"] == 15
    run(corpus, tmp_path / "parts", *common, "--max-iters", "30", "--resume")
    whole = read_tensors(tmp_path / "whole" / "train_state.safetensors")
    parts = read_tensors(tmp_path / "parts" / "train_state.safetensors")
    assert whole.keys() == parts.keys()
    for k in whole:
        assert torch.equal(whole[k], parts[k]), k
    curve = json.loads((tmp_path / "parts" / "train_state.json").read_text())["curve"]
    assert [c["iter"] for c in curve] == [0, 15, 30]


def test_resume_without_state_is_an_error(corpus, tmp_path):
    with pytest.raises(SystemExit, match="no train_state.json"):
        run(corpus, tmp_path / "nothing", "--max-iters", "5", "--resume")


def test_evaluate_without_an_argument_compares_every_shipped_language_model(capsys):
    """`python -m scratchformer.evaluate` (here on one batch each): every language model under
    checkpoints/, characters and BPE, in bits per character; the last line is JSON."""
    from scratchformer.training.evaluate import main
    main(["--max-batches", "1", "--batch-size", "4"])
    out = capsys.readouterr().out.strip().splitlines()
    table = json.loads(out[-1])
    assert {"gpt-shakespeare", "lstm-shakespeare", "gpt-shakespeare-bpe", "lstm-shakespeare-bpe"} <= set(table)
    assert table["gpt-shakespeare-bpe"]["tokenizer"] == "bpe" and table["gpt-shakespeare"]["tokenizer"] == "char"
    for r in table.values():
        assert 1.0 < r["bits_per_char"] < 4.0
    # nats per token = bits per character × ln 2 × characters per token: a word token stands for ~2.6
    # characters, a character for one
    for name, per_token in (("gpt-shakespeare-bpe", (2.0, 3.5)), ("gpt-shakespeare", (1.0, 1.0))):
        r = table[name]
        assert per_token[0] - 1e-9 <= r["val_loss"] / (r["bits_per_char"] * math.log(2)) <= per_token[1] + 1e-9
