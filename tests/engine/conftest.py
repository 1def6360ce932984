"""Fixtures for the engine tests: stand-in providers and a project folder run through the CLI."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

import engine_standins  # noqa: E402
from engine_helpers import Project  # noqa: E402
from mactl.providers import registry  # noqa: E402


@pytest.fixture
def standins(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Every built-in stage type served by its stand-in, for this test only."""
    for stage_type, target in engine_standins.targets().items():
        monkeypatch.setitem(registry.BUILTIN, stage_type, target)
    registry.get_provider.cache_clear()
    yield
    registry.get_provider.cache_clear()


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: Any, standins: None) -> Project:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("MACTL_STANDIN_CONTROL", str(tmp_path / "control.json"))
    monkeypatch.setenv("MACTL_WHO", "tester@engine")
    for key in list(os.environ):
        if key.startswith("MACTL_VAR_") or key == "MACTL_WORKSPACE":
            monkeypatch.delenv(key)
    p = Project(tmp_path, capsys)
    p.control()
    return p
