"""Smoke test: put and get an object on the moto S3 server."""

from __future__ import annotations

import uuid

import boto3
import pytest

pytestmark = pytest.mark.s3


def test_put_and_get_object(s3_server) -> None:
    s3 = boto3.client(
        "s3",
        endpoint_url=s3_server.url,
        region_name="us-east-1",
        aws_access_key_id="mactl",
        aws_secret_access_key="mactl-secret",
    )
    bucket = f"smoke-{uuid.uuid4().hex[:12]}"
    body = bytes(range(256)) * 16
    s3.create_bucket(Bucket=bucket)
    try:
        s3.put_object(Bucket=bucket, Key="dir/object.bin", Body=body)
        assert s3.get_object(Bucket=bucket, Key="dir/object.bin")["Body"].read() == body
        keys = [o["Key"] for o in s3.list_objects_v2(Bucket=bucket)["Contents"]]
        assert keys == ["dir/object.bin"]
    finally:
        for obj in s3.list_objects_v2(Bucket=bucket).get("Contents", []):
            s3.delete_object(Bucket=bucket, Key=obj["Key"])
        s3.delete_bucket(Bucket=bucket)
