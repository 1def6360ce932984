"""Jinja2 for untrusted configs: the one place mactl makes a template environment.

Configs come from pull requests and run in CI next to credentials, so every template —
`{{ var.x }}` in config strings, inline and `.j2` transforms for metadata, documents and
replay — renders in the sandboxed environment built here, never a plain one:

- **Attributes**: only an allow-list of public methods of the JSON types (`str`, `dict`,
  `list`, `tuple`) and of `loop`; nothing starting with `_` (no `__class__`,
  `__globals__`, `self._TemplateReference__context`, …), nothing on functions, types or
  other objects.
- **Calls**: only those methods, the globals below and the template's own macros.
- **Globals**: `range` (at most `MAX_RANGE` items) and `dict`; transforms add `DROP`.
  No `cycler`, `joiner`, `namespace` or `lipsum`.
- **Filters and tests**: the explicit lists `FILTERS` and `TESTS`.
- **No files**: `{% include %}`, `{% import %}`, `{% from %}` and `{% extends %}` are
  refused (the loader refuses too).
- **Sizes**: `*` that would repeat text or a list beyond the limits, `**` on huge
  integers, `%` with a huge width, calls returning or growing a value past the limits,
  and output over `MAX_OUTPUT` are refused.
- **Mutation**: config strings cannot change lists or dicts. Transforms can change the
  plain `dict`s and `list`s they are given or build (`{% do s.update(...) %}` is how
  existing transforms rename fields): that data is a per-item copy.

`check_template` finds the same problems without rendering (for `mactl validate`: names
a transform cannot see, private attributes, unknown filters, constant `range(10**9)`…);
`compile_template` checks and compiles once. A refused operation at render time raises
`jinja2.exceptions.SecurityError`; callers turn either into one-line errors naming the
config path or template file.
"""

from __future__ import annotations

import json
import re
import types
from collections.abc import Callable, Collection, Iterable, Mapping
from functools import cache
from typing import Any

import jinja2
from jinja2 import meta, nodes
from jinja2.exceptions import SecurityError
from jinja2.filters import FILTERS as _JINJA_FILTERS
from jinja2.filters import _GroupTuple
from jinja2.runtime import LoopContext, Macro
from jinja2.sandbox import SandboxedEnvironment
from jinja2.tests import TESTS as _JINJA_TESTS

MAX_RANGE = 10_000
"""Most items one `range(...)` may have."""
MAX_TEXT = 64 * 1024 * 1024
"""Longest string an operation in a template may make (characters)."""
MAX_ITEMS = 1_000_000
"""Most items a list, dict or tuple made or grown in a template may hold."""
MAX_OUTPUT = 64 * 1024 * 1024
"""Longest text one render may produce (characters)."""
MAX_INT_BITS = 10_000
"""Largest integer `**` may make."""
DROP_MARKER = "__MACTL_DROP__"
"""What `{{ DROP }}` renders to in a transform."""

FILTERS: tuple[str, ...] = (
    "abs", "capitalize", "count", "d", "default", "dictsort", "first", "float", "format", "groupby", "int",
    "items", "join", "last", "length", "list", "lower", "map", "max", "min", "reject", "rejectattr",
    "replace", "reverse", "round", "select", "selectattr", "sort", "string", "sum", "title", "tojson",
    "trim", "truncate", "unique", "upper", "urlencode", "wordcount",
)  # fmt: skip
"""The filters a template may use (`tojson` is mactl's own: it names an undefined value; `format`
refuses huge widths)."""
TESTS: tuple[str, ...] = (
    "!=", "<", "<=", "==", ">", ">=", "boolean", "defined", "divisibleby", "eq", "equalto", "even",
    "false", "float", "ge", "greaterthan", "gt", "in", "integer", "iterable", "le", "lessthan", "lower",
    "lt", "mapping", "ne", "none", "number", "odd", "sequence", "string", "true", "undefined", "upper",
)  # fmt: skip
"""The tests (`is defined`, `is string`, …) a template may use."""

_STR_METHODS = frozenset(
    "capitalize casefold count endswith find index isalnum isalpha isdecimal isdigit islower isnumeric "
    "isspace istitle isupper join lower lstrip partition removeprefix removesuffix replace rfind rindex "
    "rpartition rsplit rstrip split splitlines startswith strip swapcase title upper".split()
)
_DICT_READ = frozenset({"copy", "get", "items", "keys", "values"})
_DICT_WRITE = frozenset({"clear", "pop", "popitem", "setdefault", "update"})
_LIST_READ = frozenset({"copy", "count", "index"})
_LIST_WRITE = frozenset({"append", "clear", "extend", "insert", "pop", "remove", "reverse", "sort"})
_LOOP_ATTRS = frozenset(
    "index index0 revindex revindex0 first last length depth depth0 previtem nextitem cycle changed".split()
)
_WIDE_FORMAT = re.compile(r"%[-#0 +]*(?:\*|\d{5,}|\d*\.(?:\*|\d{5,}))")
_FILE_NODES: dict[type[nodes.Node], str] = {
    nodes.Include: "{% include %}",
    nodes.Import: "{% import %}",
    nodes.FromImport: "{% from ... import %}",
    nodes.Extends: "{% extends %}",
}


def _refuse(message: str) -> SecurityError:
    return SecurityError(message)


def _bounded_range(*args: int) -> range:
    """`range` that refuses more than `MAX_RANGE` items (a template cannot loop a billion times)."""
    items = range(*args)
    if len(items) > MAX_RANGE:
        raise _refuse(f"range() of {len(items):,} items is over the limit of {MAX_RANGE:,}")
    return items


def _tojson(value: Any) -> str:
    """`tojson` that reports an undefined value by name (not "StrictUndefined is not JSON serializable")."""
    if isinstance(value, jinja2.Undefined):
        value._fail_with_undefined_error()
    return json.dumps(value, ensure_ascii=False)


def _format(value: Any, *args: Any, **kwargs: Any) -> str:
    """Jinja's `format` filter (`"%s-%s" | format(a, b)`), refusing a huge or `*` width first."""
    if _WIDE_FORMAT.search(str(value)):
        raise _refuse("a %-format with a huge or `*` width or precision is not allowed")
    return str(_JINJA_FILTERS["format"](value, *args, **kwargs))


def _too_big(value: Any) -> bool:
    """Cheap test: is `value` a text or collection over the limits (`_check_size` then says which)?"""
    if isinstance(value, str):
        return len(value) > MAX_TEXT
    return isinstance(value, (list, dict, tuple, set)) and len(value) > MAX_ITEMS


def _check_size(value: Any, what: str) -> None:
    if isinstance(value, str):
        if len(value) > MAX_TEXT:
            raise _refuse(f"{what} made a text of {len(value):,} characters (the limit is {MAX_TEXT:,})")
    elif isinstance(value, (list, dict, tuple, set)) and len(value) > MAX_ITEMS:
        raise _refuse(f"{what} made a collection of {len(value):,} items (the limit is {MAX_ITEMS:,})")


def _check_binop(operator: str, left: Any, right: Any) -> None:
    """Refuse `*`, `**` and `%` whose result would be huge, before computing it."""
    if operator == "**":
        if isinstance(left, int) and isinstance(right, int) and right > 0 and abs(left) > 1:
            if left.bit_length() * right > MAX_INT_BITS:
                raise _refuse(f"{left} ** {right} is too large a number")
    elif operator == "*":
        for seq, times in ((left, right), (right, left)):
            if isinstance(seq, (str, list, tuple)) and isinstance(times, int):
                limit = MAX_TEXT if isinstance(seq, str) else MAX_ITEMS
                if len(seq) * times > limit:
                    raise _refuse(f"repeating a {type(seq).__name__} {times:,} times is over the limit")
    elif operator == "%" and isinstance(left, str) and _WIDE_FORMAT.search(left):
        raise _refuse("a %-format with a huge or `*` width or precision is not allowed")


def _bounded_concat(parts: Iterable[str]) -> str:
    """`"".join` for a render's output, refusing more than `MAX_OUTPUT` characters."""
    out = []
    size = 0
    for part in parts:
        size += len(part)
        if size > MAX_OUTPUT:
            raise _refuse(f"the template's output is over the limit of {MAX_OUTPUT:,} characters")
        out.append(part)
    return "".join(out)


class _NoFiles(jinja2.BaseLoader):
    """A loader that refuses everything: templates never read other templates or files."""

    def get_source(self, environment: jinja2.Environment, template: str) -> tuple[str, str | None, None]:
        raise jinja2.TemplateNotFound(template, "templates cannot include, import or extend other templates")


class SandboxedTemplates(SandboxedEnvironment):
    """The sandbox: explicit allow-lists for attributes, calls, globals, filters and tests."""

    intercepted_binops = frozenset({"*", "**", "%"})

    def __init__(self, *, mutable: bool, globals: Mapping[str, Any] | None = None, **options: Any) -> None:  # noqa: A002
        super().__init__(undefined=jinja2.StrictUndefined, autoescape=False, loader=_NoFiles(), **options)
        self.concat = _bounded_concat  # type: ignore[method-assign]
        self.globals = {"range": _bounded_range, "dict": dict, **(globals or {})}
        self._safe_functions: tuple[Any, ...] = (_bounded_range, dict)
        own: dict[str, Callable[..., str]] = {"tojson": _tojson, "format": _format}
        filters = {name: own.get(name) or _JINJA_FILTERS[name] for name in FILTERS}
        self.filters = filters
        self.tests = {name: _JINJA_TESTS[name] for name in TESTS}
        dict_methods = _DICT_READ | _DICT_WRITE if mutable else _DICT_READ
        list_methods = _LIST_READ | _LIST_WRITE if mutable else _LIST_READ
        self._methods: dict[type, frozenset[str]] = {
            str: _STR_METHODS,
            dict: dict_methods,
            list: list_methods,
            tuple: frozenset({"count", "index"}),
            LoopContext: frozenset({"cycle", "changed"}),
        }
        self._attributes: dict[type, frozenset[str]] = {
            **self._methods,
            LoopContext: _LOOP_ATTRS,
            _GroupTuple: frozenset({"grouper", "list"}),
        }

    def is_safe_attribute(self, obj: Any, attr: str, value: Any) -> bool:
        if not isinstance(attr, str) or attr.startswith("_"):
            return False
        allowed = self._attributes.get(type(obj))
        return allowed is not None and attr in allowed

    def is_safe_callable(self, obj: Any) -> bool:
        if any(obj is fn for fn in self._safe_functions) or isinstance(obj, (Macro, LoopContext)):
            return True
        if isinstance(obj, (types.BuiltinMethodType, types.MethodType)):
            allowed = self._methods.get(type(obj.__self__))
            return allowed is not None and obj.__name__ in allowed
        return False

    def unsafe_undefined(self, obj: Any, attribute: str) -> jinja2.Undefined:
        """Refuse at once (Jinja returns an undefined that fails only when used, if at all)."""
        raise _refuse(f"access to attribute {attribute!r} of {type(obj).__name__!r} object is unsafe")

    def wrap_str_format(self, value: Any) -> Callable[..., str] | None:
        return None  # `str.format` is not on the allow-list: no sandboxed formatter either

    def call(__self, __context: Any, __obj: Any, *args: Any, **kwargs: Any) -> Any:  # noqa: N805
        if isinstance(__obj, jinja2.Undefined):  # say what is undefined (or unsafe), not "cannot call"
            __obj._fail_with_undefined_error()
        if not __self.is_safe_callable(__obj):
            name = getattr(__obj, "__name__", type(__obj).__name__)
            raise _refuse(f"calling {name}() is not allowed in a template")
        result = __context.call(__obj, *args, **kwargs)
        owner = getattr(__obj, "__self__", None)
        if _too_big(result) or (isinstance(owner, (list, dict)) and _too_big(owner)):  # grown in place
            _check_size(result, f"{getattr(__obj, '__name__', 'a call')}()")
            _check_size(owner, f"{getattr(__obj, '__name__', 'a call')}()")
        return result

    def call_binop(self, context: Any, operator: str, left: Any, right: Any) -> Any:
        _check_binop(operator, left, right)
        result = self.binop_table[operator](left, right)
        _check_size(result, f"`{operator}`")
        return result


@cache
def transform_environment() -> SandboxedTemplates:
    """The environment for transform templates (metadata, documents, replay): compiled once, shared."""
    return SandboxedTemplates(
        mutable=True,
        globals={"DROP": DROP_MARKER},
        keep_trailing_newline=False,
        extensions=["jinja2.ext.do", "jinja2.ext.loopcontrols"],
    )


@cache
def config_environment() -> SandboxedTemplates:
    """The environment for `{{ var.x }}` in config strings: no mutation at all."""
    return SandboxedTemplates(mutable=False, keep_trailing_newline=True)


class TemplateProblem(Exception):
    """A template that does not parse, uses a name it cannot see, or (`refused`) what the sandbox refuses.

    `line` is 1-based.
    """

    def __init__(self, message: str, line: int | None, *, refused: bool = True) -> None:
        super().__init__(message)
        self.message = message
        self.line = line
        self.refused = refused

    def describe(self) -> str:
        """The message, prefixed `refused:` when the sandbox refuses it."""
        return f"refused: {self.message}" if self.refused else self.message

    def where(self) -> str:
        return f"line {self.line}: {self.describe()}" if self.line else self.describe()


def compile_template(env: SandboxedTemplates, source: str, *, names: Collection[str] | None = None) -> jinja2.Template:
    """Parse, check (`check_ast`) and compile once; raise `TemplateProblem`."""
    try:
        ast = env.parse(source)
    except jinja2.TemplateSyntaxError as exc:
        raise TemplateProblem(exc.message or "syntax error", exc.lineno, refused=False) from None
    problem = check_ast(env, ast, names=names)
    if problem is not None:
        raise problem
    try:
        return env.from_string(ast)
    except jinja2.TemplateSyntaxError as exc:  # e.g. an unknown filter, found when compiling
        raise TemplateProblem(exc.message or "syntax error", exc.lineno, refused=False) from None


def check_template(
    env: SandboxedTemplates, source: str, *, names: Collection[str] | None = None
) -> TemplateProblem | None:
    """The first problem of `source` (syntax or sandbox), without rendering it; None if none."""
    try:
        ast = env.parse(source)
    except jinja2.TemplateSyntaxError as exc:
        return TemplateProblem(exc.message or "syntax error", exc.lineno, refused=False)
    return check_ast(env, ast, names=names)


def check_ast(env: SandboxedTemplates, ast: nodes.Template, *, names: Collection[str] | None) -> TemplateProblem | None:
    """What the sandbox would refuse, found statically. `names`: the context's names (None: skip that check)."""
    for node in ast.find_all(nodes.Node):
        line = getattr(node, "lineno", None)
        if type(node) in _FILE_NODES:
            return TemplateProblem(
                f"{_FILE_NODES[type(node)]} is not allowed: templates cannot read other templates or files", line
            )
        if isinstance(node, nodes.Getattr) and _python_private(node.attr):
            return TemplateProblem(
                f"attribute '{node.attr}' is not allowed (Python's private names are not reachable)", line
            )
        if (
            isinstance(node, nodes.Getitem)
            and isinstance(node.arg, nodes.Const)
            and isinstance(node.arg.value, str)
            and _python_private(node.arg.value)
        ):
            return TemplateProblem(
                f"item '{node.arg.value}' is not allowed (Python's private names are not reachable)", line
            )
        if isinstance(node, nodes.Filter) and node.name in _ATTRIBUTE_FILTERS:
            private = _private_attribute_argument(node)
            if private:
                return TemplateProblem(
                    f"attribute '{private}' is not allowed (Python's private names are not reachable)", line
                )
        if isinstance(node, nodes.Filter) and node.name not in env.filters:
            return TemplateProblem(f"unknown filter '{node.name}' (allowed: {', '.join(sorted(env.filters))})", line)
        if (
            isinstance(node, nodes.Filter)
            and node.name == "format"
            and isinstance(node.node, nodes.Const)
            and _WIDE_FORMAT.search(str(node.node.value))
        ):
            return TemplateProblem("a %-format with a huge or `*` width or precision is not allowed", line)
        if isinstance(node, nodes.Test) and node.name not in env.tests:
            return TemplateProblem(f"unknown test '{node.name}'", line)
        if isinstance(node, (nodes.Mul, nodes.Pow, nodes.Mod, nodes.Call)):
            try:
                _static_value(node)
            except SecurityError as exc:
                return TemplateProblem(str(exc), line)
    if names is not None:
        known = set(names) | set(env.globals)
        # Jinja counts a name set in one branch only as maybe-from-the-context: anything the
        # template assigns somewhere is its own (and, where unassigned, an undefined error).
        assigned = {n.name for n in ast.find_all(nodes.Name) if n.ctx in ("store", "param")}
        unknown = sorted(meta.find_undeclared_variables(ast) - known - assigned)
        if unknown:
            line = next((n.lineno for n in ast.find_all(nodes.Name) if n.name == unknown[0] and n.ctx == "load"), None)
            return TemplateProblem(
                f"unknown name '{unknown[0]}' (this template sees: {', '.join(sorted(known))})", line, refused=False
            )
    return None


def _python_private(name: str) -> bool:
    """`__dunder__` and name-mangled `_Class__name`: never data. (`x._source`, a dict key, is fine.)"""
    return name.startswith("_") and "__" in name


_ATTRIBUTE_FILTERS = frozenset({"map", "selectattr", "rejectattr", "groupby", "sort", "sum", "unique", "min", "max"})


def _private_attribute_argument(node: nodes.Filter) -> str | None:
    """A dunder segment in a filter's attribute argument (`map(attribute='__class__')`)."""
    values = [kw.value for kw in node.kwargs if kw.key == "attribute"]
    if node.name in ("selectattr", "rejectattr", "groupby") and node.args:
        values.append(node.args[0])
    for value in values:
        if isinstance(value, nodes.Const) and isinstance(value.value, str):
            for segment in value.value.split("."):
                if _python_private(segment):
                    return segment
    return None


class _NotConstant(Exception):
    pass


_BINOPS: dict[type[nodes.Node], str] = {
    nodes.Add: "+",
    nodes.Sub: "-",
    nodes.Mul: "*",
    nodes.Div: "/",
    nodes.FloorDiv: "//",
    nodes.Mod: "%",
    nodes.Pow: "**",
}


def _static_value(node: nodes.Node) -> Any:
    """The value of a constant expression, applying the sandbox's size checks on the way.

    Raises `SecurityError` for what the sandbox would refuse at render time (`range(10**9)`,
    `'x' * 10**9`), and `_NotConstant` (caught here at the top) when the value depends
    on the context.
    """
    try:
        return _evaluate(node)
    except _NotConstant:
        return None
    except (ArithmeticError, TypeError, ValueError):
        return None  # fails at render time with its own message


def _evaluate(node: nodes.Node) -> Any:
    if isinstance(node, nodes.Const):
        return node.value
    if isinstance(node, nodes.Neg):
        return -_evaluate(node.node)
    if isinstance(node, nodes.Pos):
        return +_evaluate(node.node)
    operator = _BINOPS.get(type(node))
    if operator is not None:
        left, right = _evaluate(node.left), _evaluate(node.right)  # type: ignore[attr-defined]
        _check_binop(operator, left, right)
        result = transform_environment().binop_table[operator](left, right)
        _check_size(result, f"`{operator}`")
        return result
    if isinstance(node, nodes.Call) and isinstance(node.node, nodes.Name) and node.node.name == "range":
        if node.kwargs or node.dyn_args or node.dyn_kwargs:
            raise _NotConstant
        return _bounded_range(*(_evaluate(arg) for arg in node.args))
    raise _NotConstant
