"""Credentials never land in a file mactl writes: the quickstart with a basic-auth target
(the local clusters accept any credentials), applied through the follow replayer."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from wf_helpers import Quickstart  # type: ignore[import-not-found]

pytestmark = [pytest.mark.cluster, pytest.mark.slow]

PASSWORD = "Pw-never-in-a-file-9431"


def test_no_file_mactl_writes_holds_the_password_and_the_replayer_still_gets_it(
    quickstart: Quickstart, os2: Any
) -> None:
    qs = quickstart
    text = qs.config.read_text()
    text = text.replace("variables:\n", "variables:\n  target_pw: {type: string, sensitive: true}\n", 1)
    text = text.replace(
        '    endpoint: "{{ var.target_url }}"\n',
        '    endpoint: "{{ var.target_url }}"\n'
        '    auth: {type: basic, username: admin, password: "{{ var.target_pw }}"}\n',
        1,
    )
    qs.config.write_text(text)
    qs.env["MACTL_VAR_target_pw"] = PASSWORD
    replay = f"replay.{qs.source_name}.os2"
    r = qs.run("apply", "-auto-approve", "-target", replay)
    assert r.code == 0, r.out + r.err
    assert PASSWORD not in r.out + r.err

    written = [p for p in qs.folder.rglob("*") if p.is_file() and p != qs.config]
    assert any(p.name == "replayer-follow-spec.json" for p in written)
    leaks = [str(p) for p in written if PASSWORD.encode() in p.read_bytes()]
    assert leaks == []
    state = json.loads(qs.run("state", "pull").out)
    assert state["stages"][replay]["inputs"]["target"]["auth"] == {"type": "basic"}
    shown = qs.run("state", "show", replay)
    assert PASSWORD not in shown.out and "admin" not in shown.out

    # the detached follow replayer got it through its environment, not a file or argument
    pid = state["stages"][replay]["outputs"]["pid"]
    environ = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
    assert f"MACTL_REPLAY_TARGET_PASSWORD={PASSWORD}".encode() in environ
    assert PASSWORD.encode() not in Path(f"/proc/{pid}/cmdline").read_bytes()
