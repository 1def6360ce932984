"""User transforms: Jinja2 templates or Python callables, compiled once, applied many times.

Metadata, backfill and replay all let users reshape what they move. A transform takes a
context dict and returns the new JSON value, or `DROP` to drop the item. A Jinja2
template renders JSON text from the context (StrictUndefined, so a typo is an error);
a callable `pkg.module:function` receives the context dict and returns the value.
Errors name the transform and, for templates, the template line.
"""

from __future__ import annotations

import importlib
import json
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import jinja2

from mactl.errors import ConfigError, MactlError
from mactl.schema.common import TransformSpec


class _Drop:
    """Sentinel: the transform dropped the item."""

    def __repr__(self) -> str:
        return "DROP"


DROP: Any = _Drop()


class TransformError(MactlError):
    """A transform failed on one item. The message names the transform and the line."""


_ENV = jinja2.Environment(
    undefined=jinja2.StrictUndefined,
    keep_trailing_newline=False,
    autoescape=False,
    extensions=["jinja2.ext.do", "jinja2.ext.loopcontrols"],
)


def _tojson(value: Any) -> str:
    """`tojson` that reports an undefined value by name (not "StrictUndefined is not JSON serializable")."""
    if isinstance(value, jinja2.Undefined):
        value._fail_with_undefined_error()
    return json.dumps(value, ensure_ascii=False)


_ENV.filters["tojson"] = _tojson
_ENV.globals["DROP"] = "__MACTL_DROP__"


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
        module_name, _, func_name = spec.callable.partition(":")
        try:
            fn = getattr(importlib.import_module(module_name), func_name)
        except (ImportError, AttributeError) as exc:
            raise ConfigError(f"transform {spec.callable}: cannot import it ({exc})") from None
        return _wrap_callable(spec.callable, fn)
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
        template = _ENV.from_string(source)
    except jinja2.TemplateSyntaxError as exc:
        raise ConfigError(f"transform {_name(spec)}, line {exc.lineno}: {exc.message}") from None
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
        except Exception as exc:  # noqa: BLE001
            raise TransformError(f"transform {name}, line {_template_line(exc)}: {type(exc).__name__}: {exc}") from None
        stripped = text.strip()
        if not stripped or stripped == "__MACTL_DROP__":
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
