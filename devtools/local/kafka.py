"""One Kafka broker in KRaft mode (broker and controller in one JVM) on loopback.

The jars (`org.apache.kafka:kafka_2.13` and its runtime dependencies, plus a log4j binding)
come from Maven Central through `mvn dependency:copy-dependencies`; there is no Kafka
tarball to unpack. The storage is formatted once per instance folder.
"""

from __future__ import annotations

import base64
import os
import time
import uuid
from pathlib import Path

from devtools.local import maven, process
from devtools.local.errors import LocalServiceError
from devtools.local.instance import Instance, Status, load_record, stop_in
from devtools.local.paths import cache_dir

#: Pinned like the cluster versions; bump here (or MACTL_KAFKA_VERSION for one run).
KAFKA_VERSION = "3.9.1"
SLF4J_BINDING = ("org.slf4j", "slf4j-reload4j", "1.7.36")
DEFAULT_PORT = 19092
PORT_ENV = "MACTL_KAFKA_PORT"
READY_LINE = "Kafka Server started"


def version() -> str:
    return os.environ.get("MACTL_KAFKA_VERSION") or KAFKA_VERSION


def port() -> int:
    return int(os.environ.get(PORT_ENV) or DEFAULT_PORT)


def libs_dir() -> Path:
    return cache_dir() / f"kafka_2.13-{version()}" / "libs"


def ensure_jars() -> Path:
    """Fetch the broker's jars once; return the folder holding them."""
    libs = libs_dir()
    marker = libs.parent / ".complete"
    if marker.is_file():
        return libs
    wanted = [("org.apache.kafka", "kafka_2.13", version()), SLF4J_BINDING]
    staging = libs.parent / f".libs-{os.getpid()}"
    maven.copy_dependencies(wanted, staging, label=f"org.apache.kafka:kafka_2.13:{version()} (with dependencies)")
    if libs.exists():
        import shutil

        shutil.rmtree(libs)
    staging.rename(libs)
    marker.write_text(version() + "\n")
    return libs


def _formatted_cluster_id(data: Path) -> str | None:
    """The cluster id a data folder was formatted with, if it was.

    A data folder outlives the broker (a machine restart, a killed session); formatting it again
    with a fresh id fails ("Invalid cluster.id"), so a restart keeps the id the folder already has.
    """
    meta = data / "meta.properties"
    if not meta.is_file():
        return None
    for line in meta.read_text(encoding="utf-8", errors="replace").splitlines():
        key, _, value = line.partition("=")
        if key.strip() == "cluster.id" and value.strip():
            return value.strip()
    return None


def _cluster_id() -> str:
    """A Kafka cluster id: 16 random bytes, base64url without padding."""
    return base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")


def _write_config(folder: Path, port_number: int) -> Path:
    controller_port = process.free_port()
    props = {
        "process.roles": "broker,controller",
        "node.id": "1",
        "controller.quorum.voters": f"1@127.0.0.1:{controller_port}",
        "listeners": f"PLAINTEXT://127.0.0.1:{port_number},CONTROLLER://127.0.0.1:{controller_port}",
        "advertised.listeners": f"PLAINTEXT://127.0.0.1:{port_number}",
        "controller.listener.names": "CONTROLLER",
        "inter.broker.listener.name": "PLAINTEXT",
        "listener.security.protocol.map": "PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT",
        "log.dirs": str(folder / "data"),
        "num.partitions": "1",
        "auto.create.topics.enable": "true",
        "offsets.topic.replication.factor": "1",
        "transaction.state.log.replication.factor": "1",
        "transaction.state.log.min.isr": "1",
        "group.initial.rebalance.delay.ms": "0",
        "share.coordinator.state.topic.replication.factor": "1",
        "share.coordinator.state.topic.min.isr": "1",
    }
    path = folder / "server.properties"
    path.write_text("".join(f"{k}={v}\n" for k, v in props.items()))
    (folder / "log4j.properties").write_text(
        "log4j.rootLogger=INFO, file\n"
        "log4j.appender.file=org.apache.log4j.FileAppender\n"
        f"log4j.appender.file.File={folder / 'logs' / 'server.log'}\n"
        "log4j.appender.file.layout=org.apache.log4j.PatternLayout\n"
        "log4j.appender.file.layout.ConversionPattern=[%d] %p %m (%c)%n\n"
    )
    return path


def _java(libs: Path, folder: Path, main: list[str]) -> list[str]:
    java = str(process.java_home() / "bin" / "java")
    return [
        java,
        "-Xms256m",
        "-Xmx512m",
        f"-Dlog4j.configuration=file:{folder / 'log4j.properties'}",
        "-cp",
        f"{libs}/*",
        *main,
    ]


def start_kafka(runtime: Path, *, port_number: int | None = None, timeout: float = 120.0) -> Instance:
    port_number = port_number or port()
    folder = runtime / "kafka"
    bootstrap = f"127.0.0.1:{port_number}"
    running = load_record(folder)
    if running is not None:
        return Instance("kafka", running[1]["address"], str(running[1].get("version")), running[0].pid, folder)
    if process.port_in_use(port_number):
        raise LocalServiceError(
            f"port {port_number} for kafka is already in use by a process this harness did not start",
            hint=f"stop it or choose another port with {PORT_ENV}=...",
        )
    libs = ensure_jars()
    for sub in ("data", "logs"):
        (folder / sub).mkdir(parents=True, exist_ok=True)
    config = _write_config(folder, port_number)
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "LANG": "C.UTF-8", "HOME": str(folder)}
    import subprocess

    fmt = subprocess.run(
        _java(
            libs,
            folder,
            [
                "kafka.tools.StorageTool",
                "format",
                "-t",
                _formatted_cluster_id(folder / "data") or _cluster_id(),
                "-c",
                str(config),
                "--ignore-formatted",
            ],
        ),
        env=env,
        cwd=folder,
        capture_output=True,
        text=True,
        stdin=subprocess.DEVNULL,
    )
    if fmt.returncode != 0:
        raise LocalServiceError(
            f"formatting the Kafka storage in {folder / 'data'} failed:\n{(fmt.stdout + fmt.stderr)[-2000:]}",
            hint=f"check the Java version ({process.java_home()}) and the jars in {libs}",
        )
    server_log = folder / "logs" / "server.log"
    offset = server_log.stat().st_size if server_log.exists() else 0
    record = process.start_detached(
        _java(libs, folder, ["kafka.Kafka", str(config)]), env=env, cwd=folder, log=folder / "out.log"
    )
    process.write_record(folder / "process.json", record, address=bootstrap, port=port_number, version=version())
    deadline = time.monotonic() + timeout
    while True:
        text = server_log.read_text(errors="replace")[offset:] if server_log.exists() else ""
        if READY_LINE in text and process.port_in_use(port_number):
            return Instance("kafka", bootstrap, version(), record.pid, folder)
        if not record.alive() or time.monotonic() > deadline:
            stop_in(folder, grace_seconds=10)
            raise LocalServiceError(
                f"Kafka {version()} did not start on {bootstrap}:\n"
                f"--- {folder / 'out.log'}:\n{process.tail(folder / 'out.log', 10)}\n"
                f"--- {server_log}:\n{process.tail(server_log, 20)}",
                hint=f"check the Java version ({process.java_home()}) and that port {port_number} is free",
            )
        time.sleep(0.5)


def stop_kafka(runtime: Path) -> str:
    return stop_in(runtime / "kafka", grace_seconds=30)


def kafka_status(runtime: Path) -> Status:
    found = load_record(runtime / "kafka")
    if found is None:
        return Status("kafka", f"127.0.0.1:{port()}", version(), "down", None)
    data = found[1]
    health = "up" if process.port_in_use(int(data["port"])) else "unreachable"
    return Status("kafka", data["address"], str(data.get("version")), health, found[0].pid)
