"""Config: load a desired-state file, normalise the seed's shapes, resolve variables, validate.

The public surface is `load_config(...) -> LoadedConfig` (its `.config` is the
canonical `Config` model) and `ConfigErrors`, raised with every problem at once, each
naming its path in the user's spelling. This package must not expand stages (that is
`mactl.graph`), read state, or talk to clusters: a config is checked without a network.

The building blocks shared with the stage input schemas (`Auth`, `ClusterRef`,
`IndexFilter`, `SnapshotRepository`, `TransformSpec`, …) live in `mactl.schema.common`,
and each config block extends its stage type's schema, so this package imports
`mactl.schema` and never `mactl.providers`.
"""

from __future__ import annotations

from mactl.config.issues import ConfigErrors, ConfigIssue
from mactl.config.loader import LoadedConfig, find_config_file, load_config
from mactl.config.model import Config

__all__ = ["Config", "ConfigErrors", "ConfigIssue", "LoadedConfig", "find_config_file", "load_config"]
