"""File formats: YAML, JSON, JSON with comments; default file discovery."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from mactl.config import ConfigErrors, load_config
from mactl.config.files import parse_text, strip_json_comments

MINIMAL_YAML = """\
target: {endpoint: "http://t1:9200"}
source: {endpoint: "http://s1:9200"}
static-migration-configs:
  - metadata: {}
"""


def test_comment_stripping_keeps_slashes_inside_strings() -> None:
    text = '{"a": "http://x:9200/", // trailing\n "b": "/* not a comment */", /* block\n spans */ "c": "\\"//\\""}'
    cleaned = strip_json_comments(text)
    assert parse_text(text, source="t.json", suffix=".json") == {
        "a": "http://x:9200/",
        "b": "/* not a comment */",
        "c": '"//"',
    }
    assert cleaned.count("\n") == text.count("\n"), "line numbers must survive"


def test_json_errors_point_at_the_users_line() -> None:
    text = '// a comment\n{\n  "a": 1,\n  "b": \n}\n'
    with pytest.raises(ConfigErrors, match="invalid JSON at line 5, column 1"):
        parse_text(text, source="t.json", suffix=".json")


def test_a_yaml_file_holding_commented_json_is_read(tmp_path: Path) -> None:
    path = tmp_path / "mactl.yaml"
    path.write_text(
        '// seed style\n{"target": {"endpoint": "http://t:9200"}, "source": {"endpoint": "http://s:9200"},'
        ' "static-migration-configs": [{"metadata": {}}]}\n'
    )
    assert load_config(path, env={}).config.targets[0].endpoint == "http://t:9200"


def test_default_file_is_mactl_yaml_then_mactl_json(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ConfigErrors) as info:
        load_config(None, env={})
    assert "neither mactl.yaml nor mactl.json" in str(info.value)
    (tmp_path / "mactl.json").write_text(
        '{"target": {"endpoint": "http://from-json:9200"}, "source": {"endpoint": "http://s:9200"},'
        ' "static-migration-configs": [{"metadata": {}}]}'
    )
    assert load_config(None, env={}).path.name == "mactl.json"
    (tmp_path / "mactl.yaml").write_text(MINIMAL_YAML)
    loaded = load_config(None, env={})
    assert loaded.path.name == "mactl.yaml"
    assert loaded.config.targets[0].endpoint == "http://t1:9200"


def test_missing_file_names_it(tmp_path: Path) -> None:
    with pytest.raises(ConfigErrors, match="nope.yaml: config file not found"):
        load_config(tmp_path / "nope.yaml", env={})


def test_load_ignores_the_process_environment_only_when_told(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "c.yaml"
    path.write_text(
        "variables:\n  host: {default: t1}\n" + MINIMAL_YAML.replace("http://t1:9200", "http://{{ var.host }}:9200")
    )
    monkeypatch.setenv("MACTL_VAR_host", "from-env")
    assert load_config(path).config.targets[0].endpoint == "http://from-env:9200"
    assert load_config(path, env={}).config.targets[0].endpoint == "http://t1:9200"
    assert os.environ["MACTL_VAR_host"] == "from-env"
