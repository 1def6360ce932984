"""Stage type → provider. Built-ins are listed here; others come from entry points.

Adding a built-in stage type means one module in this folder and one line below.
Third-party packages register `name = "pkg.module:ProviderClass"` in the
`mactl.providers` entry-point group.
"""

from __future__ import annotations

import importlib
from functools import cache
from importlib.metadata import entry_points
from typing import Any

from mactl.providers.base import Provider

from mactl.errors import ConfigError

BUILTIN: dict[str, str] = {
    "capture": "mactl.providers.capture:CaptureProvider",
    "snapshot": "mactl.providers.snapshot:SnapshotProvider",
    "metadata": "mactl.providers.metadata:MetadataProvider",
    "backfill": "mactl.providers.backfill:BackfillProvider",
    "replay": "mactl.providers.replay:ReplayProvider",
    "validate": "mactl.providers.validate:ValidateProvider",
    "manual": "mactl.providers.manual:ManualProvider",
    "switchover": "mactl.providers.switchover:SwitchoverProvider",
    "disable_capture": "mactl.providers.disable_capture:DisableCaptureProvider",
    "teardown": "mactl.providers.teardown:TeardownProvider",
}


def _load(target: str) -> Provider[Any]:
    module_name, _, attr = target.partition(":")
    cls = getattr(importlib.import_module(module_name), attr)
    provider: Provider[Any] = cls()
    return provider


@cache
def _entry_point_targets() -> dict[str, str]:
    return {ep.name: ep.value for ep in entry_points(group="mactl.providers")}


@cache
def get_provider(stage_type: str) -> Provider[Any]:
    """The provider for `stage_type`; a clear error naming the known types otherwise."""
    target = BUILTIN.get(stage_type) or _entry_point_targets().get(stage_type)
    if target is None:
        known = ", ".join(sorted({*BUILTIN, *_entry_point_targets()}))
        raise ConfigError(f"unknown stage type '{stage_type}' (known: {known})")
    return _load(target)


def known_types() -> list[str]:
    return sorted({*BUILTIN, *_entry_point_targets()})
