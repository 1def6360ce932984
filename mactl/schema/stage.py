"""The plain data of the stage contract, for the libraries that do a stage's work.

`Progress` is what a provider reports while a stage runs; `StageView` is the part of a
running stage (`mactl.providers.base.StageContext`) that a library below the providers
may read, so `mactl.audit` or `mactl.capture` take a typed context without importing
`mactl.providers`.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol


@dataclass(frozen=True)
class Progress:
    """A progress report: `done` of `total` `unit`s, with an optional one-line message."""

    done: float
    total: float | None = None
    unit: str = "items"
    message: str = ""


ProgressFn = Callable[[Progress], None]


class StageView(Protocol):
    """A running stage as a library sees it: where it is, what it depends on, how to report."""

    @property
    def address(self) -> str: ...

    @property
    def upstream(self) -> Mapping[str, Mapping[str, Any]]: ...

    @property
    def workdir(self) -> Path: ...

    @property
    def cancelled(self) -> threading.Event: ...

    @property
    def progress(self) -> ProgressFn: ...
