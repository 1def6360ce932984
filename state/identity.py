"""Who is acting (`user@host`, as recorded in locks and history), and which state this is."""

from __future__ import annotations

import getpass
import hashlib
import os
import socket

from mactl.state.config import LocalStateConfig, S3StateConfig


def current_who() -> str:
    """`user@host` of this process; `MACTL_WHO` overrides it (CI runners, shared accounts)."""
    override = os.environ.get("MACTL_WHO")
    if override:
        return override
    try:
        user = getpass.getuser()
    except Exception:  # no passwd entry in some containers
        user = f"uid{os.getuid()}"
    return f"{user}@{socket.gethostname()}"


def state_tag(config: LocalStateConfig | S3StateConfig | None, workspace: str) -> str:
    """A short, stable name for where a state is kept, for names that must not collide across states.

    Two states (another region's or target's state file, another workspace, another
    bucket or key) that migrate from the same source take snapshots in the same
    repository; a snapshot named after the source alone would collide. The tag is eight
    hex digits of a digest over the backend, where it keeps the state (the local path as
    the config writes it, or the S3 bucket and key) and the workspace. The default state
    (local `.mactl`, workspace `default`) has the empty tag, so the names mactl has always
    given stay as they were.
    """
    config = config or LocalStateConfig()
    if isinstance(config, S3StateConfig):
        where = ["s3", config.bucket, config.key.strip("/")]
    else:
        where = ["local", os.path.normpath(config.path)]
    if where == ["local", ".mactl"] and workspace == "default":
        return ""
    return hashlib.sha256("\0".join([*where, workspace]).encode()).hexdigest()[:8]
