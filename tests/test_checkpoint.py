"""Checkpoints: save → load is exact, and each kind of broken folder fails with a clear message."""
import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file

from scratchformer.checkpoint import CheckpointError, load_checkpoint, save_checkpoint
from scratchformer.model.registry import build_model, config_from_dict
from scratchformer.model.config import LSTMConfig
from scratchformer.tokenizers import CharTokenizer
from scratchformer.model.config import TransformerConfig

ROOT = Path(__file__).resolve().parent.parent
TOK = CharTokenizer.from_text("\n !',.:;?abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ")
V = TOK.vocab_size

CONFIGS = {
    "gpt": TransformerConfig(model_type="gpt", vocab_size=V, block_size=16, n_layer=2, n_head=2, n_embd=16),
    "gpt-untied-sinusoidal": TransformerConfig(model_type="gpt", vocab_size=V, block_size=16, n_layer=1,
                                               n_head=2, n_embd=16, tie_weights=False, pos="sinusoidal"),
    "bert": TransformerConfig(model_type="bert", vocab_size=V, block_size=16, n_layer=1, n_head=2, n_embd=16),
    "lstm": LSTMConfig(vocab_size=V, n_embd=8, hidden=12, n_layer=2, block_size=16),
}


def save(tmp_path, name="gpt", metrics=None):
    torch.manual_seed(0)
    model = build_model(CONFIGS[name])
    path = tmp_path / name
    save_checkpoint(path, model, TOK, metrics or {"val_loss": 1.5, "iters": 3})
    return model, path


@pytest.mark.parametrize("name", sorted(CONFIGS))
def test_save_load_gives_identical_logits(tmp_path, name):
    model, path = save(tmp_path, name)
    model.eval()
    loaded = load_checkpoint(path)
    ids = torch.randint(0, V, (2, 10), generator=torch.Generator().manual_seed(1))
    assert torch.equal(model(ids).logits, loaded.model(ids).logits)
    assert not loaded.model.training
    assert not any(p.requires_grad for p in loaded.model.parameters())
    assert loaded.config == CONFIGS[name]
    assert loaded.tokenizer.itos == TOK.itos
    assert loaded.metrics["val_loss"] == 1.5 and loaded.metrics["params"] == model.num_params()
    assert loaded.metrics["model_type"] == CONFIGS[name].model_type


def test_tied_head_is_stored_once_and_tied_again(tmp_path):
    _, path = save(tmp_path, "gpt")
    stored = load_file(str(path / "model.safetensors"))
    assert "lm_head.weight" not in stored and "embed.tok.weight" in stored
    model = load_checkpoint(path).model
    assert model.lm_head.weight is model.embed.tok.weight


def test_files_and_config_layout(tmp_path):
    _, path = save(tmp_path, "lstm")
    assert sorted(p.name for p in path.iterdir()) == ["config.json", "metrics.json", "model.safetensors"]
    config = json.loads((path / "config.json").read_text())
    assert config["format_version"] == 1
    assert config_from_dict(config["model"]) == CONFIGS["lstm"]
    assert config["tokenizer"]["chars"] == "".join(TOK.chars)


def test_config_from_dict_rejects_unknown_model_type():
    with pytest.raises(ValueError, match="unknown model_type 'rnn'"):
        config_from_dict({"model_type": "rnn"})


# ---------------------------------------------------------------------------------- broken folders

def edit_json(file: Path, change):
    data = json.loads(file.read_text())
    change(data)
    file.write_text(json.dumps(data))


def test_missing_directory(tmp_path):
    with pytest.raises(CheckpointError, match="nowhere: checkpoint directory does not exist"):
        load_checkpoint(tmp_path / "nowhere")


@pytest.mark.parametrize("file", ["model.safetensors", "config.json"])
def test_missing_file(tmp_path, file):
    _, path = save(tmp_path)
    (path / file).unlink()
    with pytest.raises(CheckpointError, match=f"{file}: file is missing"):
        load_checkpoint(path)


def test_truncated_safetensors(tmp_path):
    _, path = save(tmp_path)
    f = path / "model.safetensors"
    f.write_bytes(f.read_bytes()[: f.stat().st_size // 2])
    with pytest.raises(CheckpointError, match="model.safetensors: cannot read tensors, the file is truncated"):
        load_checkpoint(path)


def test_garbage_safetensors(tmp_path):
    _, path = save(tmp_path)
    (path / "model.safetensors").write_bytes(b"\x80\x04this is a pickle, not safetensors" * 10)
    with pytest.raises(CheckpointError, match="model.safetensors: cannot read tensors"):
        load_checkpoint(path)


@pytest.mark.parametrize("file", ["config.json", "metrics.json"])
def test_invalid_json(tmp_path, file):
    _, path = save(tmp_path)
    (path / file).write_text('{"model": ')
    with pytest.raises(CheckpointError, match=f"{file}: not valid JSON"):
        load_checkpoint(path)


def test_unknown_model_type(tmp_path):
    _, path = save(tmp_path)
    edit_json(path / "config.json", lambda d: d["model"].update(model_type="mamba"))
    with pytest.raises(CheckpointError, match="config.json: invalid model config: unknown model_type 'mamba'"):
        load_checkpoint(path)


def test_unsupported_format_version(tmp_path):
    _, path = save(tmp_path)
    edit_json(path / "config.json", lambda d: d.update(format_version=7))
    with pytest.raises(CheckpointError, match="config.json: format_version 7 is not supported"):
        load_checkpoint(path)


def test_vocabulary_does_not_match_model(tmp_path):
    _, path = save(tmp_path)
    edit_json(path / "config.json", lambda d: d["tokenizer"].update(chars="abc"))
    with pytest.raises(CheckpointError, match=f"config.json: tokenizer has 3 symbols but the model's vocab_size is {V}"):
        load_checkpoint(path)


def test_shape_mismatch(tmp_path):
    _, path = save(tmp_path)
    edit_json(path / "config.json", lambda d: d["model"].update(block_size=32))
    with pytest.raises(CheckpointError,
                       match=r"model.safetensors: tensor 'embed.pos.emb.weight' has shape \(16, 16\) but the config needs \(32, 16\)"):
        load_checkpoint(path)


def test_missing_tensor(tmp_path):
    _, path = save(tmp_path)
    edit_json(path / "config.json", lambda d: d["model"].update(n_layer=3))
    with pytest.raises(CheckpointError, match=r"model.safetensors: missing tensors \['layers.2"):
        load_checkpoint(path)


def test_unexpected_tensor(tmp_path):
    _, path = save(tmp_path)
    f = path / "model.safetensors"
    tensors = load_file(str(f))
    tensors["extra.weight"] = torch.zeros(2)
    save_file(tensors, str(f))
    with pytest.raises(CheckpointError, match=r"model.safetensors: unexpected tensors \['extra.weight'\]"):
        load_checkpoint(path)


def test_checkpoint_error_is_a_value_error():
    assert issubclass(CheckpointError, ValueError)


# ---------------------------------------------------------------------------------------- evaluate

def test_evaluate_prints_json_last(tmp_path):
    _, path = save(tmp_path, "lstm")
    res = subprocess.run([sys.executable, "-m", "scratchformer.evaluate", str(path), "--max-batches", "2"],
                         cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr
    lines = res.stdout.strip().splitlines()
    assert len(lines) >= 2  # a human summary first
    result = json.loads(lines[-1])
    assert result["params"] == build_model(CONFIGS["lstm"]).num_params()
    assert result["chars_scored"] == 2 * 32 * 16
    assert result["bits_per_char"] == pytest.approx(result["val_loss"] / 0.6931471805599453)
    assert 2.0 < result["val_loss"] < 6.0  # an untrained model: near log(vocab) ≈ 4.1


def test_evaluate_of_broken_checkpoint_names_the_file(tmp_path):
    res = subprocess.run([sys.executable, "-m", "scratchformer.evaluate", str(tmp_path / "missing")],
                         cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert res.returncode != 0
    assert "missing: checkpoint directory does not exist" in res.stderr


# ------------------------------------------------------------------------------ shipped checkpoints

SHIPPED = ROOT / "checkpoints"


@pytest.mark.skipif(not (SHIPPED / "gpt-shakespeare").is_dir() or not (SHIPPED / "lstm-shakespeare").is_dir(),
                    reason="shipped checkpoints not present")
def test_shipped_checkpoints_keep_their_promises():
    gpt, lstm = load_checkpoint(SHIPPED / "gpt-shakespeare"), load_checkpoint(SHIPPED / "lstm-shakespeare")
    for ck in (gpt, lstm):
        m = ck.metrics
        for key in ("model_type", "params", "val_loss", "bits_per_char", "train_loss", "iters", "tokens_seen",
                    "batch_size", "block_size", "hardware", "device", "wall_time_s", "torch_version",
                    "created_at", "curve", "args"):
            assert key in m, (ck.path, key)
        assert m["params"] == ck.model.num_params()
        assert m["tokens_seen"] == m["iters"] * m["batch_size"] * m["block_size"]
        assert "whole validation split" in m["val_loss_method"]
        assert ck.tokenizer.vocab_size == 65
    assert gpt.config.model_type == "gpt" and lstm.config.model_type == "lstm"
    assert gpt.metrics["val_loss"] <= 1.70                                    # the bar
    assert abs(lstm.metrics["params"] / gpt.metrics["params"] - 1) <= 0.10   # same size ±10%
    assert lstm.metrics["tokens_seen"] == gpt.metrics["tokens_seen"]         # same training tokens
    for name in ("gpt-shakespeare", "lstm-shakespeare"):
        assert (SHIPPED / name / "model.safetensors").stat().st_size < 20_000_000


def test_half_precision_checkpoint_is_half_the_size_and_loads_as_float32(tmp_path):
    model, tok = build_model(CONFIGS["gpt"]).eval(), TOK
    save_checkpoint(tmp_path / "full", model, tok, {})
    save_checkpoint(tmp_path / "half", model, tok, {}, dtype=torch.float16)
    full = (tmp_path / "full" / "model.safetensors").stat().st_size
    half = (tmp_path / "half" / "model.safetensors").stat().st_size
    assert half < 0.55 * full
    loaded = load_checkpoint(tmp_path / "half")
    assert all(p.dtype == torch.float32 for p in loaded.model.parameters())
    ids = torch.randint(0, CONFIGS["gpt"].vocab_size, (1, 12))
    with torch.no_grad():
        torch.testing.assert_close(loaded.model(ids).logits, model(ids).logits, atol=2e-2, rtol=0)
    with pytest.raises(ValueError, match="dtype"):
        save_checkpoint(tmp_path / "bad", model, tok, {}, dtype=torch.int8)
