"""Helpers of the workflow tests: run `mactl` as a user would, and the quickstart setup's data.

A module of its own (not conftest) because every test folder has a conftest and a full
`pytest` run would import only one of them under that name.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
EXAMPLES = REPO / "examples"


@dataclass
class Run:
    code: int
    out: str
    err: str


def mactl(cwd: Path, *args: str, env: dict[str, str] | None = None, timeout: float = 300) -> Run:
    """`python -m mactl ARGS` in `cwd`, as a user would run it."""
    proc = subprocess.run(
        [sys.executable, "-m", "mactl", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, "COLUMNS": "200", **(env or {})},
    )
    return Run(proc.returncode, proc.stdout, proc.stderr)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Quickstart:
    """A copy of examples/quickstart.yaml in a temp folder, with unique names on the shared clusters."""

    folder: Path
    config: Path
    prefix: str
    source_name: str
    repo_dir: Path
    proxy_port: int
    env: dict[str, str]

    def run(self, *args: str, timeout: float = 300) -> Run:
        return mactl(self.folder, *args, "-c", str(self.config), env=self.env, timeout=timeout)
