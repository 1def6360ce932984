"""What the Kubernetes tests share: the control plane they run against."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class Kube:
    kubeconfig: Path
    pods: Path  # where the local node keeps each pod's log

    def api(self) -> Any:
        from kubernetes import config

        return config.new_client_from_config(config_file=str(self.kubeconfig))

    @property
    def restricted(self) -> Path:
        """The control plane's second user, whom RBAC grants nothing (`devtools.kube.cluster`)."""
        return self.kubeconfig.parent / "kubeconfig-restricted"


def assert_the_password_is_only_in_the_secret(control: Any, job: Any, password: str, pods: int) -> dict[str, str]:
    """The Job (`job`, as read back) and, once the Job controller made them, its `pods` pods
    hold no trace of `password`; the Secret their environment refers to holds it. Returns
    that reference (`name`, `key`)."""
    import base64
    import json
    import time

    from kubernetes import client

    raw = control.api.sanitize_for_serialization(job)
    assert password not in json.dumps(raw)
    env = {e["name"]: e for e in raw["spec"]["template"]["spec"]["containers"][0]["env"]}
    ref: dict[str, str] = env["MACTL_SECRET__target__auth__password"]["valueFrom"]["secretKeyRef"]
    secret = client.CoreV1Api(control.api).read_namespaced_secret(ref["name"], "default")
    assert base64.b64decode(secret.data[ref["key"]]).decode() == password
    deadline = time.monotonic() + 30
    while len(control.pods()) < pods and time.monotonic() < deadline:
        time.sleep(0.5)
    assert len(control.pods()) == pods
    for pod in control.pods():
        assert password not in json.dumps(control.api.sanitize_for_serialization(pod))
    return ref


# The image `scripts/image build` makes from ./Containerfile (scripts/test builds it in the
# background); the tests that run pods inside it wait for the build first.
IMAGE = os.environ.get("MACTL_TEST_IMAGE", "localhost/mactl:ci")


def wait_for_the_image_build(timeout: float = 1200) -> None:
    """`scripts/test` builds the image in the background; the build holds this lock."""
    import fcntl
    import time

    lock = Path("/var/cache/mactl/image/build.lock")
    if not lock.exists():
        return
    deadline = time.monotonic() + timeout
    with lock.open() as fh:
        while True:
            try:
                fcntl.flock(fh, fcntl.LOCK_SH | fcntl.LOCK_NB)
                return
            except BlockingIOError:
                assert time.monotonic() < deadline, f"the image build still holds {lock} after {timeout:.0f}s"
                time.sleep(2)
