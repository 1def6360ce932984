"""Sampling, document transforms and the job spec: pure logic, no cluster."""

from __future__ import annotations

from typing import Any

from mactl.backfill.doc_transforms import DocumentTransformer
from mactl.backfill.sampling import Sampler, id_hash, percent_threshold, smallest_hashes_threshold
from mactl.backfill.spec import JobSpec, build_spec
from mactl.schema.backfill import BackfillInputs
from mactl.schema.common import TransformSpec
from mactl.schema.snapshot import SnapshotInputs

IDS = [f"doc-{i}" for i in range(20000)]


def kept(sampler: Sampler) -> set[str]:
    return {i for i in IDS if sampler.keep(i)}


def test_percent_samples_are_nested_and_close_to_the_ratio() -> None:
    one, ten, all_ = (kept(Sampler(percent_threshold(p))) for p in (1, 10, 100))
    assert one < ten < all_ == set(IDS)
    assert 150 < len(one) < 250 and 1800 < len(ten) < 2200


def test_max_docs_keeps_exactly_the_n_smallest_hashes_and_grows_monotonically() -> None:
    small = kept(Sampler(smallest_hashes_threshold(IDS, 100)))
    large = kept(Sampler(smallest_hashes_threshold(IDS, 1000)))
    assert len(small) == 100 and len(large) == 1000 and small < large
    assert small == set(sorted(IDS, key=id_hash)[:100])
    assert smallest_hashes_threshold(IDS[:10], 100) is None  # fewer docs than asked: keep all


def test_hash_is_stable_across_runs() -> None:
    assert id_hash("doc-1") == 0x56F47A285F34F541  # pinned: changing the hash would break 1% ⊂ 10% across versions
    assert id_hash("doc-1") == id_hash("doc-1") != id_hash("doc-2")


def test_transform_renames_a_field_drops_documents_and_can_move_index() -> None:
    rename = TransformSpec(
        kind="jinja",
        template=(
            "{% if _source.n % 2 == 0 %}{{ DROP }}{% else %}{% set s = dict(_source) %}"
            '{% do s.update({"headline": s.pop("title")}) %}{"_source": {{ s | tojson }}}{% endif %}'
        ),
    )
    move = TransformSpec(kind="jinja", template='{"_index": "{{ _index }}-v2"}')
    t = DocumentTransformer([rename, move])
    assert t.apply("src", "a", None, {"title": "x", "n": 2}) is None
    out = t.apply("src", "b", "r1", {"title": "x", "n": 3})
    assert out is not None
    assert (out.index, out.id, out.routing, out.source) == ("src-v2", "b", "r1", {"headline": "x", "n": 3})


def test_spec_round_trips_with_secrets_for_the_child_process_only() -> None:
    inputs = BackfillInputs.model_validate(
        {
            "target": {
                "name": "t",
                "endpoint": "http://h:9200",
                "auth": {"type": "basic", "username": "u", "password": "s3cret"},
            },
            "repository": {"type": "fs", "location": "/r"},
            "snapshotName": "snap",
            "sample": {"percent": 10},
        }
    )
    spec = build_spec("backfill.a.b.c.d.e", inputs, workdir=__import__("pathlib").Path("/tmp/w"))
    back = JobSpec.from_json(spec.to_json())
    assert back.target.auth.password is not None and back.target.auth.password.get_secret_value() == "s3cret"
    assert back.gen == spec.gen and back.sample_percent == 10
    assert "s3cret" not in repr(spec.target)
    # growing the sample changes the generation (redo every unit); batch sizes do not
    bigger = build_spec(
        "backfill.a.b.c.d.e", inputs.model_copy(update={"sample": None}), workdir=__import__("pathlib").Path("/tmp/w")
    )
    same = build_spec(
        "backfill.a.b.c.d.e",
        inputs.model_copy(update={"maxBatchDocs": 7}),
        workdir=__import__("pathlib").Path("/tmp/w"),
    )
    assert bigger.gen != spec.gen and same.gen == spec.gen
    # a snapshot taken again under the same name is other data: its own generation
    w = __import__("pathlib").Path("/tmp/w")
    first = build_spec("backfill.a.b.c.d.e", inputs, workdir=w, snapshot="snap", snapshot_uuid="uuid-1")
    again = build_spec("backfill.a.b.c.d.e", inputs, workdir=w, snapshot="snap", snapshot_uuid="uuid-2")
    joining = build_spec(
        "backfill.a.b.c.d.e",
        inputs.model_copy(update={"maxBatchDocs": 7}),
        workdir=w,
        snapshot="snap",
        snapshot_uuid="uuid-1",
    )
    assert len({first.gen, again.gen, spec.gen}) == 3 and joining.gen == first.gen


def test_the_snapshot_name_is_the_one_the_snapshot_stage_recorded(tmp_path: Any) -> None:
    """The backfill reads the name from the snapshot stage's real outputs (built by its
    own `_outputs`), not from a key that stage never writes."""
    from mactl.providers.backfill import _upstream_snapshot_name
    from mactl.providers.base import StageContext
    from mactl.providers.snapshot import _outputs

    source = {"name": "src", "endpoint": "http://h:9200"}
    repository = {"type": "fs", "name": "r", "location": "/r"}
    snap_inputs = SnapshotInputs.model_validate({"source": source, "repository": repository, "snapshotName": "snap"})
    info = {"snapshot": "snap-2026.11.25", "uuid": "u-1", "state": "SUCCESS", "indices": ["a"], "shards": {"total": 1}}
    recorded = _outputs(
        info,
        inputs=snap_inputs,
        repo_name="r",
        created=True,
        source_version=("elasticsearch", "7.10.2"),
        capture_position=None,
    )
    inputs = BackfillInputs.model_validate(
        {"target": {"name": "t", "endpoint": "http://t:9200"}, "repository": repository, "snapshotName": "snap"}
    )
    ctx = StageContext(
        address="backfill.src.snap.t.m.b",
        type="backfill",
        inputs=inputs,
        prior_outputs=None,
        upstream={"snapshot.src.snap": recorded},
        checkpoint_data=None,
        workdir=tmp_path,
    )
    assert _upstream_snapshot_name(ctx) == "snap-2026.11.25"
