"""The validation checks: counts, sampled documents, mappings/settings, query parity, replay.

Each check returns plain JSON-able data with a `passed` flag and the numbers behind it;
`run_validation` puts them into one report (see `mactl.audit.model`). The expected side
comes from what upstream stages recorded, re-derived where it can be: sampled documents
are read again from the snapshot and put through the backfill's own transform function.
Nothing here writes to a cluster.
"""

from __future__ import annotations

import hashlib
import heapq
import json
import os
import statistics
import time
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import orjson
from opensearchpy import OpenSearch
from opensearchpy.exceptions import NotFoundError, TransportError

from mactl.audit.vectors import automatic_queries, check_vector_query
from mactl.errors import MactlError, ProviderError
from mactl.schema.common import IndexFilter
from mactl.schema.stage import Progress, StageView
from mactl.schema.validate import Query, Thresholds, ValidateInputs
from mactl.state.workdir import Workdir

MAX_MISMATCHES_SHOWN = 5
MAX_PLOT_POINTS = 300


# --------------------------------------------------------------------------- upstream facts
def backfill_facts(upstream: Mapping[str, Mapping[str, Any]]) -> dict[str, dict[str, Any]]:
    """Per target index: the expectation the backfill stages recorded.

    `expected` is what the document ledger says was written there: the snapshot's live
    top-level documents less those skipped by sampling, dropped by transforms, not
    migratable and dead-lettered (the ledger check decides whether dead letters are
    tolerated; the count check only proves the target holds what the ledger says). Without
    a transform every index the backfill selected is checked, also one that received
    nothing. An index a transform renamed falls back to what the backfill wrote there.
    """
    facts: dict[str, dict[str, Any]] = {}
    for address, out in upstream.items():
        if address.split(".", 1)[0] != "backfill" or not out:
            continue
        per_source = dict(out.get("indices") or {})
        ledger = dict(out.get("ledger") or {})
        targets = dict(out.get("targetIndices") or {})
        if not out.get("transforms"):
            for index in ledger:
                targets.setdefault(index, {"expected": int(ledger[index].get("written", 0)), "actual": None})
        for index, counts in sorted(targets.items()):
            fact = facts.setdefault(
                index,
                {
                    "index": index,
                    "expected": 0,
                    "skipped": 0,
                    "dropped": 0,
                    "notMigratable": 0,
                    "live": 0,
                    "deadLettered": 0,
                    "backfills": [],
                    "renamed": False,
                },
            )
            src = per_source.get(index)
            row = ledger.get(index)
            if row is not None:
                fact["live"] += int(row.get("live", 0))
                fact["skipped"] += int(row.get("skippedBySampling", 0))
                fact["dropped"] += int(row.get("droppedByTransform", 0))
                fact["notMigratable"] += int(row.get("notMigratable", 0))
                fact["deadLettered"] += int(row.get("deadLettered", 0))
                fact["expected"] += int(row.get("written", 0))
            elif src is not None:  # recorded before the ledger existed
                fact["live"] += int(src.get("live", 0))
                fact["skipped"] += int(src.get("skippedBySampling", 0))
                fact["dropped"] += int(src.get("dropped", 0))
                fact["deadLettered"] += int(src.get("failed", 0))
                fact["expected"] += (
                    int(src.get("live", 0)) - int(src.get("skippedBySampling", 0)) - int(src.get("dropped", 0))
                )
            else:
                fact["renamed"] = True
                fact["expected"] += int(counts.get("expected", 0))
            fact["backfills"].append(address)
            fact.setdefault("snapshotName", out.get("snapshotName"))
            fact.setdefault("transforms", out.get("transforms") or [])
            fact.setdefault("sample", out.get("sample"))
            definition = (out.get("definitions") or {}).get(index)
            if definition is not None:
                fact["definition"] = definition
    return facts


def backfill_ledgers(upstream: Mapping[str, Mapping[str, Any]]) -> dict[str, dict[str, dict[str, Any]]]:
    """Each upstream backfill's document ledger (per source index), as it recorded it."""
    return {
        address: dict(out.get("ledger") or {})
        for address, out in sorted(upstream.items())
        if address.split(".", 1)[0] == "backfill" and out and isinstance(out.get("ledger"), Mapping)
    }


def check_ledger(index: str, row: Mapping[str, Any], max_failed: int) -> dict[str, Any]:
    """One source index's ledger: every live document of the snapshot in exactly one column,
    and no more dead-lettered (or unaccounted) documents than `thresholds.maxFailedDocs`."""
    from mactl.backfill.verify import top_reasons

    dead = int(row.get("deadLettered", 0))
    unaccounted = int(row.get("unaccounted", 0))
    bad = dead + abs(unaccounted)
    result: dict[str, Any] = {"index": index, **dict(row), "passed": bad <= max_failed}
    problems = []
    if dead:
        problems.append(f"{dead} dead-lettered ({top_reasons(row)})")
    if unaccounted:
        problems.append(f"{unaccounted} of {row.get('live')} live documents unaccounted for")
    if problems:
        result["detail"] = ", ".join(problems) + f"; at most {max_failed} allowed (thresholds.maxFailedDocs)"
    elif int(row.get("notMigratable", 0)):
        result["detail"] = f"{row['notMigratable']} not migratable: {row.get('notMigratableReason', '')}"
    return result


def replay_outputs(upstream: Mapping[str, Mapping[str, Any]]) -> list[tuple[str, Mapping[str, Any]]]:
    return [(a, o) for a, o in upstream.items() if a.split(".", 1)[0] == "replay" and o]


# --------------------------------------------------------------------------- counts
def _count(client: OpenSearch, index: str) -> int | None:
    try:
        client.indices.refresh(index=index)
        return int(client.count(index=index)["count"])
    except NotFoundError:
        return None


def check_count(
    fact: Mapping[str, Any], target: OpenSearch, source: OpenSearch | None, max_diff: int
) -> dict[str, Any]:
    """Target `_count` (after refresh) against the snapshot's expectation.

    With replay upstream the source kept changing after the snapshot, so the reference is
    the source's count now, less the same sampling and drops.
    """
    index = fact["index"]
    actual = _count(target, index)
    result: dict[str, Any] = {"snapshotExpected": fact["expected"], "target": actual, "basis": "snapshot"}
    reference = fact["expected"]
    if source is not None and not fact.get("renamed"):
        now = _count(source, index)
        result["sourceNow"] = now
        if now is not None:
            reference = now - sum(int(fact.get(k, 0)) for k in ("skipped", "dropped", "notMigratable", "deadLettered"))
            result["basis"] = "source now (replayed)"
    result["expected"] = reference
    if actual is None and reference == 0:
        actual = 0  # nothing was to be written there, and the target has nothing
        result["detail"] = "the target has no such index; nothing was written there"
    result["target"] = actual
    result["difference"] = None if actual is None else actual - reference
    result["passed"] = actual is not None and abs(actual - reference) <= max_diff
    if actual is None:
        result["detail"] = "the target has no such index"
    return result


# --------------------------------------------------------------------------- sampled documents
def _salted(seed: bytes, doc_id: str) -> int:
    return int.from_bytes(hashlib.blake2b(seed + doc_id.encode("utf-8"), digest_size=8).digest(), "big")


def _snapshot_docs(repo: Any, snapshot: str, index: str, limit: int) -> Iterator[Any]:
    seen = 0
    for shard in range(repo.shard_count(snapshot, index)):
        for doc in repo.documents(snapshot, index, shard):
            yield doc
            seen += 1
            if seen >= limit:
                return


def _sampler(repo: Any, snapshot: str, index: str, sample: Mapping[str, Any] | None, limit: int) -> Any:
    """The backfill's own sampler, so the validation picks only documents that were copied."""
    from mactl.backfill.sampling import Sampler, percent_threshold, smallest_hashes_threshold

    if not sample:
        return Sampler()
    if sample.get("percent") is not None:
        return Sampler(percent_threshold(float(sample["percent"])))
    ids = (d.id for d in _snapshot_docs(repo, snapshot, index, limit))
    return Sampler(smallest_hashes_threshold(ids, int(sample["maxDocsPerIndex"])))


def pick_documents(
    repo: Any, snapshot: str, index: str, n: int, sample: Mapping[str, Any] | None, seed: bytes, limit: int
) -> list[Any]:
    """`n` random documents of the snapshot (among those the backfill's sampling kept)."""
    sampler = _sampler(repo, snapshot, index, sample, limit)
    heap: list[tuple[int, int, Any]] = []  # max-heap by negated salted hash: keeps the n smallest
    for i, doc in enumerate(_snapshot_docs(repo, snapshot, index, limit)):
        if not sampler.keep(doc.id):
            continue
        key = -_salted(seed, doc.id)
        if len(heap) < n:
            heapq.heappush(heap, (key, i, doc))
        elif key > heap[0][0]:
            heapq.heapreplace(heap, (key, i, doc))
    return [doc for _, _, doc in sorted(heap, reverse=True)]


def _fetch(client: OpenSearch, wanted: Sequence[tuple[str, str, str | None]]) -> list[dict[str, Any] | None]:
    if not wanted:
        return []
    docs = [{"_index": i, "_id": d, **({"routing": r} if r else {})} for i, d, r in wanted]
    found = client.mget(body={"docs": docs}, params={"realtime": "true"})
    return [(h.get("_source") if h.get("found") else None) for h in found["docs"]]


def _short_diff(expected: Any, actual: Any) -> str:
    if actual is None:
        return "missing on the target"
    from deepdiff import DeepDiff

    diff = DeepDiff(expected, actual, verbose_level=1)
    text = diff.pretty() if diff else ""
    return (text[:300] + "…") if len(text) > 300 else text


def check_sample(
    fact: Mapping[str, Any],
    repo: Any,
    target: OpenSearch,
    source: OpenSearch | None,
    size: int,
    seed: bytes,
    limit: int,
    min_match: float,
    transforms_base_dir: Path | None = None,
) -> dict[str, Any]:
    """N random snapshot documents, transformed as the backfill did, against the target's `_source`.

    With replay upstream a document the source changed after the snapshot may differ from
    the snapshot's; it still matches when the target equals the source's current document
    put through the same transforms (or both no longer have it). A transform's relative
    `file:` starts at `transforms_base_dir` (the config's folder).
    """
    from mactl.audit.derived_vectors import DERIVED_SETTING, derived_vector_paths, same_source
    from mactl.backfill.doc_transforms import DocumentTransformer
    from mactl.schema.common import TransformSpec

    index = fact["index"]
    snapshot = fact.get("snapshotName")
    if fact.get("renamed"):
        source_index = None
    else:
        source_index = index
    if not snapshot or source_index is None:
        return {
            "checked": 0,
            "matched": 0,
            "rate": None,
            "passed": True,
            "detail": "skipped: no snapshot document maps to this index by name",
        }
    try:
        transformer = DocumentTransformer(
            [TransformSpec.model_validate(t) for t in fact.get("transforms") or []], base_dir=transforms_base_dir
        )
        picked = pick_documents(repo, snapshot, source_index, size, fact.get("sample"), seed, limit)
        expected: list[tuple[Any, Any]] = []
        for doc in picked:
            out = transformer.apply(doc.index, doc.id, doc.routing, orjson.loads(doc.source), doc.type)
            if out is not None:  # dropped by a transform: not expected on the target
                expected.append((doc, out))
    except MactlError:
        raise
    except Exception as exc:  # noqa: BLE001 - a reader or transform failure is a validation failure, reported
        return {
            "checked": 0,
            "matched": 0,
            "rate": 0.0,
            "passed": False,
            "detail": f"cannot re-derive the sample: {type(exc).__name__}: {exc}",
        }
    actual = _fetch(target, [(o.index, o.id, o.routing) for _, o in expected])
    rebuilt = {name: derived_vector_paths(target, name) for name in {o.index for _, o in expected}}
    live: list[dict[str, Any] | None] = []
    mismatches: list[dict[str, Any]] = []
    matched = 0
    missing = 0
    dead_lettered = int(fact.get("deadLettered", 0))
    for k, ((doc, out), got) in enumerate(zip(expected, actual, strict=True)):
        as_float32 = rebuilt[out.index]
        if same_source(out.source, got, as_float32):
            matched += 1
            continue
        if source is not None:  # replayed: the source may have changed the document since the snapshot
            if not live:
                live = _fetch(source, [(d.index, d.id, d.routing) for d, _ in expected])
            now = live[k]
            now_out = transformer.apply(doc.index, doc.id, doc.routing, now, doc.type) if now is not None else None
            if (now_out is None and got is None) or (
                now_out is not None and same_source(now_out.source, got, as_float32)
            ):
                matched += 1
                continue
        if got is None and missing < dead_lettered:
            missing += 1  # one of the index's dead letters: the ledger check judges those
            continue
        if len(mismatches) < MAX_MISMATCHES_SHOWN:
            mismatches.append({"id": out.id, "index": out.index, "diff": _short_diff(out.source, got)})
    checked = len(expected) - missing
    rate = matched / checked if checked else None
    result: dict[str, Any] = {
        "checked": checked,
        "matched": matched,
        "rate": rate,
        "passed": checked == 0 or (rate or 0) >= min_match,
        "mismatches": mismatches,
        **({"detail": "the snapshot holds no document to sample"} if not checked else {}),
    }
    if vectors := sorted(p for paths in rebuilt.values() for p in paths):
        result["float32Fields"] = vectors
        result["note"] = (
            f"{', '.join(vectors)} compared as float32: the target rebuilds them in _source from its "
            f"k-NN index ({DERIVED_SETTING})"
        )
    if missing:
        result["missingDeadLettered"] = missing
        result["detail"] = (
            f"{missing} sampled document(s) missing on the target, at most as many as the backfill "
            "dead-lettered (judged by the ledger check)"
        )
    return result


# --------------------------------------------------------------------------- mappings and settings
def check_definition(fact: Mapping[str, Any], target: OpenSearch) -> dict[str, Any]:
    """The index as metadata created it (after every transform) against the target's, ignoring
    settings and keys the target adds by itself."""
    from mactl.metadata.target import differences, fetch

    desired = fact.get("definition")
    if desired is None:
        return {
            "passed": True,
            "skipped": True,
            "detail": "skipped: no metadata stage recorded this index's definition (it existed, or there is no metadata stage)",
        }
    actual = fetch(target, "index", fact["index"])
    if actual is None:
        return {"passed": False, "detail": "the target has no such index"}
    extra: list[str] = []
    actual = {
        **actual,
        "mappings": _restrict(dict(desired).get("mappings") or {}, actual.get("mappings") or {}, "", extra),
    }
    diff = differences("index", dict(desired), actual)
    result: dict[str, Any] = {
        "passed": not diff,
        "detail": (diff[:1500] if diff else "mappings and settings as expected"),
    }
    if extra:
        result["dynamicFields"] = extra[:50]  # fields the target mapped on its own (e.g. a transform added them)
    return result


def _restrict(desired: Any, actual: Any, path: str, extra: list[str]) -> Any:
    """`actual` mappings without the fields `desired` does not have (recorded in `extra`).

    Dynamic mapping adds fields a transform or a replayed write introduced; that is the
    target working as configured, not a difference from what metadata created.
    """
    if not isinstance(desired, dict) or not isinstance(actual, dict):
        return actual
    out: dict[str, Any] = {}
    for key, value in actual.items():
        if key == "dynamic" and "dynamic" not in desired and str(value).lower() == "true":
            continue  # `dynamic: true` is what an object without the key does: not a difference
        if key == "properties" and isinstance(value, dict) and isinstance(desired.get("properties"), dict):
            wanted = desired["properties"]
            extra += [f"{path}{name}" for name in value if name not in wanted]
            out[key] = {n: _restrict(wanted[n], v, f"{path}{n}.", extra) for n, v in value.items() if n in wanted}
        else:
            out[key] = _restrict(desired.get(key), value, path, extra) if isinstance(value, dict) else value
    return out


# --------------------------------------------------------------------------- query parity
def _search(client: OpenSearch, index: str, q: Query) -> tuple[int | None, list[str], str | None]:
    body: dict[str, Any] = {"query": q.query, "size": q.size, "track_total_hits": True}
    if q.sort is not None:
        body["sort"] = q.sort
    try:
        client.indices.refresh(index=index)
        resp = client.search(index=index, body=body)
    except TransportError as exc:
        return None, [], f"{exc.status_code}: {exc.error}"
    total = resp["hits"]["total"]
    hits = int(total["value"] if isinstance(total, dict) else total)
    return hits, [h["_id"] for h in resp["hits"]["hits"]], None


def check_query(q: Query, source: OpenSearch, target: OpenSearch, max_diff: int) -> dict[str, Any]:
    """Hit counts within `maxCountDiff`, and the same top ids (in order when the query sorts)."""
    tindex = q.targetIndex or q.index
    s_hits, s_ids, s_err = _search(source, q.index, q)
    t_hits, t_ids, t_err = _search(target, tindex, q)
    result: dict[str, Any] = {
        "name": q.name or json.dumps(q.query, sort_keys=True)[:80],
        "index": q.index,
        "targetIndex": tindex,
        "sourceHits": s_hits,
        "targetHits": t_hits,
        "sourceTop": s_ids,
        "targetTop": t_ids,
    }
    if s_err or t_err:
        result.update(passed=False, detail=f"query failed: source {s_err or 'ok'}, target {t_err or 'ok'}")
        return result
    same_top = s_ids == t_ids if q.sort is not None else set(s_ids) == set(t_ids)
    counts_ok = abs((s_hits or 0) - (t_hits or 0)) <= max_diff
    result["passed"] = counts_ok and same_top
    problems = ([] if counts_ok else [f"hits {s_hits} vs {t_hits}"]) + ([] if same_top else ["top ids differ"])
    result["detail"] = "; ".join(problems) or "same hits and top ids"
    return result


# --------------------------------------------------------------------------- replayed traffic
def _downsample(points: list[list[float]], n: int = MAX_PLOT_POINTS) -> list[list[float]]:
    if len(points) <= n:
        return points
    step = len(points) / n
    return [points[int(i * step)] for i in range(n)]


def _file_lines(path: Path) -> Iterator[bytes]:
    with path.open("rb") as fh:
        yield from fh


def check_replay(address: str, outputs: Mapping[str, Any], min_rate: float, max_ratio: float | None) -> dict[str, Any]:
    """From the replay tuples: status-match rate, latency ratio, and the lag over time. A
    local replayer's are in a file; a replay Job's pods put theirs in a Kafka topic (`tuplesLog`)."""
    lines: Iterator[bytes]
    if isinstance(tuples_log := outputs.get("tuplesLog"), Mapping):
        from mactl.capture.log_kafka import read_lines

        result: dict[str, Any] = {"address": address, "tuples": f"kafka topic {tuples_log.get('topic')}"}
        lines = (value for key, value in read_lines(dict(tuples_log)) if key == "tuple")
    else:
        path = Path(str(outputs.get("tuples") or ""))
        result = {"address": address, "tuples": str(path)}
        if not path.is_file():
            result.update(requests=0, passed=False, detail=f"the replay's tuples file {path} is missing")
            return result
        lines = _file_lines(path)
    total = same_status = full_match = 0
    src_lat: list[float] = []
    tgt_lat: list[float] = []
    lag: list[list[float]] = []
    mismatched: dict[str, int] = {}
    for line in lines:
        if not line.strip():
            continue
        t = orjson.loads(line)
        total += 1
        s, g = t.get("source") or {}, t.get("target") or {}
        same_status += s.get("status") == g.get("status")
        if t.get("match", s.get("status") == g.get("status")):
            full_match += 1
        else:
            key = f"{t.get('method')} {s.get('status')}→{g.get('status')}"
            mismatched[key] = mismatched.get(key, 0) + 1
        if s.get("latencyMs") is not None and g.get("latencyMs") is not None:
            src_lat.append(float(s["latencyMs"]))
            tgt_lat.append(float(g["latencyMs"]))
        if t.get("replayedAt") is not None and t.get("sourceTime") is not None:
            lag.append([float(t["replayedAt"]), max(0.0, float(t["replayedAt"]) - float(t["sourceTime"]))])
    # The replayer's own outcome comparison: 201 on the source vs 200 on the target for a
    # PUT by id (the document came with the snapshot too) is the same outcome.
    rate = full_match / total if total else None
    ratio = (
        (statistics.median(tgt_lat) / statistics.median(src_lat))
        if src_lat and statistics.median(src_lat) > 0
        else None
    )
    problems = []
    if rate is not None and rate < min_rate:
        problems.append(f"status match {rate:.2%} < {min_rate:.2%}")
    if max_ratio is not None and ratio is not None and ratio > max_ratio:
        problems.append(f"latency ratio {ratio:.2f} > {max_ratio:.2f}")
    lag.sort()
    result.update(
        requests=total,
        statusMatched=full_match,
        statusMatchRate=rate,
        identicalStatusRate=(same_status / total if total else None),
        latencyMsMedian={
            "source": statistics.median(src_lat) if src_lat else None,
            "target": statistics.median(tgt_lat) if tgt_lat else None,
        },
        latencyRatio=ratio,
        mismatchedStatuses=dict(sorted(mismatched.items())),
        lag=_downsample(lag),
        passed=not problems,
        detail="; ".join(problems) or ("no replayed requests" if not total else "ok"),
    )
    return result


# --------------------------------------------------------------------------- timelines
def backfill_timeline(workdir: Path, address: str) -> list[list[float]]:
    """docs/s over time from the walker's progress lines of one backfill stage."""
    path = Workdir(workdir).stage(address).progress
    if not path.is_file():
        return []
    rows = []
    for line in path.read_text().splitlines():
        try:
            rows.append(json.loads(line))
        except ValueError:
            continue
    start = 0  # the file spans every run of the stage: keep the last run (done restarts lower)
    for i in range(1, len(rows)):
        if float(rows[i]["done"]) < float(rows[i - 1]["done"]):
            start = i
    rows = rows[start:]
    points: list[list[float]] = []
    for prev, cur in zip(rows, rows[1:]):
        dt = float(cur["at"]) - float(prev["at"])
        if dt > 0 and cur.get("unit") == "docs":
            points.append([float(cur["at"]), max(0.0, (float(cur["done"]) - float(prev["done"])) / dt)])
    return _downsample(points)


# --------------------------------------------------------------------------- the whole run
def run_validation(ctx: StageView, inputs: ValidateInputs, queries: Sequence[Query]) -> dict[str, Any]:
    """Every check of one validate stage, and the verdict. See the provider's docstring."""
    from mactl.cluster import client_for
    from mactl.indexfilter import passes

    started = time.time()
    th = inputs.thresholds
    target = client_for(inputs.target)
    source_client = client_for(inputs.source)
    replays = replay_outputs(ctx.upstream)
    facts = backfill_facts(ctx.upstream)
    if inputs.indices:
        facts = {k: v for k, v in facts.items() if passes(k, inputs.indices)}
    if not facts:  # no backfill upstream: compare the source's live indices that pass the filters
        for name in _source_indices(source_client, inputs.indices):
            facts[name] = {
                "index": name,
                "expected": _count(source_client, name) or 0,
                "skipped": 0,
                "dropped": 0,
                "snapshotName": inputs.snapshotName,
                "transforms": [],
                "sample": None,
                "renamed": False,
            }
    unrenamed = [name for name, fact in facts.items() if not fact.get("renamed")]
    queries = [*queries, *automatic_queries(target, unrenamed, queries)]
    repo = None
    if inputs.repository is not None or any(f.get("snapshotName") for f in facts.values()):
        repo = _open_repo(inputs)
    seed = (str(inputs.seed) if inputs.seed is not None else os.urandom(8).hex()).encode()

    def compare() -> tuple[list[dict[str, Any]], list[dict[str, Any]], list[str]]:
        indices: list[dict[str, Any]] = []
        failures: list[str] = []
        for n, (name, fact) in enumerate(sorted(facts.items())):
            ctx.progress(Progress(n, len(facts) + len(queries), "checks", f"index {name}"))
            row: dict[str, Any] = {"index": name, "checks": {}}
            row["checks"]["count"] = check_count(fact, target, source_client if replays else None, th.maxCountDiff)
            if inputs.sampleSize > 0 and repo is not None:
                row["checks"]["sample"] = check_sample(
                    fact,
                    repo,
                    target,
                    source_client if replays else None,
                    inputs.sampleSize,
                    seed,
                    inputs.maxScanDocsPerIndex,
                    th.minSampleMatch,
                    transforms_base_dir=getattr(ctx, "config_dir", None),
                )
            if inputs.checkMappings:
                row["checks"]["mappings"] = check_definition(fact, target)
            for check, res in row["checks"].items():
                if not res["passed"]:
                    failures.append(f"{name}: {check}: {_why(check, res, th)}")
            row["passed"] = all(c["passed"] for c in row["checks"].values())
            indices.append(row)
        query_rows = []
        for q in queries:
            res = (
                check_vector_query(q, source_client, target)
                if q.vector is not None
                else check_query(q, source_client, target, th.maxCountDiff)
            )
            query_rows.append(res)
            if not res["passed"]:
                failures.append(f"{res['index']}: query {res['name']!r}: {res['detail']}")
        return indices, query_rows, failures

    ledgers = backfill_ledgers(ctx.upstream)
    ledger_rows: list[dict[str, Any]] = []
    ledger_failures: list[str] = []
    for address, ledger in ledgers.items():
        for index, row in sorted(ledger.items()):
            if inputs.indices and not passes(index, inputs.indices):
                continue
            res = check_ledger(index, row, th.maxFailedDocs)
            res["backfill"] = address
            ledger_rows.append(res)
            if not res["passed"]:
                ledger_failures.append(f"{index}: ledger: {res['detail']}")

    # With a replay upstream the source is live: a following replayer may still be
    # applying the last writes, so a mismatch is re-checked until the target settles or
    # `settleSeconds` runs out. Without replay the snapshot is fixed and one pass decides.
    settle_deadline = time.monotonic() + (inputs.settleSeconds if replays else 0.0)
    settle_attempts = 1
    indices, query_rows, failures = compare()
    while failures and time.monotonic() < settle_deadline and not ctx.cancelled.is_set():
        ctx.progress(Progress(0, None, "checks", f"{len(failures)} mismatch(es); waiting for the target to settle"))
        time.sleep(2.0)
        settle_attempts += 1
        indices, query_rows, failures = compare()
    failures = ledger_failures + failures
    replay_rows = []
    for address, out in replays:
        res = check_replay(address, out, th.minStatusMatchRate, th.maxLatencyRatio)
        replay_rows.append(res)
        if not res["passed"]:
            failures.append(f"{address}: replay: {res['detail']}")
    workroot = Workdir.of_stage(Path(ctx.workdir)).root
    timelines = {
        a: backfill_timeline(workroot, a) for a in sorted({b for f in facts.values() for b in f.get("backfills", [])})
    }
    ctx.progress(Progress(len(facts) + len(queries), len(facts) + len(queries), "checks", "done"))
    return {
        "kind": "mactl-validation-report",
        "version": 1,
        "address": ctx.address,
        "source": inputs.source.name,
        "target": inputs.target.name,
        "startedAt": started,
        "finishedAt": time.time(),
        "thresholds": th.model_dump(),
        "sampleSize": inputs.sampleSize,
        "passed": not failures,
        "failures": failures,
        "indices": indices,
        "ledger": ledger_rows,
        "queries": query_rows,
        "replay": replay_rows,
        "backfillTimelines": timelines,
    }


def _why(check: str, res: Mapping[str, Any], th: Thresholds) -> str:
    if check == "count" and res.get("target") is not None:
        return (
            f"target has {res['target']}, expected {res['expected']} ({res['basis']}; max difference {th.maxCountDiff})"
        )
    if check == "sample" and res.get("rate") is not None:
        return (
            f"{res['matched']}/{res['checked']} sampled documents match ({res['rate']:.1%} < {th.minSampleMatch:.1%})"
        )
    return str(res.get("detail", "failed")).splitlines()[0][:300]


def _source_indices(client: OpenSearch, filters: Sequence[IndexFilter]) -> list[str]:
    from mactl.indexfilter import split_builtin_exclusions

    names = sorted(client.indices.get_alias(index="*", params={"expand_wildcards": "open"}).keys())
    return split_builtin_exclusions(names, filters)[0]


def _open_repo(inputs: ValidateInputs) -> Any:
    if inputs.repository is None:
        return None
    try:
        from mactl.snapshot_reader import open_repository

        return open_repository(inputs.repository)
    except Exception as exc:  # noqa: BLE001
        raise ProviderError(f"cannot open the snapshot repository to sample documents: {exc}") from None
