"""The bad-config corpus: every file gives a clear error naming its path, no traceback.

Each file in `bad/` starts with one or more `# expect: TEXT` (YAML) or `// expect: TEXT`
(JSON) lines; every TEXT must appear in the error. The same file run through the CLI
(`mactl validate -c FILE`) must exit non-zero with the message on stderr and no
traceback, and `--json` must list the same problems as data.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from mactl.cli import app
from mactl.cli.app import run_guarded
from mactl.cli.config_cmd import provider_problems
from mactl.config import ConfigErrors, load_config
from mactl.graph.expand import expand

BAD = Path(__file__).parent / "bad"
CASES = sorted(p for p in BAD.iterdir() if p.suffix in (".yaml", ".json"))
EXPECT = re.compile(r"^(?:#|//) expect: (.*)$", re.M)


def _expected(path: Path) -> list[str]:
    found = EXPECT.findall(path.read_text())
    assert found, f"{path.name} has no `expect:` line"
    return found


def test_the_corpus_is_big_enough() -> None:
    assert len(CASES) >= 30


@pytest.mark.parametrize("path", CASES, ids=lambda p: p.stem)
def test_bad_config_gives_a_clear_error(path: Path) -> None:
    with pytest.raises(ConfigErrors) as info:
        problems = provider_problems(expand(load_config(path, env={}).config))
        if problems:
            raise ConfigErrors(problems)
    message = str(info.value)
    for text in _expected(path):
        assert text in message
    assert all(issue.message for issue in info.value.issues)


@pytest.mark.parametrize("path", CASES, ids=lambda p: p.stem)
def test_bad_config_through_the_cli(
    path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    for key in [k for k in __import__("os").environ if k.startswith("MACTL_VAR_")]:
        monkeypatch.delenv(key)
    code = run_guarded(app, ["validate", "-c", str(path)])
    out = capsys.readouterr()
    assert code != 0
    assert "Traceback" not in out.err + out.out
    assert out.err.startswith("Error: ")
    for text in _expected(path):
        assert text in out.err

    code = run_guarded(app, ["validate", "--json", "-c", str(path)])
    out = capsys.readouterr()
    assert code == 1
    report = json.loads(out.out)
    assert report["valid"] is False and report["error_count"] == len(report["errors"]) >= 1
    listed = "\n".join(f"{e['path']}: {e['message']}" if e["path"] else e["message"] for e in report["errors"])
    for text in _expected(path):
        if not re.fullmatch(r"\d+ errors", text):
            assert text in listed


def test_a_switchover_to_a_sigv4_target_with_a_region_is_valid(tmp_path: Path) -> None:
    """The proxies sign for a sigv4 target themselves: only the region is required
    (`bad/switchover-sigv4-no-region.yaml` is the same config without it)."""
    text = (
        (BAD / "switchover-sigv4-no-region.yaml")
        .read_text()
        .replace("{type: sigv4}", "{type: sigv4, region: us-east-1}")
    )
    path = tmp_path / "mactl.yaml"
    path.write_text(text)
    graph = expand(load_config(path, env={}).config)
    assert provider_problems(graph) == []
    assert any(address.startswith("switchover.") for address in graph.stages)
