"""The `state:` block of the config: which backend keeps the state, and where."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field

from mactl.schema.common import Model


class LocalStateConfig(Model):
    """State in a local folder: `<path>/state.json` (workspaces in `<path>/workspaces/NAME/`)."""

    backend: Literal["local"] = "local"
    path: str = ".mactl"


class S3StateConfig(Model):
    """State in S3 (or an S3-compatible store at `endpoint`), one key prefix per workspace."""

    backend: Literal["s3"]
    bucket: str
    key: str = "mactl/state.json"
    region: str = "us-east-1"
    endpoint: str | None = None


StateConfig = Annotated[LocalStateConfig | S3StateConfig, Field(discriminator="backend")]
