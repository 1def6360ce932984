"""Plain helpers for the snapshot and metadata provider tests (not fixtures).

They live outside `conftest.py` so test modules can import them by a name no other
test folder uses; `from conftest import …` picks whichever conftest loaded first when
the whole suite runs in one session.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mactl.providers.base import Progress, StageContext


@dataclass
class Names:
    prefix: str
    repo_dir: Path

    def __call__(self, suffix: str) -> str:
        return f"{self.prefix}{suffix}"


@dataclass
class Recorder:
    """Collects what a provider reports, as the apply walker would."""

    progress: list[Progress] = field(default_factory=list)
    checkpoints: list[dict[str, Any]] = field(default_factory=list)
    logs: list[str] = field(default_factory=list)


def make_ctx(
    address: str,
    stage_type: str,
    inputs: Any,
    *,
    prior: dict[str, Any] | None = None,
    upstream: dict[str, dict[str, Any]] | None = None,
    recorder: Recorder | None = None,
    workdir: Path | None = None,
) -> StageContext:
    rec = recorder or Recorder()
    return StageContext(
        address=address,
        type=stage_type,
        inputs=inputs,
        prior_outputs=prior,
        upstream=upstream or {},
        checkpoint_data=rec.checkpoints[-1] if rec.checkpoints and prior is None else None,
        workdir=workdir or Path("/tmp"),
        progress=rec.progress.append,
        checkpoint=rec.checkpoints.append,
        log=rec.logs.append,
    )
