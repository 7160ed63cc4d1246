"""A live race (:mod:`.live`) in a process of its own: what bounds a training a stranger started.

The app serves everyone from one process; a training in it would share its threads and its memory.
In a child process the training

* runs at a **lower priority** (``nice`` +10) and on **one thread**, so requests on the app's own
  threads go first;
* has a **time cap** (its budget; the parent kills it :data:`GRACE_S` seconds past it, whatever it
  is doing) and a **memory cap** (it stops itself when its peak resident memory passes
  ``memory_mb``; the sizes are bounded too, so this is a second line);
* is **gone** when it ends, is stopped, or its parent goes away (a closed pipe ends it).

Children come from a *fork server* (``multiprocessing``'s "forkserver"): one process, started once
(:func:`warm`, which the app calls at launch), that has imported torch and this package, and forks a
fresh child per training in a few milliseconds. (A plain ``fork`` of the app would copy a process
with server threads in it; a "spawn" would import torch again: two seconds or more before the first
step.)

The child sends plain values through a pipe: each :class:`~.live.LiveUpdate` as a dict, and at the
end the trained tensors as safetensors bytes with the configs as dicts (nothing is unpickled from a
file, and no model object crosses the boundary).
"""
from __future__ import annotations

import dataclasses
import multiprocessing
import os
import resource
import threading
import time
from typing import Iterator, Optional

from .live import LivePlan, LiveUpdate

GRACE_S = 20.0          # a child still running this long after its budget is killed
MEMORY_MB = 1024        # default peak resident memory a training may reach
_CTX = multiprocessing.get_context("forkserver")
# what the fork server imports once: this package's race, and what its first optimizer would import
# (torch._dynamo: 1.8 s), and app.py's one import (each child runs app.py again as "__mp_main__")
_CTX.set_forkserver_preload(["scratchformer.training.live", "torch._dynamo", "matplotlib"])
_WARM = threading.Lock()


def _nothing() -> None:
    pass


def warm() -> None:
    """Start the fork server now and wait until it has imported what it preloads (torch: a few
    seconds; one empty child is forked to know), so that the first training starts at once. Safe to
    call from any thread, any number of times."""
    global _warmed
    with _WARM:
        if not _warmed:
            child = _CTX.Process(target=_nothing, daemon=True)
            child.start()
            child.join()
            _warmed = True


_warmed = False


def peak_memory_mb() -> float:
    """This process's peak resident memory (Linux reports ru_maxrss in KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _child(plan: LivePlan, conn, threads: int, nice: int, memory_mb: float) -> None:
    """The child's whole life: train, report, send the tensors, exit."""
    import torch
    from safetensors.torch import save

    from .live import LiveRace
    try:
        os.nice(nice)
    except OSError:
        pass
    torch.set_num_threads(threads)
    try:
        race = LiveRace(plan)

        def should_stop() -> str:
            if peak_memory_mb() > memory_mb:
                return "memory"
            if conn.poll():
                return "stopped" if conn.recv() == "stop" else "stopped"
            return ""

        race.run(lambda u: conn.send(("update", dataclasses.asdict(u))), should_stop)
        state = race.state()
        conn.send(("state", {"tokenizer": state["tokenizer"],
                             "models": {name: {"config": m["config"], "tensors": save(m["tensors"])}
                                        for name, m in state["models"].items()}}))
    except (BrokenPipeError, EOFError):      # the parent is gone: nothing to report to
        return
    except Exception as e:                   # noqa: BLE001 - reported to the parent, which shows it
        try:
            conn.send(("error", f"{type(e).__name__}: {str(e)[:300]}"))
        except (BrokenPipeError, EOFError):
            pass
    finally:
        conn.close()


class LiveProcess:
    """One race in a child process. Iterate :meth:`updates` for its reports; :meth:`stop` asks it
    to end early (it still reports and sends its models); :meth:`kill` ends it at once. After the
    updates end, :attr:`state` holds the trained pair (or None) and :attr:`error` what went wrong."""

    def __init__(self, plan: LivePlan, threads: int = 1, nice: int = 10, memory_mb: float = MEMORY_MB):
        self.plan = plan
        self._conn, child_conn = _CTX.Pipe()
        self._proc = _CTX.Process(target=_child, args=(plan, child_conn, threads, nice, memory_mb),
                                  daemon=True, name="scratchformer-live-training")
        self.started = time.monotonic()
        self._proc.start()
        child_conn.close()
        self.state: Optional[dict] = None
        self.error: str = ""
        self.last: Optional[LiveUpdate] = None

    @property
    def pid(self) -> Optional[int]:
        return self._proc.pid

    def alive(self) -> bool:
        return self._proc.is_alive()

    def updates(self, poll_s: float = 0.1) -> Iterator[LiveUpdate]:
        """Each report as it comes; ends when the child has sent its models, failed, died or
        overrun its budget by :data:`GRACE_S` (then it is killed)."""
        deadline = self.started + self.plan.budget_s + GRACE_S
        try:
            while True:
                if time.monotonic() > deadline:
                    self.error = f"the training overran its {self.plan.budget_s:g} s and was stopped"
                    return
                try:
                    ready = self._conn.poll(poll_s)
                    message = self._conn.recv() if ready else None
                except (EOFError, OSError):
                    if self.state is None and not self.error:
                        self.error = "the training process ended without its result"
                    return
                if message is None:
                    if not self._proc.is_alive() and not self._conn.poll():
                        if self.state is None and not self.error:
                            self.error = "the training process ended without its result"
                        return
                    continue
                kind, value = message
                if kind == "update":
                    self.last = LiveUpdate(**value)
                    yield self.last
                elif kind == "state":
                    self.state = value
                    return
                else:
                    self.error = value
                    return
        finally:
            self.kill()

    def stop(self) -> None:
        """Ask the child to finish now (it still sends its last report and its models)."""
        try:
            self._conn.send("stop")
        except (BrokenPipeError, OSError):
            pass

    def kill(self) -> None:
        """End the child at once and reap it (nothing is left running)."""
        if self._proc.is_alive():
            self._proc.join(timeout=2.0)     # it is sending its last message: give it a moment
        if self._proc.is_alive():
            self._proc.kill()
            self._proc.join(timeout=5.0)
        self._conn.close()
