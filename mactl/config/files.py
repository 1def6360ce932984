"""Reading config and variable files: YAML, JSON, or JSON with `//` and `/* */` comments.

The seed's sample configs are JSON with `//` comments, so comments are stripped by a
small scanner that knows about strings (an endpoint like `http://host:9200/` keeps its
`//`). Comments are replaced by spaces, never removed, so the line and column of a
JSON syntax error still point into the user's file. Duplicate keys are errors: a
silently-ignored first value is a classic way to migrate the wrong thing.
"""

from __future__ import annotations

import datetime
import json
import re
import stat
from pathlib import Path
from typing import Any

import yaml

from mactl.config.issues import ConfigErrors, ConfigIssue

JSON_SUFFIXES = (".json", ".jsonc", ".json5")
YAML_SUFFIXES = (".yaml", ".yml")


# Bounds on what a config or variable file may make mactl build: a 1 KB YAML "alias bomb"
# otherwise expands to hundreds of millions of nodes, and 10,000 nested brackets overflow
# every recursive walk after the parser. Real configs stay far below all three.
MAX_FILE_BYTES = 64 * 1024 * 1024
MAX_DEPTH = 100
MAX_EXPANDED_NODES = 1_000_000


def read_document(path: Path, *, what: str = "config") -> Any:
    """Parse `path` by its suffix (YAML or JSON-with-comments); errors name the file and line."""
    try:
        info = path.stat()
        if not stat.S_ISREG(info.st_mode):
            # A FIFO would block the read forever; a folder or device is never a config.
            kind = "a folder" if stat.S_ISDIR(info.st_mode) else "not a regular file"
            raise ConfigErrors([ConfigIssue("", f"cannot read {what} file: it is {kind}")], source=str(path))
        if info.st_size > MAX_FILE_BYTES:
            raise ConfigErrors(
                [ConfigIssue("", f"the {what} file is larger than {MAX_FILE_BYTES // (1024 * 1024)} MB")],
                source=str(path),
            )
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigErrors([ConfigIssue("", f"{what} file not found")], source=str(path)) from None
    except UnicodeDecodeError as exc:
        raise ConfigErrors(
            [ConfigIssue("", f"cannot read {what} file: not UTF-8 text (byte {exc.start})")], source=str(path)
        ) from None
    except (OSError, ValueError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        raise ConfigErrors([ConfigIssue("", f"cannot read {what} file: {reason}")], source=str(path)) from None
    return parse_text(text, source=str(path), suffix=path.suffix.lower(), what=what)


def parse_text(text: str, *, source: str, suffix: str = "", what: str = "config") -> Any:
    parsed = _parse_text(text, source=source, suffix=suffix, what=what)
    problem = _shape_problem(parsed)
    if problem:
        raise ConfigErrors([ConfigIssue("", f"the {what} file is refused: {problem}")], source=source)
    return parsed


def _shape_problem(value: Any) -> str | None:
    """Why a parsed document is refused (too deep, or not a tree of plain values), or None."""
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        node, depth = stack.pop()
        if depth > MAX_DEPTH:
            return f"it is nested deeper than {MAX_DEPTH} levels"
        if isinstance(node, dict):
            for key, item in node.items():
                if not isinstance(key, (str, int, float, bool)) and key is not None:
                    return f"a mapping key must be a plain value, not {type(key).__name__}"
                stack.append((item, depth + 1))
        elif isinstance(node, list):
            stack.extend((item, depth + 1) for item in node)
        elif isinstance(node, float) and node != node:
            continue  # NaN: the schema decides whether the field may hold it
        elif not isinstance(node, (str, int, float, bool, type(None), datetime.date)):
            return f"unsupported value of type {type(node).__name__}"
    return None


def _parse_text(text: str, *, source: str, suffix: str = "", what: str = "config") -> Any:
    if "\x00" in text:
        raise ConfigErrors([ConfigIssue("", f"the {what} file holds NUL bytes: is it a binary file?")], source=source)
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
    except RecursionError:
        raise ConfigErrors(
            [ConfigIssue("", f"invalid JSON: nested deeper than {MAX_DEPTH} levels")], source=source
        ) from None
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
    """SafeLoader that refuses duplicate mapping keys, alias loops, alias bombs and deep nesting."""

    _depth = 0

    def compose_node(self, parent: yaml.Node | None, index: int) -> yaml.Node | None:
        self._depth += 1
        try:
            if self._depth > MAX_DEPTH:
                mark = self.peek_event().start_mark  # type: ignore[no-untyped-call]
                raise yaml.composer.ComposerError(None, None, f"nested deeper than {MAX_DEPTH} levels", mark)
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1

    def compose_document(self) -> yaml.Node | None:
        node: yaml.Node | None = super().compose_document()
        if node is not None:
            _check_expansion(node)
        return node


def _check_expansion(root: yaml.Node) -> None:
    """Refuse an alias that refers to a node containing it, or aliases that multiply the document.

    Each node's size, with aliases expanded, is computed once (shared nodes are what an
    alias makes), so the check itself stays linear in the file.
    """
    sizes: dict[int, int] = {}
    open_nodes: set[int] = set()

    def size(node: yaml.Node, depth: int) -> int:
        key = id(node)
        if key in sizes:
            return sizes[key]
        if key in open_nodes:
            raise yaml.composer.ComposerError(None, None, "an alias refers to a node that contains it", node.start_mark)
        if depth > MAX_DEPTH:
            raise yaml.composer.ComposerError(
                None, None, f"nested deeper than {MAX_DEPTH} levels (with aliases expanded)", node.start_mark
            )
        total = 1
        if isinstance(node, (yaml.SequenceNode, yaml.MappingNode)):
            open_nodes.add(key)
            children: list[yaml.Node] = (
                list(node.value) if isinstance(node, yaml.SequenceNode) else [n for pair in node.value for n in pair]
            )
            for child in children:
                total += size(child, depth + 1)
                if total > MAX_EXPANDED_NODES:
                    raise yaml.composer.ComposerError(
                        None, None, f"aliases expand it to more than {MAX_EXPANDED_NODES:,} values", node.start_mark
                    )
            open_nodes.discard(key)
        sizes[key] = total
        return total

    size(root, 1)


def _construct_mapping(loader: _StrictLoader, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
    loader.flatten_mapping(node)
    result: dict[Any, Any] = {}
    for key_node, value_node in node.value:
        if not isinstance(key_node, yaml.ScalarNode):
            raise yaml.constructor.ConstructorError(
                None, None, "a mapping key must be a plain value, not a list or mapping", key_node.start_mark
            )
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
    except RecursionError:
        raise ConfigErrors(
            [ConfigIssue("", f"invalid YAML: nested deeper than {MAX_DEPTH} levels")], source=source
        ) from None
