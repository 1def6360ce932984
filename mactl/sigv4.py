"""AWS SigV4: where mactl finds AWS credentials, and how the replayer signs a raw request.

`mactl.cluster` (the opensearch-py client of every stage) and the replayer (which sends
captured requests over plain `http.client`) both take credentials from
`aws_credentials`: boto3's default chain (environment, shared profile, SSO, web
identity, container or instance role). Neither copies a key anywhere: the config only
says `auth: {type: sigv4, region, service}`.

`RequestSigner.sign` signs one request as it will be sent: method, path and query,
`Host`, `Content-Type` (when there is exactly one) and the payload hash. It asks the
credentials for a frozen copy on every call, so refreshable ones (role, SSO) are renewed
when they near expiry. It returns only the headers to add (`Authorization`,
`X-Amz-Date`, `X-Amz-Content-SHA256`, `X-Amz-Security-Token` when there is a session
token); the caller must send exactly what was signed.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any
from urllib.parse import quote_from_bytes, unquote_to_bytes

from mactl.errors import ConfigError, MactlError

if TYPE_CHECKING:  # the capture proxy imports this module: it stays free of pydantic
    from typing import TypeAlias

    from mactl.schema.common import Auth

    # A `ClusterRef.auth`: the model, or its dict (a job spec, a test).
    AuthInputs: TypeAlias = Auth | Mapping[str, Any] | None

CREDENTIALS_HINT = (
    "set AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY (and AWS_SESSION_TOKEN) or AWS_PROFILE, or run with a role"
)

# Headers a signature owns. The replayer drops the client's copies before signing (they
# were made for another request, by someone else).
SIGNATURE_HEADERS = frozenset({"authorization", "x-amz-date", "x-amz-security-token", "x-amz-content-sha256"})

# RFC 3986 pchar (minus '%', kept as is: the path is already percent-encoded on the wire).
_PATH_SAFE = "/%:@!$&'()*+,;=-._~"
_QUERY_SAFE = "-_.~"  # SigV4's URI-encode leaves only unreserved characters


class SigningError(MactlError):
    """Credentials could not be resolved or refreshed while signing a request."""


def _auth_field(auth: AuthInputs, name: str) -> Any:
    if isinstance(auth, Mapping):
        return auth.get(name)
    return getattr(auth, name, None)


def aws_credentials(where: str) -> Any:
    """botocore credentials from the default chain, or a `ConfigError` naming `where`."""
    import boto3
    from botocore.exceptions import BotoCoreError

    try:
        credentials = boto3.Session().get_credentials()
    except BotoCoreError as exc:  # a missing profile, partial environment credentials…
        raise ConfigError(f"{where}: sigv4 auth could not load AWS credentials: {exc}", hint=CREDENTIALS_HINT) from None
    if credentials is None:
        raise ConfigError(f"{where}: sigv4 auth found no AWS credentials", hint=CREDENTIALS_HINT)
    return credentials


def sigv4_region(auth: AuthInputs, where: str) -> str:
    """`auth.region`, or a `ConfigError` naming `<where>.region`."""
    region = _auth_field(auth, "region")
    if not region:
        raise ConfigError(f"{where}.region: sigv4 auth needs the AWS region of the domain (e.g. us-east-1)")
    return str(region)


def signer_for(auth: AuthInputs, where: str = "target.auth") -> RequestSigner:
    """A `RequestSigner` for a `ClusterRef.auth` (model or dict) of type sigv4.

    `where` is the config path of that auth block, for the error messages.
    """
    region = sigv4_region(auth, where)
    service = str(_auth_field(auth, "service") or "es")
    return RequestSigner(aws_credentials(where), region, service)


def wire_target(path: str) -> str:
    """The request target (path and query) in the form that is both sent and signed.

    SigV4 servers rebuild the canonical query by decoding and re-encoding each name and
    value, so a query sent with raw `,` or `:` (`filter_path=took,errors`, `q=f:v`) would
    be signed one way and checked another. Each name and value is therefore re-encoded
    (`+` becomes `%20`: OpenSearch decodes both to a space); a part without `=` keeps
    having none, and the parts keep their order. Characters not allowed in a path are
    percent-encoded; an already-encoded path is left as it is.
    """
    raw_path, sep, query = path.partition("?")
    out = quote_from_bytes(raw_path.encode("utf-8", "surrogateescape"), safe=_PATH_SAFE) or "/"
    if not sep:
        return out
    parts = []
    for part in query.split("&"):
        if not part:
            continue
        name, eq, value = part.partition("=")
        parts.append(_encode_query(name) + (eq and "=" + _encode_query(value)))
    return out + ("?" + "&".join(parts) if parts else "")


def _encode_query(text: str) -> str:
    return quote_from_bytes(unquote_to_bytes(text.replace("+", " ")), safe=_QUERY_SAFE)


class RequestSigner:
    """Signs requests with AWS SigV4 for one region and service (`es` or `aoss`)."""

    def __init__(self, credentials: Any, region: str, service: str = "es") -> None:
        self._credentials = credentials
        self.region = region
        self.service = service

    def __repr__(self) -> str:  # never the credentials
        return f"RequestSigner(region={self.region!r}, service={self.service!r})"

    def _frozen(self) -> Any:
        from botocore.exceptions import BotoCoreError

        try:
            if hasattr(self._credentials, "get_frozen_credentials"):
                return self._credentials.get_frozen_credentials()
            return self._credentials
        except BotoCoreError as exc:
            raise SigningError(f"sigv4: could not refresh AWS credentials: {exc}", hint=CREDENTIALS_HINT) from None

    def sign(
        self,
        method: str,
        scheme: str,
        host: str,
        target: str,
        headers: Sequence[tuple[str, str]],
        body: bytes,
    ) -> list[tuple[str, str]]:
        """The signature headers for `method scheme://host target` with these headers and body.

        `host` is the Host header value sent, `target` the path and query exactly as sent
        (see `wire_target`). `X-Amz-Content-SHA256` is always included: OpenSearch
        Serverless (`aoss`) requires it, managed domains accept it.
        """
        from botocore.auth import SigV4Auth
        from botocore.awsrequest import AWSRequest

        to_sign = {"Host": host}
        content_types = [v for k, v in headers if k.lower() == "content-type"]
        if len(content_types) == 1:
            to_sign["Content-Type"] = content_types[0]
        to_sign["X-Amz-Content-SHA256"] = hashlib.sha256(body).hexdigest()
        request = AWSRequest(method=method.upper(), url=f"{scheme}://{host}{target}", data=body, headers=to_sign)
        SigV4Auth(self._frozen(), self.service, self.region).add_auth(request)
        return [(k, v) for k, v in request.headers.items() if k.lower() in SIGNATURE_HEADERS]
