"""Transient cluster errors are waited out, with one line saying so (issue 15 item 5).

A stage pointed at a port where nothing listens yet: a small TCP forwarder to the real
target starts there a few seconds later, and the stage succeeds, having said what it
waited for. With nothing ever listening it fails within the bound with one line. A
non-transient error (404) fails at once.
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from urllib.parse import urlsplit

import pytest
from mactl.providers.metadata import MetadataProvider
from opensearchpy import OpenSearch
from opensearchpy.exceptions import NotFoundError, TransportError
from snapmeta_helpers import Names, Recorder, make_ctx

from mactl.cluster import client_for
from mactl.errors import ProviderError
from mactl.retrying import ClusterUnavailable, reporting_to
from mactl.schema.common import ClusterRef
from mactl.schema.metadata import MetadataInputs

pytestmark = pytest.mark.cluster


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _pump(src: socket.socket, dst: socket.socket) -> None:
    try:
        while data := src.recv(65536):
            dst.sendall(data)
    except OSError:
        pass
    finally:
        for s in (src, dst):
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass


@contextmanager
def forwarder(port: int, upstream_url: str, after_s: float) -> Iterator[None]:
    """From `after_s` seconds on, forward 127.0.0.1:`port` to `upstream_url` (nothing listens before)."""
    up = urlsplit(upstream_url)
    stop = threading.Event()

    def serve() -> None:
        if stop.wait(after_s):
            return
        with socket.socket() as server:
            server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            server.bind(("127.0.0.1", port))
            server.listen(16)
            server.settimeout(0.2)
            while not stop.is_set():
                try:
                    conn, _ = server.accept()
                except TimeoutError:
                    continue
                back = socket.create_connection((up.hostname or "127.0.0.1", up.port or 80))
                for a, b in ((conn, back), (back, conn)):
                    threading.Thread(target=_pump, args=(a, b), daemon=True).start()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join(timeout=5)


def test_a_client_waits_for_a_cluster_that_comes_up_and_says_so(os2) -> None:  # noqa: ANN001
    port = _free_port()
    client = client_for(ClusterRef(name="target", endpoint=f"http://127.0.0.1:{port}"), retry_for=60)
    lines: list[str] = []
    with forwarder(port, os2.url, after_s=3.0), reporting_to(lines.append):
        began = time.monotonic()
        info = client.info()
        waited = time.monotonic() - began
    assert info["version"]["distribution"] == "opensearch"
    assert waited >= 2.5
    assert lines, "the wait was not said"
    assert lines[0].startswith(f"target http://127.0.0.1:{port} unreachable (connection refused); retrying for ")
    assert lines[0].endswith(" more") and "\n" not in lines[0]


def test_nothing_listening_fails_within_the_bound_with_one_line() -> None:
    port = _free_port()
    client = client_for(ClusterRef(name="target", endpoint=f"http://127.0.0.1:{port}"), retry_for=4)
    lines: list[str] = []
    began = time.monotonic()
    with reporting_to(lines.append), pytest.raises(ClusterUnavailable) as err:
        client.info()
    took = time.monotonic() - began
    assert took < 4 + 3  # the bound, plus one connection attempt
    assert err.value.message == (
        f"target http://127.0.0.1:{port} unreachable (connection refused); gave up after retrying for 4s"
    )
    assert isinstance(err.value, ProviderError) and lines


def test_a_non_transient_error_fails_at_once(os2) -> None:  # noqa: ANN001
    client = client_for(ClusterRef(name="target", endpoint=os2.url), retry_for=60)
    began = time.monotonic()
    with pytest.raises(NotFoundError):
        client.indices.get(index="mactl-transient-no-such-index")
    assert time.monotonic() - began < 2


def test_the_metadata_stage_waits_for_its_target_and_logs_it(
    opensearch13: OpenSearch,
    target: OpenSearch,
    names: Names,
    os13,
    os2,  # noqa: ANN001
) -> None:
    n = names
    opensearch13.indices.create(
        index=n("late"),
        body={
            "settings": {"number_of_shards": 1, "number_of_replicas": 0},
            "mappings": {"properties": {"k": {"type": "keyword"}}},
        },
    )
    port = _free_port()
    inputs = MetadataInputs.model_validate(
        {
            "source": {"name": "os13", "endpoint": os13.url},
            "target": {"name": "target", "endpoint": f"http://127.0.0.1:{port}"},
            "repository": {"type": "fs", "name": n("repo"), "location": str(n.repo_dir)},
            "snapshotName": n("snap"),
            "from": "live",
            "indices": [{"names": [n("late")]}],
            "templateFilters": [{"names": [f"{n.prefix}*"]}],
        }
    )
    rec = Recorder()
    ctx = make_ctx("metadata.os13.s.os2.late", "metadata", inputs, recorder=rec)
    with forwarder(port, os2.url, after_s=3.0), reporting_to(ctx.log):  # as the apply walker does
        outputs = MetadataProvider().apply(ctx)
    assert outputs["created"] == [{"kind": "index", "name": n("late")}]
    index = n("late")
    assert target.indices.get_mapping(index=index)[index] == opensearch13.indices.get_mapping(index=index)[index]
    waits = [line for line in rec.logs if "unreachable (connection refused); retrying for" in line]
    assert waits and waits[0].startswith(f"target http://127.0.0.1:{port} unreachable")


@contextmanager
def answering(statuses: list[int]) -> Iterator[tuple[int, list[str]]]:
    """An HTTP server answering each request with the next of `statuses` (then 200 `{}`)."""
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    seen: list[str] = []

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802
            seen.append(self.path)
            status = statuses.pop(0) if statuses else 200
            body = b'{"error": "busy"}' if status != 200 else b'{"version": {"number": "2.19.6"}}'
            self.send_response(status)
            self.send_header("content-type", "application/json")
            self.send_header("content-length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *_: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield int(server.server_address[1]), seen
    finally:
        server.shutdown()
        server.server_close()


@pytest.mark.parametrize("status", [429, 502, 503, 504])
def test_overload_and_gateway_answers_are_waited_out(status: int) -> None:
    with answering([status] * 3) as (port, seen):
        client = client_for(ClusterRef(name="target", endpoint=f"http://127.0.0.1:{port}"), retry_for=60, retries=0)
        lines: list[str] = []
        with reporting_to(lines.append):
            assert client.info()["version"]["number"] == "2.19.6"
    assert len(seen) == 4 and lines[0].startswith(f"target http://127.0.0.1:{port} answered HTTP {status}; retrying")


@pytest.mark.parametrize("status", [400, 403, 409])
def test_other_answers_fail_at_once(status: int) -> None:
    with answering([status]) as (port, seen):
        client = client_for(ClusterRef(name="target", endpoint=f"http://127.0.0.1:{port}"), retry_for=60)
        with pytest.raises(TransportError) as err:
            client.info()
    assert len(seen) == 1 and not isinstance(err.value, ClusterUnavailable)


def test_the_metadata_stage_gives_up_with_one_line_when_its_target_never_comes(
    names: Names,
    os13,
    monkeypatch: pytest.MonkeyPatch,  # noqa: ANN001
) -> None:
    monkeypatch.setenv("MACTL_RETRY_FOR_S", "3")  # the global default, shortened
    port = _free_port()
    inputs = MetadataInputs.model_validate(
        {
            "source": {"name": "os13", "endpoint": os13.url},
            "target": {"name": "target", "endpoint": f"http://127.0.0.1:{port}"},
            "repository": {"type": "fs", "name": names("repo"), "location": str(names.repo_dir)},
            "snapshotName": names("snap"),
            "from": "live",
            "indices": [{"names": [names("nothing")]}],
        }
    )
    rec = Recorder()
    ctx = make_ctx("metadata.os13.s.os2.never", "metadata", inputs, recorder=rec)
    began = time.monotonic()
    with reporting_to(ctx.log), pytest.raises(ProviderError) as err:
        MetadataProvider().apply(ctx)
    assert time.monotonic() - began < 3 + 5
    assert err.value.message == (
        f"target http://127.0.0.1:{port} unreachable (connection refused); gave up after retrying for 3s"
    )
    assert rec.logs and all("\n" not in line for line in rec.logs)
