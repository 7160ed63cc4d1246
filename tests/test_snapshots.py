"""Training snapshots (scratchformer/snapshots.py, ``train --snapshots N``): log-spaced steps, float16
files that load back into the model as it was at that step, and clear errors for broken ones."""
import json

import pytest
import torch

from scratchformer.checkpoint import CheckpointError, read_tensors
from scratchformer.model.registry import build_model
from scratchformer.snapshots import (SNAPSHOT_DIR, SNAPSHOT_INDEX, load_snapshot, read_snapshots,
                                     snapshot_steps)
from scratchformer.training.train import TRAIN_STATE_TENSORS, main as train_main, parse_args

TINY = ["--n-layer", "1", "--n-head", "2", "--n-embd", "16", "--block-size", "16", "--batch-size", "4",
        "--eval-interval", "10", "--eval-iters", "2", "--no-final-eval", "--threads", "1"]


def test_snapshot_steps_are_log_spaced_from_0_to_the_last_step():
    steps = snapshot_steps(3000, 12)
    assert steps[0] == 0 and steps[-1] == 3000 and len(steps) == 12 and steps == sorted(set(steps))
    gaps = [b / a for a, b in zip(steps[2:], steps[3:])]
    assert all(1.8 < g < 2.6 for g in gaps)                  # each about 2.2× the one before
    assert snapshot_steps(10, 12) == sorted(set(snapshot_steps(10, 12)))     # fewer when steps repeat
    assert snapshot_steps(3000, 2) == [0, 3000] and snapshot_steps(3000, 1) == [0] and snapshot_steps(3000, 0) == []


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    out = tmp_path_factory.mktemp("snap") / "gpt"
    train_main(["--model", "gpt", "--out", str(out), "--max-iters", "30", "--snapshots", "6", *TINY])
    return out


def test_a_snapshot_is_the_model_at_its_step(trained):
    records = read_snapshots(trained)
    assert [r["step"] for r in records] == snapshot_steps(30, 6) == [0, 1, 2, 5, 13, 30]
    assert [r["tokens"] for r in records] == [s * 4 * 16 for s in snapshot_steps(30, 6)]
    assert all(0 < r["val_loss"] < 10 and 0 < r["train_loss"] < 10 for r in records)
    # step 0: the initial weights (the trainer seeds torch with --seed before building the model)
    cfg = load_snapshot(trained, 0).config
    torch.manual_seed(1337)
    init = build_model(cfg)
    at0 = load_snapshot(trained, 0).model
    for (name, want), got in zip(init.state_dict().items(), at0.state_dict().values()):
        assert torch.equal(got, want.half().float()), name
    # the last step: the weights the training ended with (its saved training state), in float16
    final = read_tensors(trained / TRAIN_STATE_TENSORS)
    last = load_snapshot(trained, 30).model.state_dict()
    for name, got in last.items():
        key = next((k for k in final if k.endswith(name)), None)
        if key is not None:
            assert torch.equal(got, final[key].half().float()), name
    assert not torch.equal(at0.state_dict()["lm_head.weight"], last["lm_head.weight"])    # it learned
    assert load_snapshot(trained, 30).metrics["step"] == 30 and not load_snapshot(trained, 13).model.training


def test_snapshots_are_half_the_weights(trained):
    f = trained / SNAPSHOT_DIR / "step_000030.safetensors"
    assert {t.dtype for t in read_tensors(f).values()} == {torch.float16}


def test_a_missing_step_or_a_broken_snapshot_names_the_file(trained, tmp_path):
    with pytest.raises(CheckpointError, match=r"no snapshot of step 7 \(steps: 0, 1, 2, 5, 13, 30\)"):
        load_snapshot(trained, 7)
    import shutil
    bad = tmp_path / "gpt"
    shutil.copytree(trained, bad)
    (bad / SNAPSHOT_DIR / "step_000013.safetensors").write_bytes(b"not a safetensors file")
    with pytest.raises(CheckpointError, match="step_000013.safetensors: cannot read tensors"):
        load_snapshot(bad, 13)
    (bad / SNAPSHOT_DIR / "step_000005.safetensors").unlink()
    with pytest.raises(CheckpointError, match=r"step_000005.safetensors: file is missing \(listed for step 5\)"):
        read_snapshots(bad)
    index = bad / SNAPSHOT_DIR / SNAPSHOT_INDEX
    data = json.loads(index.read_text())
    data["snapshots"][0]["file"] = "../../model.safetensors"
    index.write_text(json.dumps(data))
    with pytest.raises(CheckpointError, match="bad file name"):
        read_snapshots(bad)
    index.write_text("{")
    with pytest.raises(CheckpointError, match="cannot read the snapshot index"):
        read_snapshots(bad)
    assert read_snapshots(tmp_path) == []                    # a folder without snapshots has none


def test_too_many_snapshots_are_refused():
    with pytest.raises(SystemExit, match=r"--snapshots must be in 0…64 \(got 65\)"):
        parse_args(["--out", "x", "--snapshots", "65"])
