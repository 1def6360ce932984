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


def test_transforms_left_empty_null_or_as_the_seed_placeholder_mean_none_with_a_warning() -> None:
    """The seed writes `"transforms": "..."`; `""` and `null` say the same: no transform, and a warning naming the path."""
    loaded = load_config(SEED / "top-level-transforms-left-out.jsonc", env={})
    filled = load_config(SEED / "top-level-filled.jsonc", env={}).config.model_dump(mode="json")
    assert loaded.config.model_dump(mode="json") == filled
    prefix = "source-migration-configurations[0]."
    migration = f"{prefix}snapshot-and-migration-configs[0].migrations[0]."
    expected = {
        f'{migration}metadata.transforms is the placeholder "...": read as no transform',
        f"{migration}documentBackfillConfigs.transforms is empty: read as no transform",
        f"{prefix}replayer-config.transforms is null: read as no transform",
    }
    found = {w.split(". Remove")[0] for w in loaded.warnings if "read as no transform" in w}
    assert found == expected


def test_an_empty_transform_inside_a_list_is_dropped_and_the_others_kept(tmp_path: Path) -> None:
    config = tmp_path / "c.yaml"
    config.write_text(
        "target: {endpoint: 'http://t:9200'}\n"
        "source: {endpoint: 'http://s:9200'}\n"
        "snapshot-and-migration-configs:\n"
        "  - migrations:\n"
        "      - documentBackfillConfigs: {transforms: ['', '{{ _source | tojson }}', null]}\n"
    )
    loaded = load_config(config, env={})
    backfill = loaded.config.sources[0].snapshots[0].migrations[0].backfills[0]
    assert [t.template for t in backfill.transforms] == ["{{ _source | tojson }}"]
    paths = sorted(w.split(" is ")[0] for w in loaded.warnings if "read as no transform" in w)
    assert paths == [
        "snapshot-and-migration-configs[0].migrations[0].documentBackfillConfigs.transforms[0]",
        "snapshot-and-migration-configs[0].migrations[0].documentBackfillConfigs.transforms[2]",
    ]
