"""Fixtures of the end-to-end tests: a unique prefix, a repository folder, everything cleaned up after."""

from __future__ import annotations

import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from rw_e2e import Migration, purge  # type: ignore[import-not-found]


@pytest.fixture
def migration(tmp_path: Path, es710: Any, os2: Any) -> Iterator[Migration]:
    prefix = f"rw{uuid.uuid4().hex[:6]}-"
    repo_dir = es710.repo_folder("realworld", prefix.rstrip("-"))
    m = Migration(tmp_path, prefix, es710.url, os2.url, repo_dir)
    try:
        yield m
    finally:
        purge(es710.url, prefix)
        purge(os2.url, prefix)
        shutil.rmtree(repo_dir, ignore_errors=True)
