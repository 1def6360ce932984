"""Helpers of the end-to-end tests in this folder: a config on the shared clusters, `mactl` as a user runs it.

A module of its own (not conftest): every test folder has a conftest, and a full `pytest`
run would import only one of them under that name.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]


def request(url: str, method: str, path: str, body: Any = None, *, ndjson: str | None = None) -> Any:
    """One REST call; returns the decoded JSON answer (errors included, never raises on 4xx)."""
    data = ndjson.encode() if ndjson is not None else (json.dumps(body).encode() if body is not None else None)
    ctype = "application/x-ndjson" if ndjson is not None else "application/json"
    req = urllib.request.Request(f"{url}{path}", data=data, method=method, headers={"Content-Type": ctype})
    try:
        with urllib.request.urlopen(req, timeout=120) as resp:
            raw = resp.read()
    except urllib.error.HTTPError as exc:
        raw = exc.read()
    return json.loads(raw) if raw else None


def _literal(raw: bytes) -> Any:
    """JSON parsed keeping what a re-encoding would blur: key order, duplicate keys, number text."""
    return json.loads(
        raw,
        object_pairs_hook=lambda pairs: ("{}", tuple(pairs)),
        parse_float=lambda text: ("num", text),
        parse_int=lambda text: ("num", text),
    )


def docs_by_id(url: str, index: str) -> dict[str, tuple[str | None, Any]]:
    """Every document's routing and `_source` as stored, by `_id`.

    No `filter_path`: the cluster then copies each stored `_source` into the answer
    verbatim, and `_literal` keeps its key order and number literals, so two documents
    compare equal only when their sources are the same JSON text up to whitespace.
    """
    out: dict[str, tuple[str | None, Any]] = {}
    path = f"/{index}/_search?scroll=1m&size=500&sort=_doc"
    raw = _raw(url, "GET", path, None)
    while True:
        page, exact = json.loads(raw), _literal(raw)
        hits = (page.get("hits") or {}).get("hits") or []
        if not hits:
            break
        exact_hits = dict(dict(exact[1])["hits"][1])["hits"]
        for hit, exact_hit in zip(hits, exact_hits, strict=True):
            out[hit["_id"]] = (hit.get("_routing"), dict(exact_hit[1])["_source"])
        raw = _raw(url, "POST", "/_search/scroll", {"scroll": "1m", "scroll_id": page["_scroll_id"]})
    scroll = json.loads(raw).get("_scroll_id")
    if scroll:
        request(url, "DELETE", "/_search/scroll", {"scroll_id": [scroll]})
    return out


def _raw(url: str, method: str, path: str, body: Any) -> bytes:
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(f"{url}{path}", data=data, method=method, headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=120) as resp:
        return bytes(resp.read())


@dataclass
class Run:
    code: int
    out: str
    err: str


@dataclass
class Migration:
    """A config migrating `<prefix>*` from the ES 7.10.2 source to OpenSearch 2.x, run with `mactl`."""

    folder: Path
    prefix: str
    source_url: str
    target_url: str
    repo_dir: Path
    metadata: dict[str, Any] = field(default_factory=dict)
    backfill: dict[str, Any] = field(default_factory=dict)

    @property
    def config(self) -> Path:
        return self.folder / "migration.yaml"

    def write(self) -> Path:
        config = {
            "state": {"backend": "local", "path": ".mactl"},
            "targets": [{"name": "os2", "endpoint": self.target_url}],
            "source-migration-configurations": [
                {
                    "source": {
                        "name": self.prefix.rstrip("-"),
                        "endpoint": self.source_url,
                        "snapshotRepository": {
                            "type": "fs",
                            "name": self.prefix.rstrip("-"),
                            "location": str(self.repo_dir),
                        },
                    },
                    "snapshot-and-migration-configs": [
                        {
                            "name": "snap",
                            "indices": {"names": [f"{self.prefix}*"]},
                            "migrations": [
                                {
                                    "name": "m0",
                                    "metadata": {"templateFilters": [{"names": [f"{self.prefix}*"]}], **self.metadata},
                                    "documentBackfillConfigs": [{"name": "b0", "workers": 2, **self.backfill}],
                                }
                            ],
                        }
                    ],
                }
            ],
        }
        # JSON is YAML: no quoting surprises in names
        self.config.write_text(json.dumps(config, indent=2))
        return self.config

    def run(self, *args: str, timeout: float = 600) -> Run:
        self.write()
        proc = subprocess.run(
            [sys.executable, "-m", "mactl", *args, "-c", str(self.config)],
            cwd=self.folder,
            capture_output=True,
            text=True,
            timeout=timeout,
            env={**os.environ, "COLUMNS": "200"},
        )
        return Run(proc.returncode, proc.stdout, proc.stderr)

    def state(self) -> dict[str, Any]:
        data: dict[str, Any] = json.loads((self.folder / ".mactl" / "state.json").read_text())
        return data


def purge(url: str, prefix: str) -> None:
    """Delete everything named `<prefix>*` on one cluster: indices, templates, pipelines, repositories."""
    request(url, "DELETE", f"/{prefix}*?expand_wildcards=all&ignore_unavailable=true")
    # the backfill's working index is named after its stage address, which has the prefix
    request(url, "DELETE", f"/mactl-backfill-backfill-{prefix}*?expand_wildcards=all&ignore_unavailable=true")
    for name in request(url, "GET", f"/_template/{prefix}*") or {}:
        request(url, "DELETE", f"/_template/{name}")
    for path, key in (("/_index_template", "index_templates"), ("/_component_template", "component_templates")):
        for entry in (request(url, "GET", path) or {}).get(key) or []:
            if entry["name"].startswith(prefix):
                request(url, "DELETE", f"{path}/{entry['name']}")
    for name in request(url, "GET", "/_ingest/pipeline") or {}:
        if name.startswith(prefix):
            request(url, "DELETE", f"/_ingest/pipeline/{name}")
    repos = request(url, "GET", "/_snapshot") or {}
    for repo in repos:
        if repo.startswith(prefix):
            for snap in (request(url, "GET", f"/_snapshot/{repo}/_all") or {}).get("snapshots") or []:
                request(url, "DELETE", f"/_snapshot/{repo}/{snap['snapshot']}")
            request(url, "DELETE", f"/_snapshot/{repo}")
