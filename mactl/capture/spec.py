"""`ReplaySpec`: everything a replayer process needs, the replay stage's `JobSpec`.

The replay stage builds it from its inputs (`ReplaySpec.from_inputs`) and writes it into
its workdir (`replayer-spec.json`; `replayer-follow-spec.json` for the detached `mactl
replay run --follow`). `mactl replay run --spec FILE` and the switchover (which replays
what was captured after an in-apply replay stopped) read it back with `ReplaySpec.load`,
and `mactl.capture.replayer.options_from_spec` turns it into the replayer's options.
Its tuning defaults are the stage's (`mactl.schema.replay`), so a hand-written spec, or
`mactl replay run --log … --target …`, replays as the stage would.

The JSON form never holds the target's password (credentials live in the config only):
the detached follow replayer gets it in its environment (`PASSWORD_ENV`, set by the
replay stage that starts it; `mactl replay run --spec FILE` reads it there too), and
the switchover, which replays from the file in-process, gets it from the config
(`StageContext.target_password`). A sigv4 target has no secret here (`auth` is type,
region and service): the replayer takes AWS credentials from the default chain of its process.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from pydantic import ConfigDict, Field, SecretStr, ValidationError, field_validator

from mactl.errors import ConfigError
from mactl.schema.capture import CaptureLog, FileLog, KafkaLog
from mactl.schema.common import Auth, Model, TransformSpec
from mactl.schema.replay import (
    LAG_WINDOW_SECONDS,
    MAX_LAG_SECONDS,
    MAX_SPEEDUP_FACTOR,
    MAX_THROUGHPUT_MBPS,
    WORKERS,
    ReplayInputs,
)

DEFAULT_GROUP = "mactl-replay"  # the consumer group of `mactl replay run` without one


# How a replayer process started by mactl receives the target's password (never a file
# or an argument: arguments are readable by every user through `ps`).
PASSWORD_ENV = "MACTL_REPLAY_TARGET_PASSWORD"


class ReplayTarget(Model):
    """The target as the replayer needs it (`name` is unset for `mactl replay run --target URL`)."""

    name: str | None = None
    endpoint: str
    auth: Auth = Field(default_factory=Auth)
    insecure: bool = False


class ReplaySpec(Model):
    """One replayer job: which log and consumer group, where to start, the target, the tuning.

    `follow` and `timeoutSeconds` are for hand-written specs (`mactl replay run`); the
    stage passes `--follow` itself and bounds an in-apply replay with its own timeout.
    """

    model_config = ConfigDict(frozen=True)

    log: FileLog | KafkaLog = Field(default_factory=FileLog, discriminator="type")
    group: str = DEFAULT_GROUP
    start: dict[str, int] | None = None  # per-partition offsets; none: from the committed ones, or the log's start
    resume: bool = True  # start from the group's committed offsets when it has some
    target: ReplayTarget
    maxSpeedupFactor: float = Field(MAX_SPEEDUP_FACTOR, gt=0)
    maxThroughputMbps: float | None = MAX_THROUGHPUT_MBPS
    transforms: list[TransformSpec] = []
    maxLagSeconds: float = MAX_LAG_SECONDS
    lagWindowSeconds: float = LAG_WINDOW_SECONDS
    workers: int = Field(WORKERS, ge=1)
    workdir: str | None = None
    transformsBaseDir: str | None = None  # where a transform's relative `file:` starts: the config's folder
    startTime: float | None = None  # a time-only start point: skip records captured before it (epoch seconds)
    follow: bool = False
    timeoutSeconds: float | None = None

    @field_validator("log", mode="before")
    @classmethod
    def _file_log_by_default(cls, value: object) -> object:
        if isinstance(value, Mapping) and "type" not in value:
            return {**value, "type": "file"}
        return value

    @field_validator("transforms", mode="before")
    @classmethod
    def _transform_shorthand(cls, value: object) -> object:
        """A hand-written spec may use the config's shorthand (`mod:fn`, `file.j2`, inline text)."""
        if not isinstance(value, list):
            return value
        from mactl.transforms import parse_spec

        return [parse_spec(t) if isinstance(t, str) else t for t in value]

    @classmethod
    def from_inputs(
        cls,
        inputs: ReplayInputs,
        *,
        log: CaptureLog | Mapping[str, Any],
        group: str,
        start: dict[str, int],
        resume: bool,
        workdir: Path,
        config_dir: Path | None,
        start_time: float | None,
    ) -> ReplaySpec:
        """The spec of a replay stage: its inputs, plus the resolved log (absolute path), its
        consumer group, where to start, its workdir and the config's folder."""
        return cls(
            log=log,
            group=group,
            start=start,
            resume=resume,
            target=ReplayTarget.model_validate(inputs.target.model_dump()),
            maxSpeedupFactor=inputs.maxSpeedupFactor,
            maxThroughputMbps=inputs.maxThroughputMbps,
            transforms=list(inputs.transforms),
            maxLagSeconds=inputs.maxLagSeconds,
            lagWindowSeconds=inputs.lagWindowSeconds,
            workers=inputs.workers,
            workdir=str(workdir),
            transformsBaseDir=str(config_dir) if config_dir is not None else None,
            startTime=start_time,
        )

    @classmethod
    def load(cls, raw: Mapping[str, Any]) -> ReplaySpec:
        """A spec read from JSON (or assembled from `mactl replay run` options); a
        `ConfigError` naming the first bad field otherwise."""
        target = raw.get("target")
        if not isinstance(target, Mapping) or not target.get("endpoint"):
            raise ConfigError("replay: target.endpoint is required")
        try:
            return cls.model_validate(raw)
        except ValidationError as exc:
            first = exc.errors(include_url=False)[0]
            where = ".".join(str(p) for p in first["loc"])
            raise ConfigError(f"replay spec: {where}: {first['msg']}") from None

    def to_json(self) -> dict[str, Any]:
        """The JSON form, without the target's password (see the module docstring)."""
        data = self.model_dump(mode="json")
        data["target"]["auth"]["password"] = None
        return data

    def password(self) -> str | None:
        """The target's password, for the environment of a process this spec is handed to."""
        secret = self.target.auth.password
        return secret.get_secret_value() if secret is not None else None

    def with_password(self, password: str | None) -> ReplaySpec:
        """This spec with the target's password put back (from the config or `PASSWORD_ENV`);
        unchanged when there is none to put, or the spec already has one."""
        if not password or self.target.auth.password is not None or self.target.auth.type != "basic":
            return self
        auth = self.target.auth.model_copy(update={"password": SecretStr(password)})
        return self.model_copy(update={"target": self.target.model_copy(update={"auth": auth})})
