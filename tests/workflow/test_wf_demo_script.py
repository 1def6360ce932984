"""`scripts/demo` itself, run as a user would on the session's clusters, then undone with the
`mactl destroy` line it prints.

The demo has fixed names: the sample indices `demo-*` (and template `demo-logs`) on the
source and the snapshot repository `mactl-quickstart`; its capture proxy port (19210) is
moved to a free one here, so a demo a user left running does not get in the way. test_wf_quickstart uses none of them (its own prefix, a free port,
`wf-<uid>`), so the two never collide. The repository folder is a fresh one of this test
(the demo puts it under `$MACTL_TEST_REPO_DIR/quickstart`), a repository registration
that existed before is put back, and every `demo-*` index and template is removed from
source and target at the end.
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import socket
import subprocess
import sys
import urllib.error
import uuid
from pathlib import Path
from typing import Any

import pytest
from wf_data import docs_of, request  # type: ignore[import-not-found]
from wf_helpers import REPO  # type: ignore[import-not-found]

pytestmark = [pytest.mark.cluster, pytest.mark.slow]

DEMO_INDICES = ("demo-products", "demo-logs-2024.01", "demo-logs-2024.02")
DEMO_REPOSITORY = "mactl-quickstart"


def _demo_indices(url: str) -> set[str]:
    return {row["index"] for row in request(url, "GET", "/_cat/indices/demo-*?format=json&expand_wildcards=all")}


def _repository(url: str) -> dict[str, Any] | None:
    try:
        return request(url, "GET", f"/_snapshot/{DEMO_REPOSITORY}")[DEMO_REPOSITORY]
    except urllib.error.HTTPError as err:  # 404: not registered
        if err.code != 404:
            raise
        return None


def _drop_demo(url: str) -> None:
    for index in DEMO_INDICES:
        request(url, "DELETE", f"/{index}")
    request(url, "DELETE", "/_template/demo-logs")


def test_demo_script_runs_passes_and_its_destroy_line_undoes_it(tmp_path: Path, es710: Any, os2: Any) -> None:
    with socket.socket() as s:  # a free port for the capture proxy: a demo left running keeps 19210
        s.bind(("127.0.0.1", 0))
        proxy_port = s.getsockname()[1]
    repo_base = es710.repo_folder("workflow", f"demo-{uuid.uuid4().hex[:6]}")
    registered_before = _repository(es710.url)
    demo_dir = tmp_path / "demo"
    env = {
        **os.environ,
        "COLUMNS": "200",
        "PYTHON": sys.executable,
        "MACTL_DEMO_SKIP_INSTALL": "1",
        "MACTL_DEMO_USE_RUNNING": "1",
        "MACTL_DEMO_DIR": str(demo_dir),
        "MACTL_DEMO_PROXY_PORT": str(proxy_port),
        "MACTL_TEST_ES710_URL": es710.url,
        "MACTL_TEST_OS2_URL": os2.url,
        "MACTL_TEST_REPO_DIR": str(repo_base),
    }
    destroy_line: list[str] = []
    try:
        demo = subprocess.run(
            [str(REPO / "scripts" / "demo")],
            cwd=tmp_path,
            env=env,
            capture_output=True,
            text=True,
            timeout=240,
            check=False,
        )
        out = demo.stdout
        assert demo.returncode == 0, out[-3000:] + demo.stderr[-3000:]
        assert "validate.es.os2: PASSED" in out
        report = demo_dir / "audit.html"
        assert f"The HTML audit report: {report}" in out
        assert report.is_file() and "PASSED" in report.read_text()

        # the demo really migrated: the target holds exactly the source's documents
        migrated = {"demo-products", "demo-logs-2024.01"}  # the quickstart's two indices
        assert _demo_indices(os2.url) >= migrated
        for index in migrated:
            docs = docs_of(os2.url, index)
            assert len(docs) >= 1000 and docs == docs_of(es710.url, index), index

        (line,) = [ln for ln in out.splitlines() if re.match(r"\s*mactl destroy ", ln)]
        destroy_line = shlex.split(line.split("#")[0])
        assert destroy_line[:3] == ["mactl", "destroy", "-auto-approve"]

        # a plan right after the demo's apply has nothing to do: the proxy's health, the
        # replayer's status and their timestamps are status, not changes made outside mactl
        replan = subprocess.run(
            [sys.executable, "-m", "mactl", "plan", "-detailed-exitcode", *destroy_line[3:]],
            cwd=demo_dir,
            env=env,
            capture_output=True,
            text=True,
            timeout=240,
            check=False,
        )
        assert replan.returncode == 0, replan.stdout[-3000:] + replan.stderr[-3000:]
        assert "No changes" in replan.stdout
        undo = subprocess.run(
            [sys.executable, "-m", *destroy_line],
            cwd=demo_dir,
            env=env,
            capture_output=True,
            text=True,
            timeout=240,
            check=False,
        )
        assert undo.returncode == 0, undo.stdout[-3000:] + undo.stderr[-3000:]
        assert _demo_indices(os2.url) == set()
    finally:
        if destroy_line == [] and (demo_dir / ".mactl").exists():
            subprocess.run(
                [
                    sys.executable,
                    "-m",
                    "mactl",
                    "destroy",
                    "-auto-approve",
                    "-c",
                    "quickstart.yaml",
                    "-var-file",
                    "demo.vars.yaml",
                ],
                cwd=demo_dir,
                env=env,
                capture_output=True,
                timeout=240,
                check=False,
            )
        _drop_demo(es710.url)
        _drop_demo(os2.url)
        if registered_before is None:
            request(es710.url, "DELETE", f"/_snapshot/{DEMO_REPOSITORY}")
        else:
            request(es710.url, "PUT", f"/_snapshot/{DEMO_REPOSITORY}", registered_before)
        shutil.rmtree(repo_base, ignore_errors=True)
