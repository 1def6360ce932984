"""Snapshot names carry the state's tag, so two states migrating one source never collide (issue 20 item 7)."""

from __future__ import annotations

from pathlib import Path

from mactl.state import state_tag
from mactl.state.config import LocalStateConfig, S3StateConfig

from mactl.config.loader import load_config
from mactl.graph.expand import expand
from mactl.graph.snapshot_names import keep_recorded_snapshot_names, snapshot_name

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def _regions(target: str, region_file: str = "us-east.yaml", workspace: str = "default") -> dict[str, str]:
    loaded = load_config(
        EXAMPLES / "regions" / "mactl.yaml",
        env={},
        var_files=[EXAMPLES / "regions" / region_file],
        var_args=[f"target={target}"],
    )
    graph = expand(loaded.config, workspace=workspace)
    return {a: s.inputs["snapshotName"] for a, s in graph.stages.items() if "snapshotName" in s.inputs}


def test_the_default_state_keeps_the_name_mactl_always_gave() -> None:
    assert state_tag(None, "default") == state_tag(LocalStateConfig(path="./.mactl/"), "default") == ""
    assert snapshot_name("Source", "Snap1", "") == "mactl-source-snap1"


def test_every_other_state_has_its_own_stable_tag() -> None:
    tags = {
        state_tag(LocalStateConfig(path=".mactl"), "prod"),
        state_tag(LocalStateConfig(path=".mactl-us_east-staging"), "default"),
        state_tag(LocalStateConfig(path=".mactl-us_east-prod"), "default"),
        state_tag(S3StateConfig(backend="s3", bucket="b", key="mactl/state.json"), "default"),
        state_tag(S3StateConfig(backend="s3", bucket="b", key="other/state.json"), "default"),
    }
    assert len(tags) == 5 and all(len(t) == 8 for t in tags)
    assert state_tag(LocalStateConfig(path=".mactl-us_east-prod"), "default") == state_tag(
        LocalStateConfig(path="./.mactl-us_east-prod"), "default"
    )


def test_regions_staging_and_prod_ask_for_different_snapshots_and_read_their_own() -> None:
    staging, prod = _regions("staging"), _regions("prod")
    assert staging["snapshot.us_east.snap"] != prod["snapshot.us_east.snap"]
    assert staging["snapshot.us_east.snap"].startswith("mactl-us_east-snap-")
    for names in (staging, prod):
        assert len(set(names.values())) == 1  # metadata and backfill read the snapshot their state takes
    assert _regions("prod") == prod  # stable from one run to the next
    assert _regions("prod", workspace="w2") != prod
    assert _regions("prod", "eu-west.yaml")["snapshot.eu_west.snap"].startswith("mactl-eu_west-snap-")


def test_a_recorded_untagged_name_is_kept_everywhere_it_is_read() -> None:
    loaded = load_config(EXAMPLES / "regions" / "mactl.yaml", env={}, var_files=[EXAMPLES / "regions" / "us-east.yaml"])
    graph = expand(loaded.config)
    kept = keep_recorded_snapshot_names(graph, {"snapshot.us_east.snap": "mactl-us_east-snap"})
    names = {s.inputs["snapshotName"] for s in kept.stages.values() if "snapshotName" in s.inputs}
    assert names == {"mactl-us_east-snap"}
    assert kept.order == graph.order
    # a recorded name that is not this snapshot's (another entry's, an imported one) changes nothing
    assert keep_recorded_snapshot_names(graph, {"snapshot.us_east.snap": "mactl-other-snap"}) is graph
    assert keep_recorded_snapshot_names(graph, {}) is graph
