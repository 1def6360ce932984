"""What a target writes back by itself, so a comparison can tell it from a real difference.

An index created with a mapping does not read back byte for byte: the target parses every
parameter into its type (`"true"` → `true`, `"256"` → `256`, `100` → `100.0`), stores some
parameters as lists (`copy_to`), leaves out what equals a default (`_source.enabled: true`,
`type: object` beside `properties`) and fills in defaults for some field types (k-NN's
`method.space_type` and `parameters`, `completion`'s analyzer, `index_prefixes`' bounds).
`comparable_mappings` and `canonical_aliases` put the definition mactl recorded and the
target's answer into one form, so comparing them shows only what would change how
documents are indexed or searched.

Every rule is stated as "these two spellings mean the same to the target", applied to both
sides alike; a default is dropped only where one side spells it out and the other leaves
it out. A real difference (a type changed, a field dropped, a dimension or an analyzer
changed, a default overridden on one side) survives, and the comparison names its path. The
defaults the targets fill in are listed once, in `FIELD_DEFAULTS`, each with where it was
seen (found by creating the real-world corpus, the version matrix's mappings and the ES 8 /
OpenSearch 3 constructs on OpenSearch 2.19 and 3.5; `tests/audit/test_audit_mapping_check.py`).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

Path = tuple[str, ...]


class OneOf(tuple[Any, ...]):
    """A default that depends on the target's version: any of these values is the default."""


# Per field type: parameters (a path inside the field's definition) and the value the target
# uses when a definition leaves the parameter out. A parameter holding exactly that value
# means the same as no parameter, whichever side has it. Longer paths are dropped first, so
# a parent left empty by them (`method.parameters` after `encoder.parameters`) can go too.
# "object" covers a field without a type (an object with `properties`).
FIELD_DEFAULTS: dict[str, dict[Path, Any]] = {
    "object": {
        ("type",): "object",  # left out beside `properties` by both targets
        ("properties",): {},  # an object without fields reads back as `{"type": "object"}`
    },
    "text": {
        ("index_prefixes", "min_chars"): 2,  # `index_prefixes: {}` reads back with its bounds
        ("index_prefixes", "max_chars"): 5,
    },
    "completion": {
        ("analyzer",): "simple",
        ("search_analyzer",): "simple",
        ("preserve_separators",): True,
        ("preserve_position_increments",): True,
        ("max_input_length",): 50,
    },
    "search_as_you_type": {("doc_values",): False, ("max_shingle_size",): 3},
    "join": {("eager_global_ordinals",): True},
    "version": {("index",): True},  # OpenSearch 3.x
    "wildcard": {("doc_values",): OneOf((True, False))},  # 3.5 writes back true, 2.19 false
    "knn_vector": {
        ("data_type",): "float",
        ("method", "space_type"): "l2",
        # the engine a method without one gets: faiss since k-NN 2.18, nmslib before
        ("method", "engine"): OneOf(("faiss", "nmslib")),
        ("method", "parameters", "encoder", "parameters"): {},
        ("method", "parameters"): {},
    },
}

# Defaults of the mapping's own root (`_source`) and of each dynamic template's entry.
ROOT_DEFAULTS: dict[Path, Any] = {("_source", "enabled"): True, ("_source",): {}}
DYNAMIC_TEMPLATE_DEFAULTS: dict[Path, Any] = {("match_mapping_type",): "*"}

# Parameters the target stores as a list: one value means the same as a list of it.
LIST_PARAMETERS = frozenset({"copy_to"})

# Parameters whose value the target keeps as an enum name: compared without case (k-NN
# writes `"data_type": "byte"` back as `"BYTE"`).
CASELESS_PARAMETERS: dict[str, frozenset[str]] = {"knn_vector": frozenset({"data_type"})}

# Kept verbatim by the target: nothing in them is parsed, so nothing is coerced.
_VERBATIM = frozenset({"_meta"})


def scalar(value: Any) -> Any:
    """One form for a scalar the target parses: booleans and numbers whatever their spelling.

    The target parses `"true"`, `"256"` and `100` into the parameter's type and writes that
    back, so `"true"`/`true`, `"256"`/`256` and `100`/`100.0` are the same parameter value.
    Any other string stays as it is. Both sides of a comparison go through this, so `256`
    against `512` still differs.
    """
    if isinstance(value, bool):
        return value
    if isinstance(value, int | float):
        return _number(float(value))
    if isinstance(value, str):
        if value in ("true", "false"):
            return value == "true"
        try:
            number = float(value)
        except ValueError:
            return value
        # only a number's own spelling: "256" and "0.5" are numbers, "01" or "1e3" stay
        # strings (a keyword's `null_value: "01"` is not `"1"`)
        if math.isfinite(number) and value in (str(_number(number)), repr(number)):
            return _number(number)
        return value
    return value


def _number(number: float) -> int | float:
    """A whole number as an int, so a difference reads `4 → 8`, not `4.0 → 8.0`."""
    return int(number) if math.isfinite(number) and number.is_integer() else number


def _plain(value: Any) -> Any:
    """Scalars in their one form, all the way down (not inside `_VERBATIM` keys)."""
    if isinstance(value, Mapping):
        return {k: (v if k in _VERBATIM else _plain(v)) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    return scalar(value)


def _get(spec: Any, path: Path) -> tuple[bool, Any]:
    for key in path:
        if not isinstance(spec, dict) or key not in spec:
            return False, None
        spec = spec[key]
    return True, spec


def _delete(spec: dict[str, Any], path: Path) -> None:
    parent: Any = spec
    for key in path[:-1]:
        parent = parent[key]
    del parent[path[-1]]


def _is_default(value: Any, default: Any) -> bool:
    options = default if isinstance(default, OneOf) else (default,)
    return any(value == _plain(option) for option in options)


def _drop_defaults(desired: dict[str, Any], actual: dict[str, Any], defaults: Mapping[Path, Any]) -> None:
    """Drop a parameter one side has and the other leaves out, when its value is the default.

    Only then: where both sides spell a parameter out, their values are compared, so an
    explicit `doc_values: true` against a target's `false` still differs. Longer paths go
    first, so a parent they leave empty (`_source` after `_source.enabled`) can go too.
    """
    for path in sorted(defaults, key=len, reverse=True):
        d_has, d_value = _get(desired, path)
        a_has, a_value = _get(actual, path)
        if d_has and not a_has and _is_default(d_value, defaults[path]):
            _delete(desired, path)
        elif a_has and not d_has and _is_default(a_value, defaults[path]):
            _delete(actual, path)


def _field_type(spec: Mapping[str, Any]) -> str:
    return str(spec.get("type") or "object")


def _one_form_field(spec: Any) -> Any:
    """The spellings of one field that need no partner: lists, enum case, k-NN space_type."""
    if not isinstance(spec, dict):
        return spec
    kind = _field_type(spec)
    out = dict(spec)
    for key in LIST_PARAMETERS & out.keys():
        if not isinstance(out[key], list):
            out[key] = [out[key]]
    for key in CASELESS_PARAMETERS.get(kind, frozenset()) & out.keys():
        if isinstance(out[key], str):
            out[key] = out[key].lower()
    if kind == "knn_vector" and isinstance(out.get("method"), dict) and "space_type" in out:
        # a field-level `space_type` is copied into the method by the target (k-NN 2.16+)
        out["method"] = {"space_type": out["space_type"], **out["method"]}
    for group in ("properties", "fields"):
        if isinstance(out.get(group), dict):
            out[group] = {name: _one_form_field(sub) for name, sub in out[group].items()}
    return out


def _pair_fields(desired: Any, actual: Any) -> None:
    """Drop the defaults one side of each field pair spells out (same names, same types)."""
    if not isinstance(desired, dict) or not isinstance(actual, dict):
        return
    for name in desired.keys() & actual.keys():
        d, a = desired[name], actual[name]
        if not isinstance(d, dict) or not isinstance(a, dict):
            continue
        kind = _field_type(d)
        if kind != _field_type(a):
            continue  # a type change: shown as it is
        _drop_defaults(d, a, FIELD_DEFAULTS.get(kind, {}))
        for group in ("properties", "fields"):
            _pair_fields(d.get(group), a.get(group))


def _one_form_dynamic_template(entry: Any) -> Any:
    """`{name: {match…, mapping}}` with its mapping's spellings in one form."""
    if not isinstance(entry, dict):
        return entry
    return {
        name: {**body, "mapping": _one_form_field(body["mapping"])}
        if isinstance(body, dict) and isinstance(body.get("mapping"), dict)
        else body
        for name, body in entry.items()
    }


def _one_form_mappings(mappings: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = _plain(mappings)
    if isinstance(out.get("properties"), dict):
        out["properties"] = {name: _one_form_field(spec) for name, spec in out["properties"].items()}
    templates = out.get("dynamic_templates")
    if isinstance(templates, list):
        out["dynamic_templates"] = [_one_form_dynamic_template(t) for t in templates]
    return out


def comparable_mappings(desired: Any, actual: Any) -> tuple[Any, Any]:
    """Both sides of a mapping comparison (one index's, or a template's) in one form.

    What mactl recorded and what the target answers go through the same rules; see the
    module's docstring for why each keeps the mapping's meaning.
    """
    if not isinstance(desired, dict) or not isinstance(actual, dict):
        return desired, actual
    left, right = _one_form_mappings(desired), _one_form_mappings(actual)
    _drop_defaults(left, right, ROOT_DEFAULTS)
    _pair_fields({"": left}, {"": right})  # the root is an object field too
    d_templates, a_templates = left.get("dynamic_templates"), right.get("dynamic_templates")
    if isinstance(d_templates, list) and isinstance(a_templates, list):
        for d_entry, a_entry in zip(d_templates, a_templates, strict=False):
            if isinstance(d_entry, dict) and isinstance(a_entry, dict):
                for name in d_entry.keys() & a_entry.keys():
                    d_body, a_body = d_entry[name], a_entry[name]
                    if isinstance(d_body, dict) and isinstance(a_body, dict):
                        _drop_defaults(d_body, a_body, DYNAMIC_TEMPLATE_DEFAULTS)
                        _pair_fields({"m": d_body.get("mapping")}, {"m": a_body.get("mapping")})
    return left, right


def canonical_alias(alias: Any) -> Any:
    """An alias with `routing` spelt as the target stores it: `index_routing` and `search_routing`.

    `routing: r` is shorthand for both; the target answers with the two. An explicit
    `index_routing` or `search_routing` beside it wins, as it does on the target. Nothing
    else is coerced: OpenSearch ignores `is_write_index: "true"` (a string) at index
    creation, so it must not compare equal to the `true` the target would then lack.
    """
    if not isinstance(alias, dict):
        return alias
    out = dict(alias)
    routing = out.pop("routing", None)
    if routing is not None:
        out.setdefault("index_routing", routing)
        out.setdefault("search_routing", routing)
    return out


def canonical_aliases(aliases: Any) -> Any:
    if not isinstance(aliases, dict):
        return aliases
    return {name: canonical_alias(body) for name, body in aliases.items()}
