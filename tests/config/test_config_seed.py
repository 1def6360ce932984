"""The seed's sample configs load as written and normalise to one canonical model."""

from __future__ import annotations

from pathlib import Path

import pytest

from mactl.config import ConfigErrors, load_config

SEED = Path(__file__).parents[1] / "data" / "seed"
EQUIVALENT = ["sample-single-target.json", "sample-single.json", "top-level-filled.jsonc"]


@pytest.mark.parametrize("name", EQUIVALENT)
def test_seed_samples_load_as_written(name: str) -> None:
    loaded = load_config(SEED / name, env={})
    config = loaded.config
    assert [t.name for t in config.targets] == ["target_1"]
    assert [sm.source.name for sm in config.sources] == ["source"]
    assert config.targets[0].endpoint == "http://elasticsearch-master-headless:9200/"
    assert config.sources[0].source.endpoint == "http://opensearch-master-headless:9200/"
    entry = config.sources[0].snapshots[0]
    assert entry.name == "snap1"
    assert [(f.names, f.mode) for f in entry.indices] == [(["index1", "index2"], "exclude")]
    migration = entry.migrations[0]
    assert migration.name == "m0" and migration.metadata is not None
    assert [b.name for b in migration.backfills] == ["b0"]
    replayer = config.sources[0].replayer
    assert replayer is not None and replayer.maxSpeedupFactor == 2.0 and replayer.maxThroughputMbps == 1000


def test_the_three_shapes_normalise_to_the_same_canonical_config() -> None:
    dumps = [load_config(SEED / name, env={}).config.model_dump(mode="json") for name in EQUIVALENT]
    assert dumps[0] == dumps[1] == dumps[2]


@pytest.mark.parametrize("name", ["sample-single-target.json", "sample-single.json"])
def test_legacy_indices_to_ignore_warns_with_the_equivalent_filter(name: str) -> None:
    warnings = load_config(SEED / name, env={}).warnings
    legacy = [w for w in warnings if "indices_toIgnore" in w]
    assert len(legacy) == 1
    assert "legacy spelling" in legacy[0]
    assert "`indices: {names: [index1, index2], mode: exclude}`" in legacy[0]
    prefix = "source-migration-configurations[0]." if name == "sample-single-target.json" else ""
    assert legacy[0].startswith(f"{prefix}static-migration-configs[0].indices_toIgnore")


def test_new_spelling_gives_no_legacy_warning() -> None:
    warnings = load_config(SEED / "top-level-filled.jsonc", env={}).warnings
    assert not [w for w in warnings if "indices_toIgnore" in w]


def test_missing_repository_defaults_to_fs_with_a_warning() -> None:
    loaded = load_config(SEED / "sample-single.json", env={})
    repo = loaded.config.sources[0].source.snapshotRepository
    assert repo is not None and (repo.type, repo.location) == ("fs", "mactl-source")
    assert any(w.startswith("source: no snapshotRepository given") for w in loaded.warnings)


def test_the_verbatim_top_level_sketch_is_a_clear_parse_error() -> None:
    """The seed's schema sketch has `{ ... }` placeholders: a clear error, not a traceback."""
    with pytest.raises(ConfigErrors) as info:
        load_config(SEED / "top-level.jsonc", env={})
    message = str(info.value)
    assert "invalid JSON at line 5, column 17" in message
    assert "placeholder" in message
