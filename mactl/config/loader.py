"""`load_config`: from a file (and variables) to a validated canonical `Config`.

The steps, each collecting problems rather than stopping at the first:
read the file → resolve variables → render `{{ var.x }}` → normalise the seed's shapes
→ validate with pydantic → fill in generated names → cross-field checks. Whatever was
found is raised at once as `ConfigErrors`, each problem naming its path in the user's
spelling. A parse error in the file itself stops early: nothing else can be trusted.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from mactl.config import checks
from mactl.config.bulk import paused_gc
from mactl.config.files import read_document
from mactl.config.issues import ConfigErrors, ConfigIssue, Origins, issues_from_validation
from mactl.config.model import Config
from mactl.config.normalize import normalize
from mactl.config.variables import mark_auth_variables, parse_declarations, render, resolve

DEFAULT_FILES = ("mactl.yaml", "mactl.json")


@dataclass
class LoadedConfig:
    """A loaded config and what the renderers and graph need beside it.

    `sensitive_values` holds the text of every sensitive variable's value: renderers
    mask any string equal to one. `origins` maps canonical locations back to the user's
    paths, for errors found later (by the graph expander).
    """

    config: Config
    path: Path
    warnings: list[str] = field(default_factory=list)
    sensitive_values: set[str] = field(default_factory=set)
    variables: dict[str, Any] = field(default_factory=dict)
    origins: Origins = field(default_factory=Origins)
    # Variables whose value is the config's own default: a saved plan re-reads them from the config.
    defaulted: set[str] = field(default_factory=set)

    @property
    def base_dir(self) -> Path:
        """The config's folder: relative paths in the config (transform files…) start here."""
        return self.path.parent


def find_config_file(path: Path | None, cwd: Path | None = None) -> Path:
    if path is not None:
        return path
    folder = cwd or Path.cwd()
    for name in DEFAULT_FILES:
        candidate = folder / name
        if candidate.is_file():
            return candidate
    raise ConfigErrors(
        [ConfigIssue("", f"no config file: neither {DEFAULT_FILES[0]} nor {DEFAULT_FILES[1]} is in {folder}")],
        hint="pass one with -c/--config FILE",
    )


def load_config(
    path: Path | None = None,
    var_args: Sequence[str] = (),
    var_files: Sequence[Path] = (),
    env: Mapping[str, str] | None = None,
) -> LoadedConfig:
    """Load, normalise and validate a config; raise `ConfigErrors` listing every problem."""
    with paused_gc():
        return _load(path, var_args, var_files, env)


def _load(
    path: Path | None,
    var_args: Sequence[str],
    var_files: Sequence[Path],
    env: Mapping[str, str] | None,
) -> LoadedConfig:
    config_path = find_config_file(Path(path) if path is not None else None)
    source = str(config_path)
    raw = read_document(config_path)
    issues: list[ConfigIssue] = []

    decls = parse_declarations(raw.get("variables") if isinstance(raw, dict) else None, issues)
    early_warnings: list[str] = []
    mark_auth_variables(raw, decls, early_warnings)
    resolved = resolve(
        decls,
        var_args=list(var_args),
        var_files=[Path(f) for f in var_files],
        env=os.environ if env is None else env,
        issues=issues,
        read_file=lambda f: _read_var_file(f, issues),
    )
    unrendered: set[str] = set()
    rendered = render(raw, resolved, decls, issues, unrendered)
    normalized = normalize(rendered)
    issues.extend(normalized.issues)
    if isinstance(normalized.data, dict) and "variables" in normalized.data:
        normalized.data["variables"] = decls  # already validated above; don't report twice

    secrets = frozenset(resolved.sensitive_values)
    try:
        config = Config.model_validate(normalized.data)
    except ValidationError as exc:
        found = issues_from_validation(exc, Config, normalized.origins, secrets=secrets)
        issues.extend(_not_already_reported(found, [*issues, *(ConfigIssue(p, "") for p in unrendered)]))
        raise ConfigErrors(_dedupe(issues), source=source) from None
    if issues:
        raise ConfigErrors(_dedupe(issues), source=source)

    warnings = [*early_warnings, *normalized.warnings]
    config._sensitive_values = frozenset(resolved.sensitive_values)
    checks.assign_names(config)
    from mactl.transforms import python_transforms_refused

    refuse_python = python_transforms_refused(os.environ if env is None else env)
    issues.extend(checks.check(config, normalized.origins, base_dir=config_path.parent, allow_python=not refuse_python))
    checks.default_repositories(config, normalized.origins, warnings)
    checks.filter_warnings(config, normalized.origins, warnings)
    checks.replayer_warnings(config, normalized.origins, warnings)
    if issues:
        raise ConfigErrors(_dedupe(issues), source=source)
    return LoadedConfig(
        config=config,
        path=config_path,
        warnings=warnings,
        sensitive_values=set(resolved.sensitive_values),
        variables=dict(resolved.values),
        origins=normalized.origins,
        defaulted={n for n, where in resolved.origins.items() if where.startswith("the default in ")},
    )


def _read_var_file(path: Path, issues: list[ConfigIssue]) -> Any:
    try:
        return read_document(path, what="variable")
    except ConfigErrors as err:
        issues.extend(ConfigIssue(f"-var-file {path}", issue.message) for issue in err.issues)
        return None


def _not_already_reported(found: list[ConfigIssue], earlier: list[ConfigIssue]) -> list[ConfigIssue]:
    """Drop schema errors at (or under) a path an earlier step already explained.

    A template that failed to render or a missing `targets` block also fails the schema;
    saying so twice only buries the useful message.
    """
    paths = {issue.path for issue in earlier}
    if "" in paths:
        return []

    def covered(path: str) -> bool:
        return any(path == p or path.startswith((p + ".", p + "[")) for p in paths)

    return [issue for issue in found if not covered(issue.path)]


def _dedupe(issues: list[ConfigIssue]) -> list[ConfigIssue]:
    seen: set[ConfigIssue] = set()
    out = []
    for issue in issues:
        if issue not in seen:
            seen.add(issue)
            out.append(issue)
    return out
