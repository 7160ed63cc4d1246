"""Shared test fixture: ``close`` compares ours with PyTorch and records the largest difference.

Run ``python -m pytest -q tests -rA`` (or -rp) to see, at the end, the largest absolute
difference measured against each PyTorch module.
"""
import pytest
import torch

# Every device this machine has. CUDA cases are listed (and skipped) on a machine without CUDA, so a
# CPU-only CI shows that they exist; on a GPU machine they run.
DEVICES = ["cpu", pytest.param("cuda", marks=pytest.mark.skipif(not torch.cuda.is_available(),
                                                                reason="no CUDA device on this machine"))]


@pytest.fixture(params=DEVICES)
def device(request):
    """A torch.device, once per available device (tests that use it run on the CPU and on CUDA)."""
    return torch.device(request.param)


_MAX_DIFFS: dict[str, float] = {}


@pytest.fixture
def close():
    """close(name, ours, theirs, atol=1e-5): assert ours ≈ theirs (atol, rtol 0); remember max |diff|."""

    def check(name: str, ours: torch.Tensor, theirs: torch.Tensor, atol: float = 1e-5) -> float:
        assert ours.shape == theirs.shape, f"{name}: shape {tuple(ours.shape)} != {tuple(theirs.shape)}"
        diff = (ours.detach().double() - theirs.detach().double()).abs().max().item()
        _MAX_DIFFS[name] = max(diff, _MAX_DIFFS.get(name, 0.0))
        assert diff <= atol, f"{name}: max |ours - torch| = {diff:.3g} > {atol}"
        return diff

    return check


def pytest_terminal_summary(terminalreporter):
    if _MAX_DIFFS and set(terminalreporter.reportchars) & set("AaPp"):
        terminalreporter.section("largest |ours - torch| per comparison")
        for name, diff in sorted(_MAX_DIFFS.items()):
            terminalreporter.write_line(f"{name:48s} {diff:.3e}")
