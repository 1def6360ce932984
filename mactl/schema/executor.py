"""Where a stage's workers run: local processes (the default) or a Kubernetes Job.

`executor: {type: kubernetes, ...}` on a backfill moves its workers onto a cluster: apply
creates an Indexed Job with `replicas` pods, each running `mactl worker ADDR`. The workers
coordinate as local ones do (leases in the working-state index), so the Job only decides how
many there are and where they run. On a replay the pods run the replayer, all in the stage's
consumer group, so Kafka shares the capture topic's partitions between them. `replicas` is
not in either stage's `replace_on`: changing it scales the Job in place.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, PositiveInt, model_validator

from mactl.schema.common import Model, NonEmptyStr

# A DNS-1123 label: what Kubernetes accepts as a namespace or Secret name.
_DNS_LABEL = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"
# An environment variable name a container accepts.
_ENV_NAME = r"^[-._a-zA-Z][-._a-zA-Z0-9]*$"
# What mactl gives every worker pod (see `mactl.executors.kubernetes`).
_SET_BY_MACTL = frozenset({"MACTL_JOB_SPEC", "MACTL_REPLAY_SPEC", "MACTL_WORKER_NAME"})


class LocalExecutor(Model):
    type: Literal["local"] = "local"


class ResourceAmounts(Model):
    cpu: str | None = None  # "500m", "2"
    memory: str | None = None  # "1Gi"


class Resources(Model):
    requests: ResourceAmounts | None = None
    limits: ResourceAmounts | None = None


class KubernetesExecutor(Model):
    """The Job apply creates for the stage's workers."""

    type: Literal["kubernetes"]
    kind: Literal["Job"] = Field("Job", description="What apply creates: an Indexed Job (shown in the plan).")
    namespace: str = Field("default", pattern=_DNS_LABEL, max_length=63)
    image: NonEmptyStr = Field(..., description="The mactl image the pods run (see the repository's Containerfile).")
    replicas: PositiveInt = Field(1, le=1000, description="Worker pods running at once (the Job's parallelism).")
    resources: Resources | None = None
    serviceAccount: str | None = Field(None, pattern=_DNS_LABEL)
    nodeSelector: dict[str, str] = {}
    env: dict[str, str] = Field({}, description="Plain environment variables for the workers; never credentials.")
    secretRefs: list[str] = Field(
        [],
        description="Names of existing Secrets in the namespace whose keys become the workers' environment "
        "(e.g. AWS credentials for an S3 snapshot repository).",
    )
    kubeconfig: str | None = Field(
        None, description="A kubeconfig file; default: KUBECONFIG, ~/.kube/config, in-cluster."
    )
    context: str | None = None

    @model_validator(mode="after")
    def _check_names(self) -> KubernetesExecutor:
        import re

        for name in self.env:
            if not re.match(_ENV_NAME, name):
                raise ValueError(f"executor.env: {name!r} is not a valid environment variable name")
            if name in _SET_BY_MACTL or name.startswith("MACTL_SECRET__"):
                raise ValueError(f"executor.env: {name!r} is set by mactl")
        for name in self.secretRefs:
            if not re.match(_DNS_LABEL, name):
                raise ValueError(f"executor.secretRefs: {name!r} is not a valid Secret name")
        return self


Executor = LocalExecutor | KubernetesExecutor
