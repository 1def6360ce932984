"""Who is acting: `user@host`, as recorded in locks and history."""

from __future__ import annotations

import getpass
import os
import socket


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
