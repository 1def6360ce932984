"""Input variables: the `variables:` block, where values come from, and `{{ var.name }}`.

As in Terraform, later sources win: a declared `default`, then `MACTL_VAR_<name>`
environment variables, then each `-var-file` in order, then each `-var k=v` in order.
Every variable must be declared (a typo in `-var` should not silently do nothing), and
a declared variable without a default must get a value from somewhere.

Values given as text (`-var`, the environment) are converted to the declared type;
values in variable files keep their YAML/JSON type and are checked against it.
Templating renders every string of the config except the `variables` block itself and
anything under a `transforms` key: those are transform templates rendered later, per
document, with their own context. A string that is exactly one `{{ var.x }}` becomes
the variable's value with its type (so `maxSpeedupFactor: "{{ var.speed }}"` is a
number); anything else renders to text.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import jinja2
import orjson
import yaml
from pydantic import ValidationError

from mactl.config.issues import ConfigIssue, Origins, did_you_mean, issues_from_validation, join_path
from mactl.schema.common import Model

ENV_PREFIX = "MACTL_VAR_"
VarType = Literal["string", "number", "bool", "list", "map"]
_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_WHOLE_REF = re.compile(r"^\s*\{\{\s*var\.([A-Za-z_][A-Za-z0-9_]*)\s*\}\}\s*$")
_REFS = re.compile(r"\bvar\s*(?:\.\s*([A-Za-z_][A-Za-z0-9_]*)|\[\s*['\"]([^'\"]+)['\"]\s*\])")
_SKIP_KEYS = frozenset({"transforms"})


class VariableDecl(Model):
    """One declared variable. `type` defaults to the default value's type, else string."""

    type: VarType | None = None
    default: Any = None
    description: str = ""
    sensitive: bool = False

    def effective_type(self) -> VarType:
        if self.type is not None:
            return self.type
        if "default" in self.model_fields_set and self.default is not None:
            return _type_of(self.default)
        return "string"

    @property
    def required(self) -> bool:
        return "default" not in self.model_fields_set


@dataclass
class ResolvedVariables:
    """Final values, where each came from, and the text of every sensitive value."""

    values: dict[str, Any] = field(default_factory=dict)
    origins: dict[str, str] = field(default_factory=dict)
    sensitive_values: set[str] = field(default_factory=set)


def parse_declarations(raw: Any, issues: list[ConfigIssue]) -> dict[str, VariableDecl]:
    """The `variables:` block as models; problems are appended to `issues`."""
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        issues.append(ConfigIssue("variables", "must be a mapping of variable name to declaration"))
        return {}
    decls: dict[str, VariableDecl] = {}
    for name, body in raw.items():
        path = join_path("variables", str(name))
        if not _NAME.match(str(name)):
            issues.append(
                ConfigIssue(path, "a variable name must be letters, digits and '_' (not starting with a digit)")
            )
            continue
        try:
            decl = VariableDecl.model_validate({} if body is None else body)
        except ValidationError as exc:
            origins = Origins()
            origins.record((), path)
            issues.extend(issues_from_validation(exc, VariableDecl, origins))
            continue
        if not decl.required and decl.default is not None:
            try:
                _check_type(decl.default, decl.effective_type())
            except ValueError as err:
                issues.append(ConfigIssue(join_path(path, "default"), str(err)))
                continue
        decls[str(name)] = decl
    return decls


def resolve(
    decls: Mapping[str, VariableDecl],
    *,
    var_args: Sequence[str],
    var_files: Sequence[Path],
    env: Mapping[str, str],
    issues: list[ConfigIssue],
    read_file: Any,
) -> ResolvedVariables:
    """Apply the precedence rules; every problem (undeclared, unparsable, missing) is collected."""
    resolved = ResolvedVariables()
    for name, decl in decls.items():
        if not decl.required:
            resolved.values[name] = decl.default
            resolved.origins[name] = f"the default in variables.{name}"

    def assign(name: str, value: Any, *, where: str, from_text: bool, issue_path: str) -> None:
        decl = decls.get(name)
        if decl is None:
            issues.append(
                ConfigIssue(
                    issue_path,
                    f"variable '{name}' is not declared{did_you_mean(name, decls)}; "
                    f"declare it in the `variables:` block (set by {where})",
                )
            )
            return
        try:
            typed = _from_text(value, decl.effective_type()) if from_text else _check_type(value, decl.effective_type())
        except ValueError as err:
            shown = "(sensitive)" if decl.sensitive else repr(value)
            issues.append(ConfigIssue(issue_path, f"variable '{name}' from {where}: {err} (got {shown})"))
            return
        resolved.values[name] = typed
        resolved.origins[name] = where

    for key in sorted(env):
        if key.startswith(ENV_PREFIX) and len(key) > len(ENV_PREFIX):
            name = key[len(ENV_PREFIX) :]
            where = f"environment variable {key}"
            assign(name, env[key], where=where, from_text=True, issue_path=where)
    for var_file in var_files:
        data = read_file(var_file)
        if data is None:
            continue
        if not isinstance(data, dict):
            issues.append(ConfigIssue(f"-var-file {var_file}", "a variable file must be a mapping of name: value"))
            continue
        for name, value in data.items():
            where = f"-var-file {var_file}"
            assign(str(name), value, where=where, from_text=False, issue_path=f"{where}: {name}")
    for arg in var_args:
        name, sep, value = arg.partition("=")
        name = name.strip()
        if not sep or not name:
            issues.append(ConfigIssue(f"-var {arg!r}", "expected NAME=VALUE"))
            continue
        where = f"-var {name}=…"
        assign(name, value, where=where, from_text=True, issue_path=f"-var {name}")

    for name, decl in decls.items():
        if name not in resolved.values:
            issues.append(
                ConfigIssue(
                    join_path("variables", name),
                    f"variable '{name}' is required but has no value: give it a default, or set it with "
                    f"-var {name}=…, a -var-file, or {ENV_PREFIX}{name}",
                )
            )
        elif decl.sensitive:
            _collect_secrets(resolved.values[name], resolved.sensitive_values)
    return resolved


def render(
    raw: Any,
    resolved: ResolvedVariables,
    decls: Mapping[str, VariableDecl],
    issues: list[ConfigIssue],
    unrendered: set[str] | None = None,
) -> Any:
    """`raw` with every `{{ … }}` string rendered; problems are collected with their paths.

    The paths of strings left as they were (an error, or a variable without a value,
    already reported) are added to `unrendered`, so schema errors there can be skipped.
    """
    skipped = unrendered if unrendered is not None else set()
    if not _may_have_templates(raw):
        return raw  # nothing to render: skip walking a 2,000-migration config
    from mactl.templating import TemplateProblem, compile_template, config_environment

    env = config_environment()  # sandboxed: config strings come from untrusted configs
    context = {"var": resolved.values}
    sensitive = frozenset(name for name, decl in decls.items() if decl.sensitive)

    def walk(node: Any, path: str) -> Any:
        if isinstance(node, str):
            return _render_one(node, path) if ("{{" in node or "{%" in node) else node
        if isinstance(node, dict):
            out = {}
            for key, value in node.items():
                if path == "" and key == "variables" or key in _SKIP_KEYS:
                    out[key] = value
                else:
                    out[key] = walk(value, join_path(path, str(key)))
            return out
        if isinstance(node, list):
            return [walk(item, join_path(path, i)) for i, item in enumerate(node)]
        return node

    def _render_one(text: str, path: str) -> Any:
        for match in _REFS.finditer(text):
            name = match.group(1) or match.group(2)
            if name not in decls:
                issues.append(ConfigIssue(path, f"undeclared variable 'var.{name}'{did_you_mean(name, decls)}"))
                skipped.add(path)
                return text
            if name not in resolved.values:
                skipped.add(path)
                return text  # already reported as required-without-value
        whole = _WHOLE_REF.match(text)
        if whole:
            return resolved.values[whole.group(1)]
        if sensitive:
            problem = sensitive_use_problem(text, env, sensitive)
            if problem:
                issues.append(ConfigIssue(path, f"template refused: {problem}"))
                skipped.add(path)
                return text
        try:
            return compile_template(env, text).render(context)
        except TemplateProblem as exc:
            what = "template refused" if exc.refused else "template syntax error"
            at_line = f" (line {exc.line})" if exc.line and exc.line > 1 else ""
            issues.append(ConfigIssue(path, f"{what}: {exc.message}{at_line}"))
        except jinja2.exceptions.SecurityError as exc:
            issues.append(ConfigIssue(path, f"template refused: {exc.message}"))
        except jinja2.UndefinedError as exc:
            issues.append(
                ConfigIssue(path, f"template error: {exc.message} (variables are written {{{{ var.NAME }}}})")
            )
        except Exception as exc:  # noqa: BLE001 - a user template; report it, don't crash
            issues.append(ConfigIssue(path, f"template error: {type(exc).__name__}: {exc}"))
        skipped.add(path)
        return text

    return walk(raw, "")


def _may_have_templates(raw: Any) -> bool:
    """False only when no string anywhere holds `{{` or `{%` (checked at C speed)."""
    try:
        text = orjson.dumps(raw, option=orjson.OPT_NON_STR_KEYS)
    except TypeError:  # a YAML type orjson does not know (a set…): walk to be sure
        return True
    return b"{{" in text or b"{%" in text


# --- types ---------------------------------------------------------------------------


def _type_of(value: Any) -> VarType:
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, (int, float)):
        return "number"
    if isinstance(value, list):
        return "list"
    if isinstance(value, dict):
        return "map"
    return "string"


def _check_type(value: Any, var_type: VarType) -> Any:
    actual = _type_of(value)
    if value is None:
        raise ValueError(f"expected a {var_type}, not null")
    if actual == var_type:
        return value
    if var_type == "string" and actual in ("number", "bool"):
        return json.dumps(value)
    raise ValueError(f"expected a {var_type}, got a {actual}")


_TRUE = {"true", "yes", "on", "1"}
_FALSE = {"false", "no", "off", "0"}


def _from_text(text: Any, var_type: VarType) -> Any:
    if not isinstance(text, str):
        return _check_type(text, var_type)
    if var_type == "string":
        return text
    if var_type == "number":
        try:
            return int(text)
        except ValueError:
            pass
        try:
            return float(text)
        except ValueError:
            raise ValueError("expected a number") from None
    if var_type == "bool":
        low = text.strip().lower()
        if low in _TRUE:
            return True
        if low in _FALSE:
            return False
        raise ValueError("expected a bool (true or false)")
    try:
        value = yaml.safe_load(text)
    except yaml.YAMLError:
        raise ValueError(f"expected a {var_type} written as JSON or YAML") from None
    return _check_type(value, var_type)


def _collect_secrets(value: Any, into: set[str]) -> None:
    if isinstance(value, dict):
        for item in value.values():
            _collect_secrets(item, into)
    elif isinstance(value, list):
        for item in value:
            _collect_secrets(item, into)
    elif isinstance(value, str) and value:
        into.add(value)
    elif isinstance(value, (int, float)) and not isinstance(value, bool):
        # A sensitive number: masked wherever a value equals it (and, if long enough, in text).
        into.add(json.dumps(value))


# --- sensitive values in config strings ------------------------------------------------

# The filters a sensitive value may go through in a config string: their output is one of
# the forms the masking rule knows (`mactl.state.masking.secret_forms`), so it stays masked.
SAFE_SENSITIVE_FILTERS = frozenset({"urlencode", "tojson"})


def mark_auth_variables(raw: Any, decls: Mapping[str, VariableDecl], warnings: list[str]) -> None:
    """Treat a variable used in an `auth` block, or under a credential-named key, as sensitive.

    A password passed through a variable that is not marked `sensitive: true` would
    otherwise show under "variables" in `plan -json`, `show --json` and plan files.
    """
    from mactl.state.masking import is_secret_key

    found: dict[str, str] = {}

    def walk(node: Any, path: str, secret: bool) -> None:
        if isinstance(node, str):
            if secret and "{" in node:
                for match in _REFS.finditer(node):
                    found.setdefault(match.group(1) or match.group(2), path)
        elif isinstance(node, dict):
            for key, value in node.items():
                if path == "" and key == "variables":
                    continue
                name = str(key)
                walk(value, join_path(path, name), secret or name == "auth" or is_secret_key(name))
        elif isinstance(node, list):
            for i, item in enumerate(node):
                walk(item, join_path(path, i), secret)

    walk(raw, "", False)
    for name, path in sorted(found.items()):
        decl = decls.get(name)
        if decl is not None and not decl.sensitive:
            decl.sensitive = True
            warnings.append(
                f"variables.{name}: used in {path}, so it is treated as sensitive (masked everywhere); "
                "mark it `sensitive: true`"
            )


def sensitive_use_problem(text: str, env: Any, sensitive: frozenset[str]) -> str | None:
    """Why `text` (a config string) uses a sensitive variable in a way masking cannot follow, or None.

    The rule: a sensitive variable may only be output whole (`{{ var.pw }}`) or through
    `urlencode`/`tojson` (`{{ var.pw | urlencode }}`), each in its own `{{ }}`, and `var` may
    not be used in any other way (looked up with a computed key, passed to a filter or a
    loop) in a config that has sensitive variables. Anything else (`| reverse`, slicing,
    concatenation, `{% if %}` on it) could reshape the value so the mask no longer finds it.
    """
    from jinja2 import nodes

    try:
        tree = env.parse(text)
    except jinja2.TemplateSyntaxError:
        return None  # reported by the render itself
    problems: list[str] = []

    def ref_name(node: nodes.Node) -> str | None:
        if isinstance(node, nodes.Getattr) and isinstance(node.node, nodes.Name) and node.node.name == "var":
            return node.attr
        if (
            isinstance(node, nodes.Getitem)
            and isinstance(node.node, nodes.Name)
            and node.node.name == "var"
            and isinstance(node.arg, nodes.Const)
            and isinstance(node.arg.value, str)
        ):
            return node.arg.value
        return None

    def visit(node: nodes.Node, parent: nodes.Node | None, grandparent: nodes.Node | None) -> None:
        name = ref_name(node)
        if name is not None:
            if name in sensitive:
                whole = isinstance(parent, nodes.Output)
                filtered = (
                    isinstance(parent, nodes.Filter)
                    and parent.node is node
                    and parent.name in SAFE_SENSITIVE_FILTERS
                    and not parent.args
                    and not parent.kwargs
                    and isinstance(grandparent, nodes.Output)
                )
                if not (whole or filtered):
                    problems.append(
                        f"the sensitive variable var.{name} may only be used whole ({{{{ var.{name} }}}}) or "
                        f"through {' or '.join(sorted(SAFE_SENSITIVE_FILTERS))}: anything else could reshape it "
                        "past masking"
                    )
            return
        if isinstance(node, nodes.Name) and node.name == "var":
            problems.append("`var` may only be used as var.NAME in a config with sensitive variables")
            return
        for child in node.iter_child_nodes():
            visit(child, node, parent)

    visit(tree, None, None)
    if not problems and "://" in text:
        problems.extend(_outside_userinfo(text, sensitive))
    return problems[0] if problems else None


_TAG = re.compile(r"\{\{.*?\}\}|\{%.*?%\}", re.S)


def _outside_userinfo(text: str, sensitive: frozenset[str]) -> list[str]:
    """In a URL, a sensitive variable may only be the userinfo (`http://user:{{ var.pw }}@host`).

    Anywhere else (host, path, query, fragment) the URL would carry the secret to whatever
    server the config names, in the request line, where no mask reaches.
    """
    start = text.index("://") + 3
    plain = _TAG.sub(lambda m: "x" * len(m.group(0)), text)  # tags hold no URL delimiters
    end = min((i for i in (plain.find(c, start) for c in "/?#") if i >= 0), default=len(text))
    at = plain.rfind("@", start, end)
    for match in _TAG.finditer(text):
        names = {m.group(1) or m.group(2) for m in _REFS.finditer(match.group(0))}
        secret = sorted(names & sensitive)
        if secret and not (match.start() >= start and match.end() <= at):
            return [
                f"the sensitive variable var.{secret[0]} may only be a URL's userinfo "
                "(scheme://user:{{ var.NAME }}@host): elsewhere in a URL it is sent to the server it names"
            ]
    return []
