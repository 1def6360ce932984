"""Where the harness keeps downloads (a cache shared by every run) and runtime state.

Root runs the JVMs as an unprivileged user (Elasticsearch refuses to run as root), and that
user must be able to reach the unpacked distributions and the instance folders. Root's home
is usually mode 0700, so as root both live under /var instead of under ~.
"""

from __future__ import annotations

import os
from pathlib import Path

from devtools import REPO_ROOT

#: The unprivileged account the JVMs run as when the harness runs as root.
SERVICE_USER = "mactl"


def running_as_root() -> bool:
    return os.geteuid() == 0


def cache_dir() -> Path:
    """Unpacked distributions and Kafka jars (the zips themselves stay in ~/.m2)."""
    if env := os.environ.get("MACTL_CACHE_DIR"):
        return Path(env).resolve()
    if running_as_root():
        return Path("/var/cache/mactl")
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "mactl"


def repo_root() -> Path:
    """The checkout devtools runs from (the default runtime folder is inside it)."""
    return REPO_ROOT


def runtime_dir() -> Path:
    """PIDs, data and logs of the services `scripts/clusters up` started (`MACTL_LOCAL_DIR`)."""
    if env := os.environ.get("MACTL_LOCAL_DIR"):
        return Path(env).resolve()
    if running_as_root():
        return Path("/var/lib/mactl/local")
    return repo_root() / ".mactl-local"


def sessions_dir() -> Path:
    """Parent of the throw-away runtime folders the pytest fixtures create."""
    if running_as_root():
        return Path("/var/lib/mactl/test-sessions")
    return Path(os.environ.get("TMPDIR", "/tmp"))


def make_reachable(path: Path) -> None:
    """Create `path` and let other users traverse it (mode 0755), so the service user can."""
    path.mkdir(parents=True, exist_ok=True)
    path.chmod(0o755)
