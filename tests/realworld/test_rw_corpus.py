"""The real-world corpus end to end: ES 7.10.2 → OpenSearch 2.x with `mactl apply`, index by index.

`../shared/realworld-corpus/` (beside the repository; read at test time, never copied)
holds 42 index definitions and templates rendered from public benchmark tracks
(`MANIFEST.json` names each one's origin). Every definition is put on the source under a
unique prefix; the ones the test source (ES 7.10.2 OSS, no x-pack, no plugins, no
analysis-common) refuses are skipped by name, with the refusal checked to be the expected
one. Each accepted index, and one index per accepted template, gets documents generated to
fit its mapping (`gen_docs`), with custom routing on some, then updates and deletes. One
`mactl apply` (snapshot → metadata → backfill) migrates them all; then each index is a test
of its own: mappings, the settings that carry over, aliases, and every document's
`_source` (with its routing) equal on both sides, compared by `_id`.
"""

from __future__ import annotations

import json
import random
import shutil
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from gen_docs import Generator  # type: ignore[import-not-found]
from rw_e2e import REPO, Migration, Run, docs_by_id, purge, request  # type: ignore[import-not-found]

pytestmark = [pytest.mark.cluster, pytest.mark.slow]

CORPUS = REPO.parent / "shared" / "realworld-corpus"

# What ES 7.10.2 as the tests run it (the OSS build: no x-pack, no plugins, no analysis-common)
# refuses, and the words of its refusal. Checked, so a definition that starts or stops
# loading shows up here instead of silently changing what the test covers.
SOURCE_REFUSES = {
    "rw-logs-nginx.access@settings": "unknown setting [index.lifecycle.name]",  # ILM is x-pack
    "rw-track-custom-mappings": "unsupported parameters:  [runtime",  # runtime fields: ES 7.11+
    "rw-auditbeat-mappings": "No handler for type [constant_keyword]",  # x-pack
    "rw-logs-nginx.access": "[data_stream_template] unknown field [hidden]",  # ES 7.11+
    "rw-auditbeat": "specifies component templates [rw-auditbeat-mappings]",  # its component is refused
    "rw-geopointshape": "No handler for type [geo_shape]",  # the geo module is not installed
    "rw-geoshape": "No handler for type [geo_shape]",
    "rw-http_logs-runtime": "unsupported parameters:  [runtime",
    "rw-percolator": "No handler for type [percolator]",  # the percolator module
    "rw-eql-endgame": "unsupported parameters:  [_size",  # the mapper-size plugin
    "rw-dense_vector": "No handler for type [dense_vector]",  # x-pack
    "rw-so_vector": "No handler for type [dense_vector]",
    "rw-wikipedia": "Unknown filter type [edge_ngram]",  # analysis-common
    "rw-joins-base": "unknown parameter [mode] on mapper [_source]",  # synthetic source: ES 8
    "rw-tsdb": "unknown setting [index.mapping.source.mode]",  # time series indices: ES 8
    "rw-knn-lucene": "unknown setting [index.knn]",  # the OpenSearch k-NN plugin
    "rw-treccovid": "unknown setting [index.knn]",
}

# Pipelines the corpus's templates name. The test clusters have no ingest processor at all,
# so they stand in with no processors; mactl must migrate them (they are referenced).
STAND_IN_PIPELINES = ("rw-logs-nginx.access-1.2.0", "rw-.fleet_final_pipeline-1")

# Known mactl bugs, by corpus name: each is migrated on its own (its failure would stop the
# others' backfill) and must fail today (strict: when the bug is fixed, the test says so).
# Entries migrated on their own, each with what must happen. `rw-http_logs-nosource` has
# `_source` disabled: no document can be rebuilt, so the migration must fail loudly (naming
# the index and `_source`) instead of reporting success without its documents.
MUST_FAIL_LOUDLY: dict[str, str] = {
    "rw-http_logs-nosource": "`_source` is disabled: its documents cannot be rebuilt from the snapshot",
}
ON_THEIR_OWN = set(MUST_FAIL_LOUDLY)

# Settings that are the source cluster's own bookkeeping, not the index's definition.
_VOLATILE = ("index.uuid", "index.creation_date", "index.version.", "index.provided_name", "index.routing.")

_PATHS = {
    "index": "/{}",
    "legacy_template": "/_template/{}",
    "index_template": "/_index_template/{}",
    "component_template": "/_component_template/{}",
}
_KIND_ORDER = {"component_template": 0, "legacy_template": 1, "index_template": 2, "index": 3}
DOCS_PER_INDEX = 40


def _manifest() -> list[dict[str, Any]]:
    if not (CORPUS / "MANIFEST.json").is_file():
        pytest.fail(
            f"the real-world corpus is missing: {CORPUS}/MANIFEST.json (it is checked out beside the repository)"
        )
    return list(json.loads((CORPUS / "MANIFEST.json").read_text())["entries"])


def _entry_names() -> list[str]:
    path = CORPUS / "MANIFEST.json"
    if not path.is_file():
        return ["<corpus missing>"]
    return [e["name"] for e in json.loads(path.read_text())["entries"]]


@dataclass
class Loaded:
    """What the source holds for one corpus entry, and the documents written to its index."""

    entry: dict[str, Any]
    name: str  # the prefixed name on the source
    refused: str | None = None
    index: str | None = None  # the index with documents (the entry itself, or one its template shapes)
    deleted: int = 0
    updated: int = 0
    routed: int = 0


@dataclass
class World:
    migration: Migration
    loaded: dict[str, Loaded] = field(default_factory=dict)
    apply: Run | None = None
    summary: list[str] = field(default_factory=list)

    def rename(self, text: str) -> str:
        return text.replace('"rw-', f'"{self.migration.prefix}')


def _bulk(url: str, lines: list[str]) -> None:
    answer = request(url, "POST", "/_bulk?refresh=true", ndjson="\n".join(lines) + "\n")
    errors = [i for i in answer["items"] if next(iter(i.values())).get("error")]
    assert not errors, errors[:3]


def _fill(url: str, index: str, seed: str, *, routing_every: int) -> tuple[int, int, int]:
    """Documents fitting the index's mapping; then updates and deletes. Returns (updated, deleted, routed)."""
    mapping = request(url, "GET", f"/{index}/_mapping")[index]["mappings"]
    gen = Generator(mapping, seed)
    rng = random.Random(seed)
    routes: dict[str, str | None] = {}
    lines = []
    for i in range(DOCS_PER_INDEX):
        _id = f"d{i:03d}"
        routes[_id] = f"r{i % 3}" if routing_every and i % routing_every == 0 else None
        meta = {"_index": index, "_id": _id, **({"routing": routes[_id]} if routes[_id] else {})}
        lines += [json.dumps({"index": meta}), json.dumps(gen.doc(i), ensure_ascii=False)]
    _bulk(url, lines)
    ids = sorted(routes)
    updated, deleted = rng.sample(ids, 5), rng.sample(ids, 4)
    lines = []
    for _id in updated:
        meta = {"_index": index, "_id": _id, **({"routing": routes[_id]} if routes[_id] else {})}
        lines += [json.dumps({"index": meta}), json.dumps(gen.doc(int(_id[1:]), version=1), ensure_ascii=False)]
    for _id in deleted:
        meta = {"_index": index, "_id": _id, **({"routing": routes[_id]} if routes[_id] else {})}
        lines.append(json.dumps({"delete": meta}))
    _bulk(url, lines)
    return len(set(updated) - set(deleted)), len(deleted), sum(1 for r in routes.values() if r)


def _template_index(world: World, entry: dict[str, Any], body: dict[str, Any]) -> str:
    pattern = body["index_patterns"][0]
    return pattern.replace("*", "" if pattern.endswith("-*") else "-") + "2024.03.01"


def _load(world: World, entries: list[dict[str, Any]]) -> None:
    m, es = world.migration, world.migration.source_url
    for pipeline in STAND_IN_PIPELINES:
        name = pipeline.replace("rw-", m.prefix, 1)
        body = {"description": f"stand-in for {pipeline[3:]}: the test clusters have no processors", "processors": []}
        assert request(es, "PUT", f"/_ingest/pipeline/{name}", body) == {"acknowledged": True}
    for entry in sorted(entries, key=lambda e: (_KIND_ORDER[e["kind"]], e["name"])):
        raw = json.loads((CORPUS / f"{entry['name']}.json").read_text())
        body = json.loads(world.rename(json.dumps(raw["body"])))
        name = entry["name"].replace("rw-", m.prefix, 1)
        loaded = Loaded(entry, name)
        world.loaded[entry["name"]] = loaded
        answer = request(es, "PUT", _PATHS[entry["kind"]].format(name), body)
        if not answer.get("acknowledged"):
            reason = json.dumps(answer.get("error", answer)).replace(m.prefix, "rw-")
            loaded.refused = reason
            continue
        if entry["kind"] == "component_template":
            continue
        index = name if entry["kind"] == "index" else _template_index(world, entry, body)
        if entry["kind"] != "index":
            created = request(es, "PUT", f"/{index}", None)
            assert created.get("acknowledged"), (entry["name"], created)
        loaded.index = index
        shards = int(
            request(es, "GET", f"/{index}/_settings/index.number_of_shards")[index]["settings"]["index"][
                "number_of_shards"
            ]
        )
        routing_every = 3 if shards > 1 else 7
        loaded.updated, loaded.deleted, loaded.routed = _fill(
            es, index, f"{entry['name']}", routing_every=routing_every
        )


@contextmanager
def _migrated(base: Path, es710: Any, os2: Any, entries: list[dict[str, Any]], tag: str) -> Iterator[World]:
    """The entries on the source under a fresh prefix, migrated by one `mactl apply`; cleaned up after."""
    prefix = f"rw{tag}{uuid.uuid4().hex[:6]}-"
    repo_dir = es710.repo_folder("realworld", prefix.rstrip("-"))
    folder = base / prefix.rstrip("-")
    folder.mkdir()
    w = World(Migration(folder, prefix, es710.url, os2.url, repo_dir))
    try:
        _load(w, entries)
        w.apply = w.migration.run("apply", "-auto-approve", timeout=900)
        yield w
    finally:
        for line in w.summary:
            print(line)
        purge(es710.url, prefix)
        purge(os2.url, prefix)
        shutil.rmtree(repo_dir, ignore_errors=True)


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory, es710: Any, os2: Any) -> Iterator[World]:
    """The corpus (but the entries migrated on their own) on the source, migrated once."""
    entries = [e for e in _manifest() if e["name"] not in ON_THEIR_OWN]
    with _migrated(tmp_path_factory.mktemp("corpus"), es710, os2, entries, "c") as w:
        yield w


def _flat_settings(url: str, index: str) -> dict[str, Any]:
    got = request(url, "GET", f"/{index}/_settings?flat_settings=true")[index]["settings"]
    return {k: v for k, v in got.items() if not k.startswith(_VOLATILE)}


def _metadata_report(world: World) -> dict[tuple[str, str], dict[str, Any]]:
    state = world.migration.state()
    meta = next(s for a, s in state["stages"].items() if a.startswith("metadata."))
    return {(r["kind"], r["name"]): r for r in meta["outputs"]["report"]["items"]}


def _check(world: World, loaded: Loaded) -> None:
    m = world.migration
    es, os2 = m.source_url, m.target_url
    assert world.apply is not None and world.apply.code == 0, world.apply.out[-4000:] + world.apply.err[-4000:]
    report = _metadata_report(world)
    kind = loaded.entry["kind"]
    if kind != "index":
        row = report[(kind, loaded.name)]
        assert row["outcome"] == "created", row
        source_body = request(es, "GET", _PATHS[kind].format(loaded.name))
        target_body = request(os2, "GET", _PATHS[kind].format(loaded.name))
        if kind == "legacy_template":
            src, tgt = source_body[loaded.name], target_body[loaded.name]
            assert tgt["index_patterns"] == src["index_patterns"] and tgt["mappings"] == src["mappings"]
            assert tgt["aliases"] == src["aliases"] and tgt["order"] == src["order"]
        else:
            key = f"{kind}s"
            (src,) = [e[kind] for e in source_body[key]]
            (tgt,) = [e[kind] for e in target_body[key]]
            assert tgt.get("template", {}).get("mappings") == src.get("template", {}).get("mappings")
            assert tgt.get("composed_of") == src.get("composed_of")
            assert tgt.get("index_patterns") == src.get("index_patterns")
            assert tgt.get("_meta") == src.get("_meta")
    if loaded.index is None:
        return
    index = loaded.index
    row = report[("index", index)]
    assert row["outcome"] == "created", row
    src_map = request(es, "GET", f"/{index}/_mapping")[index]["mappings"]
    tgt_map = request(os2, "GET", f"/{index}/_mapping")[index]["mappings"]
    assert tgt_map == src_map
    src_set, tgt_set = _flat_settings(es, index), _flat_settings(os2, index)
    # what the target refused is named in the report, and only that is missing
    refused = {
        key.strip()
        for t in row.get("transforms") or []
        if t.startswith("drop-rejected-settings")
        for key in t.split("refused ", 1)[1].split(";")[0].split(",")
    }
    expected = {k: v for k, v in src_set.items() if k not in refused}
    assert {k: tgt_set.get(k) for k in expected} == expected
    src_aliases = request(es, "GET", f"/{index}/_alias")[index]["aliases"]
    assert request(os2, "GET", f"/{index}/_alias")[index]["aliases"] == src_aliases
    src_docs, tgt_docs = docs_by_id(es, index), docs_by_id(os2, index)
    assert len(src_docs) == DOCS_PER_INDEX - loaded.deleted
    assert sorted(tgt_docs) == sorted(src_docs)
    for _id in sorted(src_docs):
        assert tgt_docs[_id] == src_docs[_id], _id
    world.summary.append(
        f"  {loaded.entry['name']:<42} {index}: {len(src_docs)} docs exact"
        f" ({loaded.updated} updated, {loaded.deleted} deleted, {loaded.routed} routed before the snapshot)"
    )


@pytest.mark.parametrize("entry", [n for n in _entry_names() if n not in ON_THEIR_OWN])
def test_corpus_entry_arrives_exactly(world: World, entry: str) -> None:
    loaded = world.loaded[entry]
    if entry in SOURCE_REFUSES:
        assert loaded.refused is not None, f"{entry}: ES 7.10.2 accepted it now; take it out of SOURCE_REFUSES"
        assert SOURCE_REFUSES[entry] in loaded.refused, loaded.refused
        world.summary.append(f"  {entry:<42} SKIPPED: the source refuses it ({SOURCE_REFUSES[entry]})")
        pytest.skip(f"ES 7.10.2 (OSS, no plugins) refuses {entry}: {SOURCE_REFUSES[entry]}")
    assert loaded.refused is None, f"{entry}: the source refused it unexpectedly: {loaded.refused}"
    _check(world, loaded)


@pytest.mark.parametrize("entry", sorted(MUST_FAIL_LOUDLY))
def test_corpus_entry_that_cannot_migrate_fails_loudly(tmp_path: Path, es710: Any, os2: Any, entry: str) -> None:
    """An entry mactl cannot migrate, alone: `plan` names it and `apply` fails naming the index and why."""
    (found,) = [e for e in _manifest() if e["name"] == entry]
    with _migrated(tmp_path, es710, os2, [found], "k") as w:
        loaded = w.loaded[entry]
        assert loaded.refused is None, loaded.refused
        assert w.apply is not None and w.apply.code != 0, "apply succeeded without the index's documents"
        assert loaded.name in w.apply.out + w.apply.err and "_source" in w.apply.out + w.apply.err


def test_corpus_covers_enough(world: World) -> None:
    """At least 20 indices with documents and the Fleet composable/component templates arrived."""
    with_docs = [entry for entry, lo in world.loaded.items() if lo.index and not lo.refused]
    # with the entries migrated on their own (that must fail), at least 20 indices with documents
    assert len(with_docs) + len(ON_THEIR_OWN) >= 20, with_docs
    kinds = {lo.entry["kind"] for lo in world.loaded.values() if not lo.refused}
    assert kinds == {"index", "legacy_template", "index_template", "component_template"}
    report = _metadata_report(world)
    for pipeline in STAND_IN_PIPELINES:
        name = pipeline.replace("rw-", world.migration.prefix, 1)
        assert report[("pipeline", name)]["outcome"] == "created"
        assert request(world.migration.target_url, "GET", f"/_ingest/pipeline/{name}")[name]["processors"] == []
