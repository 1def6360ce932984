"""The shared ES 6.8 snapshot fixture → OpenSearch 2.x, read through the snapshot reader.

The source cluster does not exist (its endpoint points nowhere): metadata comes only
from the snapshot's files. A user transform prefixes every name so the test never
collides with others using the same fixture on the shared target.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from mactl.providers.metadata import MetadataProvider
from opensearchpy import OpenSearch
from snapmeta_helpers import Names, make_ctx

from mactl.schema.metadata import MetadataInputs

pytestmark = pytest.mark.cluster

FIXTURE = Path("/work/shared/fixtures/snapshots/ES_6_8_Single")

PREFIX_TRANSFORM = """{%- set p = "PREFIX" -%}
{%- set b = item.body -%}
{%- if b.index_patterns is defined -%}
  {%- set pats = [] -%}{%- for x in b.index_patterns -%}{%- do pats.append(p ~ x) -%}{%- endfor -%}
  {%- do b.update({"index_patterns": pats}) -%}
{%- endif -%}
{#- a template alias naming `{index}` is already unique per index: keep it -#}
{%- set al = {} -%}{%- for k, v in b.aliases.items() -%}{%- do al.update({(k if "{index}" in k else p ~ k): v}) -%}{%- endfor -%}
{%- do b.update({"aliases": al}) -%}
{"name": {{ (p ~ item.name) | tojson }}, "body": {{ b | tojson }}}
"""


def test_es68_fixture_through_the_reader(target: OpenSearch, names: Names, os2, tmp_path: Path) -> None:  # noqa: ANN001
    n = names
    repo = tmp_path / "ES_6_8_Single"
    shutil.copytree(FIXTURE, repo)
    inputs = MetadataInputs.model_validate(
        {
            "source": {"name": "es68", "endpoint": "http://127.0.0.1:9"},  # gone: nothing listens there
            "target": {"name": "os2", "endpoint": os2.url},
            "repository": {"type": "fs", "location": str(repo)},
            "snapshotName": "global_state_snapshot",
            "transforms": [{"kind": "jinja", "template": PREFIX_TRANSFORM.replace("PREFIX", n.prefix)}],
        }
    )
    provider = MetadataProvider()
    out = provider.apply(make_ctx("metadata.es68.snap.os2.m0", "metadata", inputs))
    assert out["sourceVersion"] == "6.8.24" and out["sourceDistribution"] == "elasticsearch"
    assert {(r["kind"], r["name"]) for r in out["created"]} == {
        ("legacy_template", n("posts_index_template")),
        ("index", n("posts_2023_02_25")),
        ("index", n("posts_2024_01_01")),
    }

    # x-pack's templates are listed as excluded, with the reason: none is silently dropped.
    excluded = {e["name"]: e["reason"] for e in out["excluded"]}
    assert excluded[".ml-anomalies-"] == "system template (name starts with '.')"
    assert excluded["security-index-template"].startswith("template for system indices only")
    assert excluded["logstash-index-template"].startswith("template for system indices only")
    assert len(excluded) == 16

    # Typed 6.x mappings became typeless; the transforms that fired are named.
    rows = {r["name"]: r for r in out["report"]["items"]}
    assert (
        "remove-mapping-types: mapping type '_doc' removed (typeless mappings)"
        in rows[n("posts_index_template")]["transforms"]
    )
    template = target.indices.get_template(name=n("posts_index_template"))[n("posts_index_template")]
    assert template["mappings"] == {
        "properties": {"contents": {"type": "text"}, "author": {"type": "keyword"}, "tags": {"type": "keyword"}}
    }
    assert template["index_patterns"] == [n("posts_*")]
    idx_fired = " ".join(rows[n("posts_2023_02_25")]["transforms"])
    assert "drop-internal-settings" in idx_fired and "index.version.created" in idx_fired
    index = target.indices.get(index=n("posts_2023_02_25"))[n("posts_2023_02_25")]
    assert index["mappings"] == {
        "properties": {"author": {"type": "keyword"}, "contents": {"type": "text"}, "tags": {"type": "keyword"}}
    }
    assert index["aliases"][n("alias2")] == {
        "filter": {"term": {"user": "kimchy"}},
        "index_routing": "kimchy",
        "search_routing": "kimchy",
    }
    assert set(index["aliases"]) == {n("posts_2023_02_25-alias"), n("alias1"), n("alias2")}

    # The migrated template shapes new indices on the target, alias placeholder included.
    target.index(index=n("posts_2099"), body={"author": "a", "contents": "hello"}, refresh=True)
    fresh = target.indices.get(index=n("posts_2099"))[n("posts_2099")]
    assert fresh["mappings"]["properties"]["author"] == {"type": "keyword"}
    assert n("posts_2099-alias") in fresh["aliases"]

    provider.rollback(make_ctx("metadata.es68.snap.os2.m0", "metadata", inputs, prior=out))
    assert not target.indices.exists(index=n("posts_2023_02_25"))
    assert target.indices.exists(index=n("posts_2099"))  # not created by the stage
