"""A transform's relative `file:` starts at the config's folder, wherever `mactl apply` runs.

`plan --evaluate` and `mactl worker` always resolved it there; `apply` now does too: the
metadata stage, the backfill's worker processes and the validate stage's sample check all
read `index.j2` and `doc.j2` next to the config while mactl runs from another folder.
"""

from __future__ import annotations

import shutil
import uuid
from pathlib import Path
from typing import Any

import pytest
from wf_data import docs_of  # type: ignore[import-not-found]
from wf_helpers import EXAMPLES, mactl  # type: ignore[import-not-found]

pytestmark = [pytest.mark.cluster, pytest.mark.slow]

INDEX_TEMPLATE = """\
{% set b = item.body %}
{% do b.settings.update({"index.number_of_replicas": "0"}) %}
{"name": "{{ item.name }}", "body": {{ b | tojson }}}
"""
DOC_TEMPLATE = '{"_source": {{ dict(_source, migrated=true) | tojson }}}\n'


def test_apply_from_another_folder_reads_transform_files_beside_the_config(
    tmp_path: Path, es710: Any, os2: Any
) -> None:
    import wf_data  # type: ignore[import-not-found]

    uid = uuid.uuid4().hex[:6]
    prefix, index = f"wc{uid}", f"wc{uid}-products"
    conf, elsewhere = tmp_path / "conf", tmp_path / "elsewhere"
    conf.mkdir()
    elsewhere.mkdir()
    text = (
        (EXAMPLES / "incremental.yaml")
        .read_text()
        .replace("      name: es\n", f"      name: {prefix}\n")
        .replace("name: mactl-incremental,", f"name: wc-{uid},")
        .replace(
            "              templates: false\n",
            "              templates: false\n              transforms: [{kind: jinja, file: index.j2}]\n",
        )
        .replace(
            "                  - kind: jinja\n                    template: '{\"_source\": {{ _source | tojson }}}'\n",
            "                  - {kind: jinja, file: doc.j2}\n",
        )
    )
    assert "file: index.j2" in text and "file: doc.j2" in text
    (conf / "incremental.yaml").write_text(text)
    (conf / "index.j2").write_text(INDEX_TEMPLATE)
    (conf / "doc.j2").write_text(DOC_TEMPLATE)
    repo_dir = es710.repo_folder("workflow", f"cdir-{uid}")
    env = {
        "MACTL_VAR_source_url": es710.url,
        "MACTL_VAR_target_url": os2.url,
        "MACTL_VAR_repo_dir": str(repo_dir),
        "MACTL_VAR_index": index,
        "MACTL_VAR_sample_percent": "100",
    }

    def run(*args: str) -> Any:
        # a relative config path, from a folder that holds neither transform file
        return mactl(elsewhere, *args, "-c", "../conf/incremental.yaml", env=env)

    wf_data.load(es710.url, prefix)
    try:
        applied = run("apply", "-auto-approve")
        assert applied.code == 0, applied.out[-2000:] + applied.err[-2000:]
        docs = docs_of(os2.url, index)
        assert docs and all(doc.get("migrated") is True for doc in docs.values())
        settings = wf_data.request(os2.url, "GET", f"/{index}/_settings")[index]["settings"]["index"]
        assert settings["number_of_replicas"] == "0"
        assert not (elsewhere / ".mactl-incremental").exists()  # the state is beside the config, as before
    finally:
        run("destroy", "-auto-approve")
        wf_data.drop(es710.url, prefix)
        wf_data.drop(os2.url, prefix)
        wf_data.request(es710.url, "DELETE", f"/_snapshot/wc-{uid}")
        shutil.rmtree(repo_dir, ignore_errors=True)
