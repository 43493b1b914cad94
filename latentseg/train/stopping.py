"""A signal that asks a run to stop (Slurm's warning before a time limit or preemption), put off to the end of the
training step in progress, so that the checkpoint written then is of a whole step and none is trained twice.

Python runs a signal's handler in the main thread between two bytecodes: in the training loop, that may be halfway
through an optimiser's update, where a checkpoint would save a network half-updated. While ``deferred(signum)`` is
open and the trainer's loop runs (``training()``), the signal only marks the request; the loop, after each completed
step, sees it (``requested()``), saves the checkpoint of that step and calls ``handle_now()``: the handler of before
(submitit's: it requeues the job and exits). Outside the loop (setting up, evaluating) nothing is half-done: the
handler of before runs at once.

Execution only: no run's numbers depend on it (``closure.NOT_COMPUTATION``).
"""

from __future__ import annotations

import contextlib
import os
import signal
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

Handler = Callable[[int, Any], Any] | int | None  # what signal.getsignal returns


@dataclass
class _Deferred:
    signum: int
    then: Handler  # the handler it replaces
    in_loop: bool = False
    asked: bool = False


_deferred: _Deferred | None = None


@contextlib.contextmanager
def deferred(signum: int) -> Iterator[None]:
    """While open, signal ``signum`` waits for the training step in progress, if any (the module's docstring)."""
    global _deferred
    _deferred = _Deferred(signum, signal.getsignal(signum))
    signal.signal(signum, _handle)
    try:
        yield
    finally:
        signal.signal(signum, _deferred.then if _deferred.then is not None else signal.SIG_DFL)
        _deferred = None


def _handle(signum: int, frame: Any) -> None:
    if _deferred is not None and _deferred.in_loop:
        _deferred.asked = True
    else:
        handle_now()


def requested() -> bool:
    """Whether the deferred signal came during the loop (the loop then saves its step and calls ``handle_now``)."""
    return _deferred is not None and _deferred.asked


def handle_now() -> None:
    """Run the deferred signal's handler of before (the default one: end as the signal would)."""
    if _deferred is None:
        return
    _deferred.asked = False
    then = _deferred.then
    if callable(then):
        then(_deferred.signum, None)
    elif then in (signal.SIG_DFL, None):
        signal.signal(_deferred.signum, signal.SIG_DFL)
        os.kill(os.getpid(), _deferred.signum)


@contextlib.contextmanager
def training() -> Iterator[None]:
    """The trainer's loop: the deferred signal waits for the end of a step while it runs. A request the loop did
    not see (it came after the last step's look) is handled on leaving."""
    if _deferred is None:
        yield
        return
    _deferred.in_loop = True
    try:
        yield
    finally:
        _deferred.in_loop = False
    if _deferred.asked:
        handle_now()
