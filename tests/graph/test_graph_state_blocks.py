"""Addresses under `moved`/`removed` blocks: renames by kind, chains, instance keys, patterns."""

from __future__ import annotations

from mactl.graph import address as addr
from mactl.graph.blocks import StateBlocks, check
from mactl.schema.blocks import MovedBlock, RemovedBlock


def moved(**kw: str) -> MovedBlock:
    return MovedBlock.model_validate(kw)


def test_a_kind_rename_touches_only_that_segment_and_keeps_instance_keys_whole() -> None:
    assert addr.rename("metadata.es.snap.os2.m0", "target", "os2", "prod") == "metadata.es.snap.prod.m0"
    assert addr.rename("replay.es.os2", "target", "os2", "prod") == "replay.es.prod"
    # a source named like the target is not a target
    assert addr.rename("snapshot.os2.snap", "target", "os2", "prod") is None
    # an instance key may hold dots and the old name: it is never split or renamed
    key = 'metadata.es.snap.os2.m0["os2.logs"]'
    assert addr.rename(key, "target", "os2", "prod") == 'metadata.es.snap.prod.m0["os2.logs"]'
    assert addr.rename("switchover.cutover", "step", "cutover", "go") == "switchover.go"


def test_moves_apply_in_order_so_renames_chain() -> None:
    blocks = StateBlocks(
        moved=(
            moved(kind="snapshot", **{"from": "s1"}, to="s2"),
            moved(kind="snapshot", **{"from": "s2"}, to="s3"),
            moved(**{"from": "backfill.es.s3.os2.m0.b0"}, to="backfill.es.s3.os2.m0.bulk"),
        )
    )
    recorded = ["snapshot.es.s1", "backfill.es.s1.os2.m0.b0", "capture.es"]
    assert blocks.moves(recorded) == {
        "snapshot.es.s1": "snapshot.es.s3",
        "backfill.es.s1.os2.m0.b0": "backfill.es.s3.os2.m0.bulk",
    }
    assert blocks.original_name("snapshot", "s3") == "s1"


def test_removed_patterns_and_destroy_true() -> None:
    blocks = StateBlocks(
        removed=(
            RemovedBlock.model_validate({"from": "*.es.snap.os2.m3*"}),
            RemovedBlock.model_validate({"from": "validate.es.os2", "lifecycle": {"destroy": True}}),
        )
    )
    assert blocks.forgets("backfill.es.snap.os2.m3.b0") is not None
    assert blocks.forgets('metadata.es.snap.os2.m3["idx"]') is not None
    assert blocks.forgets("metadata.es.snap.os2.m30") is not None  # `m3*` is a pattern: docs say `m3` + `m3.*`
    assert blocks.forgets("metadata.es.snap.os2.m2") is None
    assert blocks.forgets("validate.es.os2") is None  # destroy: true rolls back as usual


def test_check_names_each_bad_block_once() -> None:
    stages = ["snapshot.es.snap", "metadata.es.snap.os2.m0", "replay.es.os2"]
    issues = check(
        StateBlocks(
            moved=(
                moved(kind="target", **{"from": "a"}, to="b"),
                moved(kind="target", **{"from": "b"}, to="a"),
                moved(kind="target", **{"from": "old"}, to="os2"),
                moved(kind="target", **{"from": "old"}, to="os2"),
            )
        ),
        stages,
    )
    assert [str(i) for i in issues] == [
        "moved[0]: the moved blocks make a cycle: a → b → a",
        "moved[3]: 'old' is already moved by moved[2]",
    ]
