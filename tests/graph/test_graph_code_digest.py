"""Transform code in the stage inputs (issue 14 item 6), without importing it.

`codeDigest` is the sha256 of a transform's code file: its `.j2` file, or the source of
the module its callable lives in, found under the same rule as the import (the config's
folder first) but without running any of it, not even with `MACTL_NO_PYTHON_TRANSFORMS`.
"""

from __future__ import annotations

import hashlib
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from mactl.config.loader import load_config
from mactl.graph.expand import expand
from mactl.schema.common import TransformSpec
from mactl.transforms import NO_PYTHON_ENV, code_digest, import_callable, locate_module

CONFIG = """\
targets: [{endpoint: 'http://t:9200'}]
source: {endpoint: 'http://s:9200', snapshotRepository: {type: fs, location: /r}}
static-migration-configs:
  - indices: {names: a}
    metadata: {transforms: [index.j2]}
    documentBackfillConfigs: {transforms: ['cdpkg.cdmod:fix', '{"_source": {{ _source | tojson }}}']}
"""


@pytest.fixture
def folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A config folder with a package whose `__init__` and module leave marks when run."""
    pkg = tmp_path / "cdpkg"
    pkg.mkdir()
    (pkg / "__init__.py").write_text(f"open({str(tmp_path / 'ran-init')!r}, 'w').close()\n")
    (pkg / "cdmod.py").write_text(
        f"open({str(tmp_path / 'ran-mod')!r}, 'w').close()\n\ndef fix(ctx):\n    return ctx\n"
    )
    (tmp_path / "index.j2").write_text("{{ item | tojson }}\n")
    (tmp_path / "mactl.yaml").write_text(CONFIG)
    monkeypatch.setattr(sys, "path", list(sys.path))  # whatever the rule adds is undone
    yield tmp_path
    for name in ("cdpkg", "cdpkg.cdmod"):
        sys.modules.pop(name, None)


def _sha(path: Path) -> str:
    return "sha256:" + hashlib.sha256(path.read_bytes()).hexdigest()


def test_the_module_is_found_beside_the_config_without_running_it(
    folder: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(NO_PYTHON_ENV, "1")
    monkeypatch.chdir("/")
    assert locate_module("cdpkg.cdmod", base_dir=folder) == folder / "cdpkg" / "cdmod.py"
    spec = TransformSpec(kind="python", callable="cdpkg.cdmod:fix")
    assert code_digest(spec, base_dir=folder) == _sha(folder / "cdpkg" / "cdmod.py")
    assert locate_module("cdpkg.nothere", base_dir=folder) is None
    assert code_digest(TransformSpec(kind="python", callable="nosuchmod_x:fix"), base_dir=folder) is None
    assert code_digest(TransformSpec(kind="jinja", template="{}"), base_dir=folder) is None
    assert not (folder / "ran-init").exists() and not (folder / "ran-mod").exists()
    assert "cdpkg" not in sys.modules and str(folder) not in sys.path


def test_the_import_uses_the_same_rule(folder: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir("/")
    fn = import_callable("cdpkg.cdmod:fix", base_dir=folder)
    assert fn({"a": 1}) == {"a": 1}
    assert sys.modules["cdpkg.cdmod"].__file__ == str(locate_module("cdpkg.cdmod", base_dir=folder))
    assert sys.path[0] == str(folder)


def test_expand_records_each_code_file_digest(folder: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(NO_PYTHON_ENV, "0")
    loaded = load_config(folder / "mactl.yaml", env={})
    with_code = expand(loaded.config, config_dir=folder)
    without = expand(loaded.config)
    stages = with_code.stages
    meta = next(s for a, s in stages.items() if a.startswith("metadata."))
    backfill = next(s for a, s in stages.items() if a.startswith("backfill."))
    assert meta.inputs["transforms"][0]["codeDigest"] == _sha(folder / "index.j2")
    assert backfill.inputs["transforms"][0]["codeDigest"] == _sha(folder / "cdpkg" / "cdmod.py")
    assert "codeDigest" not in backfill.inputs["transforms"][1]  # inline: its text is in the inputs already
    # without the config's folder (tests, benchmarks) no key at all, so existing digests stay as they were
    for stage in without.stages.values():
        assert all("codeDigest" not in t for t in stage.inputs.get("transforms") or [])
    assert not (folder / "ran-mod").exists()

    (folder / "index.j2").write_text("{{ item | tojson }}  {# edited #}\n")
    again = expand(loaded.config, config_dir=folder)
    meta_again = next(s for a, s in again.stages.items() if a.startswith("metadata."))
    assert meta_again.inputs["transforms"][0]["codeDigest"] != meta.inputs["transforms"][0]["codeDigest"]
