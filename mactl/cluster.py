"""Talking to a source or target cluster: one place that turns a `ClusterRef` into a client.

Every provider that reaches a cluster (snapshot, metadata, backfill, capture, validate)
builds its opensearch-py client here, so authentication (basic / SigV4), TLS checking,
timeouts and retries behave the same everywhere: every request waits out transient errors
(connection refused, timeouts, 429, 502-504) for a bounded time through
`mactl.retrying.RetryingTransport`, saying what it waits for. This module only connects and asks
what the cluster is; it must not hold migration logic.
"""

from __future__ import annotations

from typing import Any

from opensearchpy import OpenSearch, RequestsHttpConnection
from opensearchpy.exceptions import AuthenticationException, AuthorizationException, ConnectionError, TransportError

from mactl.errors import ConfigError, ProviderError
from mactl.retrying import ClusterUnavailable, RetryingTransport
from mactl.schema.common import ClusterRef

DEFAULT_TIMEOUT_S = 60.0
DEFAULT_RETRIES = 3


def client_for(
    ref: ClusterRef,
    *,
    timeout: float = DEFAULT_TIMEOUT_S,
    retries: int = DEFAULT_RETRIES,
    pool_maxsize: int = 10,
    retry_for: float | None = None,
    **extra: Any,
) -> OpenSearch:
    """An opensearch-py client for `ref`.

    `retry_for` bounds how long each request waits out transient errors (None: the
    default of `mactl.retrying`; 0: not at all, for callers with their own retries or
    quick probes).

    `pool_maxsize` matters for callers that fan requests out over threads (the metadata
    provider creates indices concurrently): urllib3 otherwise keeps only 10 connections
    and the rest are opened and thrown away. `extra` goes straight to `OpenSearch(...)`.
    """
    kwargs: dict[str, Any] = {
        "hosts": [ref.endpoint],
        "timeout": timeout,
        "max_retries": retries,
        "retry_on_timeout": True,
        "retry_on_status": (502, 503, 504),
        "pool_maxsize": pool_maxsize,
        "transport_class": RetryingTransport,
        "retry_what": f"{ref.name} {display_endpoint(ref.endpoint)}",
        "retry_for_s": retry_for,
    }
    if ref.endpoint.startswith("https://"):
        kwargs["use_ssl"] = True
        kwargs["verify_certs"] = not ref.insecure
        kwargs["ssl_show_warn"] = not ref.insecure
        if ref.insecure:
            kwargs["ssl_assert_hostname"] = False
    auth = ref.auth
    if auth.type == "basic":
        if not auth.username or auth.password is None:
            raise ConfigError(f"cluster '{ref.name}': basic auth needs `auth.username` and `auth.password`")
        kwargs["http_auth"] = (auth.username, auth.password.get_secret_value())
    elif auth.type == "sigv4":
        kwargs["http_auth"] = _sigv4_auth(ref)
        kwargs["connection_class"] = RequestsHttpConnection
    kwargs.update(extra)
    return OpenSearch(**kwargs)


def display_endpoint(endpoint: str) -> str:
    """`endpoint` without any user:password@ part, for messages."""
    from urllib.parse import urlsplit, urlunsplit

    try:
        parts = urlsplit(endpoint)
    except ValueError:
        return "(unparsable endpoint)"
    if parts.username is None and parts.password is None:
        return endpoint.rstrip("/")
    host = parts.hostname or ""
    netloc = f"{host}:{parts.port}" if parts.port else host
    return urlunsplit(parts._replace(netloc=netloc)).rstrip("/")


def _sigv4_auth(ref: ClusterRef) -> Any:
    """SigV4 signing from the default boto3 credential chain (env, profile, role)."""
    from opensearchpy import RequestsAWSV4SignerAuth

    from mactl.sigv4 import aws_credentials, sigv4_region

    where = f"cluster '{ref.name}': auth"
    region = sigv4_region(ref.auth, where)
    return RequestsAWSV4SignerAuth(aws_credentials(where), region, ref.auth.service)


def cluster_version(client: OpenSearch) -> tuple[str, str]:
    """(`distribution`, `version`) of the cluster: ("elasticsearch", "7.10.2") or ("opensearch", "2.19.6").

    Elasticsearch reports no `distribution`; OpenSearch reports "opensearch".
    """
    try:
        info = client.info()
    except (AuthenticationException, AuthorizationException) as exc:
        raise ProviderError(f"cluster at {_host(client)} refused the credentials: {exc.error}") from None
    except ClusterUnavailable:
        raise
    except ConnectionError as exc:
        raise ProviderError(f"cluster at {_host(client)} is unreachable: {exc.info or exc.error}") from None
    except TransportError as exc:
        if exc.status_code == 405:  # Elasticsearch 8's integ-test build serves no `GET /`
            return "elasticsearch", _node_version(client)
        raise ProviderError(f"cluster at {_host(client)} answered {exc.status_code}: {exc.error}") from None
    version = info.get("version", {})
    distribution = version.get("distribution") or "elasticsearch"
    return str(distribution), str(version.get("number", "0"))


def _node_version(client: OpenSearch) -> str:
    """The version the answering node reports in `GET _nodes/_local` (when `GET /` is not served)."""
    try:
        nodes = client.transport.perform_request("GET", "/_nodes/_local", params={"filter_path": "nodes.*.version"})
    except TransportError as exc:
        raise ProviderError(f"cluster at {_host(client)} answered {exc.status_code}: {exc.error}") from None
    found = [str(n.get("version")) for n in (nodes.get("nodes") or {}).values() if n.get("version")]
    if not found:
        raise ProviderError(f"cluster at {_host(client)} reports no version (neither `GET /` nor `GET _nodes`)")
    return found[0]


def version_tuple(version: str) -> tuple[int, ...]:
    """ "7.10.2" → (7, 10, 2); suffixes such as "-SNAPSHOT" are ignored."""
    parts: list[int] = []
    for piece in version.split("-", 1)[0].split("."):
        digits = "".join(ch for ch in piece if ch.isdigit())
        parts.append(int(digits) if digits else 0)
    return tuple(parts)


def _host(client: OpenSearch) -> str:
    try:
        conn = client.transport.hosts[0]
        return f"{conn.get('scheme', 'http')}://{conn['host']}:{conn['port']}"
    except (AttributeError, IndexError, KeyError, TypeError):
        return "the cluster"
