"""The metadata stage after a kill (issue 15 item 2): every item is in the recorded intent
list before its create request is sent, so a stage killed before it confirmed anything
adopts what it created on the rerun, and a destroy deletes it; an item that was already
on the target before mactl is never adopted or deleted."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from mactl.providers.base import StageContext
from mactl.providers.metadata import MetadataProvider
from opensearchpy import OpenSearch
from snapmeta_helpers import Names

from mactl.metadata import target as tgt
from mactl.schema.metadata import MetadataInputs

pytestmark = pytest.mark.cluster

ADDRESS = "metadata.es710.snap.os2.m0"


class Killed(Exception):
    """Stands for kill -9 once every create request went through, before any confirmation."""


def _inputs(n: Names, es710: Any, os2: Any) -> MetadataInputs:
    return MetadataInputs.model_validate(
        {
            "source": {"name": "es710", "endpoint": es710.url},
            "target": {"name": "os2", "endpoint": os2.url},
            "repository": {"type": "fs", "name": n("repo"), "location": str(n.repo_dir)},
            "snapshotName": n("snap"),
            "from": "live",
            "indices": [{"names": [f"{n.prefix}*"]}],
            "templateFilters": [{"names": [f"{n.prefix}*"]}],
        }
    )


def _ctx(
    inputs: MetadataInputs,
    checkpoints: list[dict[str, Any]],
    *,
    checkpoint_data: dict[str, Any] | None = None,
    prior: dict[str, Any] | None = None,
    kill: bool = False,
) -> StageContext[MetadataInputs]:
    def log(_message: str) -> None:
        if kill:
            raise Killed  # the first log line comes after every create

    return StageContext(
        address=ADDRESS,
        type="metadata",
        inputs=inputs,
        prior_outputs=prior,
        upstream={},
        checkpoint_data=checkpoint_data,
        workdir=Path("/tmp"),
        checkpoint=lambda d: checkpoints.append(dict(d)),
        log=log,
    )


def _seed(es: OpenSearch, target: OpenSearch, n: Names) -> dict[str, Any]:
    body = {
        "settings": {"number_of_shards": 1, "number_of_replicas": 0},
        "mappings": {"properties": {"k": {"type": "keyword"}}},
    }
    for name in ("a", "b", "c", "theirs"):
        es.indices.create(index=n(name), body=body)
    es.indices.put_template(
        name=n("tmpl"),
        body={"index_patterns": [n("x-*")], "settings": {"number_of_shards": 1}, "mappings": body["mappings"]},
    )
    # Already on the target before mactl, identical: someone else's, left alone.
    target.indices.create(index=n("theirs"), body=body)
    return body


def test_short_stage_killed_before_confirming_is_adopted_then_destroyed(
    es: OpenSearch, target: OpenSearch, names: Names, es710: Any, os2: Any
) -> None:
    n = names
    _seed(es, target, n)
    provider = MetadataProvider()
    inputs = _inputs(n, es710, os2)
    checkpoints: list[dict[str, Any]] = []
    with pytest.raises(Killed):
        provider.apply(_ctx(inputs, checkpoints, kill=True))
    # One write recorded every intent before any create; nothing was confirmed (< 2 s).
    assert checkpoints and checkpoints[0]["created"] == []
    intended = {(r["kind"], r["name"]) for r in checkpoints[0]["intended"]}
    mine = {("index", n("a")), ("index", n("b")), ("index", n("c")), ("legacy_template", n("tmpl"))}
    assert intended == mine
    assert all(target.indices.exists(index=n(x)) for x in ("a", "b", "c"))

    # The rerun adopts them as this stage's, not as "existing, identical; left alone".
    out = provider.apply(_ctx(inputs, [], checkpoint_data=checkpoints[-1]))
    assert {(r["kind"], r["name"]) for r in out["created"]} == mine
    outcomes = {(r["kind"], r["name"]): r["outcome"] for r in out["report"]["items"]}
    assert outcomes[("index", n("theirs"))] == "existing"
    assert all(outcomes[k] == "created" for k in mine)
    provider.rollback(_ctx(inputs, [], prior=out))
    assert not any(target.indices.exists(index=n(x)) for x in ("a", "b", "c"))
    assert tgt.fetch(target, "legacy_template", n("tmpl")) is None
    assert target.indices.exists(index=n("theirs"))


def test_destroy_right_after_the_kill_deletes_what_it_created(
    es: OpenSearch, target: OpenSearch, names: Names, es710: Any, os2: Any
) -> None:
    n = names
    _seed(es, target, n)
    provider = MetadataProvider()
    inputs = _inputs(n, es710, os2)
    checkpoints: list[dict[str, Any]] = []
    with pytest.raises(Killed):
        provider.apply(_ctx(inputs, checkpoints, kill=True))
    # An intent whose create never went out (the kill landed first) is simply not there.
    data = dict(checkpoints[-1])
    data["intended"] = [*data["intended"], {"kind": "index", "name": n("never"), "recreate": False}]
    provider.rollback(_ctx(inputs, [], checkpoint_data=data))
    assert not any(target.indices.exists(index=n(x)) for x in ("a", "b", "c"))
    assert tgt.fetch(target, "legacy_template", n("tmpl")) is None
    assert target.indices.exists(index=n("theirs"))
