"""The local services by name, started in parallel, stopped, reported and exported.

This is what `scripts/clusters` and the pytest fixtures call; each service's own module knows
how to start it.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from devtools.local import kafka, s3
from devtools.local.clusters import CLUSTERS, cluster_status, repo_dir, start_cluster, stop_cluster
from devtools.local.errors import LocalServiceError
from devtools.local.instance import Instance, Status

SERVICE_NAMES: tuple[str, ...] = ("es710", "os13", "os2", "es8", "os3", "es9", "s3", "kafka")
DEFAULT_SERVICES: tuple[str, ...] = ("es710", "os13", "os2")
#: Services no test uses (Elasticsearch 9 runs, but only by hand): `fetch` skips them unless named.
TRIED_ONLY: tuple[str, ...] = ("es9",)

#: The variables the tests (and `scripts/clusters env`) use to find each service.
ENV_VARS: dict[str, str] = {
    "es710": "MACTL_TEST_ES710_URL",
    "os13": "MACTL_TEST_OS13_URL",
    "os2": "MACTL_TEST_OS2_URL",
    "es8": "MACTL_TEST_ES8_URL",
    "os3": "MACTL_TEST_OS3_URL",
    "es9": "MACTL_TEST_ES9_URL",
    "s3": "MACTL_TEST_S3_URL",
    "kafka": "MACTL_TEST_KAFKA_BOOTSTRAP",
}


def check_names(names: list[str]) -> list[str]:
    unknown = [n for n in names if n not in SERVICE_NAMES]
    if unknown:
        raise LocalServiceError(
            f"unknown service name(s): {', '.join(unknown)}", hint=f"choose from: {', '.join(SERVICE_NAMES)}"
        )
    return list(dict.fromkeys(names))


def start_one(name: str, runtime: Path, *, port: int | None = None, timeout: float = 240.0) -> Instance:
    runtime.mkdir(parents=True, exist_ok=True)
    runtime.chmod(0o755)
    if name in CLUSTERS:
        return start_cluster(CLUSTERS[name], runtime, port=port, timeout=timeout)
    if name == "s3":
        return s3.start_s3(runtime, port_number=port)
    return kafka.start_kafka(runtime, port_number=port)


def start_services(
    names: list[str], *, runtime: Path, ports: dict[str, int] | None = None, timeout: float = 240.0
) -> dict[str, Instance]:
    """Start the named services at once (threads: JVM start-up is mostly waiting).

    If one fails, the ones this call started are stopped again and the first error is raised.
    """
    names = check_names(names)
    ports = ports or {}
    with ThreadPoolExecutor(max_workers=max(1, len(names))) as pool:
        futures = {n: pool.submit(start_one, n, runtime, port=ports.get(n), timeout=timeout) for n in names}
    started: dict[str, Instance] = {}
    errors: list[BaseException] = []
    for name, future in futures.items():
        err = future.exception()
        if err is None:
            started[name] = future.result()
        else:
            errors.append(err)
    if errors:
        stop_services(list(started), runtime=runtime)
        raise errors[0]
    return started


def stop_one(name: str, runtime: Path) -> str:
    if name in CLUSTERS:
        return stop_cluster(CLUSTERS[name], runtime)
    if name == "s3":
        return s3.stop_s3(runtime)
    return kafka.stop_kafka(runtime)


def stop_services(names: list[str], *, runtime: Path) -> dict[str, str]:
    """Stop the named services (in parallel); returns how each ended."""
    names = check_names(names)
    try:
        with ThreadPoolExecutor(max_workers=max(1, len(names))) as pool:
            results = {n: pool.submit(stop_one, n, runtime) for n in names}
        return {n: f.result() for n, f in results.items()}
    except RuntimeError:
        # At interpreter shutdown (an atexit handler) no new threads may start: stop
        # them one by one instead, so nothing is left behind either way.
        return {n: stop_one(n, runtime) for n in names}


def status_of(name: str, *, runtime: Path) -> Status:
    if name in CLUSTERS:
        return cluster_status(CLUSTERS[name], runtime)
    if name == "s3":
        return s3.s3_status(runtime)
    return kafka.kafka_status(runtime)


def env_lines(runtime: Path) -> list[str]:
    """`export` lines for every service of `runtime` that is up."""
    lines: list[str] = []
    any_cluster = False
    for name in SERVICE_NAMES:
        status = status_of(name, runtime=runtime)
        if status.pid is not None:
            lines.append(f"export {ENV_VARS[name]}={status.address}")
            any_cluster |= name in CLUSTERS
    if any_cluster:
        lines.append(f"export MACTL_TEST_REPO_DIR={repo_dir(runtime)}")
    return lines
