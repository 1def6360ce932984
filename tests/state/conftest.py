"""Fixtures for the state tests: a fresh local state folder, a fresh S3 bucket on moto's server."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import boto3
import pytest
from mactl.state import LocalStateConfig, S3StateConfig


@pytest.fixture(scope="session")
def state_s3_url(request: pytest.FixtureRequest) -> str:
    """The moto S3 server: the shared `s3_server` fixture when there is one, else MACTL_TEST_S3_URL."""
    try:
        return str(request.getfixturevalue("s3_server").url)
    except pytest.FixtureLookupError:
        url = os.environ.get("MACTL_TEST_S3_URL")
        if not url:
            pytest.fail("set MACTL_TEST_S3_URL to a moto server (source /tmp/mactl-dev/env.sh)")
        return url


@pytest.fixture(autouse=True)
def _aws_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """moto accepts any credentials; set some so boto3 never probes instance metadata."""
    for name, value in (("AWS_ACCESS_KEY_ID", "testing"), ("AWS_SECRET_ACCESS_KEY", "testing")):
        if not os.environ.get(name):
            monkeypatch.setenv(name, value)
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    monkeypatch.delenv("MACTL_WORKSPACE", raising=False)


@pytest.fixture
def local_state(tmp_path: Path) -> LocalStateConfig:
    return LocalStateConfig(path=str(tmp_path / ".mactl"))


@pytest.fixture
def s3_state(state_s3_url: str) -> Iterator[S3StateConfig]:
    """A bucket of its own (prefix `mactl-state-`), emptied and removed afterwards."""
    bucket = f"mactl-state-{uuid.uuid4().hex[:10]}"
    client = boto3.client("s3", endpoint_url=state_s3_url, region_name="us-east-1")
    client.create_bucket(Bucket=bucket)
    yield S3StateConfig(backend="s3", bucket=bucket, key="mactl/state.json", endpoint=state_s3_url)
    for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket):
        for obj in page.get("Contents", []):
            client.delete_object(Bucket=bucket, Key=obj["Key"])
    client.delete_bucket(Bucket=bucket)


@pytest.fixture(params=["local", pytest.param("s3", marks=pytest.mark.s3)])
def any_state(request: pytest.FixtureRequest) -> LocalStateConfig | S3StateConfig:
    """Each test using it runs against both backends."""
    fixture = "local_state" if request.param == "local" else "s3_state"
    return request.getfixturevalue(fixture)  # type: ignore[no-any-return]
