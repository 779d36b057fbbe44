"""SIGINT and SIGTERM as one exception, raised where the work can stop cleanly.

Python raises KeyboardInterrupt wherever the interpreter happens to be, including inside
finalisers and weak-reference callbacks, where it is printed as "Exception ignored" and
lost. The handlers here therefore also record the signal, and the long loops (chunks of
a simulation, training steps) and every atomic commit of an output file call
`raise_if_interrupted`: a lost interrupt still stops the run at the next chunk and never
lets an output be written or replaced.
"""

from __future__ import annotations

import signal
import sys
from types import FrameType
from typing import Any

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)
_received: list[int] = []
_default_unraisable = sys.unraisablehook


class Interrupted(KeyboardInterrupt):
    """The process received SIGINT or SIGTERM; ``exit_code`` is 128 + its number."""

    def __init__(self, signum: int) -> None:
        super().__init__(signal.Signals(signum).name)
        self.signum = signum
        self.exit_code = 128 + signum


def _handle(signum: int, frame: FrameType | None) -> None:
    _received.append(signum)
    raise Interrupted(signum)


def _unraisable(report: Any) -> None:
    # the interrupt is recorded and raised again at the next check: no "Exception ignored"
    if not isinstance(report.exc_value, Interrupted):
        _default_unraisable(report)


def install() -> None:
    """Route SIGINT and SIGTERM through `Interrupted` (main thread only)."""
    for signum in STOP_SIGNALS:
        signal.signal(signum, _handle)
    sys.unraisablehook = _unraisable


def received() -> int | None:
    """The first stop signal received since `install`, or None."""
    return _received[0] if _received else None


def raise_if_interrupted() -> None:
    """Raise `Interrupted` if a stop signal arrived, even one whose exception was lost."""
    if _received:
        raise Interrupted(_received[0])
