"""Building blocks shared by the user-facing config and the stage input schemas.

These models are used twice: in the config file as the user writes it, and inside
stage `inputs` as providers receive them. Field names follow the seed's camelCase.
They hold no behaviour beyond validation.
"""

from __future__ import annotations

from typing import Annotated, Literal
from urllib.parse import urlsplit

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, SecretStr, model_validator


class Model(BaseModel):
    """Strict base: unknown keys are errors (the validator turns them into "did you mean").

    No field of any input takes NaN or infinity (`maxSpeedupFactor: .inf` would turn a rate
    limit into no limit, `.nan` into comparisons that are always false).
    """

    model_config = ConfigDict(extra="forbid", populate_by_name=True, allow_inf_nan=False)


def check_http_url(value: str) -> str:
    """`value` if it is a well-formed http(s) URL with a host and a valid port; else ValueError."""
    if any(c.isspace() or ord(c) < 0x20 or ord(c) == 0x7F for c in value):
        raise ValueError("a URL may not contain spaces or control characters")
    try:
        parts = urlsplit(value)
        port = parts.port  # raises for a port out of 0-65535 or not a number
    except ValueError as err:
        # Never quote the parser's message: it repeats parts of the URL, a password included.
        text = str(err)
        what = (
            "its port is not a number from 1 to 65535"
            if "ort" in text
            else "its IPv6 address is malformed"
            if "IPv6" in text
            else "it cannot be parsed"
        )
        raise ValueError(f"not a valid URL: {what}") from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError("an endpoint must be an http:// or https:// URL with a host")
    if port == 0:
        raise ValueError("port 0 is not a port a cluster listens on")
    return value


HttpUrl = Annotated[str, AfterValidator(check_http_url)]
NonEmptyStr = Annotated[str, Field(min_length=1)]


class Auth(Model):
    """How to authenticate to a cluster. Secrets are `SecretStr` so they never print."""

    type: Literal["none", "basic", "sigv4"] = "none"
    username: str | None = None
    password: SecretStr | None = None
    region: str | None = None
    service: Literal["es", "aoss"] = "es"


class ClusterRef(Model):
    """A cluster mactl talks to: a source, a target or a coordinator."""

    name: str
    endpoint: str
    auth: Auth = Field(default_factory=Auth)
    insecure: bool = False


class IndexFilter(Model):
    """The one index-filter syntax: exact names, `*` wildcards or `re:` regexes.

    `names` may be a comma list or a YAML list; it is normalised to a list.
    """

    names: list[str]
    mode: Literal["include", "exclude"] = "include"

    @model_validator(mode="before")
    @classmethod
    def _split_names(cls, data: object) -> object:
        if isinstance(data, dict) and isinstance(data.get("names"), str):
            data = dict(data)
            data["names"] = [n.strip() for n in data["names"].split(",") if n.strip()]
        return data


class SnapshotRepository(Model):
    """Where snapshots live: a shared filesystem path or an S3 bucket and prefix."""

    type: Literal["fs", "s3"] = "fs"
    name: str | None = None  # the repository name registered on the source cluster
    location: str | None = None
    bucket: str | None = None
    basePath: str | None = None
    region: str | None = None
    endpoint: HttpUrl | None = None
    compress: bool = False

    @model_validator(mode="after")
    def _check_kind(self) -> SnapshotRepository:
        if self.type == "fs" and not self.location:
            raise ValueError("an fs snapshotRepository needs `location`")
        if self.type == "s3" and not self.bucket:
            raise ValueError("an s3 snapshotRepository needs `bucket`")
        return self


class TransformSpec(Model):
    """One transform: an inline Jinja2 template, a template file, or a Python callable.

    In the config a transform may be written as a plain string: `pkg.module:function`
    is a callable, a path ending in `.j2`/`.jinja` is a template file, anything else is
    an inline template. Lists of transforms run in order.
    """

    kind: Literal["jinja", "python"]
    template: str | None = None
    file: str | None = None
    callable: str | None = None
    codeDigest: str | None = Field(
        None,
        description="Set by mactl, not in the config: sha256 of the code file (the `.j2` file or the callable's "
        "module), so that editing the code shows in `plan`.",
    )


class LifecycleConfig(Model):
    preventRollback: bool = False
    ignoreChanges: list[str] = Field(default_factory=list)
    rollback: Literal["auto", "manual"] = "auto"
