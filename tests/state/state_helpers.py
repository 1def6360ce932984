"""Helpers shared by the state tests (a module with a unique name: not `conftest`)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

WORKER = Path(__file__).with_name("state_worker.py")


def start_worker(*args: str, cwd: Path | None = None) -> subprocess.Popen[str]:
    """Run the worker script in a child process (its own interpreter: a real second writer)."""
    return subprocess.Popen(
        [sys.executable, str(WORKER), *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=cwd,
    )


def start_together(procs: list[subprocess.Popen[str]], go_file: Path, timeout_s: float = 120.0) -> None:
    """Wait until every worker says it is ready, then let them all go at once."""
    import json

    for proc in procs:
        line = proc.stdout.readline()  # type: ignore[union-attr]
        if not line:
            raise AssertionError(f"worker {proc.pid} died before it was ready: {proc.stderr.read()}")  # type: ignore[union-attr]
        assert json.loads(line) == {"ready": True}
    go_file.touch()
