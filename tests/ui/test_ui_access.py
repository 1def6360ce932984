"""The console's guards, with no cluster: the token off loopback, CSRF on POST, Host on loopback, `dot` missing.

A config whose clusters do not exist is enough: the console reads only the config and the
(empty) state for these.
"""

from __future__ import annotations

import os
import subprocess
import sys
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from ui_helpers import chromium, console, shots_dir  # type: ignore[import-not-found]

CONFIG = """
variables: {pw: {type: string, sensitive: true, default: "s3cr3t-Value-9"}}
targets: [{name: a, endpoint: "http://127.0.0.1:1"}, {name: b, endpoint: "http://127.0.0.1:2"}]
source-migration-configurations:
  - source:
      name: es
      endpoint: "http://admin:hunter2pw@127.0.0.1:3"
      snapshotRepository: {type: fs, location: /snapshots}
      auth: {type: basic, username: u, password: "{{ var.pw }}"}
    snapshot-and-migration-configs:
      - name: snap
        approval: required
        migrations: [{name: m0, metadata: {}, documentBackfillConfigs: [{name: b0}]}]
"""


def _get(url: str, headers: dict[str, str] | None = None, data: bytes | None = None) -> tuple[int, str]:
    request = urllib.request.Request(url, headers=headers or {}, data=data)
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as err:
        return err.code, err.read().decode()


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    (tmp_path / "mactl.yaml").write_text(CONFIG)
    return tmp_path


def test_off_loopback_every_request_without_the_token_is_refused(folder: Path) -> None:
    with console(folder, host="0.0.0.0") as ui:
        assert ui.token, "bound off loopback, mactl ui must print a token"
        base = ui.base.replace("0.0.0.0", "127.0.0.1")
        for path in ("/", "/api/status", "/stage/snapshot.es.snap", "/plan", "/history", "/static/console.js"):
            code, body = _get(base + path)
            assert code == 401 and "refused" in body, (path, code)
        code, _ = _get(base + "/", {"Authorization": "Bearer wrong"})
        assert code == 401
        code, body = _get(base + "/api/status", {"Authorization": f"Bearer {ui.token}"})
        assert code == 200 and '"snapshot.es.snap": "pending"' in body.replace('":"', '": "')
        driver = chromium()
        try:
            driver.get(base + "/")
            assert "refused" in driver.find_element("tag name", "body").text
            driver.save_screenshot(str(shots_dir() / "refused-without-token.png"))
            driver.get(ui.url.replace("0.0.0.0", "127.0.0.1"))  # the printed link: token → cookie, then the map
            assert "?token" not in driver.current_url
            assert len(driver.find_elements("css selector", "#map g.stage")) == 7
        finally:
            driver.quit()


def test_a_post_without_the_pages_csrf_token_is_refused_and_nothing_is_written(folder: Path) -> None:
    with console(folder) as ui:
        code, body = _get(ui.base + "/approve/snapshot.es.snap", data=b"csrf=guess")
        assert code == 403 and "CSRF" in body
        code, body = _get(ui.base + "/approve/snapshot.es.snap", data=b"")
        assert code == 403
    assert not (folder / ".mactl" / "state.json").exists()


def test_loopback_console_answers_only_to_its_loopback_names(folder: Path) -> None:
    with console(folder) as ui:
        assert ui.token is None
        assert _get(ui.base + "/")[0] == 200
        code, body = _get(ui.base + "/", {"Host": "attacker.example:80"})
        assert code == 403 and "loopback" in body


def test_stage_page_masks_secrets_and_plan_page_is_mactl_plans(folder: Path) -> None:
    with console(folder) as ui:
        code, page = _get(ui.base + "/stage/snapshot.es.snap")
        assert code == 200 and "hunter2pw" not in page and "(sensitive)" in page
        assert "s3cr3t-Value-9" not in page
        for path in ("/plan", "/history", "/api/status", "/stage/metadata.es.snap.a.m0"):
            assert "s3cr3t-Value-9" not in _get(ui.base + path)[1] and "hunter2pw" not in _get(ui.base + path)[1]
        code, page = _get(ui.base + "/plan")
        assert code == 200 and "Plan: 7 to create, 0 to update, 0 to replace, 0 to roll back." in page
        assert _get(ui.base + "/stage/nope.nope")[0] == 404


def test_without_graphviz_dot_it_fails_in_one_line_naming_the_package(folder: Path) -> None:
    bare = folder / "bin"
    bare.mkdir()
    (bare / "python").symlink_to(sys.executable)
    run = subprocess.run(
        [sys.executable, "-m", "mactl", "ui", "--port", "0"],
        cwd=folder,
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "PATH": str(bare)},
    )
    assert run.returncode != 0 and "Traceback" not in run.stderr
    assert "graphviz" in run.stderr and "dot" in run.stderr.splitlines()[0]


def test_a_bad_config_or_a_busy_port_fails_in_one_line_before_serving(folder: Path) -> None:
    import socket

    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen(1)
        port = busy.getsockname()[1]
        run = subprocess.run(
            [sys.executable, "-m", "mactl", "ui", "--port", str(port)],
            cwd=folder,
            capture_output=True,
            text=True,
            timeout=60,
        )
    assert run.returncode != 0 and "Traceback" not in run.stderr
    assert run.stderr.startswith(f"Error: --host/--port: cannot listen on 127.0.0.1:{port}")
    (folder / "mactl.yaml").write_text(CONFIG.replace("targets:", "targetz:"))
    bad = subprocess.run(
        [sys.executable, "-m", "mactl", "ui", "--port", "0"], cwd=folder, capture_output=True, text=True, timeout=60
    )
    assert bad.returncode != 0 and "Traceback" not in bad.stderr and "mactl.yaml" in bad.stderr
