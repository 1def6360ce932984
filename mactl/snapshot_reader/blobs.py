"""Blob access: one tiny interface over a local folder and an S3 bucket/prefix.

It only reads. S3 shard files are cached in a local folder so a resumed or repeated read of
a shard does not download it again. It must not interpret blob contents.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from pathlib import Path
from typing import Protocol

from mactl.snapshot_reader.errors import RepositoryUnreachableError, SnapshotReaderError


class BlobStore(Protocol):
    """Read-only view of a repository root; paths are '/'-separated and relative to it."""

    description: str

    def read(self, path: str) -> bytes: ...

    def exists(self, path: str) -> bool: ...

    def list(self, prefix: str) -> list[str]: ...

    def size(self, path: str) -> int: ...

    def local_path(self, path: str) -> Path:
        """A local file with the blob's bytes (the blob itself, or a cached download)."""
        ...


class FsBlobStore:
    """A repository on a local (or shared) filesystem."""

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)
        self.description = str(self.root)
        if not self.root.is_dir():
            raise SnapshotReaderError(f"snapshot repository folder {self.root} does not exist")

    def read(self, path: str) -> bytes:
        try:
            return (self.root / path).read_bytes()
        except FileNotFoundError:
            raise SnapshotReaderError(f"blob {path} is missing from repository {self.root}") from None
        except OSError as err:
            raise SnapshotReaderError(f"cannot read blob {path} in {self.root}: {err.strerror}") from None

    def exists(self, path: str) -> bool:
        return (self.root / path).exists()

    def list(self, prefix: str) -> list[str]:
        folder = self.root / prefix if prefix else self.root
        if not folder.is_dir():
            return []
        return sorted(p.name for p in folder.iterdir())

    def size(self, path: str) -> int:
        try:
            return (self.root / path).stat().st_size
        except FileNotFoundError:
            return 0

    def local_path(self, path: str) -> Path:
        full = self.root / path
        if not full.is_file():
            raise SnapshotReaderError(f"blob {path} is missing from repository {self.root}")
        return full


class S3BlobStore:
    """A repository in an S3 bucket under a prefix (boto3; `endpoint` for moto/MinIO)."""

    def __init__(
        self,
        bucket: str,
        prefix: str = "",
        *,
        region: str | None = None,
        endpoint: str | None = None,
        cache_dir: str | Path | None = None,
        quick: bool = False,
    ) -> None:
        """`quick`: for a look `plan` takes on the side (a few seconds at most, one attempt);
        the reads that do the work keep botocore's patient retries."""
        import boto3
        from botocore.config import Config

        self.bucket = bucket
        self.prefix = prefix.strip("/")
        self.description = f"s3://{bucket}/{self.prefix}"
        self._client = boto3.client(
            "s3",
            region_name=region or os.environ.get("AWS_REGION") or "us-east-1",
            endpoint_url=endpoint,
            config=(
                Config(connect_timeout=2, read_timeout=5, retries={"max_attempts": 1, "mode": "standard"})
                if quick
                else Config(retries={"max_attempts": 5, "mode": "standard"})
            ),
        )
        key = hashlib.sha1(self.description.encode()).hexdigest()[:16]
        base = Path(cache_dir) if cache_dir else Path(tempfile.gettempdir()) / "mactl-snapshot-cache"
        self.cache_dir = base / key

    def _key(self, path: str) -> str:
        if path.startswith("/"):  # relative to the bucket root (OpenSearch's HASHED_PREFIX shard folders)
            return path[1:]
        return f"{self.prefix}/{path}" if self.prefix else path

    def read(self, path: str) -> bytes:
        # Lucene data blobs ("indices/<id>/<shard>/__...") never change once written: cache them.
        cacheable = "indices/" in path and "/__" in path
        cached = self.cache_dir / path.lstrip("/")
        if cacheable and cached.exists():
            return cached.read_bytes()
        try:
            body = self._client.get_object(Bucket=self.bucket, Key=self._key(path))["Body"]
            chunks = []
            for chunk in body.iter_chunks(1 << 20):  # stream: no giant single read
                chunks.append(chunk)
            data = b"".join(chunks)
        except self._client.exceptions.NoSuchKey:
            raise SnapshotReaderError(f"blob {path} is missing from repository {self.description}") from None
        except Exception as err:  # botocore errors: say which blob, no traceback
            raise _s3_error(f"cannot read blob {path} from {self.description}: {err}", err) from None
        if cacheable:
            cached.parent.mkdir(parents=True, exist_ok=True)
            tmp = cached.with_suffix(cached.suffix + f".tmp{os.getpid()}")
            tmp.write_bytes(data)
            os.replace(tmp, cached)
        return data

    def exists(self, path: str) -> bool:
        try:
            self._client.head_object(Bucket=self.bucket, Key=self._key(path))
            return True
        except Exception:
            return False

    def list(self, prefix: str) -> list[str]:
        full = self._key(prefix).rstrip("/") + "/" if prefix else (self.prefix + "/" if self.prefix else "")
        names: set[str] = set()
        try:
            paginator = self._client.get_paginator("list_objects_v2")
            for page in paginator.paginate(Bucket=self.bucket, Prefix=full, Delimiter="/"):
                for obj in page.get("Contents", []):
                    names.add(obj["Key"][len(full) :])
                for cp in page.get("CommonPrefixes", []):
                    names.add(cp["Prefix"][len(full) :].rstrip("/"))
        except Exception as err:
            raise _s3_error(f"cannot list {self.description}: {err}", err) from None
        return sorted(names)

    def size(self, path: str) -> int:
        try:
            return int(self._client.head_object(Bucket=self.bucket, Key=self._key(path))["ContentLength"])
        except Exception:
            return 0

    def local_path(self, path: str) -> Path:
        """Download (streaming, to the cache folder) once; later reads use the cached copy."""
        cached = self.cache_dir / path.lstrip("/")
        if cached.exists():
            return cached
        cached.parent.mkdir(parents=True, exist_ok=True)
        tmp = cached.with_suffix(cached.suffix + f".tmp{os.getpid()}")
        try:
            self._client.download_file(self.bucket, self._key(path), str(tmp))
        except Exception as err:
            tmp.unlink(missing_ok=True)
            raise SnapshotReaderError(f"cannot read blob {path} from {self.description}: {err}") from None
        os.replace(tmp, cached)
        return cached


def _s3_error(message: str, err: Exception) -> SnapshotReaderError:
    """A connection failure or timeout is `RepositoryUnreachableError` (the store said
    nothing); any other error is an answer about the repository."""
    from botocore.exceptions import ConnectionError as BotoConnectionError
    from botocore.exceptions import HTTPClientError

    if isinstance(err, (BotoConnectionError, HTTPClientError)):
        return RepositoryUnreachableError(message)
    return SnapshotReaderError(message)


def blob_store_for(
    location: str | Path,
    *,
    s3_endpoint: str | None = None,
    s3_region: str | None = None,
    cache_dir: str | Path | None = None,
    quick: bool = False,
) -> BlobStore:
    """`s3://bucket/prefix` → S3, anything else → a local folder. `quick`: see `S3BlobStore`."""
    text = str(location)
    if text.startswith("s3://"):
        rest = text[5:]
        bucket, _, prefix = rest.partition("/")
        if not bucket:
            raise SnapshotReaderError(f"repository {text!r} names no bucket")
        return S3BlobStore(bucket, prefix, region=s3_region, endpoint=s3_endpoint, cache_dir=cache_dir, quick=quick)
    return FsBlobStore(text)
