"""Preflight before anything is undone, and transform code as part of the stage inputs (issue 14, items 5-6).

On the real clusters: migrate one index with a `.j2` document transform, then
- edit the `.j2` file: `plan` shows the backfill replaced, naming the changed code file;
  put it back: "No changes";
- point the transform at a Python module the config's folder cannot import (missing, then
  one whose own import fails): `validate` and `plan` fail naming the transform's config
  path, and `apply` refuses before any rollback: the target keeps its index and every
  document, and the state is byte for byte what it was;
- with a module that imports, `apply` replaces the backfill with it; editing the module
  shows in `plan` as a change of `transforms[0]`'s code, an untouched module as none.
"""

from __future__ import annotations

import shutil
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from wf_data import docs_of  # type: ignore[import-not-found]
from wf_helpers import EXAMPLES, mactl  # type: ignore[import-not-found]

pytestmark = [pytest.mark.cluster, pytest.mark.slow]

INLINE = "                  - kind: jinja\n                    template: '{\"_source\": {{ _source | tojson }}}'\n"
DOC_TEMPLATE = '{"_source": {{ dict(_source, migrated="j2") | tojson }}}\n'
TRANSFORM_PATH = (
    "source-migration-configurations[0].snapshot-and-migration-configs[0].migrations[0]"
    ".documentBackfillConfigs[0].transforms[0]"
)


@dataclass
class Incremental:
    """`examples/incremental.yaml` in `conf/`, for one index `<prefix>-products` of ES 7.10 → OS 2.19,
    with its own source name, snapshot repository and state (so tests can run side by side)."""

    folder: Path
    es_url: str
    os_url: str
    prefix: str
    repo_dir: Path
    repository: str  # the snapshot repository's name on the source
    base: str

    @classmethod
    def make(cls, tmp_path: Path, es710: Any, os2: Any, letters: str) -> Incremental:
        uid = uuid.uuid4().hex[:6]
        prefix = f"{letters}{uid}"
        base = (
            (EXAMPLES / "incremental.yaml")
            .read_text()
            .replace("      name: es\n", f"      name: {prefix}\n")
            .replace("name: mactl-incremental,", f"name: {letters}-{uid},")  # the repository's name
        )
        (tmp_path / "conf").mkdir()
        repository = f"{letters}-{uid}"
        made = cls(tmp_path, es710.url, os2.url, prefix, es710.repo_folder("workflow", repository), repository, base)
        made.write(base)
        return made

    @property
    def conf(self) -> Path:
        return self.folder / "conf"

    @property
    def index(self) -> str:
        return f"{self.prefix}-products"

    def write(self, config: str) -> None:
        (self.conf / "incremental.yaml").write_text(config)

    def run(self, *args: str) -> Any:
        env = {
            "MACTL_VAR_source_url": self.es_url,
            "MACTL_VAR_target_url": self.os_url,
            "MACTL_VAR_repo_dir": str(self.repo_dir),
            "MACTL_VAR_index": self.index,
            "MACTL_VAR_sample_percent": "100",
        }
        return mactl(self.folder, *args, "-c", "conf/incremental.yaml", env=env)

    def cleanup(self) -> None:
        import wf_data  # type: ignore[import-not-found]

        self.run("destroy", "-auto-approve")
        wf_data.drop(self.es_url, self.prefix)
        wf_data.drop(self.os_url, self.prefix)
        wf_data.request(self.es_url, "DELETE", f"/_snapshot/{self.repository}")
        shutil.rmtree(self.repo_dir, ignore_errors=True)


def test_broken_transform_refused_before_any_rollback_and_code_edits_show_in_plan(
    tmp_path: Path, es710: Any, os2: Any
) -> None:
    import wf_data  # type: ignore[import-not-found]

    project = Incremental.make(tmp_path, es710, os2, "pf")
    prefix, index, module, conf, base, run = (
        project.prefix,
        project.index,
        f"{project.prefix}_transforms",
        project.conf,
        project.base,
        project.run,
    )
    assert INLINE in base

    def configure(transform: str) -> None:
        project.write(base.replace(INLINE, f"                  - {transform}\n"))

    configure("{kind: jinja, file: doc.j2}")
    (conf / "doc.j2").write_text(DOC_TEMPLATE)

    backfill = f"backfill.{prefix}.snap.os2.m0.b0"
    wf_data.load(es710.url, prefix)
    try:
        applied = run("apply", "-auto-approve")
        assert applied.code == 0, applied.out[-2000:] + applied.err[-2000:]
        migrated = docs_of(os2.url, index)
        assert len(migrated) == 400 and all(doc["migrated"] == "j2" for doc in migrated.values())
        unchanged = run("plan", "-detailed-exitcode")
        assert unchanged.code == 0 and "No changes" in unchanged.out, unchanged.out + unchanged.err

        # -- the .j2 file's contents are part of the inputs -------------------------------------
        (conf / "doc.j2").write_text(DOC_TEMPLATE.replace('"j2"', '"j2-edited"'))
        edited = run("plan", "-detailed-exitcode")
        assert edited.code == 2, edited.out + edited.err
        assert "transforms[0] code changed (doc.j2)" in edited.out
        assert f"{backfill} must be REPLACED" in edited.out, edited.out
        (conf / "doc.j2").write_text(DOC_TEMPLATE)
        back = run("plan", "-detailed-exitcode")
        assert back.code == 0 and "No changes" in back.out, back.out + back.err

        # -- a Python transform the config's folder cannot import ---------------------------------
        state_before = run("state", "pull")
        assert state_before.code == 0, state_before.err
        configure(f"{module}:fix")
        for broken, why in (
            (None, f"No module named '{module}'"),
            (f"import {prefix}_missing_dependency\n", f"No module named '{prefix}_missing_dependency'"),
        ):
            if broken is not None:
                (conf / f"{module}.py").write_text(broken + "def fix(ctx):\n    return ctx\n")
            expected = f"{TRANSFORM_PATH}: transform {module}:fix: cannot import it ({why})"
            validated = run("validate")
            assert validated.code == 1 and expected in validated.err, validated.out + validated.err
            planned = run("plan")
            assert planned.code == 1 and expected in planned.err, planned.out + planned.err
            refused = run("apply", "-auto-approve")
            assert refused.code == 1, refused.out + refused.err
            assert "preflight failed: 1 problem(s); nothing was rolled back or changed" in refused.err
            assert expected in refused.err and "Traceback" not in refused.err
            # nothing was touched: every document still on the target, the state as it was
            assert docs_of(os2.url, index) == migrated
            assert run("state", "pull").out == state_before.out

        # -- a module that imports: applied, and its code is part of the inputs ------------------
        (conf / f"{module}.py").write_text(
            'def fix(ctx):\n    return {"_source": dict(ctx["_source"], migrated="py")}\n'
        )
        assert run("validate").code == 0
        replaced = run("apply", "-auto-approve")
        assert replaced.code == 0, replaced.out[-2000:] + replaced.err[-2000:]
        after = docs_of(os2.url, index)
        assert set(after) == set(migrated) and all(doc["migrated"] == "py" for doc in after.values())
        assert run("plan", "-detailed-exitcode").code == 0
        (conf / f"{module}.py").write_text(
            'def fix(ctx):\n    return {"_source": dict(ctx["_source"], migrated="py2")}\n'
        )
        changed = run("plan", "-detailed-exitcode")
        assert changed.code == 2 and f"transforms[0] code changed ({module}.py)" in changed.out, changed.out
    finally:
        (conf / f"{module}.py").write_text("def fix(ctx):\n    return ctx\n")
        project.cleanup()


PIN_PIPELINE = """def pin(ctx):
    item = ctx["item"]
    if item["kind"] != "index":
        return item
    body = dict(item["body"])
    body["settings"] = {**body.get("settings", {}), "index.default_pipeline": "PIPELINE"}
    return {**item, "body": body}
"""


def test_an_index_naming_a_pipeline_that_exists_nowhere_is_refused_before_any_rollback(
    tmp_path: Path, es710: Any, os2: Any
) -> None:
    """A metadata transform that points the index at an ingest pipeline neither cluster has:
    the metadata stage (and all built on it) would be replaced, and the new index would reject
    every document. The preflight runs the metadata evaluation first and stops the apply with
    the index and the pipeline named, before the old index and its documents are rolled back."""
    import wf_data  # type: ignore[import-not-found]

    project = Incremental.make(tmp_path, es710, os2, "pp")
    prefix, index, conf, base, run = project.prefix, project.index, project.conf, project.base, project.run
    module, pipeline = f"{prefix}_meta", f"{prefix}-nowhere"
    plain = "            metadata:\n              templates: false\n"
    assert plain in base
    (conf / f"{module}.py").write_text(PIN_PIPELINE.replace("PIPELINE", pipeline))

    wf_data.load(es710.url, prefix)
    try:
        applied = run("apply", "-auto-approve")
        assert applied.code == 0, applied.out[-2000:] + applied.err[-2000:]
        migrated = docs_of(os2.url, index)
        assert len(migrated) == 400
        state_before = run("state", "pull").out

        project.write(base.replace(plain, plain + f"              transforms: ['{module}:pin']\n"))
        planned = run("plan", "-detailed-exitcode")
        # only that index's instance is redone (the stage's other items would stay)
        assert planned.code == 2 and f'-/+ ["{index}"]  # its definition changed' in planned.out, planned.out
        assert f"index {index} cannot be migrated: index.default_pipeline names" in planned.out + planned.err
        refused = run("apply", "-auto-approve")
        assert refused.code == 1, refused.out + refused.err
        assert "preflight failed: 1 problem(s); nothing was rolled back or changed" in refused.err
        assert (
            f"metadata.{prefix}.snap.os2.m0: index {index} cannot be migrated: index.default_pipeline names"
            f" ingest pipeline '{pipeline}', which will not be on the target" in refused.err
        ), refused.err
        assert "Traceback" not in refused.err
        assert docs_of(os2.url, index) == migrated  # the old index and every document are still there
        assert run("state", "pull").out == state_before
    finally:
        project.write(base)
        project.cleanup()
