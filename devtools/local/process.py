"""Starting a service detached from us, recording exactly which process it is, and stopping it.

A PID file alone can point at a recycled PID after a reboot, so each record also keeps the
process start time from /proc; `stop` only signals a process whose start time still matches.
"""

from __future__ import annotations

import json
import os
import pwd
import shutil
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from devtools.local.errors import LocalServiceError
from devtools.local.paths import SERVICE_USER, running_as_root

#: Java majors the older pinned versions run on. ES 7.10.2 needs the SecurityManager, which
#: Java 24 removed, so newer JDKs are skipped for it (OpenSearch 3 / ES 9 ask for 21+ instead).
SUPPORTED_JAVA = range(11, 22)


def _java_major(java_home: Path) -> int | None:
    java = java_home / "bin" / "java"
    if not java.is_file():
        return None
    try:
        out = subprocess.run([str(java), "-version"], capture_output=True, text=True, timeout=30).stderr
    except (OSError, subprocess.TimeoutExpired):
        return None
    for token in out.split():
        token = token.strip('"')
        if token[:1].isdigit():
            head = token.split(".")[0]
            major = int(token.split(".")[1]) if head == "1" else int(head.split("-")[0].split("+")[0])
            return major
    return None


_java_home_cache: dict[range, Path] = {}


def java_home(majors: range = SUPPORTED_JAVA) -> Path:
    """A JDK whose major version is in `majors`: MACTL_JAVA_HOME, JAVA_HOME, /usr/lib/jvm/*, or `java` on PATH.

    Each cluster asks for the range its version runs on (ES 7.10.2: 11-21; OpenSearch 3 and
    Elasticsearch 9: 21+), so one machine with several JDKs runs them all side by side.
    """
    if majors in _java_home_cache:
        return _java_home_cache[majors]
    candidates: list[Path] = []
    for var in ("MACTL_JAVA_HOME", "JAVA_HOME"):
        if os.environ.get(var):
            candidates.append(Path(os.environ[var]))
    candidates += sorted(Path("/usr/lib/jvm").glob("*17*")) + sorted(Path("/usr/lib/jvm").glob("*21*"))
    candidates += sorted(Path("/usr/lib/jvm").glob("*"))
    if on_path := shutil.which("java"):
        candidates.append(Path(on_path).resolve().parent.parent)
    seen: list[str] = []
    for home in dict.fromkeys(c.resolve() for c in candidates):
        major = _java_major(home)
        seen.append(f"{home} (Java {major})" if major else f"{home} (no java)")
        if major in majors:
            _java_home_cache[majors] = home
            return home
    wanted = f"Java {majors.start}-{majors.stop - 1}" if majors.stop < 100 else f"Java {majors.start}+"
    raise LocalServiceError(
        f"no usable JDK ({wanted}) found; looked at: " + ", ".join(seen or ["nothing"]),
        hint="install OpenJDK 17 (apt-get install openjdk-17-jdk-headless), a JDK 21+ for OpenSearch 3, "
        "or set MACTL_JAVA_HOME",
    )


def ensure_service_user() -> None:
    """As root, make sure the unprivileged account exists (Elasticsearch refuses root)."""
    if not running_as_root():
        return
    try:
        pwd.getpwnam(SERVICE_USER)
    except KeyError:
        subprocess.run(
            ["useradd", "--system", "--no-create-home", "--shell", "/usr/sbin/nologin", SERVICE_USER],
            check=True,
        )


def give_to_service_user(*paths: Path) -> None:
    """chown folders (recursively) to the service user when running as root."""
    if not running_as_root():
        return
    entry = pwd.getpwnam(SERVICE_USER)
    for top in paths:
        for path in [top, *top.rglob("*")]:
            os.chown(path, entry.pw_uid, entry.pw_gid, follow_symlinks=False)


def as_service_user(cmd: list[str]) -> list[str]:
    if not running_as_root():
        return cmd
    return ["setpriv", f"--reuid={SERVICE_USER}", f"--regid={SERVICE_USER}", "--clear-groups", *cmd]


@dataclass(frozen=True)
class ProcessRecord:
    pid: int
    start_time: str  # field 22 of /proc/<pid>/stat

    def alive(self) -> bool:
        return _start_time(self.pid) == self.start_time


def _start_time(pid: int) -> str | None:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = stat[stat.rindex(")") + 2 :].split()
    if fields[0] == "Z":  # a zombie has exited; only its parent has not reaped it yet
        return None
    return fields[19]


def start_detached(cmd: list[str], *, env: dict[str, str], cwd: Path, log: Path) -> ProcessRecord:
    """Start `cmd` in a session of its own (it outlives us), stdout/stderr to `log`."""
    with open(log, "ab") as out:
        proc = subprocess.Popen(
            cmd,
            cwd=cwd,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    # Reap it in the background if it dies while we still run, so it never lingers as a zombie.
    import threading

    threading.Thread(target=proc.wait, daemon=True).start()
    start = None
    for _ in range(50):
        start = _start_time(proc.pid)
        if start:
            break
        time.sleep(0.02)
    return ProcessRecord(proc.pid, start or "?")


def write_record(path: Path, record: ProcessRecord, **extra: object) -> None:
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps({"pid": record.pid, "start_time": record.start_time, **extra}))
    tmp.replace(path)


def read_record(path: Path) -> tuple[ProcessRecord, dict] | None:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return ProcessRecord(int(data["pid"]), str(data["start_time"])), data


def stop(record: ProcessRecord, *, grace_seconds: float = 30.0) -> str:
    """SIGTERM the whole process group, wait, then SIGKILL. Returns how it ended."""
    if not record.alive():
        return "not running"
    try:
        os.killpg(record.pid, signal.SIGTERM)
    except ProcessLookupError:
        return "not running"
    except PermissionError:
        os.kill(record.pid, signal.SIGTERM)
    deadline = time.monotonic() + grace_seconds
    while time.monotonic() < deadline:
        if not record.alive():
            return "stopped"
        time.sleep(0.2)
    try:
        os.killpg(record.pid, signal.SIGKILL)
    except ProcessLookupError:
        return "stopped"
    for _ in range(50):
        if not record.alive():
            break
        time.sleep(0.1)
    return "killed"


def port_in_use(port: int, host: str = "127.0.0.1") -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.settimeout(0.5)
        return sock.connect_ex((host, port)) == 0


def free_port() -> int:
    """A port nothing listens on right now (the OS picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def get_json(url: str, timeout: float = 5.0) -> dict:
    with urllib.request.urlopen(url, timeout=timeout) as resp:
        return json.load(resp)


def try_get_json(url: str, timeout: float = 5.0) -> dict | None:
    try:
        return get_json(url, timeout)
    except (urllib.error.URLError, OSError, ValueError):
        return None


def tail(path: Path, lines: int = 25) -> str:
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return f"(no log at {path})"
    return "\n".join(text.splitlines()[-lines:])
