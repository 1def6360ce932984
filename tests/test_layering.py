"""Import layering: lower packages never import higher ones, so there are no import loops.

Two checks. A static one reads every `import` in the source (including those inside
functions and under `TYPE_CHECKING`) and requires each to point to a lower layer. A
runtime one imports the bottom packages in a fresh interpreter and looks at what landed
in `sys.modules`: `mactl.schema` must pull in no other mactl package, `mactl.state` and
`mactl.config` no provider, and every provider module must import on its own.
"""

from __future__ import annotations

import ast
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
# Source folders and the package each installs as (see the package-dir mapping in pyproject.toml).
SOURCES = {"mactl": ROOT / "mactl", "mactl.providers": ROOT / "providers", "mactl.state": ROOT / "state"}
SKIPPED: set[str] = set()  # units left out of the layering (none: development tooling lives in devtools/)

# Bottom first. A module may import from its own unit (`mactl.<first part>`) and from
# lower layers only. A new package or top-level module goes into one of these layers.
LAYERS: list[set[str]] = [
    {"mactl", "mactl.errors", "mactl.schema", "mactl.templating", "mactl.credentials"},
    {"mactl.sigv4", "mactl.transforms", "mactl.indexfilter", "mactl.snapshot_reader", "mactl.state", "mactl.retrying"},
    {"mactl.cluster", "mactl.masking", "mactl.address"},
    {"mactl.backfill", "mactl.capture", "mactl.metadata"},
    {"mactl.audit", "mactl.executors"},
    {"mactl.providers", "mactl.config"},
    {"mactl.graph"},
    {"mactl.plan"},
    {"mactl.apply"},
    {"mactl.ui"},  # the web console: the CLI hands it its own code paths (mactl.ui.sources)
    {"mactl.cli"},
    {"mactl.__main__"},
]
RANK = {unit: i for i, layer in enumerate(LAYERS) for unit in layer}


def _unit(module: str) -> str:
    parts = module.split(".")
    return ".".join(parts[:2])


def _module_name(package: str, root: Path, path: Path) -> str:
    parts = [p for p in path.relative_to(root).with_suffix("").parts if p != "__init__"]
    return ".".join([package, *parts])


def _modules() -> list[tuple[str, Path]]:
    found = []
    for package, root in SOURCES.items():
        for path in sorted(root.rglob("*.py")):
            name = _module_name(package, root, path)
            if package == "mactl" and _unit(name) in ("mactl.providers", "mactl.state"):
                continue  # only the mapped folders install under these names
            if _unit(name) not in SKIPPED:
                found.append((name, path))
    return found


def _imports(path: Path) -> list[tuple[int, str]]:
    out = []
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            out += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            out.append((node.lineno, node.module))
    return [(line, name) for line, name in out if name == "mactl" or name.startswith("mactl.")]


def test_every_unit_has_a_layer() -> None:
    missing = sorted({_unit(name) for name, _ in _modules()} - set(RANK))
    assert not missing, f"put these in a layer of tests/test_layering.py: {missing}"


def test_no_import_goes_up_or_sideways() -> None:
    problems = []
    for name, path in _modules():
        unit = _unit(name)
        for line, imported in _imports(path):
            target = _unit(imported)
            if target == unit or target in SKIPPED or target not in RANK or unit not in RANK:
                continue
            if RANK[target] >= RANK[unit]:
                problems.append(f"{path.relative_to(ROOT)}:{line}: {unit} (layer {RANK[unit]}) imports {imported}")
    assert not problems, "imports that go up (or sideways) a layer:\n" + "\n".join(problems)


def _loaded_after(code: str) -> set[str]:
    """The mactl modules loaded by `code` in a fresh interpreter."""
    script = (
        textwrap.dedent(code) + "\nimport sys\nprint('\\n'.join(m for m in sys.modules if m.startswith('mactl')))\n"
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert done.returncode == 0, done.stderr
    return set(done.stdout.split())


def test_schema_pulls_in_no_other_mactl_package() -> None:
    schema_modules = sorted(
        _module_name("mactl", SOURCES["mactl"], p) for p in (SOURCES["mactl"] / "schema").glob("*.py")
    )
    loaded = _loaded_after("\n".join(f"import {m}" for m in schema_modules))
    assert {_unit(m) for m in loaded} <= {"mactl", "mactl.schema", "mactl.errors"}, sorted(loaded)


@pytest.mark.parametrize(
    ("code", "forbidden"),
    [
        ("import mactl.state", {"mactl.config", "mactl.providers", "mactl.cli", "mactl.graph", "mactl.plan"}),
        ("import mactl.config", {"mactl.providers", "mactl.cli", "mactl.graph", "mactl.plan", "mactl.apply"}),
        ("from mactl.config import Config, load_config", {"mactl.providers", "mactl.cli"}),
        ("import mactl.providers.snapshot", {"mactl.config", "mactl.cli", "mactl.graph", "mactl.plan"}),
        ("import mactl.providers.registry", {"mactl.config", "mactl.cli"}),
        ("import mactl.capture.replayer", {"mactl.config", "mactl.providers", "mactl.cli"}),
        ("import mactl.backfill.spec", {"mactl.config", "mactl.providers", "mactl.cli"}),
        ("import mactl.metadata.evaluate", {"mactl.config", "mactl.providers", "mactl.cli"}),
        ("import mactl.audit.checks", {"mactl.config", "mactl.providers", "mactl.cli"}),
        ("import mactl.transforms", {"mactl.config", "mactl.providers", "mactl.cli"}),
    ],
)
def test_a_package_imports_alone_and_pulls_in_nothing_above_it(code: str, forbidden: set[str]) -> None:
    loaded = _loaded_after(code)
    assert not {m for m in loaded if _unit(m) in forbidden}, sorted(loaded)


def test_every_provider_module_imports_alone() -> None:
    from mactl.providers.registry import BUILTIN

    for target in BUILTIN.values():
        _loaded_after(f"import {target.partition(':')[0]}")


def test_the_providers_use_the_schema_inputs() -> None:
    from mactl.providers.registry import BUILTIN, get_provider

    from mactl.schema.stages import BUILTIN_INPUTS

    assert set(BUILTIN_INPUTS) == set(BUILTIN)
    for stage_type, model in BUILTIN_INPUTS.items():
        assert get_provider(stage_type).Inputs is model, stage_type
