"""What the console reads and does, handed in by the CLI (`mactl.cli.ui_cmd`).

The console is one layer below the CLI, so it cannot import the CLI's helpers; the CLI
passes them in instead. Each callable here IS the code path of a CLI command: the rows
of `mactl status`, the plan of `mactl plan`, the approval of `mactl approve`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from mactl.config.loader import LoadedConfig
    from mactl.graph.expand import StageGraph
    from mactl.plan.definition import Plan
    from mactl.state.document import StateDocument


class StageRow(Protocol):
    """One row of `mactl status` (`mactl.cli.status_cmd.StageStatus`), as the console reads it."""

    address: str
    type: str
    status: str
    clone_of: str | None
    depends_on: list[str]
    started_at: str | None
    finished_at: str | None
    duration_s: float | None
    attempts: int
    progress: dict[str, Any] | None
    last_error: str | None
    approval: str | None
    in_config: bool
    ledger: dict[str, Any] | None
    errors: str | None


class StateReader(Protocol):
    """The part of a state backend the console uses: reads under no lock, and where local files are."""

    @property
    def workdir(self) -> Path: ...

    def read(self) -> StateDocument | None: ...

    def describe(self) -> str: ...


@dataclass(frozen=True)
class Opened:
    """The config as it is on disk now, its graph and its state backend."""

    loaded: LoadedConfig
    graph: StageGraph
    backend: StateReader


@dataclass(frozen=True)
class ConsoleSources:
    """The CLI's code paths the console runs.

    `open` loads the config again (the plan page shows the config as it is on disk now);
    `statuses` is `mactl status`'s row builder; `plan` is `mactl plan`'s (the state read
    under no lock, `refresh` as `-refresh`); `approve` is `mactl approve`'s (under the
    state lock, with a history entry whose detail says where it came from).
    """

    config_path: Path
    cli_args: str  # `-c CONFIG -var …` as the user gave them, for the commands a page suggests
    open: Callable[[], Opened]
    statuses: Callable[[StageGraph, StateDocument | None, Path], Sequence[StageRow]]
    plan: Callable[[Opened, bool], Plan]
    approve: Callable[[Opened, str, str, str], None]  # (opened, address, who, detail)
    who: Callable[[], str]
