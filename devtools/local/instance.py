"""What a started service is: its name, address, version and process, as recorded on disk."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from devtools.local import process


@dataclass(frozen=True)
class Instance:
    """A service the harness started (or found running from an earlier `up`)."""

    name: str  # es710 | os13 | os2 | s3 | kafka
    address: str  # http://127.0.0.1:PORT, or HOST:PORT for Kafka
    version: str
    pid: int
    folder: Path  # the instance's own folder: data, logs, process record

    @property
    def record_path(self) -> Path:
        return self.folder / "process.json"


@dataclass(frozen=True)
class Status:
    """One line of `scripts/clusters status`."""

    name: str
    address: str
    version: str
    health: str  # green | yellow | red | up | down | unreachable
    pid: int | None


def load_record(folder: Path) -> tuple[process.ProcessRecord, dict] | None:
    """The process record of the instance in `folder`, if it is still alive."""
    found = process.read_record(folder / "process.json")
    if found is None or not found[0].alive():
        return None
    return found


def stop_in(folder: Path, *, grace_seconds: float = 30.0) -> str:
    """Stop the instance recorded in `folder` (if any) and drop its record."""
    found = process.read_record(folder / "process.json")
    if found is None:
        return "not running"
    outcome = process.stop(found[0], grace_seconds=grace_seconds)
    (folder / "process.json").unlink(missing_ok=True)
    return outcome
