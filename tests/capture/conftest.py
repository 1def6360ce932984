"""Fixtures for the capture/replay tests: logs, clients, `cap-` index names with cleanup.

Everything these tests create on the shared clusters starts with `cap-`; Kafka topics
start with `cap-` too. The proxy runs in-process (`cap_helpers.start_proxy`) for the
proxy tests and as a real detached process (through the capture provider) for the
end-to-end ones.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from opensearchpy import OpenSearch
from sigv4_server import (
    ACCESS_KEY,
    SECRET_KEY,
    SESSION_TOKEN,
    Keys,
    SigV4Target,
    isolate_aws_env,
    serve,
)


@pytest.fixture
def file_log(tmp_path: Path) -> dict[str, Any]:
    return {"type": "file", "path": str(tmp_path / "log"), "fsync": "interval", "segmentBytes": 1 << 20}


@pytest.fixture
def es(es710: Any) -> OpenSearch:
    return OpenSearch(hosts=[es710.url], timeout=60)


@pytest.fixture
def target(os2: Any) -> OpenSearch:
    return OpenSearch(hosts=[os2.url], timeout=60)


@pytest.fixture
def index_name(es: OpenSearch, target: OpenSearch) -> Iterator[str]:
    """A fresh `cap-...` index name, deleted from both clusters afterwards."""
    name = f"cap-{uuid.uuid4().hex[:8]}"
    yield name
    for client in (es, target):
        client.indices.delete(index=f"{name}*", ignore=[404])


@pytest.fixture
def aws_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Known test credentials through the default AWS chain, nothing from the host."""
    isolate_aws_env(monkeypatch, tmp_path)


@pytest.fixture
def aws_target() -> Iterator[SigV4Target]:
    """A local server that verifies every request's SigV4 signature on its own."""
    yield from serve(Keys({ACCESS_KEY: (SECRET_KEY, SESSION_TOKEN)}))
