"""Reading config and variable files: YAML, JSON, or JSON with `//` and `/* */` comments.

The seed's sample configs are JSON with `//` comments, so comments are stripped by a
small scanner that knows about strings (an endpoint like `http://host:9200/` keeps its
`//`). Comments are replaced by spaces, never removed, so the line and column of a
JSON syntax error still point into the user's file. Duplicate keys are errors: a
silently-ignored first value is a classic way to migrate the wrong thing.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import yaml

from mactl.config.issues import ConfigErrors, ConfigIssue

JSON_SUFFIXES = (".json", ".jsonc", ".json5")
YAML_SUFFIXES = (".yaml", ".yml")


def read_document(path: Path, *, what: str = "config") -> Any:
    """Parse `path` by its suffix (YAML or JSON-with-comments); errors name the file and line."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigErrors([ConfigIssue("", f"{what} file not found")], source=str(path)) from None
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        raise ConfigErrors([ConfigIssue("", f"cannot read {what} file: {reason}")], source=str(path)) from None
    return parse_text(text, source=str(path), suffix=path.suffix.lower(), what=what)


def parse_text(text: str, *, source: str, suffix: str = "", what: str = "config") -> Any:
    if not text.strip():
        raise ConfigErrors([ConfigIssue("", f"the {what} file is empty")], source=source)
    looks_like_json = text.lstrip().startswith(("{", "[", "//", "/*"))
    if suffix in JSON_SUFFIXES or (suffix not in YAML_SUFFIXES and looks_like_json):
        return _parse_json(text, source)
    try:
        parsed = _parse_yaml(text, source)
    except ConfigErrors:
        # A `.yaml` file that is really commented JSON (`//` is not a YAML comment).
        if looks_like_json:
            return _parse_json(text, source)
        raise
    if parsed is None:  # only comments
        raise ConfigErrors([ConfigIssue("", f"the {what} file is empty")], source=source)
    return parsed


# A JSON string (with escapes), a `//` comment to the end of the line, or a `/* */` block.
_STRING_OR_COMMENT = re.compile(r'"(?:\\.|[^"\\\n])*"|//[^\n]*|/\*.*?(?:\*/|\Z)', re.S)


def strip_json_comments(text: str) -> str:
    """`text` with `//` line comments and `/* */` block comments blanked out, strings kept."""
    if "//" not in text and "/*" not in text:
        return text

    def blank(match: re.Match[str]) -> str:
        found = match.group(0)
        if found.startswith('"'):
            return found
        return "".join("\n" if c == "\n" else " " for c in found)

    return _STRING_OR_COMMENT.sub(blank, text)


class _DuplicateKey(Exception):
    def __init__(self, key: str) -> None:
        self.key = key


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result: dict[str, Any] = {}
    for key, value in pairs:
        if key in result:
            raise _DuplicateKey(key)
        result[key] = value
    return result


def _parse_json(text: str, source: str) -> Any:
    cleaned = strip_json_comments(text)
    try:
        return json.loads(cleaned, object_pairs_hook=_no_duplicates)
    except _DuplicateKey as dup:
        raise ConfigErrors([ConfigIssue("", f"duplicate key '{dup.key}'")], source=source) from None
    except json.JSONDecodeError as exc:
        hint = ""
        if exc.msg.startswith("Expecting property name") or exc.msg.startswith("Expecting value"):
            hint = " (a trailing comma, or a `...` placeholder?)"
        raise ConfigErrors(
            [ConfigIssue("", f"invalid JSON at line {exc.lineno}, column {exc.colno}: {exc.msg}{hint}")],
            source=source,
        ) from None


class _StrictLoader(yaml.SafeLoader):
    """SafeLoader that refuses duplicate mapping keys."""


def _construct_mapping(loader: _StrictLoader, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
    loader.flatten_mapping(node)
    result: dict[Any, Any] = {}
    for key_node, value_node in node.value:
        key = loader.construct_object(key_node, deep=deep)
        if key in result:
            raise yaml.constructor.ConstructorError(None, None, f"duplicate key '{key}'", key_node.start_mark)
        result[key] = loader.construct_object(value_node, deep=deep)
    return result


_StrictLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)


def _parse_yaml(text: str, source: str) -> Any:
    try:
        return yaml.load(text, Loader=_StrictLoader)  # noqa: S506 - SafeLoader subclass
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = exc.problem or exc.context or "syntax error"
        raise ConfigErrors([ConfigIssue("", f"invalid YAML{where}: {problem}")], source=source) from None
    except yaml.YAMLError as exc:
        raise ConfigErrors([ConfigIssue("", f"invalid YAML: {exc}")], source=source) from None
