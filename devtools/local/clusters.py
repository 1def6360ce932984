"""Elasticsearch 7.10.2 / 8.x / 9.x and OpenSearch 1.3 / 2.x / 3.x as single-node clusters on loopback.

Each instance gets a folder of its own (config copy, data, logs, temp, process record); the
unpacked distribution is shared and never written to. As root, the JVM runs as the
unprivileged `mactl` user, because Elasticsearch refuses to run as root.
"""

from __future__ import annotations

import os
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

from devtools.local import process
from devtools.local.distributions import Distribution, ensure_unpacked, version_for
from devtools.local.errors import LocalServiceError
from devtools.local.instance import Instance, Status, load_record, stop_in
from devtools.local.modules import extra_settings

HEAP = "512m"


@dataclass(frozen=True)
class ClusterSpec:
    name: str  # es710 | os13 | os2 | es8 | os3 | es9
    product: str  # elasticsearch | opensearch
    default_port: int
    role: str  # what the cluster is for in tests and the demo
    java: range = process.SUPPORTED_JAVA  # the Java majors its pinned version runs on

    @property
    def port_env(self) -> str:
        return f"MACTL_{self.name.upper()}_PORT"

    def port(self) -> int:
        return int(os.environ.get(self.port_env) or self.default_port)

    def distribution(self) -> Distribution:
        return Distribution(self.product, version_for(self.name))

    @property
    def env_prefix(self) -> str:
        return "ES" if self.product == "elasticsearch" else "OPENSEARCH"


CLUSTERS: dict[str, ClusterSpec] = {
    "es710": ClusterSpec("es710", "elasticsearch", 19200, "source"),
    "os13": ClusterSpec("os13", "opensearch", 19201, "second source"),
    "os2": ClusterSpec("os2", "opensearch", 29200, "target"),
    # ES 8 runs on Java 17-24 (17 is preferred: it is the JDK the others use).
    "es8": ClusterSpec("es8", "elasticsearch", 19202, "ES 8 source", range(17, 25)),
    # OpenSearch 3 and Elasticsearch 9 need Java 21+ (they run without the SecurityManager).
    "os3": ClusterSpec("os3", "opensearch", 29201, "OpenSearch 3 target with k-NN (and source)", range(21, 100)),
    "es9": ClusterSpec(
        "es9", "elasticsearch", 19203, "ES 9 source (metadata/reader work: see the README)", range(21, 100)
    ),
}


def _major(version: str) -> int:
    return int(version.split(".")[0])


def product_settings(dist: Distribution) -> dict[str, str]:
    """Settings a product version needs to run as a plain local test cluster.

    Elasticsearch 8+ turns on security (TLS, passwords, an auto-generated keystore) unless
    told otherwise; these clusters are loopback-only test fixtures, so security is off, and,
    as on 7.x, wildcard deletes are allowed (tests clean up with `DELETE prefix-*`).
    """
    if dist.product != "elasticsearch" or _major(dist.version) < 8:
        return {}
    return {
        "xpack.security.enabled": "false",
        "xpack.security.http.ssl.enabled": "false",
        "xpack.security.transport.ssl.enabled": "false",
        "action.destructive_requires_name": "false",
    }


def repo_dir(runtime: Path) -> Path:
    """The `path.repo` folder every cluster of one runtime folder shares (fs snapshots).

    `MACTL_REPO_DIR` points it elsewhere, e.g. at an existing folder of snapshots.
    """
    if env := os.environ.get("MACTL_REPO_DIR"):
        return Path(env).resolve()
    return runtime / "repo"


def _settings(spec: ClusterSpec, dist: Distribution, folder: Path, runtime: Path, port: int) -> dict[str, str]:
    settings = {
        "cluster.name": f"mactl-{spec.name}",
        "node.name": f"mactl-{spec.name}",
        "discovery.type": "single-node",
        "network.host": "127.0.0.1",
        "http.port": str(port),
        "transport.port": str(process.free_port()),
        "path.data": str(folder / "data"),
        "path.logs": str(folder / "logs"),
        "path.repo": str(repo_dir(runtime)),
        # A shared dev machine's disk can be fuller than the watermarks; never go read-only.
        "cluster.routing.allocation.disk.threshold_enabled": "false",
    }
    settings.update(product_settings(dist))
    settings.update(extra_settings(dist, dist.home))
    return settings


def _prepare_folder(spec: ClusterSpec, dist: Distribution, folder: Path, runtime: Path, port: int) -> None:
    for sub in ("data", "logs", "tmp"):
        (folder / sub).mkdir(parents=True, exist_ok=True)
    config = folder / "config"
    if config.exists():
        shutil.rmtree(config)
    shutil.copytree(dist.home / "config", config)
    (config / f"{spec.product}.keystore").unlink(missing_ok=True)
    # The launcher runs from the distribution's home, which the instance must not write to:
    # point GC logs, error files and heap dumps at the instance's own folders.
    jvm_options = (config / "jvm.options").read_text()
    for relative, absolute in (("logs/", f"{folder}/logs/"), ("HeapDumpPath=data", f"HeapDumpPath={folder}/data")):
        jvm_options = jvm_options.replace(f"={relative}", f"={absolute}").replace(f":{relative}", f":{absolute}")
        jvm_options = jvm_options.replace(f"-XX:{relative}", f"-XX:{absolute}")
    (config / "jvm.options").write_text(jvm_options)
    yml = "".join(f"{key}: {value}\n" for key, value in _settings(spec, dist, folder, runtime, port).items())
    (config / f"{spec.product}.yml").write_text("# written by devtools.local for this instance\n" + yml)
    repo = repo_dir(runtime)
    repo.mkdir(parents=True, exist_ok=True)
    repo.chmod(0o777)
    folder.chmod(0o755)
    process.give_to_service_user(folder, repo)


def _environment(spec: ClusterSpec, folder: Path) -> dict[str, str]:
    jdk = str(process.java_home(spec.java))
    prefix = spec.env_prefix
    return {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "LANG": "C.UTF-8",
        "HOME": str(folder),
        "JAVA_HOME": jdk,
        f"{prefix}_JAVA_HOME": jdk,
        f"{prefix}_JAVA_OPTS": f"-Xms{HEAP} -Xmx{HEAP}",
        f"{prefix}_PATH_CONF": str(folder / "config"),
        f"{prefix}_TMPDIR": str(folder / "tmp"),
    }


def _log_file(spec: ClusterSpec, folder: Path) -> Path:
    return folder / "logs" / f"mactl-{spec.name}.log"


def _failure(spec: ClusterSpec, folder: Path, port: int, why: str) -> LocalServiceError:
    return LocalServiceError(
        f"{spec.name} ({spec.distribution().coordinates}) {why}.\n"
        f"--- last lines of {folder / 'out.log'}:\n{process.tail(folder / 'out.log', 15)}\n"
        f"--- last lines of {_log_file(spec, folder)}:\n{process.tail(_log_file(spec, folder), 25)}",
        hint=(
            f"check the Java version (JAVA_HOME={process.java_home(spec.java)}; ES 7.10.2 needs Java 11-21, "
            "OpenSearch 3 / ES 9 Java 21+), "
            f"that port {port} is free (`ss -ltnp | grep {port}`), free memory for a {HEAP} heap, "
            f"and the logs in {folder}"
        ),
    )


def node_version(url: str) -> str | None:
    """The version the node reports, from `_nodes/_local` rather than `GET /`.

    The Elasticsearch 8/9 integ-test zips answer `GET /` with 405 (the root handler lives in a
    module they leave out), so the version must come from an API every build has.
    """
    nodes = process.try_get_json(f"{url}/_nodes/_local?filter_path=nodes.*.version", timeout=5)
    if nodes and nodes.get("nodes"):
        return str(next(iter(nodes["nodes"].values()))["version"])
    info = process.try_get_json(url)
    return str(info["version"]["number"]) if info and "version" in info else None


def wait_healthy(
    spec: ClusterSpec,
    url: str,
    timeout: float,
    record: process.ProcessRecord | None = None,
    folder: Path | None = None,
    port: int = 0,
) -> dict:
    """Poll until the cluster answers with green/yellow health; return `GET /`."""
    deadline = time.monotonic() + timeout
    while True:
        health = process.try_get_json(f"{url}/_cluster/health?wait_for_status=yellow&timeout=2s", timeout=5)
        if health and health.get("status") in ("green", "yellow"):
            if (version := node_version(url)) is not None:
                return {"version": {"number": version}}
        if record is not None and not record.alive():
            raise _failure(spec, folder or Path("."), port, "exited during start-up")
        if time.monotonic() > deadline:
            raise _failure(spec, folder or Path("."), port, f"was not healthy after {timeout:.0f}s")
        time.sleep(1.0)


def start_cluster(spec: ClusterSpec, runtime: Path, *, port: int | None = None, timeout: float = 240.0) -> Instance:
    """Start (or find already running) the cluster `spec` with its state under `runtime`."""
    port = port or spec.port()
    folder = runtime / spec.name
    url = f"http://127.0.0.1:{port}"
    dist = spec.distribution()
    running = load_record(folder)
    if running is not None:
        record, data = running
        info = wait_healthy(spec, data["address"], timeout, record, folder, int(data["port"]))
        return Instance(spec.name, data["address"], info["version"]["number"], record.pid, folder)
    if process.port_in_use(port):
        raise LocalServiceError(
            f"port {port} for {spec.name} is already in use by a process this harness did not start",
            hint=f"stop it (`ss -ltnp | grep :{port}`) or choose another port with {spec.port_env}=...",
        )
    process.java_home(spec.java)
    process.ensure_service_user()
    ensure_unpacked(dist)
    folder.mkdir(parents=True, exist_ok=True)
    _prepare_folder(spec, dist, folder, runtime, port)
    cmd = process.as_service_user([str(dist.home / "bin" / spec.product)])
    record = process.start_detached(cmd, env=_environment(spec, folder), cwd=folder, log=folder / "out.log")
    process.write_record(folder / "process.json", record, address=url, port=port, version=dist.version)
    try:
        info = wait_healthy(spec, url, timeout, record, folder, port)
    except LocalServiceError:
        stop_in(folder, grace_seconds=10)
        raise
    version = info["version"]["number"]
    if version != dist.version:
        stop_in(folder, grace_seconds=10)
        raise LocalServiceError(f"{spec.name} on {url} reports version {version}, expected {dist.version}")
    return Instance(spec.name, url, version, record.pid, folder)


def stop_cluster(spec: ClusterSpec, runtime: Path) -> str:
    return stop_in(runtime / spec.name)


def cluster_status(spec: ClusterSpec, runtime: Path) -> Status:
    folder = runtime / spec.name
    found = load_record(folder)
    if found is None:
        return Status(spec.name, f"http://127.0.0.1:{spec.port()}", spec.distribution().version, "down", None)
    record, data = found
    version = node_version(data["address"])
    health = process.try_get_json(f"{data['address']}/_cluster/health", timeout=5)
    return Status(
        spec.name,
        data["address"],
        version or str(data.get("version", "?")),
        health["status"] if health else "unreachable",
        record.pid,
    )
