"""The state layer: what has been done, where it is kept, and who may change it.

`document` defines the state as data (one JSON document: lineage, serial, stages,
history). The backends store it (`local`: a folder; `s3`: a bucket) with atomic,
conditional writes; `locking` keeps two writers apart and shows who holds the lock;
`workspaces` gives one config several independent states. The engine reads and writes
state only through `open_backend(...)` and the `Backend` it returns; nothing else
touches the files or objects. This layer knows nothing of configs beyond its own
`state:` block, nor of plans or providers.

    backend = open_backend(config.state, base_dir=project_dir)
    with backend.lock("apply", timeout_s=parse_duration("5m")):
        doc = backend.read() or StateDocument()
        ...
        doc = backend.write(doc)   # StateConflict if someone else wrote meanwhile
"""

from mactl.state.backend import Backend, LockInfo, StateConflict
from mactl.state.config import LocalStateConfig, S3StateConfig, StateConfig
from mactl.state.document import FORMAT_VERSION, HistoryEntry, StageRecord, StageStatus, StateDocument, utcnow
from mactl.state.duration import parse_duration
from mactl.state.identity import current_who, state_tag
from mactl.state.locking import describe_holder
from mactl.state.masking import SENSITIVE_MASK, is_secret_key, mask_secrets
from mactl.state.workspaces import (
    DEFAULT_WORKSPACE,
    current_workspace,
    delete_workspace,
    list_workspaces,
    new_workspace,
    open_backend,
    select_workspace,
)

from mactl.errors import LockError, StateError

__all__ = [
    "Backend",
    "DEFAULT_WORKSPACE",
    "FORMAT_VERSION",
    "HistoryEntry",
    "LocalStateConfig",
    "LockError",
    "LockInfo",
    "S3StateConfig",
    "SENSITIVE_MASK",
    "StageRecord",
    "StageStatus",
    "StateConfig",
    "StateConflict",
    "StateDocument",
    "StateError",
    "current_who",
    "state_tag",
    "current_workspace",
    "delete_workspace",
    "describe_holder",
    "is_secret_key",
    "list_workspaces",
    "mask_secrets",
    "new_workspace",
    "open_backend",
    "parse_duration",
    "select_workspace",
    "utcnow",
]
