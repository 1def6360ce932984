"""Every example under examples/ validates and plans (-refresh=false), with the plan pinned.

Pinned with syrupy: a change in what an example expands to, or in how it is planned,
shows up as a snapshot diff to review. Run from a copy of examples/ so no state lands in
the repository. The quickstart also runs for real (test_wf_quickstart.py).
"""

from __future__ import annotations

import shutil
import uuid
from pathlib import Path
from typing import Any

import pytest
from wf_helpers import EXAMPLES, mactl  # type: ignore[import-not-found]

CASES: dict[str, tuple[str, list[str]]] = {
    "quickstart": ("quickstart.yaml", ["-var", "repo_dir=/snapshots/quickstart"]),
    "incremental": ("incremental.yaml", ["-var", "repo_dir=/snapshots/incremental", "-var", "sample_percent=10"]),
    "ab-targets": ("ab-targets.yaml", ["-var", "repo_dir=/snapshots/ab"]),
    "multi-source": ("multi-source.yaml", ["-var", "repo_dir=/snapshots/multi"]),
    "regions-us-east-prod": ("regions/mactl.yaml", ["-var-file", "regions/us-east.yaml", "-var", "target=prod"]),
    "regions-eu-west-staging": ("regions/mactl.yaml", ["-var-file", "regions/eu-west.yaml"]),
}


@pytest.fixture
def examples(tmp_path: Path) -> Path:
    folder = tmp_path / "examples"
    shutil.copytree(EXAMPLES, folder)
    return folder


@pytest.mark.parametrize("case", sorted(CASES))
def test_example_validates_and_plans(case: str, examples: Path, snapshot: Any) -> None:
    config, args = CASES[case]
    valid = mactl(examples, "validate", "-c", config, *args)
    assert valid.code == 0, valid.err
    assert "is valid" in valid.out
    plan = mactl(examples, "plan", "-refresh=false", "-c", config, *args)
    assert plan.code == 0, plan.err
    assert "Traceback" not in plan.err
    assert plan.out == snapshot


def test_regions_keep_one_state_per_region_and_target(examples: Path) -> None:
    """`-var target=prod` picks the prod endpoint and its own state file (nothing shared with staging)."""
    for target in ("staging", "prod"):
        out = mactl(
            examples,
            "plan",
            "-refresh=false",
            "-c",
            "regions/mactl.yaml",
            "-var-file",
            "regions/us-east.yaml",
            "-var",
            f"target={target}",
            "-out",
            f"{target}.plan",
        )
        assert out.code == 0, out.err
        assert f'"name":"{target}"' in out.out
    graph = mactl(
        examples, "graph", "-c", "regions/mactl.yaml", "-var-file", "regions/us-east.yaml", "-var", "target=prod"
    )
    assert "backfill.us_east.snap.prod.m0.b0" in graph.out


def test_ab_targets_draws_the_second_target_as_clones(examples: Path) -> None:
    graph = mactl(examples, "graph", "-c", "ab-targets.yaml", "-var", "repo_dir=/snapshots/ab")
    assert graph.code == 0, graph.err
    assert "clone" in graph.out.lower() and "validate.es.b" in graph.out


@pytest.mark.s3
def test_team_s3_state_plans_against_s3_and_locks(examples: Path, s3_server: Any) -> None:
    import boto3

    bucket = f"wf-team-{uuid.uuid4().hex[:8]}"
    s3 = boto3.client(
        "s3",
        endpoint_url=s3_server.url,
        region_name="us-east-1",
        aws_access_key_id="test",
        aws_secret_access_key="test",
    )
    s3.create_bucket(Bucket=bucket)
    env = {"AWS_ACCESS_KEY_ID": "test", "AWS_SECRET_ACCESS_KEY": "test"}
    args = [
        "-c",
        "team-s3-state.yaml",
        "-var",
        f"s3_endpoint={s3_server.url}",
        "-var",
        f"state_bucket={bucket}",
        "-var",
        "repo_dir=/snapshots/team",
    ]
    try:
        valid = mactl(examples, "validate", *args, env=env)
        assert valid.code == 0, valid.err
        plan = mactl(examples, "plan", "-refresh=false", *args, env=env)
        assert plan.code == 0, plan.err
        assert "Plan: 4 to create" in plan.out
        status = mactl(examples, "status", "--json", *args, env=env)
        assert status.code == 0, status.err
        assert f"s3://{bucket}/" in status.out  # the state lives in the bucket
    finally:
        for obj in s3.list_objects_v2(Bucket=bucket).get("Contents", []):
            s3.delete_object(Bucket=bucket, Key=obj["Key"])
        s3.delete_bucket(Bucket=bucket)
