"""moto's standalone S3 server on loopback, for snapshot repositories and state backends.

Any access key and secret work against it; tests use "mactl"/"mactl-secret" by convention.
"""

from __future__ import annotations

import os
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

from devtools.local import process
from devtools.local.errors import LocalServiceError
from devtools.local.instance import Instance, Status, load_record, stop_in

DEFAULT_PORT = 19500
PORT_ENV = "MACTL_S3_PORT"


def port() -> int:
    return int(os.environ.get(PORT_ENV) or DEFAULT_PORT)


def _moto_version() -> str:
    try:
        from importlib.metadata import version

        return version("moto")
    except Exception:  # noqa: BLE001 - only for display
        return "?"


def answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2):
            return True
    except urllib.error.HTTPError:
        return True  # any HTTP answer means the server is up
    except (urllib.error.URLError, OSError):
        return False


def start_s3(runtime: Path, *, port_number: int | None = None, timeout: float = 60.0) -> Instance:
    port_number = port_number or port()
    folder = runtime / "s3"
    url = f"http://127.0.0.1:{port_number}"
    running = load_record(folder)
    if running is not None:
        return Instance("s3", running[1]["address"], _moto_version(), running[0].pid, folder)
    if process.port_in_use(port_number):
        raise LocalServiceError(
            f"port {port_number} for s3 is already in use by a process this harness did not start",
            hint=f"stop it or choose another port with {PORT_ENV}=...",
        )
    folder.mkdir(parents=True, exist_ok=True)
    try:
        import moto.server  # noqa: F401
    except ImportError as err:
        raise LocalServiceError(
            "moto's server is not installed", hint="pip install -e '.[test]' (it brings moto[server])"
        ) from err
    cmd = [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port_number)]
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    record = process.start_detached(cmd, env=env, cwd=folder, log=folder / "out.log")
    process.write_record(folder / "process.json", record, address=url, port=port_number)
    deadline = time.monotonic() + timeout
    while not answers(url):
        if not record.alive() or time.monotonic() > deadline:
            stop_in(folder, grace_seconds=5)
            raise LocalServiceError(
                f"moto S3 server did not come up on {url}:\n{process.tail(folder / 'out.log')}",
                hint=f"check that port {port_number} is free and that `python -m moto.server --help` works",
            )
        time.sleep(0.3)
    return Instance("s3", url, _moto_version(), record.pid, folder)


def stop_s3(runtime: Path) -> str:
    return stop_in(runtime / "s3", grace_seconds=10)


def s3_status(runtime: Path) -> Status:
    found = load_record(runtime / "s3")
    if found is None:
        return Status("s3", f"http://127.0.0.1:{port()}", f"moto {_moto_version()}", "down", None)
    url = found[1]["address"]
    return Status("s3", url, f"moto {_moto_version()}", "up" if answers(url) else "unreachable", found[0].pid)
