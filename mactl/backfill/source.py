"""Opening the snapshot repository a stage reads from, through `mactl.snapshot_reader`.

The only place this package names the reader's entry point, so an API change there is a
one-line change here.
"""

from __future__ import annotations

from typing import Any

from mactl.schema.common import SnapshotRepository


def open_snapshot_repository(repository: SnapshotRepository, *, quick: bool = False) -> Any:
    """`quick`: short timeouts and one attempt, for a look `plan` takes on the side."""
    from mactl.snapshot_reader import open_repository

    return open_repository(repository, quick=quick)


def snapshot_uuid(repository: SnapshotRepository, snapshot: str) -> str | None:
    """The UUID of the snapshot named `snapshot`, from the repository's own metadata.

    Part of the lease generation (`spec.generation`): a snapshot taken again under the
    same name holds other documents. The repository is the one source every process
    agrees on (`apply` and any `mactl worker`), whatever the state records. None when the
    snapshot is not there; reading it then fails with the reader's own error.
    """
    from mactl.snapshot_reader.errors import SnapshotReaderError

    try:
        return str(open_snapshot_repository(repository).snapshot(snapshot).uuid)
    except SnapshotReaderError:
        return None
