"""User transforms: Jinja2 templates or Python callables, compiled once, applied many times.

Metadata, backfill and replay all let users reshape what they move. A transform takes a
context dict and returns the new JSON value, or `DROP` to drop the item. A Jinja2
template renders JSON text from the context (StrictUndefined, so a typo is an error);
a callable `pkg.module:function` receives the context dict and returns the value.
Errors name the transform and, for templates, the template line.

Templates render in `mactl.templating`'s sandbox and are checked when compiled (a
private attribute, `{% include %}`, an unknown filter… are refused before any item is
rendered; `mactl validate` also refuses names the transform's context does not have,
`METADATA_NAMES` and the like). A Python callable is code run with mactl's privileges: with
`MACTL_NO_PYTHON_TRANSFORMS=1` (what `--no-python-transforms` sets) it is refused before
its module is imported.
"""

from __future__ import annotations

import hashlib
import importlib
import json
import os
import sys
from collections.abc import Callable, Mapping, Sequence
from importlib.machinery import PathFinder
from pathlib import Path
from typing import Any

import jinja2
from jinja2.exceptions import SecurityError

from mactl.errors import ConfigError, MactlError
from mactl.schema.common import TransformSpec
from mactl.templating import DROP_MARKER, TemplateProblem, compile_template, transform_environment


class _Drop:
    """Sentinel: the transform dropped the item."""

    def __repr__(self) -> str:
        return "DROP"


DROP: Any = _Drop()


class TransformError(MactlError):
    """A transform failed on one item. The message names the transform and the line."""


METADATA_NAMES = frozenset({"item", "source_version", "target_version"})
"""What a metadata transform sees (besides the sandbox's globals); `mactl validate` checks templates against it."""
DOCUMENT_NAMES = frozenset({"_index", "_id", "_routing", "_source", "_type"})
"""What a document transform sees (`_type` only for pre-7 indices)."""
REPLAY_NAMES = frozenset({"request", "source", "connection"})
"""What a replay transform sees."""

NO_PYTHON_ENV = "MACTL_NO_PYTHON_TRANSFORMS"
"""Set to 1 (or `--no-python-transforms`) to refuse `module:function` transforms."""


def python_transforms_refused(env: Mapping[str, str] | None = None) -> bool:
    """True when `MACTL_NO_PYTHON_TRANSFORMS` is set to anything but empty, 0, false or no."""
    value = (os.environ if env is None else env).get(NO_PYTHON_ENV, "")
    return value.strip().lower() not in ("", "0", "false", "no", "off")


def python_refusal(callable_name: str | None) -> str:
    """Why a Python transform is refused: one line, for config issues and errors alike."""
    return (
        f"Python transform {callable_name or '(none)'} refused: it would run code with mactl's privileges, "
        f"and Python transforms are disabled ({NO_PYTHON_ENV}=1 or --no-python-transforms)"
    )


def parse_spec(value: str | dict[str, Any] | TransformSpec) -> TransformSpec:
    """Turn the config's shorthand (`mod:fn`, `file.j2`, or inline text) into a spec."""
    if isinstance(value, TransformSpec):
        return value
    if isinstance(value, dict):
        return TransformSpec.model_validate(value)
    text = value.strip()
    if _looks_like_callable(text):
        return TransformSpec(kind="python", callable=text)
    if text.endswith((".j2", ".jinja", ".jinja2")) and "\n" not in text:
        return TransformSpec(kind="jinja", file=text)
    return TransformSpec(kind="jinja", template=value)


def _looks_like_callable(text: str) -> bool:
    module, sep, func = text.partition(":")
    return bool(sep) and all(p.isidentifier() for p in module.split(".")) and func.isidentifier()


def _name(spec: TransformSpec) -> str:
    return spec.callable or spec.file or "inline template"


Compiled = Callable[[dict[str, Any]], Any]


def compile_transform(spec: TransformSpec, *, base_dir: Path | None = None) -> Compiled:
    """Compile one transform; errors in the template or import name the transform."""
    if spec.kind == "python":
        assert spec.callable
        if python_transforms_refused():
            raise ConfigError(python_refusal(spec.callable))
        return _wrap_callable(spec.callable, import_callable(spec.callable, base_dir=base_dir))
    source = spec.template
    if spec.file:
        path = Path(spec.file) if base_dir is None else base_dir / spec.file
        try:
            source = path.read_text()
        except OSError as exc:
            raise ConfigError(f"transform file {spec.file}: {exc.strerror}") from None
    if source is None:
        raise ConfigError("a jinja transform needs `template` or `file`")
    try:
        template = compile_template(transform_environment(), source)
    except TemplateProblem as exc:
        raise ConfigError(f"transform {_name(spec)}, {exc.where()}") from None
    return _wrap_template(_name(spec), template)


def _wrap_callable(name: str, fn: Callable[[dict[str, Any]], Any]) -> Compiled:
    def run(context: dict[str, Any]) -> Any:
        try:
            result = fn(context)
        except Exception as exc:  # noqa: BLE001 - user code; report, don't crash
            raise TransformError(f"transform {name} failed: {type(exc).__name__}: {exc}") from None
        return DROP if result is None else result

    return run


def _wrap_template(name: str, template: jinja2.Template) -> Compiled:
    def run(context: dict[str, Any]) -> Any:
        try:
            text = template.render(**context)
        except jinja2.UndefinedError as exc:
            raise TransformError(f"transform {name}, line {_template_line(exc)}: {exc.message}") from None
        except SecurityError as exc:
            raise TransformError(f"transform {name}, line {_template_line(exc)}: refused: {exc.message}") from None
        except Exception as exc:  # noqa: BLE001
            raise TransformError(f"transform {name}, line {_template_line(exc)}: {type(exc).__name__}: {exc}") from None
        stripped = text.strip()
        if not stripped or stripped == DROP_MARKER:
            return DROP
        try:
            return json.loads(stripped)
        except json.JSONDecodeError as exc:
            raise TransformError(
                f"transform {name} rendered invalid JSON (line {exc.lineno} of its output): {exc.msg}"
            ) from None

    return run


def _template_line(exc: BaseException) -> int | str:
    tb = exc.__traceback__
    line: int | str = "?"
    while tb is not None:
        if tb.tb_frame.f_code.co_filename == "<template>":
            line = tb.tb_lineno
        tb = tb.tb_next
    return line


def compile_chain(
    specs: Sequence[TransformSpec], *, base_dir: Path | None = None
) -> Callable[[dict[str, Any], Callable[[Any, dict[str, Any]], dict[str, Any]]], Any]:
    """Compile transforms that run in order.

    Returns `run(context, rebuild)`: each transform gets the current context and its
    result is folded into the next context by `rebuild(result, context)`. A DROP stops
    the chain.
    """
    compiled = [compile_transform(s, base_dir=base_dir) for s in specs]

    def run(context: dict[str, Any], rebuild: Callable[[Any, dict[str, Any]], dict[str, Any]]) -> Any:
        result: Any = context
        for fn in compiled:
            result = fn(context)
            if result is DROP:
                return DROP
            context = rebuild(result, context)
        return result

    return run


# --- where Python transforms come from, and what their code is ------------------------------


def use_config_folder(base_dir: Path | None) -> None:
    """THE rule for finding a `module:function` transform: the config's folder first.

    Like a script's own folder, the config's folder goes at the front of `sys.path` (once,
    and it stays: a transform module may import its neighbours later). `validate`, `plan`,
    `plan --evaluate`, `apply` and `mactl worker` all import transforms through
    `import_callable`, which applies this; `locate_module` searches the same way without
    importing anything.
    """
    if base_dir is None:
        return
    folder = str(base_dir.absolute())
    if folder not in sys.path:
        sys.path.insert(0, folder)
        importlib.invalidate_caches()


def module_search_path(base_dir: Path | None) -> list[str]:
    """`sys.path` as `use_config_folder(base_dir)` leaves it, without changing it."""
    if base_dir is None:
        return list(sys.path)
    folder = str(base_dir.absolute())
    return [folder, *(p for p in sys.path if p != folder)] if folder not in sys.path else list(sys.path)


def import_callable(name: str, *, base_dir: Path | None = None) -> Callable[[dict[str, Any]], Any]:
    """Import `module:function` from the config's folder (or `sys.path`); `ConfigError` naming it otherwise.

    Importing runs the module's code: the caller checks `python_transforms_refused()` first.
    """
    module_name, _, func_name = name.partition(":")
    use_config_folder(base_dir)
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise ConfigError(f"transform {name}: cannot import it ({exc})") from None
    except Exception as exc:  # noqa: BLE001 - user code failing at import time
        raise ConfigError(f"transform {name}: cannot import it ({type(exc).__name__}: {exc})") from None
    fn = getattr(module, func_name, None)
    if fn is None:
        raise ConfigError(f"transform {name}: cannot import it (module '{module_name}' has no '{func_name}')")
    if not callable(fn):
        raise ConfigError(f"transform {name}: '{func_name}' in module '{module_name}' is not callable")
    result: Callable[[dict[str, Any]], Any] = fn
    return result


def locate_module(module_name: str, *, base_dir: Path | None = None) -> Path | None:
    """The source file `import module_name` would load under `use_config_folder`'s rule.

    Nothing is imported or executed (not even a parent package's `__init__`): each dotted
    part is looked up with the path finder. None for a module that is not found or has
    no source file (built-in, frozen, namespace package).
    """
    search: list[str] | None = module_search_path(base_dir)
    parts = module_name.split(".")
    origin: str | None = None
    for i in range(len(parts)):
        try:
            found = PathFinder.find_spec(".".join(parts[: i + 1]), search)
        except (ImportError, ValueError, OSError):
            return None
        if found is None:
            return None
        origin = found.origin if found.has_location else None
        search = list(found.submodule_search_locations or [])
        if i < len(parts) - 1 and not search:
            return None
    if origin is None or not os.path.isfile(origin):
        return None
    return Path(origin)


def code_file(spec: TransformSpec, *, base_dir: Path | None = None) -> Path | None:
    """The file holding a transform's code: its `.j2` file or its callable's module; None for inline ones."""
    if spec.kind == "python" and spec.callable:
        return locate_module(spec.callable.partition(":")[0], base_dir=base_dir)
    if spec.file:
        return Path(spec.file) if base_dir is None else base_dir / spec.file
    return None


def code_digest(spec: TransformSpec, *, base_dir: Path | None = None) -> str | None:
    """`sha256:<hex>` of the transform's code file, read without importing it; None when there is none to read.

    Recorded in a stage's inputs (`codeDigest`), so editing the code is a change `plan` shows.
    """
    path = code_file(spec, base_dir=base_dir)
    if path is None:
        return None
    try:
        data = path.read_bytes()
    except OSError:
        return None
    return "sha256:" + hashlib.sha256(data).hexdigest()


def code_label(spec: TransformSpec | Mapping[str, Any]) -> str:
    """How a plan names a transform's code file: the `.j2` path, or the callable's module as a path."""
    data = spec.model_dump() if isinstance(spec, TransformSpec) else spec
    if data.get("kind") == "python" and data.get("callable"):
        return str(data["callable"]).partition(":")[0].replace(".", "/") + ".py"
    return str(data.get("file") or "inline template")
