"""Hugging Face ZeroGPU support, with no new dependency.

On a ZeroGPU Space the ``spaces`` package is installed and a GPU is attached to the process only
while a function decorated with ``@spaces.GPU`` runs. :func:`gpu_task` applies that decorator to the
functions that run a model when ``spaces`` can be imported, and returns them unchanged everywhere
else (a laptop, a CPU Space, a dedicated GPU), so nothing changes where ZeroGPU is absent.
"""
from __future__ import annotations

import importlib
import logging
from typing import Callable, Optional

log = logging.getLogger("scratchformer.app")


def spaces_module():
    """The ``spaces`` package when it is installed, else None."""
    try:
        return importlib.import_module("spaces")
    except ImportError:
        return None


def gpu_task(fn: Callable, duration: Optional[int] = None) -> Callable:
    """``spaces.GPU(fn)`` (or ``spaces.GPU(duration=…)(fn)``) on ZeroGPU, else ``fn`` itself.

    ``spaces.GPU`` keeps the function's name and signature (Gradio reads them to build the API) and
    works on generator functions too (the generate stream)."""
    spaces = spaces_module()
    if spaces is None:
        return fn
    log.info("ZeroGPU: %s runs under @spaces.GPU", getattr(fn, "__name__", fn))
    return spaces.GPU(fn) if duration is None else spaces.GPU(duration=duration)(fn)
