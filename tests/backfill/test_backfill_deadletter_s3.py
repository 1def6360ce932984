"""The dead-letter queue on S3 (the moto server): written per flush, read back, removed."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from typing import Any

import boto3
import pytest

from mactl.backfill import deadletter

pytestmark = pytest.mark.s3


@pytest.fixture
def s3_bucket(s3_server: Any) -> Iterator[str]:
    url = s3_server.url
    os.environ.setdefault("AWS_ACCESS_KEY_ID", "testing")
    os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "testing")
    os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")
    bucket = f"bf-dlq-{uuid.uuid4().hex[:8]}"
    client = boto3.client("s3", endpoint_url=url)
    client.create_bucket(Bucket=bucket)
    yield bucket
    for obj in client.list_objects_v2(Bucket=bucket).get("Contents", []):
        client.delete_object(Bucket=bucket, Key=obj["Key"])
    client.delete_bucket(Bucket=bucket)


def test_s3_dead_letters_round_trip(s3_bucket: str, s3_server: Any) -> None:
    s3_url = s3_server.url
    location = deadletter.Location(f"s3://{s3_bucket}/dlq", "backfill.a.b.c.d.e", s3_url)
    sink = deadletter.open_sink(location, "host:1:abc")
    for i in range(3):
        sink.add(
            deadletter.entry(
                stage=location.stage,
                unit="idx/0",
                index="idx",
                doc_id=f"d{i}",
                routing=None,
                source_line=b'{"n":"x"}\n',
                original=None,
                status=400,
                reason={"type": "mapper_parsing_exception"},
            )
        )
        if i == 1:
            sink.flush()
    sink.flush()
    files = deadletter.list_files(location)
    assert len(files) == 2 and all(f.name.startswith("dlq/backfill.a.b.c.d.e/") for f in files)
    entries = list(deadletter.read_entries(location, files))
    assert [e["id"] for e in entries] == ["d0", "d1", "d2"] and entries[0]["source"] == {"n": "x"}
    deadletter.remove_all(location)
    assert deadletter.list_files(location) == []
