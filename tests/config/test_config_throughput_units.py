"""`maxThroughputMbps` is megabits per second for the backfill too; the old spelling
`maxMbps` still loads, with a warning naming where it is (issue 15 item 8)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from mactl.config import ConfigErrors, load_config


def _write(tmp_path: Path, backfill: dict[str, Any]) -> Path:
    config = {
        "targets": [{"name": "t1", "endpoint": "http://localhost:9"}],
        "source": {"name": "src", "endpoint": "http://localhost:9"},
        "static-migration-configs": [
            {"name": "s1", "migrations": [{"name": "m0", "documentBackfillConfigs": [{"name": "b0", **backfill}]}]}
        ],
    }
    path = tmp_path / "mactl.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def _backfill(loaded: Any) -> Any:
    return loaded.config.sources[0].snapshots[0].migrations[0].backfills[0]


def test_max_throughput_mbps_loads_without_a_warning(tmp_path: Path) -> None:
    loaded = load_config(_write(tmp_path, {"maxThroughputMbps": 80}), env={})
    assert _backfill(loaded).maxThroughputMbps == 80
    assert not [w for w in loaded.warnings if "maxMbps" in w]


def test_the_old_spelling_is_read_as_megabits_with_a_warning_naming_its_path(tmp_path: Path) -> None:
    loaded = load_config(_write(tmp_path, {"maxMbps": 40}), env={})
    assert _backfill(loaded).maxThroughputMbps == 40
    (warning,) = [w for w in loaded.warnings if "maxMbps" in w]
    assert warning.startswith(
        "static-migration-configs[0].migrations[0].documentBackfillConfigs[0].maxMbps is deprecated"
    )
    assert "maxThroughputMbps: 40" in warning and "megabits per second for the whole stage" in warning


def test_both_spellings_at_once_is_an_error_naming_the_path(tmp_path: Path) -> None:
    with pytest.raises(ConfigErrors) as err:
        load_config(_write(tmp_path, {"maxMbps": 40, "maxThroughputMbps": 80}), env={})
    assert "documentBackfillConfigs[0].maxMbps" in str(err.value) and "not both" in str(err.value)


def test_a_bad_value_under_the_old_spelling_is_reported_there(tmp_path: Path) -> None:
    with pytest.raises(ConfigErrors) as err:
        load_config(_write(tmp_path, {"maxMbps": "fast"}), env={})
    assert "documentBackfillConfigs[0].maxMbps" in str(err.value)
