"""Capture proxies and follow-mode replayers as detached local processes.

The capture stage rolls proxies out with `start_proxy`, watches them with `health`,
signals them with `control`, and the later stages (switchover, disable_capture, teardown)
find them again through a small registry file: one JSON document per source, kept in the
state's working directory beside the stages' own folders. Processes are started in their
own session so they outlive `mactl apply`, and stopped by PID, only after checking that
the PID still runs a mactl command (a recycled PID is never signalled).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from mactl.errors import ProviderError
from mactl.state.workdir import Workdir


def registry_path(workdir: Path, source_name: str) -> Path:
    """Where the fleet of `source_name` is recorded, for a stage whose folder is `workdir`."""
    return Workdir.of_stage(workdir).capture_registry(source_name)


def read_registry(workdir: Path, source_name: str) -> dict[str, Any]:
    path = registry_path(workdir, source_name)
    try:
        registry: dict[str, Any] = json.loads(path.read_text())
        return registry
    except FileNotFoundError:
        return {}


def update_registry(workdir: Path, source_name: str, **fields: Any) -> None:
    path = registry_path(workdir, source_name)
    path.parent.mkdir(parents=True, exist_ok=True)
    data = read_registry(workdir, source_name)
    data.update(fields)
    tmp = path.with_suffix(f".tmp{os.getpid()}")
    tmp.write_text(json.dumps(data, indent=2, sort_keys=True))
    os.replace(tmp, path)


def _request(url: str, method: str = "GET", body: dict[str, Any] | None = None, timeout: float = 3.0) -> dict[str, Any]:
    data = json.dumps(body).encode() if body is not None else (b"" if method == "POST" else None)
    req = urllib.request.Request(url, data=data, method=method, headers={"content-type": "application/json"})
    with urllib.request.urlopen(req, timeout=timeout) as resp:
        answer: dict[str, Any] = json.loads(resp.read())
        return answer


def health(proxy_url: str, timeout: float = 2.0) -> dict[str, Any] | None:
    """The proxy's health document, or None if it does not answer as a mactl proxy."""
    try:
        doc = _request(f"{proxy_url}/__mactl/health", timeout=timeout)
    except (OSError, ValueError, urllib.error.URLError):
        return None
    return doc if doc.get("status") == "ok" and "capturing" in doc else None


def control(proxy_url: str, action: str, body: dict[str, Any] | None = None) -> dict[str, Any]:
    """POST a control action (`capture/start`, `capture/stop`, `route?to=...`)."""
    try:
        return _request(f"{proxy_url}/__mactl/{action}", method="POST", body=body, timeout=5.0)
    except urllib.error.HTTPError as exc:
        raw = exc.read()
        try:  # the proxy's own refusals are {"error": ..., "hint": ...}
            doc = json.loads(raw)
            message, hint = str(doc["error"]), doc.get("hint")
        except (ValueError, KeyError, TypeError):
            message, hint = raw[:200].decode(errors="replace"), None
        raise ProviderError(f"proxy {proxy_url}: {action} refused: {message}", hint=hint) from None
    except (OSError, urllib.error.URLError) as exc:
        raise ProviderError(f"proxy {proxy_url}: {action} failed: {exc}") from None


def spawn(args: list[str], log_path: Path, env: dict[str, str] | None = None) -> int:
    """Start `python -m mactl <args>` detached (own session), output to `log_path`.

    `env` adds environment variables: the way to hand a process a secret (a URL with a
    password), since its arguments are readable by every user through `ps`.
    """
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with log_path.open("ab") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "mactl", *args],
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            close_fds=True,
            env={**os.environ, **env} if env else None,
        )
    return proc.pid


def is_mactl_process(pid: int) -> bool:
    """True if `pid` is alive and runs a mactl command (guards against recycled PIDs)."""
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return False
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        if stat.rsplit(")", 1)[1].split()[0] == "Z":
            return False  # a zombie: exited, waiting to be reaped
    except (OSError, IndexError):
        return False
    return b"mactl" in cmdline and any(a in (b"capture-proxy", b"replay") for a in cmdline)


def read_pid(pid_file: Path) -> int | None:
    try:
        return int(pid_file.read_text().strip())
    except (OSError, ValueError):
        return None


def stop(pid: int | None, *, timeout: float = 15.0) -> bool:
    """SIGTERM a mactl process and wait for it; SIGKILL if it will not go. True if it ran."""
    if pid is None or not is_mactl_process(pid):
        return False
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        return False
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        _reap(pid)
        if not is_mactl_process(pid):
            return True
        time.sleep(0.1)
    try:
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    _reap(pid)
    return True


def _reap(pid: int) -> None:
    try:
        os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        pass


def tail(path: Path, lines: int = 5) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""
