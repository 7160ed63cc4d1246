"""ZeroGPU: with the ``spaces`` package present every model event runs under ``@spaces.GPU``; without
it nothing changes (and the project does not depend on ``spaces``)."""
import functools
import sys
import types

import pytest

from app_checkpoints import make_checkpoints
from scratchformer.app.zerogpu import gpu_task


def plain(a, b=2):
    return a + b


def test_without_spaces_functions_are_unchanged(monkeypatch):
    monkeypatch.setitem(sys.modules, "spaces", None)           # import spaces → ImportError
    assert gpu_task(plain) is plain


@pytest.fixture
def fake_spaces(monkeypatch):
    """A stand-in for Hugging Face's ``spaces``: GPU(fn) or GPU(duration=…)(fn), wraps and records."""
    decorated = []

    def GPU(fn=None, duration=None):
        def deco(f):
            @functools.wraps(f)
            def run(*args, **kwargs):
                return f(*args, **kwargs)
            run.on_zerogpu = True
            decorated.append(f.__name__)
            return run
        return deco(fn) if fn is not None else deco

    monkeypatch.setitem(sys.modules, "spaces", types.SimpleNamespace(GPU=GPU))
    return decorated


def test_with_spaces_the_function_is_wrapped_and_still_works(fake_spaces):
    wrapped = gpu_task(plain)
    assert wrapped is not plain and wrapped.on_zerogpu and wrapped(1) == 3
    assert gpu_task(plain, duration=30)(1, 1) == 2
    assert fake_spaces == ["plain", "plain"]


def test_every_model_event_of_the_app_runs_under_spaces_gpu(fake_spaces, tmp_path):
    from scratchformer.app import blocks
    demo = blocks.build_demo(make_checkpoints(tmp_path))
    model_fns = [f for f in demo.fns.values() if f.concurrency_id in ("live", "generate")]
    assert model_fns and all(getattr(f.fn, "on_zerogpu", False) for f in model_fns)
    assert len(fake_spaces) == len(model_fns)                   # one decoration per model event
    assert {"generate", "attention", "lstm_gates"} <= {f.api_name for f in model_fns}
    # the live trainings run on the CPU in a child process: no GPU slot held for their budget
    trainings = [f for f in demo.fns.values() if f.concurrency_id == "train"]
    assert {f.api_name for f in trainings} >= {"train_live", "tool_train_pair"}
    assert not any(getattr(f.fn, "on_zerogpu", False) for f in trainings)
