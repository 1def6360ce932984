"""Index filters that can never match an index get a warning naming their config path (issue 19)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from mactl.config import load_config


def _load(tmp_path: Path, names: list[str]) -> list[str]:
    config = {
        "targets": [{"endpoint": "http://127.0.0.1:29200"}],
        "source": {"endpoint": "http://127.0.0.1:19200", "snapshotRepository": {"type": "fs", "location": "/r"}},
        "static-migration-configs": [{"indices": {"names": names}}],
    }
    path = tmp_path / "c.json"
    path.write_text(json.dumps(config))
    return load_config(path, env={}).warnings


@pytest.mark.parametrize(
    ("name", "why"),
    [
        ("Logs-*", "lower-case"),
        ("PRODUCTS", "lower-case"),
        ("a b", "cannot contain ' '"),
        ("a/b", "cannot contain '/'"),
        ("a,b*", "cannot contain ','"),  # inside a YAML list a comma is not a separator
        ("_internal", "cannot start with '_'"),
        ("-x", "cannot start with '-'"),
        ('q"uote', "cannot contain '\"'"),
        ("a|b", "cannot contain '|'"),
    ],
)
def test_a_filter_that_can_never_match_is_warned_about(tmp_path: Path, name: str, why: str | None) -> None:
    warnings = [w for w in _load(tmp_path, [name]) if "can never match" in w]
    if why is None:
        assert warnings == []
    else:
        assert len(warnings) == 1 and why in warnings[0]
        assert warnings[0].startswith("static-migration-configs[0].indices.names[0]: ")


@pytest.mark.parametrize("name", ["logs-*", "products", ".kibana", "re:^A.*", "logs-2024.01", "*"])
def test_filters_that_can_match_get_no_warning(tmp_path: Path, name: str) -> None:
    assert not [w for w in _load(tmp_path, [name]) if "can never match" in w]


@pytest.mark.parametrize(
    "endpoint",
    ["http://admin:{{ var.pw }}@127.0.0.1:19200", "http://admin:{{ var.pw | urlencode }}@127.0.0.1:19200/"],
)
def test_a_sensitive_variable_may_be_a_urls_password(tmp_path: Path, endpoint: str) -> None:
    config = {
        "variables": {"pw": {"type": "string", "sensitive": True, "default": "s3cret-x@y"}},
        "targets": [{"endpoint": "http://127.0.0.1:29200"}],
        "source": {"endpoint": endpoint, "snapshotRepository": {"type": "fs", "location": "/r"}},
        "static-migration-configs": [{"indices": {"names": "a"}}],
    }
    path = tmp_path / "c.json"
    path.write_text(json.dumps(config))
    loaded = load_config(path, env={})
    assert loaded.config.sources[0].source.endpoint.startswith("http://admin:s3cret")
