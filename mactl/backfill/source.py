"""Opening the snapshot repository a stage reads from, through `mactl.snapshot_reader`.

The only place this package names the reader's entry point, so an API change there is a
one-line change here.
"""

from __future__ import annotations

from typing import Any

from mactl.config.common import SnapshotRepository


def open_snapshot_repository(repository: SnapshotRepository) -> Any:
    from mactl.snapshot_reader import open_repository

    return open_repository(repository)
