"""Child-process actions for the state tests: a second (third, tenth) mactl writer.

Run as `python state_worker.py MODE CONFIG_JSON ...`; CONFIG_JSON is a `state:` block.
Not a test module: the tests start it with `conftest.start_worker`.
"""

from __future__ import annotations

import json
import sys
import time

from mactl.state import StageRecord, StateConflict, open_backend
from mactl.state.config import StateConfig
from pydantic import TypeAdapter

from mactl.errors import LockError


def _config(text: str):  # type: ignore[no-untyped-def]
    return TypeAdapter(StateConfig).validate_python(json.loads(text))


def _wait_for_go(go_file: str) -> None:
    """Say we are ready, then wait for the test to create `go_file`: every child starts at once."""
    from pathlib import Path

    print(json.dumps({"ready": True}), flush=True)
    while not Path(go_file).exists():
        time.sleep(0.002)


def hold_lock(config: str, go_file: str, hold_s: str, timeout_s: str) -> None:
    """Try to take the lock once `go_file` exists; on success hold it for `hold_s`. Prints JSON lines."""
    backend = open_backend(_config(config), "default")
    _wait_for_go(go_file)
    began = time.monotonic()
    try:
        with backend.lock("apply", float(timeout_s), heartbeat_s=0.5) as info:
            print(json.dumps({"acquired": True, "id": info.id, "pid": info.pid}), flush=True)
            time.sleep(float(hold_s))
    except LockError as err:
        print(json.dumps({"acquired": False, "waited": time.monotonic() - began, "error": str(err)}), flush=True)


def writer(config: str, name: str, go_file: str) -> None:
    """Read-modify-write one new stage and one history entry, retrying on StateConflict."""
    backend = open_backend(_config(config), "default")
    backend.read()  # connection set up before the start
    _wait_for_go(go_file)
    conflicts = 0
    while True:
        doc = backend.read()
        assert doc is not None
        doc.stages[f"validate.{name}"] = StageRecord(type="validate", status="complete", inputs={"writer": name})
        doc.record(who=name, operation="apply", address=f"validate.{name}", result="ok")
        try:
            stored = backend.write(doc)
        except StateConflict:
            conflicts += 1
            continue
        print(json.dumps({"name": name, "serial": stored.serial, "conflicts": conflicts}), flush=True)
        return


def big_writer(config: str) -> None:
    """Rewrite a large state forever, one history entry per write, printing each stored serial.

    File writes are slowed down (64 KiB per `os.write`, 2 ms apart) so that most of a
    write cycle is spent inside the temp-file write, where a kill hurts most; the code
    path is the real one.
    """
    import os

    real_write = os.write

    def slow_write(fd: int, data: bytes | memoryview) -> int:
        time.sleep(0.002)
        return real_write(fd, data[: 64 * 1024])

    os.write = slow_write  # type: ignore[assignment]
    backend = open_backend(_config(config), "default")
    doc = backend.read()
    assert doc is not None
    while True:
        doc.record(who="big-writer", operation="apply", result="ok", detail="x" * 64)
        doc = backend.write(doc)
        print(doc.serial, flush=True)


def main() -> None:
    mode, *args = sys.argv[1:]
    {"hold-lock": hold_lock, "writer": writer, "big-writer": big_writer}[mode](*args)


if __name__ == "__main__":
    main()
