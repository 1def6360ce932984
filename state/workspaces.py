"""Workspaces: several independent states (and locks) for one config, e.g. pre-prod and prod.

The selected workspace is remembered in `<local state folder>/environment` (for S3 state
that is `.mactl/environment`), as Terraform keeps `.terraform/environment`; the
`MACTL_WORKSPACE` variable overrides it for one command. `default` always exists.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import TYPE_CHECKING

from mactl.state.config import LocalStateConfig, S3StateConfig
from mactl.state.document import StateDocument
from mactl.state.identity import current_who
from mactl.state.local import LocalBackend, fsync_folder, write_temp
from mactl.state.locking import DEFAULT_HEARTBEAT_S

from mactl.errors import ConfigError, StateError

if TYPE_CHECKING:  # boto3 costs ~0.1 s at start-up: loaded only when an S3 state is used
    from mactl.state.s3 import S3Backend

DEFAULT_WORKSPACE = "default"
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")

AnyStateConfig = LocalStateConfig | S3StateConfig


def check_workspace_name(name: str) -> str:
    if not _NAME.match(name) or ".." in name:
        raise ConfigError(
            f"workspace name {name!r} is not allowed",
            hint="use letters, digits, '.', '_' and '-' (up to 64), starting with a letter or digit",
        )
    return name


def local_folder(config: AnyStateConfig | None, base_dir: Path | None) -> Path:
    """The local `.mactl` folder: the state itself for local state, working files for S3."""
    base = (base_dir if base_dir is not None else Path.cwd()).absolute()
    path = Path(config.path) if isinstance(config, LocalStateConfig) else Path(".mactl")
    return path if path.is_absolute() else base / path


def current_workspace(config: AnyStateConfig | None = None, base_dir: Path | None = None) -> str:
    """The selected workspace: `MACTL_WORKSPACE`, else the `environment` file, else `default`."""
    override = os.environ.get("MACTL_WORKSPACE")
    if override:
        return check_workspace_name(override.strip())
    try:
        file = local_folder(config, base_dir) / "environment"
        name = file.read_text(encoding="utf-8").strip()
    except FileNotFoundError:
        return DEFAULT_WORKSPACE
    except (OSError, UnicodeDecodeError) as err:
        reason = err.strerror if isinstance(err, OSError) and err.strerror else "it is not UTF-8 text"
        raise StateError(
            f"cannot read the selected workspace from {file}: {reason}",
            hint="select one with `mactl workspace select NAME` (or delete the file)",
        ) from None
    if not name:
        return DEFAULT_WORKSPACE
    try:
        return check_workspace_name(name[:200])
    except ConfigError as err:
        raise StateError(f"{file}: {err.message}", hint=err.hint) from None


def open_backend(
    config: AnyStateConfig | None = None,
    workspace: str | None = None,
    base_dir: Path | None = None,
    *,
    heartbeat_s: float | None = None,
) -> LocalBackend | S3Backend:
    """The backend for one workspace of the configured state (`None`: the selected one).

    A selected workspace that no longer exists (a teammate deleted it) is an error rather
    than a silently empty state.
    """
    config = config or LocalStateConfig()
    base = (base_dir if base_dir is not None else Path.cwd()).absolute()
    name = check_workspace_name(workspace) if workspace is not None else current_workspace(config, base)
    beat = heartbeat_s or float(os.environ.get("MACTL_LOCK_HEARTBEAT_S", DEFAULT_HEARTBEAT_S))
    workdir = local_folder(config, base) / "work" / name
    backend: LocalBackend | S3Backend
    if isinstance(config, S3StateConfig):
        from mactl.state.s3 import S3Backend

        backend = S3Backend(config, name, workdir, heartbeat_s=beat)
    else:
        root = local_folder(config, base)
        folder = root if name == DEFAULT_WORKSPACE else root / "workspaces" / name
        backend = LocalBackend(folder, name, workdir, heartbeat_s=beat)
    if workspace is None and name != DEFAULT_WORKSPACE and not workspace_exists(backend):
        raise StateError(
            f"the selected workspace {name!r} does not exist ({backend.describe()})",
            hint="`mactl workspace select default`, or `mactl workspace new " + name + "`",
        )
    return backend


def workspace_exists(backend: LocalBackend | S3Backend) -> bool:
    if backend.workspace == DEFAULT_WORKSPACE:
        return True
    if isinstance(backend, LocalBackend):
        return backend.folder.is_dir()
    from mactl.state.s3 import S3Backend

    assert isinstance(backend, S3Backend)
    return backend.exists()


def list_workspaces(config: AnyStateConfig | None = None, base_dir: Path | None = None) -> list[str]:
    """Every workspace, `default` first."""
    config = config or LocalStateConfig()
    if isinstance(config, S3StateConfig):
        from mactl.state.s3 import list_s3_workspaces

        names = list_s3_workspaces(config)
    else:
        folder = local_folder(config, base_dir) / "workspaces"
        names = sorted(p.name for p in folder.iterdir() if p.is_dir()) if folder.is_dir() else []
    return [DEFAULT_WORKSPACE] + [n for n in names if n != DEFAULT_WORKSPACE]


def new_workspace(config: AnyStateConfig | None, name: str, base_dir: Path | None = None) -> LocalBackend | S3Backend:
    """Create workspace `name` with an empty state (its first history entry says who made it)."""
    check_workspace_name(name)
    if name == DEFAULT_WORKSPACE:
        raise StateError("the default workspace always exists")
    backend = open_backend(config, name, base_dir)
    if workspace_exists(backend):
        raise StateError(f"workspace {name!r} already exists ({backend.describe()})")
    doc = StateDocument()
    doc.record(who=current_who(), operation="workspace new", result="ok", detail=name)
    try:
        backend.write(doc)  # serial 0: succeeds only if nothing is stored, so two `new`s cannot both win
    except StateError:
        raise StateError(f"workspace {name!r} already exists ({backend.describe()})") from None
    return backend


def select_workspace(config: AnyStateConfig | None, name: str, base_dir: Path | None = None) -> None:
    check_workspace_name(name)
    backend = open_backend(config, name, base_dir)
    if not workspace_exists(backend):
        raise StateError(f"workspace {name!r} does not exist", hint=f"create it with `mactl workspace new {name}`")
    folder = local_folder(config, base_dir)
    folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    temp = write_temp(folder, "environment", (name + "\n").encode())
    os.replace(temp, folder / "environment")
    fsync_folder(folder)


def delete_workspace(
    config: AnyStateConfig | None,
    name: str,
    base_dir: Path | None = None,
    *,
    force: bool = False,
    lock_timeout_s: float = 0.0,
) -> None:
    """Delete a workspace's state, backups and lock. Refuses `default`, the selected one, a
    locked one, and one whose state still records stages (unless `force`)."""
    check_workspace_name(name)
    if name == DEFAULT_WORKSPACE:
        raise StateError("the default workspace cannot be deleted")
    if name == current_workspace(config, base_dir):
        raise StateError(f"workspace {name!r} is selected", hint="`mactl workspace select default` first")
    backend = open_backend(config, name, base_dir)
    if not workspace_exists(backend):
        raise StateError(f"workspace {name!r} does not exist")
    with backend.lock("workspace delete", lock_timeout_s):
        doc = backend.read()
        if doc is not None and doc.stages and not force:
            raise StateError(
                f"workspace {name!r} still records {len(doc.stages)} stage(s)",
                hint="roll them back first, or delete anyway with --force",
            )
        backend.delete_all()
