"""Fixtures of the workflow tests: a unique, cleaned-up copy of the quickstart on the shared clusters."""

from __future__ import annotations

import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from wf_helpers import EXAMPLES, Quickstart, free_port, mactl  # type: ignore[import-not-found]


@pytest.fixture
def quickstart(tmp_path: Path, es710: Any, os2: Any) -> Iterator[Quickstart]:
    """The quickstart with its source renamed (unique stage addresses: the backfill's working
    index is named after its address) and unique index names, ports and repository folder."""
    import wf_data  # type: ignore[import-not-found]

    uid = uuid.uuid4().hex[:6]
    prefix, source_name = f"wf{uid}", f"wf{uid}"
    text = (EXAMPLES / "quickstart.yaml").read_text().replace("      name: es\n", f"      name: {source_name}\n")
    text = text.replace("name: mactl-quickstart,", f"name: wf-{uid},")
    assert source_name in text and f"wf-{uid}" in text
    config = tmp_path / "quickstart.yaml"
    config.write_text(text)
    repo_dir = es710.repo_folder("workflow", uid)
    port = free_port()
    env = {
        "MACTL_VAR_source_url": es710.url,
        "MACTL_VAR_target_url": os2.url,
        "MACTL_VAR_repo_dir": str(repo_dir),
        "MACTL_VAR_products_index": f"{prefix}-products",
        "MACTL_VAR_logs_index": f"{prefix}-logs-2024.01",
        "MACTL_VAR_templates": f"{prefix}-*",
        "MACTL_VAR_proxy_port": str(port),
    }
    wf_data.load(es710.url, prefix)
    qs = Quickstart(tmp_path, config, prefix, source_name, repo_dir, port, env)
    try:
        yield qs
    finally:
        mactl(tmp_path, "destroy", "-auto-approve", "-c", str(config), env=env, timeout=300)
        wf_data.drop(es710.url, prefix)
        wf_data.drop(os2.url, prefix)
        wf_data.request(es710.url, "DELETE", f"/_snapshot/wf-{uid}")
        shutil.rmtree(repo_dir, ignore_errors=True)
