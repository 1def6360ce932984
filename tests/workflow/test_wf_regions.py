"""examples/regions for two targets and two regions on the real clusters (issue 20 item 7).

`-var target=staging` and `-var target=prod` keep their own state files but take their
snapshots from the same source into the same repository: each state's snapshot carries
its state's tag, so the second apply does not find "its" snapshot taken by the first.
Applied in both orders, then each destroyed on its own: what the others made (their
snapshots in the shared repository, their indices on the target) stays, document for
document. The two targets write disjoint indices (`-var indices=…`) into the one local
OpenSearch 2 so that "intact" can be checked per state.
"""

from __future__ import annotations

import shutil
import uuid
from pathlib import Path
from typing import Any

import pytest
from opensearchpy import OpenSearch, helpers
from wf_helpers import EXAMPLES, mactl  # type: ignore[import-not-found]

pytestmark = [pytest.mark.cluster, pytest.mark.slow]

DOCS = 40


def _client(url: str) -> OpenSearch:
    return OpenSearch(url, timeout=60)


def _docs(url: str, index: str) -> dict[str, Any]:
    hits = helpers.scan(_client(url), index=index, query={"query": {"match_all": {}}})
    return {h["_id"]: h["_source"] for h in hits}


def _snapshots(url: str, repo: str) -> set[str]:
    found = _client(url).snapshot.get(repository=repo, snapshot="_all")
    return {s["snapshot"] for s in found["snapshots"]}


def test_regions_two_targets_two_regions_both_orders_each_destroyed_alone(
    tmp_path: Path, es710: Any, os13: Any, os2: Any
) -> None:
    uid = uuid.uuid4().hex[:6]
    folder = tmp_path / "project"
    shutil.copytree(EXAMPLES / "regions", folder / "regions")
    sources = {f"use{uid}": es710, f"euw{uid}": os13}
    runs: dict[tuple[str, str], str] = {}  # (region, target) → the index it migrates
    for region, source in sources.items():
        repo = source.repo_folder("regions", uid, region)
        (folder / f"{region}.yaml").write_text(
            f"region: {region}\nsource_url: {source.url}\nrepo_dir: {repo}\n"
            f"endpoints: {{staging: '{os2.url}', prod: '{os2.url}'}}\n"
        )
        for target in ("staging", "prod"):
            index = runs[(region, target)] = f"hab{uid}-{region}-{target}"
            actions = ({"_index": index, "_id": str(i), "_source": {"n": i, "who": target}} for i in range(DOCS))
            helpers.bulk(_client(source.url), actions, refresh=True)

    def run(command: str, region: str, target: str) -> None:
        r = mactl(
            folder,
            command,
            "-auto-approve",
            "-c",
            "regions/mactl.yaml",
            "-var-file",
            f"{region}.yaml",
            "-var",
            f"target={target}",
            "-var",
            f"indices={runs[(region, target)]}",
        )
        assert r.code == 0, f"{command} {region} {target}:\n{r.out[-3000:]}\n{r.err[-3000:]}"

    try:
        first, second = sources
        # staging then prod in one region, prod then staging in the other
        for region, target in [(first, "staging"), (first, "prod"), (second, "prod"), (second, "staging")]:
            run("apply", region, target)
        for (region, _target), index in runs.items():
            assert _docs(os2.url, index) == _docs(sources[region].url, index)
        taken = {region: _snapshots(source.url, f"mactl-{region}") for region, source in sources.items()}
        assert all(len(names) == 2 for names in taken.values()), taken  # one per state, distinct names

        left = dict(runs)
        for region, target in [(first, "prod"), (second, "staging"), (first, "staging"), (second, "prod")]:
            before = _snapshots(sources[region].url, f"mactl-{region}")
            run("destroy", region, target)
            index = left.pop((region, target))
            assert not _client(os2.url).indices.exists(index=index)
            remaining_here = [t for (r, t) in left if r == region]
            if remaining_here:  # its own snapshot deleted, the other state's kept
                assert len(_snapshots(sources[region].url, f"mactl-{region}")) == len(before) - 1
            for (other_region, _), other_index in left.items():
                assert _docs(os2.url, other_index) == _docs(sources[other_region].url, other_index)
                assert _snapshots(sources[other_region].url, f"mactl-{other_region}")
    finally:
        for (region, _), index in runs.items():
            _client(sources[region].url).indices.delete(index=index, ignore_unavailable=True)
            _client(os2.url).indices.delete(index=index, ignore_unavailable=True)
