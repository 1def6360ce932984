"""`plan` names the indices that cannot be backfilled for an S3 repository too, and says so
when the repository does not answer, without waiting out botocore's retries.

The repository is the real one ES 7.10.2 wrote for the ledger tests, uploaded blob for blob
to the moto S3 server: an S3 repository holds the same tree of blobs as a folder one.
"""

from __future__ import annotations

import socket
import uuid
from pathlib import Path
from typing import Any

import boto3
import ledger_data as data  # type: ignore[import-not-found]
import pytest
from mactl.providers.backfill import BackfillProvider

from mactl.schema.backfill import BackfillInputs

pytestmark = [pytest.mark.cluster]


def _inputs(repository: dict[str, Any], indices: list[str]) -> BackfillInputs:
    return BackfillInputs.model_validate(
        {
            "target": {"name": "target", "endpoint": "http://127.0.0.1:9"},
            "repository": repository,
            "snapshotName": data.SNAPSHOT,
            "indices": [{"names": indices}],
        }
    )


def _upload(folder: Path, endpoint: str, bucket: str, prefix: str) -> None:
    s3 = boto3.client(
        "s3", endpoint_url=endpoint, region_name="us-east-1", aws_access_key_id="k", aws_secret_access_key="s"
    )
    s3.create_bucket(Bucket=bucket)
    for path in folder.rglob("*"):
        if path.is_file():
            s3.upload_file(str(path), bucket, f"{prefix}/{path.relative_to(folder).as_posix()}")


def test_plan_names_an_unmigratable_index_in_an_s3_repository(
    ledger_source: Any, s3_server: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "k")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "s")
    bucket = f"ledger-plan-{uuid.uuid4().hex[:8]}"
    _upload(Path(ledger_source.repo_dir), s3_server.url, bucket, "repo")
    repository = {"type": "s3", "bucket": bucket, "basePath": "repo", "endpoint": s3_server.url}

    (note,) = BackfillProvider().plan_notes(_inputs(repository, [data.NESTED, data.NOSRC]))
    assert note.startswith(f"index {data.NOSRC} cannot be backfilled: _source is disabled")
    assert "the stage will fail before writing any document" in note
    assert BackfillProvider().plan_notes(_inputs(repository, [data.NESTED])) == []
    # a snapshot that is not taken yet: nothing to say, apply checks it
    missing = {**repository, "basePath": "not-there"}
    assert BackfillProvider().plan_notes(_inputs(missing, [data.NOSRC])) == []


def test_plan_says_the_check_was_not_made_when_the_s3_endpoint_does_not_answer(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "k")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "s")
    with socket.socket() as sock:  # a port nothing listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    repository = {"type": "s3", "bucket": "b", "endpoint": f"http://127.0.0.1:{port}"}
    (note,) = BackfillProvider().plan_notes(_inputs(repository, [data.NOSRC]))
    assert note.startswith("not checked which selected indices can be backfilled (cannot list s3://b/")
    assert note.endswith("apply checks before writing")
