"""The local harness itself: stopping escalates to SIGKILL, and user errors say what to do."""

from __future__ import annotations

import socket
import sys
from pathlib import Path

import pytest

from devtools.local import LocalServiceError, process
from devtools.local.clusters import CLUSTERS, start_cluster
from devtools.local.services import check_names


def test_stop_escalates_to_sigkill_when_sigterm_is_ignored(tmp_path: Path) -> None:
    stubborn = "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); print('ready', flush=True); time.sleep(600)"
    record = process.start_detached([sys.executable, "-c", stubborn], env={}, cwd=tmp_path, log=tmp_path / "out.log")
    while "ready" not in (tmp_path / "out.log").read_text():
        assert record.alive()
    assert process.stop(record, grace_seconds=1.0) == "killed"
    assert not record.alive()
    assert process.stop(record) == "not running"


def test_a_port_taken_by_someone_else_is_named_with_what_to_do(tmp_path: Path) -> None:
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", 0))
        squatter.listen()
        port = squatter.getsockname()[1]
        with pytest.raises(LocalServiceError) as caught:
            start_cluster(CLUSTERS["os2"], tmp_path, port=port)
    assert f"port {port} for os2 is already in use" in caught.value.message
    assert "MACTL_OS2_PORT" in (caught.value.hint or "")


def test_unknown_service_names_are_refused_with_the_valid_ones() -> None:
    with pytest.raises(LocalServiceError) as caught:
        check_names(["es710", "es5"])
    assert caught.value.message == "unknown service name(s): es5"
    assert caught.value.hint == "choose from: es710, os13, os2, es8, os3, es9, s3, kafka"
