"""The dead-letter queue: documents the target rejected, as NDJSON, in a folder or on S3.

One line per rejected document holds where it was going (`index`, `id`, `routing`), the
source that was sent, the snapshot document before transforms (`original`, so a fixed
transform can be re-run on it) and the target's reason. A worker appends to its own file
(or, on S3, writes one object per flush, since S3 cannot append) and flushes before it
advances a checkpoint, so a rejected document is never lost between the two. After a
crash a document may be dead-lettered twice; readers keep the last entry per document.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol

import orjson

from mactl.errors import ConfigError
from mactl.state.masking import mask_secrets


def _safe(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", name)


def entry(
    *,
    stage: str,
    unit: str,
    index: str,
    doc_id: str,
    routing: str | None,
    source_line: bytes,
    original: Any,
    status: int,
    reason: Any,
) -> bytes:
    """One dead-letter line (with its newline)."""
    return (
        orjson.dumps(
            {
                "stage": stage,
                "unit": unit,
                "index": index,
                "id": doc_id,
                "routing": routing,
                "status": status,
                # The metadata passes the one masking rule (a reason may quote a URL with a password);
                # the document itself is kept byte for byte: it is what gets resent.
                "reason": mask_secrets(reason)[0],
                "source": orjson.Fragment(source_line.rstrip(b"\n")),
                "original": original,
                "at": datetime.now(UTC).isoformat(timespec="milliseconds"),
            }
        )
        + b"\n"
    )


class DeadLetterSink(Protocol):
    def add(self, line: bytes) -> None: ...
    def flush(self) -> None: ...


@dataclass(frozen=True)
class Location:
    """A stage's dead-letter place: `<folder>/<stage>/` or `s3://bucket/prefix/<stage>/`."""

    raw: str
    stage: str
    s3_endpoint: str | None = None

    @property
    def is_s3(self) -> bool:
        return self.raw.startswith("s3://")

    def bucket_prefix(self) -> tuple[str, str]:
        bucket, _, prefix = self.raw[5:].partition("/")
        if not bucket:
            raise ConfigError(f"deadLetter.location '{self.raw}': no bucket")
        prefix = prefix.strip("/")
        return bucket, f"{prefix}/{_safe(self.stage)}/" if prefix else f"{_safe(self.stage)}/"

    def folder(self) -> Path:
        return Path(self.raw).expanduser() / _safe(self.stage)


def _s3_client(endpoint: str | None) -> Any:
    import boto3

    return boto3.client("s3", endpoint_url=endpoint or os.environ.get("MACTL_S3_ENDPOINT") or None)


class FileSink:
    """Appends to `<folder>/<stage>/<holder>.ndjson`; `flush` fsyncs."""

    def __init__(self, location: Location, holder: str) -> None:
        folder = location.folder()
        folder.mkdir(mode=0o700, parents=True, exist_ok=True)  # dead letters are documents
        self.path = folder / f"{_safe(holder)}.ndjson"
        self._buffer: list[bytes] = []

    def add(self, line: bytes) -> None:
        self._buffer.append(line)

    def flush(self) -> None:
        if not self._buffer:
            return
        fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        with os.fdopen(fd, "ab") as fh:
            fh.write(b"".join(self._buffer))
            fh.flush()
            os.fsync(fh.fileno())
        self._buffer.clear()


class S3Sink:
    """Writes one object per flush: `<prefix>/<stage>/<holder>-<n>.ndjson`."""

    def __init__(self, location: Location, holder: str) -> None:
        self._bucket, self._prefix = location.bucket_prefix()
        self._client = _s3_client(location.s3_endpoint)
        self._holder = _safe(holder)
        self._buffer: list[bytes] = []
        self._n = 0

    def add(self, line: bytes) -> None:
        self._buffer.append(line)

    def flush(self) -> None:
        if not self._buffer:
            return
        self._n += 1
        key = f"{self._prefix}{self._holder}-{int(datetime.now(UTC).timestamp() * 1000)}-{self._n:06d}.ndjson"
        self._client.put_object(Bucket=self._bucket, Key=key, Body=b"".join(self._buffer))
        self._buffer.clear()


def open_sink(location: Location, holder: str) -> DeadLetterSink:
    return S3Sink(location, holder) if location.is_s3 else FileSink(location, holder)


# -- reading back (resend-failed) -------------------------------------------------------


@dataclass(frozen=True)
class StoredFile:
    name: str  # a path or an S3 key


def list_files(location: Location) -> list[StoredFile]:
    if location.is_s3:
        bucket, prefix = location.bucket_prefix()
        client = _s3_client(location.s3_endpoint)
        keys: list[str] = []
        for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
            keys.extend(o["Key"] for o in page.get("Contents", []) if o["Key"].endswith(".ndjson"))
        return [StoredFile(k) for k in sorted(keys)]
    folder = location.folder()
    if not folder.is_dir():
        return []
    return [StoredFile(str(p)) for p in sorted(folder.glob("*.ndjson"), key=lambda p: (p.stat().st_mtime, p.name))]


def read_entries(location: Location, files: list[StoredFile]) -> Iterator[dict[str, Any]]:
    client = _s3_client(location.s3_endpoint) if location.is_s3 else None
    for f in files:
        if client is not None:
            data = client.get_object(Bucket=location.bucket_prefix()[0], Key=f.name)["Body"].read()
        else:
            data = Path(f.name).read_bytes()
        for line in data.splitlines():
            if line.strip():
                yield orjson.loads(line)


def write_file(location: Location, name: str, lines: list[bytes]) -> None:
    """Write a whole file (used by resend for what still fails); durable before returning."""
    if location.is_s3:
        bucket, prefix = location.bucket_prefix()
        _s3_client(location.s3_endpoint).put_object(Bucket=bucket, Key=f"{prefix}{name}", Body=b"".join(lines))
        return
    folder = location.folder()
    folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    tmp = folder / f".{name}.tmp"
    with os.fdopen(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), "wb") as fh:
        fh.write(b"".join(lines))
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, folder / name)


def remove_files(location: Location, files: list[StoredFile]) -> None:
    if location.is_s3:
        bucket, _ = location.bucket_prefix()
        client = _s3_client(location.s3_endpoint)
        for f in files:
            client.delete_object(Bucket=bucket, Key=f.name)
        return
    for f in files:
        Path(f.name).unlink(missing_ok=True)


def remove_all(location: Location) -> None:
    remove_files(location, list_files(location))
