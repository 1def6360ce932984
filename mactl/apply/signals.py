"""Ctrl-C during a long operation: the first asks it to stop gracefully, the second at once.

`Interrupts(on_first)` installs a SIGINT handler for the length of a `with` block, on the
main thread only (elsewhere Python allows none, and it does nothing). The first Ctrl-C
calls `on_first()`, which must only set flags and tell running work to wind down (it runs
inside a signal handler); the second raises `KeyboardInterrupt` wherever the main thread
is, for the caller to catch. The previous handler is restored on exit.

This module knows nothing of stages, the state or what stopping means.
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Callable
from types import FrameType, TracebackType
from typing import Any


class Interrupts:
    def __init__(self, on_first: Callable[[], None]) -> None:
        self.on_first = on_first
        self.count = 0
        self._previous: Any = None
        self._installed = False

    def __enter__(self) -> Interrupts:
        if threading.current_thread() is threading.main_thread():
            self._previous = signal.signal(signal.SIGINT, self._handle)
            self._installed = True
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self._installed:
            signal.signal(signal.SIGINT, self._previous)
            self._installed = False

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        self.count += 1
        if self.count == 1:
            self.on_first()
            return
        raise KeyboardInterrupt
