"""Usage errors from the command line end as a message and exit 2, never a traceback.

typer runs on its own copy of click, so the guard must catch that copy's exceptions;
this runs the real entry point to prove it does for every command group.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["plan", "--nope"], "No such option: --nope"),
        (["state", "list", "--nope"], "No such option: --nope"),
        (["backfill", "resend-failed"], "Missing argument 'address'"),
        (["frobnicate"], "No such command 'frobnicate'"),
    ],
)
def test_usage_errors_print_a_message_not_a_traceback(argv: list[str], message: str, tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "mactl", *argv],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
        stdin=subprocess.DEVNULL,
    )
    assert done.returncode == 2, done.stderr
    assert message in done.stderr
    assert "Traceback" not in done.stderr


def test_state_commands_take_terraform_style_var(tmp_path: Path) -> None:
    """`-var` is spelled the same on every command that loads the config."""
    (tmp_path / "mactl.yaml").write_text(
        "variables: {tgt: {type: string}}\n"
        "targets: [{endpoint: '{{ var.tgt }}'}]\n"
        "source: {endpoint: 'http://127.0.0.1:1', snapshotRepository: {type: fs, location: /tmp/x}}\n"
        "static-migration-configs: [{metadata: {}}]\n"
    )
    done = subprocess.run(
        [sys.executable, "-m", "mactl", "state", "list", "-var", "tgt=http://127.0.0.1:2"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
        stdin=subprocess.DEVNULL,
    )
    assert done.returncode == 0, done.stderr
    assert "No stages in the state" in done.stdout
