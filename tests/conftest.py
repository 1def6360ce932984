"""Session fixtures for the real services: ES 7.10.2, OpenSearch 1.3, OpenSearch 2.x, S3, Kafka,
and, only when a selected test asks for them, ES 8.x and OpenSearch 3.x (with k-NN).

Each fixture reuses a running service when its MACTL_TEST_*_URL variable points at one
(`scripts/clusters env` prints them), and otherwise starts its own for the session on free
ports (through `devtools.local`), stopping it when the session ends. One source/target set per
session, shared by every test: the first cluster fixture a session asks for starts all three
clusters at once, in parallel, because JVM start-up is mostly waiting.
"""

from __future__ import annotations

import atexit
import os
import shutil
import sys
import tempfile
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import pytest

#: The checkout's root, for `devtools` (the local services), a top-level package of the
#: repository that is never installed. Appended, not prepended (as pytest's `pythonpath`
#: would): the root's `mactl/` folder alone lacks `mactl.providers` and `mactl.state`, so
#: an installed mactl, editable or not, must stay first.
REPO_ROOT = Path(__file__).resolve().parent.parent
if str(REPO_ROOT) not in sys.path:
    sys.path.append(str(REPO_ROOT))

CLUSTER_NAMES = ("es710", "os13", "os2")


@dataclass(frozen=True)
class RunningCluster:
    name: str  # es710 | os13 | os2 | es8 | os3
    url: str
    version: str
    repo_dir: Path  # the `path.repo` folder every local cluster shares, for fs snapshots

    def repo_folder(self, *parts: str) -> Path:
        """A folder under `repo_dir` for a test's fs repository, made writable by the
        clusters (they run as the unprivileged `mactl` user), each level it adds too."""
        folder = self.repo_dir.joinpath(*parts)
        folder.mkdir(parents=True, exist_ok=True)
        for level in [folder, *folder.parents]:
            if level == self.repo_dir:
                break
            level.chmod(0o777)
        return folder


@dataclass(frozen=True)
class S3Server:
    url: str  # http://127.0.0.1:PORT; any access key/secret work (moto)


@dataclass(frozen=True)
class KafkaBroker:
    bootstrap: str  # 127.0.0.1:PORT


class _SessionServices:
    """The services this test session started itself, in one throw-away runtime folder."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._runtime: Path | None = None
        self._started: list[str] = []
        self._instances: dict = {}
        self._errors: dict[str, BaseException] = {}

    def instances(self, names: list[str]) -> dict:
        """The started instances of `names`, starting (in parallel) those nothing started yet.

        A service that failed to start fails each test that needs it, with its log excerpt
        and no traceback; tests that do not need it still run.
        """
        self.start(names)
        failed = [n for n in names if n in self._errors]
        if failed:
            pytest.fail(
                f"{', '.join(failed)} could not be started for this session:\n{self._errors[failed[0]]}",
                pytrace=False,
            )
        return {name: self._instances[name] for name in names}

    def runtime(self) -> Path:
        from devtools.local.paths import make_reachable, sessions_dir

        if self._runtime is None:
            parent = sessions_dir()
            make_reachable(parent)
            self._runtime = Path(tempfile.mkdtemp(prefix="mactl-pytest-", dir=parent))
            self._runtime.chmod(0o755)
        return self._runtime

    def start(self, names: list[str]) -> None:
        """Start those of `names` not tried yet, in parallel, on free ports; keep each outcome."""
        from devtools.local.process import free_port
        from devtools.local.services import start_one

        with self._lock:
            todo = [n for n in names if n not in self._instances and n not in self._errors]
            if not todo:
                return
            runtime = self.runtime()
            ports = {name: free_port() for name in todo}
            with ThreadPoolExecutor(max_workers=len(todo)) as pool:
                futures = {n: pool.submit(start_one, n, runtime, port=ports[n], timeout=300) for n in todo}
            for name, future in futures.items():
                if (err := future.exception()) is not None:
                    self._errors[name] = err
                else:
                    self._instances[name] = future.result()
                    self._started.append(name)

    def stop_all(self) -> None:
        from devtools.local import stop_services

        with self._lock:
            if self._started:
                stop_services(self._started, runtime=self.runtime())
                self._started = []
                self._instances = {}
            if self._runtime is not None:
                shutil.rmtree(self._runtime, ignore_errors=True)
                self._runtime = None


_services = _SessionServices()
atexit.register(_services.stop_all)  # also on an interrupted session

#: fixture name -> (service name, the variable that points at a running one instead)
_FIXTURE_SERVICES = {
    "es710": ("es710", "MACTL_TEST_ES710_URL"),
    "os13": ("os13", "MACTL_TEST_OS13_URL"),
    "os2": ("os2", "MACTL_TEST_OS2_URL"),
    "es8": ("es8", "MACTL_TEST_ES8_URL"),
    "os3": ("os3", "MACTL_TEST_OS3_URL"),
    "s3_server": ("s3", "MACTL_TEST_S3_URL"),
    "kafka_broker": ("kafka", "MACTL_TEST_KAFKA_BOOTSTRAP"),
}


def pytest_collection_finish(session: pytest.Session) -> None:
    """Start, in parallel, every service the selected tests use and no variable points at."""
    if session.config.option.collectonly:
        return
    used = {name for item in session.items for name in getattr(item, "fixturenames", ())}
    needed = {
        service for fixture, (service, var) in _FIXTURE_SERVICES.items() if fixture in used and not os.environ.get(var)
    }
    if needed & set(CLUSTER_NAMES):
        needed |= {n for n in CLUSTER_NAMES if not os.environ.get(_FIXTURE_SERVICES[n][1])}
    if needed:
        # Started before the first test, so start-up never counts against a test's timeout.
        _services.start(sorted(needed))


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """Stop what the session started even when no test used it (e.g. `-x` stopped early)."""
    _services.stop_all()


def _version_at(url: str) -> str:
    """The node's version from `_nodes/_local` (the ES 8 integ-test zip answers `GET /` with 405)."""
    from devtools.local.clusters import node_version

    version = node_version(url.rstrip("/"))
    if version is None:
        pytest.fail(f"the cluster at {url} (from MACTL_TEST_* variables) does not answer")
    return version


def _newer_cluster(name: str) -> RunningCluster:
    """ES 8 / OpenSearch 3: reused from MACTL_TEST_<NAME>_URL, or started for this session.

    Unlike the three base clusters, each starts only when a selected test uses it.
    """
    url = os.environ.get(f"MACTL_TEST_{name.upper()}_URL")
    if url:
        repo = os.environ.get("MACTL_TEST_REPO_DIR")
        if not repo:
            pytest.fail(f"MACTL_TEST_{name.upper()}_URL is set but MACTL_TEST_REPO_DIR (its path.repo) is not")
        return RunningCluster(name, url.rstrip("/"), _version_at(url), Path(repo))
    from devtools.local.clusters import repo_dir

    inst = _services.instances([name])[name]
    return RunningCluster(name, inst.address, inst.version, repo_dir(_services.runtime()))


@pytest.fixture(scope="session")
def _local_clusters() -> dict[str, RunningCluster]:
    """All three clusters: reused from MACTL_TEST_<NAME>_URL, or started here."""
    found: dict[str, RunningCluster] = {}
    missing: list[str] = []
    for name in CLUSTER_NAMES:
        url = os.environ.get(f"MACTL_TEST_{name.upper()}_URL")
        if not url:
            missing.append(name)
            continue
        repo = os.environ.get("MACTL_TEST_REPO_DIR")
        if not repo:
            pytest.fail(f"MACTL_TEST_{name.upper()}_URL is set but MACTL_TEST_REPO_DIR (its path.repo) is not")
        found[name] = RunningCluster(name, url.rstrip("/"), _version_at(url), Path(repo))
    if missing:
        from devtools.local.clusters import repo_dir

        for name, inst in _services.instances(missing).items():
            found[name] = RunningCluster(name, inst.address, inst.version, repo_dir(_services.runtime()))
    yield found
    _services.stop_all()


@pytest.fixture(scope="session")
def es710(_local_clusters: dict[str, RunningCluster]) -> RunningCluster:
    """The Elasticsearch 7.10.2 source."""
    return _local_clusters["es710"]


@pytest.fixture(scope="session")
def os13(_local_clusters: dict[str, RunningCluster]) -> RunningCluster:
    """The OpenSearch 1.3 second source."""
    return _local_clusters["os13"]


@pytest.fixture(scope="session")
def os2(_local_clusters: dict[str, RunningCluster]) -> RunningCluster:
    """The OpenSearch 2.x target."""
    return _local_clusters["os2"]


@pytest.fixture(scope="session")
def es8() -> RunningCluster:
    """The Elasticsearch 8.x source (security off, loopback; no painless/reindex modules)."""
    return _newer_cluster("es8")


@pytest.fixture(scope="session")
def os3() -> RunningCluster:
    """The OpenSearch 3.x target (and source), with the k-NN plugin (lucene engine only)."""
    return _newer_cluster("os3")


@pytest.fixture(scope="session")
def s3_server() -> S3Server:
    """The moto S3 server: MACTL_TEST_S3_URL, or one started for the session."""
    if url := os.environ.get("MACTL_TEST_S3_URL"):
        return S3Server(url.rstrip("/"))
    return S3Server(_services.instances(["s3"])["s3"].address)


@pytest.fixture(scope="session")
def kafka_broker() -> KafkaBroker:
    """The KRaft Kafka broker: MACTL_TEST_KAFKA_BOOTSTRAP, or one started for the session."""
    if bootstrap := os.environ.get("MACTL_TEST_KAFKA_BOOTSTRAP"):
        return KafkaBroker(bootstrap)
    return KafkaBroker(_services.instances(["kafka"])["kafka"].address)
