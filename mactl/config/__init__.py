"""Config: load a desired-state file, normalise the seed's shapes, resolve variables, validate.

The public surface is `load_config(...) -> LoadedConfig` (its `.config` is the
canonical `Config` model) and `ConfigErrors`, raised with every problem at once, each
naming its path in the user's spelling. This package must not expand stages (that is
`mactl.graph`), read state, or talk to clusters: a config is checked without a network.

`common` holds the building blocks shared with stage input schemas (`Auth`,
`ClusterRef`, `IndexFilter`, `SnapshotRepository`, `TransformSpec`, …). The other
names are imported lazily so that provider modules can import `common` without
pulling in the whole loader (which itself imports provider schemas).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from mactl.config.issues import ConfigErrors, ConfigIssue  # noqa: F401
    from mactl.config.loader import LoadedConfig, find_config_file, load_config  # noqa: F401
    from mactl.config.model import Config  # noqa: F401

_LAZY = {
    "load_config": "mactl.config.loader",
    "find_config_file": "mactl.config.loader",
    "LoadedConfig": "mactl.config.loader",
    "Config": "mactl.config.model",
    "ConfigErrors": "mactl.config.issues",
    "ConfigIssue": "mactl.config.issues",
}

__all__ = sorted(_LAZY)


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'mactl.config' has no attribute {name!r}")
    import importlib

    return getattr(importlib.import_module(module), name)
