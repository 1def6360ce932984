"""One source → target version pair, end to end through `mactl apply`, as a user runs it.

Used by the CI version tests (`tests/workflow/test_wf_versions.py`) and the whole matrix
(`bench/matrix.py`). A pair run loads a small but awkward data set into the source
(routing, nested objects, unicode, several segments, updates and deletes; an index with
three `dense_vector` fields — float cosine, float l2, bits — and a `flattened` one when
the source is Elasticsearch 8 and the target has the k-NN plugin), writes a
one-source config (snapshot → metadata → backfill → validate), runs `mactl apply
-auto-approve` in a subprocess, and checks independently of mactl's bookkeeping: every
document's `_source` on the target equals the source's (read by scroll on each side), and
the validate stage's report passed with its ledger. Everything is named with the run's
prefix and removed afterwards.
"""

from __future__ import annotations

import json
import os
import random
import shutil
import struct
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from opensearchpy import OpenSearch, helpers

VECTOR_DIMS = 8


@dataclass(frozen=True)
class Cluster:
    name: str  # es710 | es8 | os13 | os2 | os3 …
    url: str


@dataclass
class PairResult:
    source: str
    target: str
    source_version: str = ""
    target_version: str = ""
    passed: bool = False
    detail: str = ""
    seconds: float = 0.0
    documents: dict[str, int] = field(default_factory=dict)  # index → documents on the target
    vector_overlap: float | None = None  # the worst k-NN parity overlap, when vectors were carried
    rules: list[str] = field(default_factory=list)  # the version transforms that fired
    audit: dict[str, Any] = field(default_factory=dict)


def client(url: str) -> OpenSearch:
    return OpenSearch(hosts=[url], timeout=120)


def version_of(c: OpenSearch) -> tuple[str, str]:
    """(distribution, version) without `GET /` (the ES 8 integ-test zip answers it with 405)."""
    nodes = c.transport.perform_request(
        "GET", "/_nodes/_local", params={"filter_path": "nodes.*.version,nodes.*.build_type"}
    )
    version = next(iter((nodes.get("nodes") or {}).values()), {}).get("version", "0")
    try:
        distribution = c.info().get("version", {}).get("distribution") or "elasticsearch"
    except Exception:  # noqa: BLE001  (ES 8 integ-test zip: no `GET /`)
        distribution = "elasticsearch"
    return distribution, str(version)


def has_knn(c: OpenSearch) -> bool:
    info = c.transport.perform_request("GET", "/_nodes/plugins", params={"filter_path": "nodes.*.plugins.name"})
    return any(
        p.get("name") == "opensearch-knn" for n in (info.get("nodes") or {}).values() for p in n.get("plugins", [])
    )


def _docs(rng: random.Random, n: int) -> list[dict[str, Any]]:
    words = "ärger straße 東京 naïve café plain words mixed ✓ emoji 🙂".split()
    return [
        {
            "n": i,
            "title": " ".join(rng.choice(words) for _ in range(4)),
            "tag": rng.choice(["a", "b", "c"]),
            "price": round(rng.uniform(0, 1000), 2),
            "at": f"2024-0{1 + i % 9}-1{i % 10}T10:00:00Z",
            "parts": [{"sku": f"p{i}-{j}", "qty": j} for j in range(i % 3)],
            "nil": None,
        }
        for i in range(n)
    ]


def _bulk(c: OpenSearch, index: str, rows: list[tuple[str, str | None, dict[str, Any]]]) -> None:
    actions = [{"_index": index, "_id": i, **({"_routing": r} if r else {}), "_source": d} for i, r, d in rows]
    ok, errors = helpers.bulk(c, actions, refresh=True, raise_on_error=False)
    if errors:
        raise RuntimeError(f"loading {index}: {errors[:2]}")


# The pair's two indices as created on the source (tests create them elsewhere too).
DOCS_BODY: dict[str, Any] = {
    "settings": {"number_of_shards": 2, "number_of_replicas": 0},
    "mappings": {
        "properties": {
            "title": {"type": "text", "fields": {"raw": {"type": "keyword"}}},
            "tag": {"type": "keyword"},
            "price": {"type": "double"},
            "at": {"type": "date"},
            "parts": {"type": "nested"},
        }
    },
}
VEC_BODY: dict[str, Any] = {
    "settings": {"number_of_shards": 1, "number_of_replicas": 0},
    "mappings": {
        "properties": {
            "emb": {"type": "dense_vector", "dims": VECTOR_DIMS, "index": True, "similarity": "cosine"},
            "emb_l2": {
                "type": "dense_vector",
                "dims": VECTOR_DIMS,
                "index": True,
                "similarity": "l2_norm",
                "index_options": {"type": "hnsw", "m": 16, "ef_construction": 100},
            },
            "bits": {"type": "dense_vector", "dims": 16, "element_type": "bit"},
            "label": {"type": "keyword"},
            "attrs": {"type": "flattened"},
        }
    },
}


def load_source(source: OpenSearch, prefix: str, *, vectors: bool, docs: int = 240) -> list[str]:
    """The pair's indices on the source; returns their names."""
    rng = random.Random(16)
    plain = f"{prefix}-docs"
    source.indices.create(
        index=plain,
        body=DOCS_BODY,
    )
    rows = [(f"d{i:04d}", f"r{i % 5}" if i % 4 == 0 else None, d) for i, d in enumerate(_docs(rng, docs))]
    for start in range(0, len(rows), docs // 3):  # several segments: a refresh per batch
        _bulk(source, plain, rows[start : start + docs // 3])
    for i in range(0, docs, 12):  # updates and deletes: the snapshot holds the live versions only
        doc_id, routing, _ = rows[i]
        source.index(index=plain, id=doc_id, routing=routing, body={"n": i, "updated": True}, refresh=True)
    for i in range(6, docs, 24):
        doc_id, routing, _ = rows[i]
        source.delete(index=plain, id=doc_id, routing=routing, refresh=True)
    names = [plain]
    if vectors:
        vec = f"{prefix}-vec"
        source.indices.create(
            index=vec,
            body=VEC_BODY,
        )
        vrows = [
            (
                f"v{i:04d}",
                None,
                {
                    "label": f"item {i}",
                    # full precision, as an embedding model writes them (a derived target reads back float32s)
                    "emb": [rng.uniform(0.05, 1) for _ in range(VECTOR_DIMS)],
                    "emb_l2": [round(rng.uniform(-1, 1), 4) for _ in range(VECTOR_DIMS)],
                    "bits": [rng.randint(-128, 127), rng.randint(-128, 127)],  # 16 bits as 2 bytes
                    "attrs": {"colour": rng.choice(["red", "blue"]), "size": {"w": str(i % 7), "h": str(i % 5)}},
                },
            )
            for i in range(300)
        ]
        _bulk(source, vec, vrows[:150])
        _bulk(source, vec, vrows[150:])
        names.append(vec)
    return names


def config_text(source: Cluster, target: Cluster, prefix: str, repo_dir: Path) -> str:
    return f"""# {source.name} → {target.name}, written by devtools.local.pairs
state: {{backend: local, path: .mactl}}
targets:
  - {{name: {target.name}, endpoint: "{target.url}"}}
source-migration-configurations:
  - source:
      name: {source.name}
      endpoint: "{source.url}"
      snapshotRepository: {{type: fs, name: {prefix}-repo, location: "{repo_dir}"}}
    snapshot-and-migration-configs:
      - name: snap
        indices: {{names: "{prefix}-*"}}
        migrations:
          - {{name: m0, metadata: {{templates: false}}, documentBackfillConfigs: [{{name: b0, workers: 1}}]}}
"""


def scroll(c: OpenSearch, index: str) -> dict[str, Any]:
    """Every document of `index`: id → `_source`."""
    c.indices.refresh(index=index)
    return {h["_id"]: h["_source"] for h in helpers.scan(c, index=index, query={"query": {"match_all": {}}})}


def derived_vectors(c: OpenSearch, index: str) -> set[str]:
    """Top-level `knn_vector` fields an OpenSearch 3 target rebuilds in `_source` from its float32
    index (`index.knn.derived_source.enabled`): they can only equal the source's as float32s."""
    body = next(iter(c.indices.get(index=index, params={"flat_settings": "true", "include_defaults": "true"}).values()))
    settings = {**body.get("defaults", {}), **body.get("settings", {})}
    if str(settings.get("index.knn.derived_source.enabled")).lower() != "true":
        return set()
    return {f for f, spec in body["mappings"].get("properties", {}).items() if spec.get("type") == "knn_vector"}


def _same_doc(want: dict[str, Any], got: dict[str, Any], float32_fields: set[str]) -> bool:
    if want.keys() != got.keys():
        return False
    for key, value in want.items():
        if key in float32_fields and isinstance(value, list) and isinstance(got[key], list):
            if len(value) != len(got[key]) or not all(map(_same_float32, value, got[key])):
                return False
        elif value != got[key]:
            return False
    return True


def _same_float32(a: float, b: float) -> bool:
    """Within one float32 step: the target rounds the decimal text to float32 directly, Python
    through a double, and the two roundings may part by one unit in the last place."""
    bits = [struct.unpack("<i", struct.pack("<f", x))[0] for x in (a, b)]
    return a == b or ((bits[0] < 0) == (bits[1] < 0) and abs(bits[0] - bits[1]) <= 1)


def mactl(folder: Path, *args: str, timeout: float = 600) -> subprocess.CompletedProcess[str]:
    """`python -m mactl ARGS -c mactl.yaml` in a pair's config folder."""
    return _mactl(folder, *args, timeout=timeout)


def _mactl(folder: Path, *args: str, timeout: float) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "mactl", *args, "-c", str(folder / "mactl.yaml")],
        cwd=folder,
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, "COLUMNS": "200"},
    )


#: Called after a pair checked out, before the clean-up: (config folder, run prefix) → problems.
AfterApply = Callable[[Path, str], list[str]]


def run_pair(
    source: Cluster, target: Cluster, repo_root: Path, *, timeout: float = 600, after_apply: AfterApply | None = None
) -> PairResult:
    """Migrate the pair's data set from `source` to `target` and check it; never raises for a failed pair.

    `after_apply` may run more checks on the applied migration (its state is still there);
    the problems it returns fail the pair.
    """
    started = time.monotonic()
    result = PairResult(source.name, target.name)
    src, tgt = client(source.url), client(target.url)
    prefix = f"pair-{source.name}-{target.name}-{os.urandom(3).hex()}".lower()
    repo_dir = repo_root / prefix
    repo_dir.mkdir(parents=True, exist_ok=True)
    repo_dir.chmod(0o777)
    folder = Path(tempfile.mkdtemp(prefix=f"{prefix}-"))
    names: list[str] = []
    try:
        result.source_version = "/".join(version_of(src))
        result.target_version = "/".join(version_of(tgt))
        vectors = result.source_version.startswith("elasticsearch/8") and has_knn(tgt)
        names = load_source(src, prefix, vectors=vectors)
        (folder / "mactl.yaml").write_text(config_text(source, target, prefix, repo_dir))
        applied = _mactl(folder, "apply", "-auto-approve", timeout=timeout)
        audit = _mactl(folder, "audit", "--json", timeout=120)
        if audit.returncode in (0, 1) and audit.stdout.strip():
            result.audit = json.loads(audit.stdout)
        result.rules = _rules(folder, source, target)
        if applied.returncode != 0:
            result.detail = _last_lines(applied.stdout + applied.stderr)
            return result
        problems: list[str] = []
        for name in names:
            want, got = scroll(src, name), scroll(tgt, name)
            result.documents[name.removeprefix(prefix + "-")] = len(got)
            rebuilt = derived_vectors(tgt, name)
            if set(want) != set(got) or any(not _same_doc(want[k], got[k], rebuilt) for k in want):
                missing = len(set(want) - set(got))
                differ = sum(1 for k in set(want) & set(got) if not _same_doc(want[k], got[k], rebuilt))
                problems.append(f"{name}: {missing} missing, {differ} differ of {len(want)}")
        reports = result.audit.get("reports") or []
        if not reports or not all(r.get("passed") for r in reports):
            problems.append("validation did not pass: " + "; ".join(f for r in reports for f in r.get("failures", [])))
        overlaps = [min(q["overlaps"]) for r in reports for q in r.get("queries", []) if q.get("kind") == "vector"]
        if vectors and len(overlaps) != 3:
            problems.append(f"expected 3 k-NN parity checks, the report has {len(overlaps)}")
        result.vector_overlap = min(overlaps) if overlaps else None
        if after_apply is not None and not problems:
            problems += after_apply(folder, prefix)
        result.passed = not problems
        result.detail = "; ".join(problems) or "documents equal; validation passed"
        return result
    except Exception as exc:  # noqa: BLE001  (a matrix row says what broke; the run goes on)
        result.detail = f"{type(exc).__name__}: {exc}"[:400]
        return result
    finally:
        result.seconds = time.monotonic() - started
        if (folder / "mactl.yaml").exists():
            _mactl(folder, "destroy", "-auto-approve", timeout=timeout)
        for name in names:
            src.indices.delete(index=name, params={"ignore_unavailable": "true"})
            tgt.indices.delete(index=name, params={"ignore_unavailable": "true"})
        try:
            src.snapshot.delete_repository(repository=f"{prefix}-repo")
        except Exception:  # noqa: BLE001, S110  (destroy may have removed it already)
            pass
        shutil.rmtree(repo_dir, ignore_errors=True)
        shutil.rmtree(folder, ignore_errors=True)


def _rules(folder: Path, source: Cluster, target: Cluster) -> list[str]:
    """The built-in transforms the metadata stage applied (names only), from its recorded report."""
    shown = _mactl(folder, "state", "show", f"metadata.{source.name}.snap.{target.name}.m0", timeout=120)
    if shown.returncode != 0:
        return []
    report = (json.loads(shown.stdout).get("outputs") or {}).get("report") or {}
    return sorted({str(t).split(":", 1)[0] for row in report.get("items", []) for t in row.get("transforms", [])})


def _last_lines(text: str, n: int = 6) -> str:
    return " | ".join(line.strip() for line in text.strip().splitlines()[-n:])[:600]
