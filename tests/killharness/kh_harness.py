"""The kill harness: `kill -9` of the whole `mactl apply` process group at seeded random
points in every stage type, then force-unlock, rerun to completion and check everything.

One `Project` is a small migration of its own on the shared clusters (unique names): an
ES 7.10.2 source with three indices (a few hundred documents with custom routing, updates
and deletes over several segments) and a legacy template, migrated to OpenSearch 2.x
through capture → snapshot → metadata → backfill → replay → validate. `run_cycle` applies
it, killing the apply while a stage of a chosen type runs (the types drawn from the seed,
plus a random delay into the stage), and after each kill checks that the state file is
readable, force-unlocks and goes on; the last apply runs to completion (every third
cycle instead destroys right away, with stages still interrupted). Then the target is
compared with the source document by document (`_id`, routing, `_source` in its original
key order), and `destroy` must leave nothing of mactl's behind: no snapshot, no
repository registration, no migrated index or template, no backfill working index, no
proxy process.

Used by `tests/killharness/test_kill_harness.py` (CI: >= 20 kills) and
`bench/kill_harness.py` (as many kills as asked, with a table of figures). A failure
names the seed: `MACTL_KILL_SEED=<seed>` reproduces the same kill plan.
"""

from __future__ import annotations

import json
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

#: The stage types of the harness's pipeline, in order.
STAGE_TYPES = ("capture", "snapshot", "metadata", "backfill", "replay", "validate")
INDEX_SHARDS = {"orders": 2, "users": 1, "events": 1}
#: How far into a stage of each type a kill may land at most (seconds after it shows as
#: running): about its duration on this small dataset, so a kill lands inside it mostly,
#: sometimes just after it (in the next stage or between two).
MAX_INTO_STAGE_S = {"capture": 0.8, "snapshot": 0.8, "metadata": 0.1, "backfill": 2.5, "replay": 0.8, "validate": 0.05}


class HarnessFailure(AssertionError):
    pass


@dataclass
class Figures:
    """What a run of the harness measured."""

    seed: int
    kills_by_type: Counter[str] = field(default_factory=Counter)
    reruns: int = 0
    cycles: int = 0
    destroys_after_kill: int = 0
    docs_checked: int = 0
    docs_lost: int = 0
    docs_duplicated: int = 0
    docs_different: int = 0
    state_unreadable: int = 0
    stale_locks_left: int = 0
    leftovers: list[str] = field(default_factory=list)
    apply_seconds: list[float] = field(default_factory=list)
    # kills of `mactl destroy` (run_destroy_cycle): where they landed, by the rollback the
    # state recorded as interrupted ("between stages": none was)
    destroy_kills_by_type: Counter[str] = field(default_factory=Counter)
    destroy_kills_targeted: int = 0  # of which `destroy -target ADDR`
    destroy_reruns: int = 0
    destroy_cycles: int = 0
    plans_after_destroy_kill: int = 0
    stale_lock_takeovers: int = 0  # the dead destroy's lock taken over by the plan (-lock-takeover-stale)
    applies_after_destroy_kill: int = 0  # an apply to completion instead of the rerun, documents compared
    extra_deletions: list[str] = field(default_factory=list)  # what destroy took that mactl did not make

    @property
    def destroy_kills(self) -> int:
        return sum(self.destroy_kills_by_type.values())

    @property
    def kills(self) -> int:
        return sum(self.kills_by_type.values())

    def table(self) -> str:
        destroying = bool(self.destroy_kills or self.destroy_cycles)
        rows: list[tuple[str, str]] = []
        if self.kills or not destroying:  # a destroy-only run shows its own kills below
            rows += [("kills (total)", str(self.kills))]
            rows += [(f"  during {t}", str(self.kills_by_type.get(t, 0))) for t in (*STAGE_TYPES, "between stages")]
            rows += [
                ("reruns (applies after a kill)", str(self.reruns)),
                ("cycles (apply … destroy)", str(self.cycles)),
                ("  of which destroyed right after a kill", str(self.destroys_after_kill)),
            ]
        rows += [
            ("documents checked", str(self.docs_checked)),
            ("documents lost", str(self.docs_lost)),
            ("documents duplicated", str(self.docs_duplicated)),
            ("documents different", str(self.docs_different)),
            ("state unreadable after a kill", str(self.state_unreadable)),  # of apply or destroy
            ("stale locks left", str(self.stale_locks_left)),
            ("left behind after destroy", str(len(self.leftovers))),
        ]
        if destroying:
            rows += [("destroy kills (total)", str(self.destroy_kills))]
            rows += [
                (f"  during {t} rollback" if t in STAGE_TYPES else f"  {t}", str(self.destroy_kills_by_type.get(t, 0)))
                for t in (*reversed(STAGE_TYPES), "between stages")
            ]
            rows += [
                ("  of which destroy -target ADDR", str(self.destroy_kills_targeted)),
                ("destroy reruns (after a kill)", str(self.destroy_reruns)),
                ("destroy cycles (apply … destroy)", str(self.destroy_cycles)),
                ("plans after a destroy kill", str(self.plans_after_destroy_kill)),
                ("  of which took the dead destroy's lock over", str(self.stale_lock_takeovers)),
                ("applies after a destroy kill (docs compared)", str(self.applies_after_destroy_kill)),
                ("extra deletions (not mactl's)", str(len(self.extra_deletions))),
            ]
        rows += [("seed", str(self.seed))]
        width = max(len(r[0]) for r in rows)
        return "\n".join(f"{a.ljust(width)}  {b}" for a, b in rows)


# ----------------------------------------------------------------------------- HTTP


def http(url: str, method: str, path: str, body: Any = None, ndjson: str | None = None) -> Any:
    data = ndjson.encode() if ndjson is not None else (json.dumps(body).encode() if body is not None else None)
    ctype = "application/x-ndjson" if ndjson is not None else "application/json"
    req = urllib.request.Request(url.rstrip("/") + path, data=data, method=method, headers={"Content-Type": ctype})
    try:
        with urllib.request.urlopen(req, timeout=120) as resp:
            raw = resp.read()
    except urllib.error.HTTPError as err:
        if err.code == 404 and method in ("GET", "DELETE", "HEAD"):
            return None
        raise HarnessFailure(f"{method} {path}: {err.code} {err.read()[:500]!r}") from None
    return json.loads(raw, object_pairs_hook=_ordered) if raw else None


def _ordered(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    """A JSON object with its keys in their original order (and no silently merged duplicates)."""
    keys = [k for k, _ in pairs]
    if len(keys) != len(set(keys)):
        raise HarnessFailure(f"a JSON object with duplicate keys: {keys}")
    return dict(pairs)


def all_docs(url: str, index: str) -> list[tuple[str, str | None, str]]:
    """Every document of `index` as (id, routing, _source serialised in its stored key order)."""
    http(url, "POST", f"/{index}/_refresh")
    out: list[tuple[str, str | None, str]] = []
    resp = http(url, "POST", f"/{index}/_search?scroll=1m", {"size": 500, "sort": ["_doc"]})
    if resp is None:
        return out
    while resp["hits"]["hits"]:
        for h in resp["hits"]["hits"]:
            out.append((h["_id"], h.get("_routing"), json.dumps(h["_source"], ensure_ascii=False)))
        resp = http(url, "POST", "/_search/scroll", {"scroll": "1m", "scroll_id": resp["_scroll_id"]})
    http(url, "DELETE", "/_search/scroll", {"scroll_id": resp["_scroll_id"]})
    return out


def _load_index(es: str, index: str, name: str, shards: int, count: int, rnd: random.Random) -> None:
    """`count` documents (routed ones in `orders`), then updates and deletes, each in a segment."""
    http(es, "PUT", f"/{index}", {"settings": {"number_of_shards": shards, "number_of_replicas": 0}})

    def line(op: str, i: int, doc: Any) -> str:
        meta: dict[str, Any] = {"_index": index, "_id": f"{name}-{i}"}
        if name == "orders" and i % 3 == 0:
            meta["routing"] = f"r{i % 4}"
        return json.dumps({op: meta}) + "\n" + (json.dumps(doc, ensure_ascii=False) + "\n" if doc else "")

    def doc(i: int, v: int) -> dict[str, Any]:
        return {
            "n": i,
            "v": v,
            "z_first": "keys out of alphabetical order",
            "a_text": f'{name} {i} ünïcödé "q" ' + "x" * rnd.randint(0, 60),
            "price": round(rnd.random() * 100, 3),
            "tags": [f"t{i % 5}", f"u{i % 3}"],
            "nested": {"b": i % 7, "a": None},
        }

    bulk = "/_bulk?refresh=true"
    http(es, "POST", bulk, ndjson="".join(line("index", i, doc(i, 1)) for i in range(count)))
    http(es, "POST", bulk, ndjson="".join(line("index", i, doc(i, 2)) for i in range(0, count, 4)))
    patch = {"doc": {"v": 3, "patched": True}}
    http(es, "POST", bulk, ndjson="".join(line("update", i, patch) for i in range(1, count, 5)))
    http(es, "POST", bulk, ndjson="".join(line("delete", i, None) for i in range(2, count, 9)))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


# ----------------------------------------------------------------------------- project


@dataclass
class Project:
    folder: Path
    es_url: str
    os_url: str
    repo_root: Path
    uid: str = field(default_factory=lambda: uuid.uuid4().hex[:6])
    docs: int = 200
    # Plant, before the first apply, what destroy must leave alone on the target: an index
    # mactl never touches, and one the config selects that was there first with documents
    # of its own (the metadata stage skips it: `onExisting: skip`; the backfill writes into it).
    planted: bool = False
    # A Kafka capture log (bootstrap servers) instead of a file one: destroy must then also
    # delete the topic (`deleteTopicOnRollback`) and the replay stage's consumer group.
    kafka: str | None = None
    # `follow: true`: the replay stage leaves a detached replayer running, which destroy must stop
    follow: bool = False
    proxy_port: int = field(default_factory=free_port)

    @property
    def prefix(self) -> str:
        return f"kh{self.uid}"

    @property
    def source(self) -> str:
        return f"kh{self.uid}"

    @property
    def repository(self) -> str:
        return f"mactl-{self.source}"  # mactl's default name: the config names none

    @property
    def repo_dir(self) -> Path:
        return self.repo_root / "killharness" / self.uid

    @property
    def indices(self) -> list[str]:
        return [f"{self.prefix}-{n}" for n in INDEX_SHARDS]

    @property
    def state_file(self) -> Path:
        return self.folder / ".mactl" / "state.json"

    @property
    def topic(self) -> str:
        return f"mactl-{self.prefix}"

    @property
    def journal_file(self) -> Path:
        return self.folder / ".mactl" / "state.json.journal"

    @property
    def foreign_index(self) -> str:
        """On the target, not mactl's and not selected: destroy must never touch it."""
        return f"keep{self.uid}-foreign"

    @property
    def existing_index(self) -> str:
        """Selected by the config, but on the target before mactl with documents of its own."""
        return f"{self.prefix}-events"

    def planted_docs(self) -> dict[str, list[tuple[str, str | None, str]]]:
        """What each planted index holds of its own, as `all_docs` reads it."""
        if not self.planted:
            return {}

        def docs(kind: str, n: int) -> list[tuple[str, str | None, str]]:
            return [
                (f"own-{kind}-{i}", None, json.dumps({"own": i, "note": f"{kind} ünï {i}"}, ensure_ascii=False))
                for i in range(n)
            ]

        return {self.foreign_index: docs("foreign", 4), self.existing_index: docs("existing", 3)}

    # -- set-up ------------------------------------------------------------------------

    def setup(self) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        self.repo_dir.mkdir(parents=True, exist_ok=True)
        for p in (self.repo_dir.parent, self.repo_dir):
            p.chmod(0o777)
        self._load_source()
        self._plant()
        (self.folder / "mactl.yaml").write_text(self._config())

    def _plant(self) -> None:
        for index, docs in self.planted_docs().items():
            http(self.os_url, "PUT", f"/{index}", {"settings": {"number_of_shards": 1, "number_of_replicas": 0}})
            lines = "".join(
                json.dumps({"index": {"_index": index, "_id": d}}) + "\n" + source + "\n" for d, _r, source in docs
            )
            http(self.os_url, "POST", "/_bulk?refresh=true", ndjson=lines)

    def _load_source(self) -> None:
        rnd = random.Random(self.uid)
        es = self.es_url
        http(
            es,
            "PUT",
            f"/_template/{self.prefix}-tmpl",
            {
                "index_patterns": [f"{self.prefix}-future-*"],
                "settings": {"number_of_shards": 1},
                "mappings": {"properties": {"k": {"type": "keyword"}}},
            },
        )
        for name, shards in INDEX_SHARDS.items():
            count = self.docs if name == "orders" else self.docs // 2
            _load_index(es, f"{self.prefix}-{name}", name, shards, count, rnd)

    def _config(self) -> str:
        names = ", ".join(json.dumps(i) for i in self.indices)
        planted = self.planted_docs().get(self.existing_index, [])
        on_existing = "\n              onExisting: skip" if self.planted else ""
        log = "{type: file, path: .mactl/capture-log}"
        delete_topic = ""
        if self.kafka:
            log = f'{{type: kafka, bootstrapServers: "{self.kafka}", topic: {self.topic}, partitions: 2}}'
            delete_topic = "\n      deleteTopicOnRollback: true"
        return f"""
state: {{backend: local, path: .mactl}}
targets:
  - name: os2
    endpoint: "{self.os_url}"
source-migration-configurations:
  - source:
      name: {self.source}
      endpoint: "{self.es_url}"
      snapshotRepository: {{type: fs, location: "{self.repo_dir}"}}
    capture:
      log: {log}
      proxies: [{{listen: "127.0.0.1:{self.proxy_port}"}}]{delete_topic}
    snapshot-and-migration-configs:
      - name: snap
        indices: {{names: [{names}]}}
        migrations:
          - name: m0
            metadata:
              templateFilters: [{{names: ["{self.prefix}-*"]}}]{on_existing}
            documentBackfillConfigs:
              - name: b0
                workers: 2
                maxBatchDocs: 20
                leaseSeconds: 5
    replayer-config:
      follow: {str(self.follow).lower()}
      maxLagSeconds: 5
      lagWindowSeconds: 1
      timeoutSeconds: 120
    validation:
      sampleSize: 20
      thresholds: {{maxCountDiff: {len(planted)}, minSampleMatch: 1.0}}
"""

    # -- mactl -----------------------------------------------------------------------

    def env(self) -> dict[str, str]:
        return {**os.environ, "COLUMNS": "200", "MACTL_BACKFILL_CHECKPOINT_S": "0.5"}

    def mactl(self, *args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "mactl", *args],
            cwd=self.folder,
            capture_output=True,
            text=True,
            timeout=timeout,
            env=self.env(),
            stdin=subprocess.DEVNULL,
        )

    def spawn_apply(self) -> subprocess.Popen[bytes]:
        log = open(self.folder / "apply.log", "ab")  # noqa: SIM115 - handed to the child
        try:
            return subprocess.Popen(
                [sys.executable, "-m", "mactl", "apply", "-auto-approve"],
                cwd=self.folder,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                env=self.env(),
                start_new_session=True,  # its own process group: the kill takes every worker with it
            )
        finally:
            log.close()

    def state(self) -> dict[str, Any] | None:
        """The state as every reader sees it: state.json (checked as mactl decodes it) with its
        journal folded in, since mid-apply the latest transitions are only in the journal.
        None when there is none yet."""
        from mactl.state import LocalStateConfig, open_backend
        from mactl.state.document import decode_document

        if self.state_file.exists():  # raises on a torn or invalid file
            decode_document(self.state_file.read_bytes(), str(self.state_file))
        doc = open_backend(LocalStateConfig(path=str(self.state_file.parent)), base_dir=self.folder).read()
        return None if doc is None else dict(doc.model_dump(mode="json"))

    def running_types(self) -> set[str]:
        try:
            doc = self.state() or {}
        except Exception:  # noqa: BLE001 - polled while mactl writes; the atomic rename makes this rare
            return set()
        return {s["type"] for s in (doc.get("stages") or {}).values() if s.get("status") == "running"}

    def lock_id(self) -> str | None:
        lock = self.folder / ".mactl" / "state.json.lock"
        if not lock.exists():
            return None
        return str(json.loads(lock.read_text())["id"])

    def unlock(self) -> None:
        lock_id = self.lock_id()
        if lock_id is None:
            return
        done = self.mactl("force-unlock", lock_id, "--yes", timeout=60)
        if done.returncode != 0:
            raise HarnessFailure(f"force-unlock {lock_id} failed: {done.stderr[-1500:]}")

    # -- checks ----------------------------------------------------------------------

    def compare(self, figures: Figures) -> list[str]:
        """The target against the live source, document by document; returns the problems."""
        problems: list[str] = []
        for index in self.indices:
            source = all_docs(self.es_url, index)
            own = {d for d, _r, _s in self.planted_docs().get(index, [])}  # checked by planted_problems
            target = [row for row in all_docs(self.os_url, index) if row[0] not in own]
            want = {(d, r): s for d, r, s in source}
            got: dict[tuple[str, str | None], str] = {}
            for d, r, s in target:
                if (d, r) in got:
                    figures.docs_duplicated += 1
                    problems.append(f"{index}: {d} (routing {r}) twice on the target")
                got[(d, r)] = s
            ids = Counter(d for d, _r, _s in target)
            dup_ids = [d for d, n in ids.items() if n > 1]
            figures.docs_duplicated += len(dup_ids)
            problems += [f"{index}: id {d} on the target under several routings" for d in dup_ids[:5]]
            lost = [k for k in want if k not in got]
            extra = [k for k in got if k not in want]
            differ = [k for k in want if k in got and got[k] != want[k]]
            figures.docs_checked += len(want)
            figures.docs_lost += len(lost)
            figures.docs_duplicated += len(extra)
            figures.docs_different += len(differ)
            problems += [f"{index}: {k} lost" for k in lost[:5]]
            problems += [f"{index}: {k} on the target only" for k in extra[:5]]
            problems += [f"{index}: {k} _source differs: {got[k][:200]} != {want[k][:200]}" for k in differ[:5]]
        return problems

    def leftovers(self) -> list[str]:
        """Anything of mactl's still on the source or the target (after destroy)."""
        left: list[str] = []
        repos = http(self.es_url, "GET", "/_snapshot") or {}
        if self.repository in repos:
            snaps = http(self.es_url, "GET", f"/_snapshot/{self.repository}/_all") or {}
            left += [f"source snapshot {s['snapshot']}" for s in snaps.get("snapshots") or []]
            left.append(f"source repository {self.repository}")
        planted = self.planted_docs()
        for row in http(self.os_url, "GET", "/_cat/indices?format=json&expand_wildcards=all") or []:
            name = row["index"]
            if name in planted:
                continue  # not mactl's: `planted_problems` checks it holds its own documents, exactly
            if name.startswith(self.prefix) or (name.startswith("mactl-") and self.source in name):
                left.append(f"target index {name}")
        templates = http(self.os_url, "GET", f"/_template/{self.prefix}*") or {}
        left += [f"target template {t}" for t in templates]
        left += self._kafka_leftovers()
        for pattern, what in (("proxy-*.pid", "capture proxy"), ("replayer.pid", "replayer")):
            for pid_file in (self.folder / ".mactl").rglob(pattern):
                try:
                    pid = int(pid_file.read_text().strip())
                except ValueError:
                    continue
                if _is_mactl(pid):
                    left.append(f"{what} pid {pid} still running")
        return left

    def _kafka_leftovers(self) -> list[str]:
        """The capture topic, and any consumer group of this project's replay stage."""
        if not self.kafka:
            return []
        from confluent_kafka.admin import AdminClient

        admin = AdminClient({"bootstrap.servers": self.kafka})
        left = [f"kafka topic {self.topic}"] if self.topic in admin.list_topics(timeout=30).topics else []
        groups = admin.list_consumer_groups(request_timeout=30).result(timeout=60)
        left += [f"kafka consumer group {g.group_id}" for g in groups.valid if self.source in g.group_id]
        return left

    def send_reads(self, n: int = 20) -> None:
        """Searches through the capture proxy: recorded in the capture log, replayed on the
        target (reads only: nothing the replay writes needs undoing)."""
        proxy = f"http://127.0.0.1:{self.proxy_port}"
        for i in range(n):
            index = self.indices[i % len(self.indices)]
            http(proxy, "POST", f"/{index}/_search", {"size": 1, "query": {"match_all": {}}})

    def planted_problems(self, *, applied: bool) -> tuple[list[str], list[str]]:
        """The planted indices against what they must hold: (extra deletions, leftovers).

        Each must still hold its own documents, byte for byte; the existing one also the
        source's documents while the migration is `applied`, and none of them after destroy.
        """
        deleted: list[str] = []
        left: list[str] = []
        for index, own in self.planted_docs().items():
            if http(self.os_url, "GET", f"/{index}/_settings") is None:
                deleted.append(f"planted index {index} deleted")
                continue
            got = {d: (r, src) for d, r, src in all_docs(self.os_url, index)}
            for d, r, src in own:
                if d not in got:
                    deleted.append(f"{index}: own document {d} deleted")
                elif got[d] != (r, src):
                    deleted.append(f"{index}: own document {d} changed: {got[d][1][:120]}")
            others = sorted(set(got) - {d for d, _r, _s in own})
            if index == self.existing_index and applied:
                continue  # the migrated documents: `compare` checks them against the source
            left += [f"{index}: document {d} left by mactl" for d in others[:5]]
            if len(others) > 5:
                left.append(f"{index}: … {len(others) - 5} more documents left by mactl")
        return deleted, left

    def cleanup(self) -> None:
        """Best effort: what the project made, whatever the harness's outcome."""
        try:
            if self.state() is not None:
                self.unlock()
                self.mactl("destroy", "-auto-approve", timeout=300)
        except Exception:  # noqa: BLE001 - cleanup goes on
            pass
        for url in (self.es_url, self.os_url):
            for index in [*self.indices, *self.planted_docs()]:
                http(url, "DELETE", f"/{index}")
            http(url, "DELETE", f"/_template/{self.prefix}-tmpl")
        repos = http(self.es_url, "GET", "/_snapshot") or {}
        if self.repository in repos:
            for s in (http(self.es_url, "GET", f"/_snapshot/{self.repository}/_all") or {}).get("snapshots") or []:
                http(self.es_url, "DELETE", f"/_snapshot/{self.repository}/{s['snapshot']}")
            http(self.es_url, "DELETE", f"/_snapshot/{self.repository}")
        shutil.rmtree(self.repo_dir, ignore_errors=True)


def _is_mactl(pid: int) -> bool:
    """Is `pid` a live mactl process (not a later process that reused a dead one's pid)?"""
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return False
    return b"mactl" in cmdline


# ----------------------------------------------------------------------------- the kill loop


def _kill_group(proc: subprocess.Popen[bytes]) -> None:
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    proc.wait(timeout=30)


def _kill_during(
    project: Project, rnd: random.Random, stage_type: str, max_extra_s: float, timeout: float
) -> tuple[str | None, bool]:
    """Start an apply; once a `stage_type` stage runs, wait a random moment and kill the group.

    Returns (the stage types running at the kill as the state recorded them, or None
    when the apply finished first; whether the apply ended on its own).
    """
    proc = project.spawn_apply()
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                return None, True
            if stage_type in project.running_types():
                time.sleep(rnd.uniform(0.0, max_extra_s))
                if proc.poll() is not None:
                    return None, True
                _kill_group(proc)
                return stage_type, False
            time.sleep(0.02)
        _kill_group(proc)
        return "timeout", False
    finally:
        if proc.poll() is None:
            _kill_group(proc)


def kill_plan(rnd: random.Random, kills: int, types: tuple[str, ...] = STAGE_TYPES) -> list[str]:
    """The stage types to kill in, in pipeline order: each type once (when `kills` allows),
    the rest drawn at random."""
    chosen = rnd.sample(list(types), min(kills, len(types)))
    chosen += [rnd.choice(types) for _ in range(kills - len(chosen))]
    return sorted(chosen, key=STAGE_TYPES.index)


def run_cycle(
    project: Project,
    rnd: random.Random,
    figures: Figures,
    kills: int,
    types: tuple[str, ...] = STAGE_TYPES,
    *,
    destroy_after_kill: bool = False,
) -> None:
    """One apply … destroy cycle with up to `kills` kills spread over the stage types.

    With `destroy_after_kill` the cycle destroys straight after its last kill, with
    stages left interrupted (no rerun to completion): destroy must still remove everything
    the interrupted stages made."""
    for stage_type in kill_plan(rnd, kills, types):
        started = time.monotonic()
        killed, finished = _kill_during(project, rnd, stage_type, MAX_INTO_STAGE_S[stage_type], timeout=180)
        if finished:
            break  # that stage type is already complete in this cycle: the apply ran to the end
        # What the state says was running when the kill landed (it may have moved on).
        try:
            doc = project.state() or {}
        except Exception as err:  # noqa: BLE001 - counted and reported, never hidden
            figures.state_unreadable += 1
            raise HarnessFailure(f"the state file is unreadable after a kill during {stage_type}: {err}") from None
        running = sorted({s["type"] for s in (doc.get("stages") or {}).values() if s.get("status") == "running"})
        label = running[0] if len(running) == 1 else ("between stages" if not running else "+".join(running))
        figures.kills_by_type[label if label in STAGE_TYPES or label == "between stages" else killed or label] += 1
        figures.apply_seconds.append(time.monotonic() - started)
        project.unlock()
        figures.reruns += 1
    if destroy_after_kill:
        figures.destroys_after_kill += 1
        _destroy_and_check(project, figures)
        return
    done = project.mactl("apply", "-auto-approve", timeout=600)
    if done.returncode != 0:
        raise HarnessFailure(f"the apply after the kills failed:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}")
    statuses = {a: s["status"] for a, s in (project.state() or {}).get("stages", {}).items()}
    if set(statuses.values()) != {"complete"}:
        raise HarnessFailure(f"not every stage is complete after the final apply: {statuses}")
    problems = project.compare(figures)
    if problems:
        raise HarnessFailure("the target differs from the source:\n  " + "\n  ".join(problems[:30]))
    _destroy_and_check(project, figures)


def _destroy_and_check(project: Project, figures: Figures) -> None:
    destroyed = project.mactl("destroy", "-auto-approve", timeout=600)
    if destroyed.returncode != 0:
        raise HarnessFailure(f"destroy failed:\n{destroyed.stdout[-3000:]}\n{destroyed.stderr[-3000:]}")
    if project.lock_id() is not None:
        figures.stale_locks_left += 1
    left = project.leftovers()
    deleted, left_in_planted = project.planted_problems(applied=False)
    left += left_in_planted
    figures.leftovers += left
    figures.extra_deletions += deleted
    if left or deleted:
        raise HarnessFailure(
            "destroy left mactl's things behind or deleted what was not mactl's:\n  " + "\n  ".join([*left, *deleted])
        )
    figures.cycles += 1


def run(
    base: Path,
    es_url: str,
    os_url: str,
    repo_root: Path,
    *,
    kills: int,
    seed: int,
    per_cycle: int = 7,
    types: tuple[str, ...] = STAGE_TYPES,
) -> Figures:
    """`kills` kills in cycles of `per_cycle`, on one project; raises HarnessFailure naming the seed."""
    rnd = random.Random(seed)
    figures = Figures(seed)
    project = Project(base / "project", es_url, os_url, repo_root)
    project.setup()
    try:
        while figures.kills < kills:
            before = figures.kills
            # every third cycle destroys right after its kills, stages still interrupted
            run_cycle(
                project,
                rnd,
                figures,
                min(per_cycle, kills - figures.kills),
                types,
                destroy_after_kill=figures.cycles % 3 == 2,
            )
            if figures.kills == before and figures.cycles > 3 * (kills // per_cycle + 1):
                raise HarnessFailure("the kills never landed: every apply finished before its stage ran")
    except HarnessFailure as err:
        raise HarnessFailure(f"{err}\n(reproduce with MACTL_KILL_SEED={seed})\n{figures.table()}") from None
    finally:
        project.cleanup()
    return figures


# ----------------------------------------------------------------------------- kills during destroy

#: How long after a stage's rollback is recorded as started a kill may land (seconds):
#: about how long that rollback takes here. Validate's undoes nothing, so its kill comes
#: at once; the kill then lands in it only when the journal is read fast enough.
MAX_INTO_ROLLBACK_S = {
    "validate": 0.0,
    "replay": 0.05,
    "backfill": 0.4,
    "metadata": 0.05,
    "snapshot": 0.3,
    "capture": 0.3,
}


def spawn_mactl(project: Project, *args: str, log_name: str) -> subprocess.Popen[bytes]:
    """`mactl ARGS` in its own process group (the kill takes every child with it)."""
    log = open(project.folder / log_name, "ab")  # noqa: SIM115 - handed to the child
    try:
        return subprocess.Popen(
            [sys.executable, "-m", "mactl", *args],
            cwd=project.folder,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env=project.env(),
            start_new_session=True,
        )
    finally:
        log.close()


class JournalWatch:
    """The addresses whose rollback the state journal says has started, read as it grows.

    Cheaper than folding the whole state at every poll, so even a rollback of a few
    milliseconds (validate's) can be caught."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.offset = 0
        self.file: tuple[int, int] | None = None  # (device, inode) of the journal read so far

    def rolling_back(self) -> list[str]:
        try:
            with open(self.path, "rb") as f:
                st = os.fstat(f.fileno())
                if (st.st_dev, st.st_ino) != self.file:  # compacted: a new journal, from its start
                    self.file, self.offset = (st.st_dev, st.st_ino), 0
                f.seek(self.offset)
                data = f.read()
        except FileNotFoundError:
            self.file, self.offset = None, 0
            return []
        end = data.rfind(b"\n") + 1  # whole lines only: the last may still be written
        self.offset += end
        found: list[str] = []
        for line in data[:end].splitlines():
            try:
                entry = json.loads(line)
            except ValueError:
                continue
            for t in entry.get("t") or [] if isinstance(entry, dict) else []:
                if (t.get("set") or {}).get("status") == "rolling_back" and t.get("a"):
                    found.append(str(t["a"]))
        return found


def _kill_destroy_during(
    project: Project, rnd: random.Random, stage_type: str, target: str | None, timeout: float = 180
) -> bool:
    """Start `destroy` (of `target` and what depends on it, or of everything); once a
    `stage_type` stage's rollback starts, wait a random moment and kill the group.
    Returns False when the destroy ended on its own first."""
    args = ["destroy", "-auto-approve", *(["-target", target] if target else [])]
    watch = JournalWatch(project.journal_file)
    watch.rolling_back()  # what an earlier run recorded is not this run's
    proc = spawn_mactl(project, *args, log_name="destroy.log")
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                return False
            if any(a.split(".", 1)[0] == stage_type for a in watch.rolling_back()):
                delay = rnd.uniform(0.0, MAX_INTO_ROLLBACK_S[stage_type])
                if delay:
                    time.sleep(delay)
                if proc.poll() is not None:
                    return False
                _kill_group(proc)
                return True
            time.sleep(0.003)
        _kill_group(proc)
        raise HarnessFailure(f"destroy never started rolling back a {stage_type} stage in {timeout:.0f} s")
    finally:
        if proc.poll() is None:
            _kill_group(proc)


def _after_destroy_kill(project: Project, figures: Figures, stage_type: str) -> None:
    """What must hold after a kill during destroy: a readable state (`mactl state list`),
    the lock removable, and a plan that says what is left (never "No changes", never a traceback)."""
    try:
        doc = project.state() or {}
    except Exception as err:  # noqa: BLE001 - counted and reported, never hidden
        figures.state_unreadable += 1
        raise HarnessFailure(f"the state is unreadable after a kill during {stage_type}'s rollback: {err}") from None
    listed = project.mactl("state", "list", timeout=60)
    if listed.returncode != 0:
        figures.state_unreadable += 1
        raise HarnessFailure(
            f"`mactl state list` failed after a destroy kill: {listed.stdout[-1500:]}{listed.stderr[-1500:]}"
        )
    stages = doc.get("stages") or {}
    interrupted = sorted({s["type"] for s in stages.values() if s.get("status") == "rolling_back"})
    label = (
        interrupted[0] if len(interrupted) == 1 else ("between stages" if not interrupted else "+".join(interrupted))
    )
    figures.destroy_kills_by_type[label] += 1
    # The dead destroy's lock (none when the kill landed after it released it, on its way
    # out): every other time the plan takes it over as stale (its pid is gone), else
    # force-unlock by its ID. Either way the rerun then finds no lock.
    takeover = bool(stages) and figures.destroy_kills % 2 == 0 and project.lock_id() is not None
    if not takeover:
        project.unlock()
    if not stages:
        return  # everything was rolled back just before the kill landed: nothing is left to plan
    plan = project.mactl("plan", "-detailed-exitcode", *(["-lock-takeover-stale"] if takeover else []), timeout=300)
    figures.stale_lock_takeovers += takeover
    if project.lock_id() is not None:
        figures.stale_locks_left += 1
        raise HarnessFailure(f"a lock is left after the plan after a destroy kill (takeover: {takeover})")
    figures.plans_after_destroy_kill += 1
    said = plan.stdout + plan.stderr
    if plan.returncode != 2 or "Traceback" in said or "No changes" in said:
        raise HarnessFailure(
            f"the plan after a destroy killed during {label} does not say what is left "
            f"(exit {plan.returncode}):\n{said[-3000:]}"
        )
    if interrupted and "its rollback was interrupted" not in said:
        raise HarnessFailure(f"the plan does not name the interrupted rollback ({label}):\n{said[-3000:]}")
    walks = [h for h in doc.get("history") or [] if h.get("operation") == "destroy" and not h.get("address")]
    if walks and walks[-1]["result"] == "started" and "a destroy did not finish" not in said:
        raise HarnessFailure(f"the plan does not say the killed destroy did not finish:\n{said[-3000:]}")


def _apply_after_destroy_kill(project: Project, figures: Figures) -> None:
    done = project.mactl("apply", "-auto-approve", timeout=600)
    if done.returncode != 0:
        raise HarnessFailure(f"the apply after a destroy kill failed:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}")
    statuses = {a: s["status"] for a, s in ((project.state() or {}).get("stages") or {}).items()}
    if set(statuses.values()) != {"complete"}:
        raise HarnessFailure(f"not every stage is complete after the apply after a destroy kill: {statuses}")
    problems = project.compare(figures)
    deleted, _ = project.planted_problems(applied=True)
    figures.extra_deletions += deleted
    if problems or deleted:
        raise HarnessFailure("after the apply after a destroy kill:\n  " + "\n  ".join([*problems, *deleted][:30]))
    figures.applies_after_destroy_kill += 1


def destroy_kill_plan(rnd: random.Random, kills: int, types: tuple[str, ...] = STAGE_TYPES) -> list[str]:
    """The stage types whose rollback to kill in, in destroy's (reverse pipeline) order."""
    return list(reversed(kill_plan(rnd, kills, types)))


def run_destroy_cycle(
    project: Project,
    rnd: random.Random,
    figures: Figures,
    kills: int,
    types: tuple[str, ...] = STAGE_TYPES,
    *,
    interrupted_apply: bool = False,
) -> None:
    """Apply to completion, then destroy with up to `kills` kills aimed at the rollbacks of
    `types` (every third one a `destroy -target ADDR` of a stage of that type), each
    followed by the checks of `_after_destroy_kill` and a rerun; then a destroy to the
    end, which must leave nothing of mactl's and everything that was not.

    With `interrupted_apply` the apply itself is killed first, in a stage of a random type
    (its workers, replayer and proxies as a kill leaves them), and the destroys start from there."""
    if project.kafka:
        # Traffic after the snapshot, so the replay reads records and its consumer group
        # commits offsets: there is then a group for destroy to delete.
        first = project.mactl("apply", "-auto-approve", "-target", f"snapshot.{project.source}.snap", timeout=600)
        if first.returncode != 0:
            raise HarnessFailure(
                f"the apply up to the snapshot failed:\n{first.stdout[-3000:]}\n{first.stderr[-3000:]}"
            )
        project.send_reads()
    if interrupted_apply:
        stage_type = rnd.choice(types)
        _killed, finished = _kill_during(project, rnd, stage_type, MAX_INTO_STAGE_S[stage_type], timeout=180)
        if not finished:
            running = sorted(
                {s["type"] for s in ((project.state() or {}).get("stages") or {}).values() if s["status"] == "running"}
            )
            figures.kills_by_type[running[0] if len(running) == 1 else "between stages"] += 1
            project.unlock()
    else:
        done = project.mactl("apply", "-auto-approve", timeout=600)
        if done.returncode != 0:
            raise HarnessFailure(
                f"the apply before the destroy kills failed:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
            )
    problems = [] if interrupted_apply else project.compare(figures)
    if project.kafka and not interrupted_apply:  # what destroy must delete is there (else this proves nothing)
        made = project._kafka_leftovers()
        if not any("topic" in m for m in made) or not any("group" in m for m in made):
            problems.append(f"the apply left no capture topic or replay consumer group to destroy: {made}")
    if project.follow and not interrupted_apply and not any("replayer" in x for x in project.leftovers()):
        problems.append("the apply left no follow replayer running for destroy to stop")
    deleted, _ = project.planted_problems(applied=True)
    if problems or deleted:  # after a killed apply too: the apply must not have deleted anything
        raise HarnessFailure("after the apply:\n  " + "\n  ".join([*problems, *deleted][:30]))
    # Once a cycle, the kill is followed by an apply (redoing what the destroy undid, a
    # half-undone stage replaced), the target compared with the source, then more kills.
    reapply_after = rnd.randrange(kills) if kills > 1 else -1
    for i, stage_type in enumerate(destroy_kill_plan(rnd, kills, types)):
        stages = (project.state() or {}).get("stages") or {}
        of_type = sorted(a for a, s in stages.items() if s["type"] == stage_type)
        if not of_type:
            continue  # already rolled back by an earlier kill's destroy
        target = rnd.choice(of_type) if i % 3 == 2 else None
        if not _kill_destroy_during(project, rnd, stage_type, target):
            if target is None:
                break  # the whole destroy ran to the end before the kill
            figures.destroy_reruns += 1
            continue
        figures.destroy_kills_targeted += target is not None
        _after_destroy_kill(project, figures, stage_type)
        figures.destroy_reruns += 1
        if i == reapply_after:
            _apply_after_destroy_kill(project, figures)
    _destroy_and_check(project, figures)
    figures.destroy_cycles += 1


def run_destroy(
    base: Path,
    es_url: str,
    os_url: str,
    repo_root: Path,
    *,
    kills: int,
    seed: int,
    per_cycle: int = 6,
    types: tuple[str, ...] = STAGE_TYPES,
    kafka: str | None = None,
) -> Figures:
    """`kills` kills of `mactl destroy`, `per_cycle` per apply … destroy cycle, on one project
    with planted indices (and a Kafka capture log at `kafka`, when given); raises
    HarnessFailure naming the seed."""
    rnd = random.Random(seed)
    figures = Figures(seed)
    project = Project(base / "project", es_url, os_url, repo_root, planted=True, kafka=kafka, follow=True)
    project.setup()
    try:
        while figures.destroy_kills < kills:
            before = figures.destroy_kills
            run_destroy_cycle(
                project,
                rnd,
                figures,
                min(per_cycle, kills - figures.destroy_kills),
                types,
                interrupted_apply=figures.destroy_cycles % 2 == 1,  # every other cycle
            )
            if figures.destroy_kills == before and figures.destroy_cycles > 2 * (kills // per_cycle + 1):
                raise HarnessFailure("the destroy kills never landed: every destroy finished first")
    except HarnessFailure as err:
        raise HarnessFailure(f"{err}\n(reproduce with MACTL_KILL_SEED={seed})\n{figures.table()}") from None
    finally:
        project.cleanup()
    return figures
