"""Real local services for development, tests and the demo: ES 7.10.2, OpenSearch 1.3 and 2.x,
a moto S3 server and a KRaft Kafka broker, all on loopback, without Docker.

It fetches distributions with `mvn` from Maven Central, unpacks each once into a cache, and
starts, checks and stops the services by PID. The CLI behind `scripts/clusters` is
`python -m devtools.local`; `tests/conftest.py` uses the same functions, and `scripts/demo`
and the workflow tests load the demo data with `devtools.local.sample`.

Development tooling (see `devtools`): not installed with mactl, and never imported by it.
mactl migrates clusters it is pointed at and never starts them itself; in turn this package
must not import mactl (least of all `mactl.cli`), so the harness works whatever state the
code under test is in.
"""

from __future__ import annotations

from devtools.local.clusters import CLUSTERS, ClusterSpec
from devtools.local.errors import LocalServiceError
from devtools.local.instance import Instance, Status
from devtools.local.services import (
    SERVICE_NAMES,
    start_services,
    status_of,
    stop_services,
)

__all__ = [
    "CLUSTERS",
    "ClusterSpec",
    "Instance",
    "LocalServiceError",
    "SERVICE_NAMES",
    "Status",
    "start_services",
    "status_of",
    "stop_services",
]
