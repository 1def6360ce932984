"""Who may use the console: the token a non-loopback binding requires, the Host check, and CSRF.

Bound to a loopback address (the default), the console answers only requests whose Host
header names that loopback address, so a web page elsewhere cannot reach it through DNS
rebinding. Bound anywhere else, every request must carry the token `mactl ui` printed:
as `?token=` (the printed link; answered with a cookie and a redirect to the same page
without it), as the cookie, or as `Authorization: Bearer`. Every POST must also carry the
page's CSRF token, so another site cannot make a browser approve a stage.
"""

from __future__ import annotations

import hmac
import ipaddress
import secrets
from collections.abc import Awaitable, Callable, MutableMapping
from http.cookies import SimpleCookie
from typing import Any
from urllib.parse import parse_qsl, urlencode

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

COOKIE = "mactl_console"
LOOPBACK_NAMES = frozenset({"localhost"})


def is_loopback(host: str) -> bool:
    if host in LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def new_token() -> str:
    return secrets.token_urlsafe(24)


def same(a: str | None, b: str) -> bool:
    return a is not None and hmac.compare_digest(a.encode(), b.encode())


class Access:
    """The console's access rules for one run of `mactl ui`."""

    def __init__(self, host: str, port: int, token: str | None) -> None:
        self.host = host
        self.port = port
        self.token = token  # None: loopback binding, no token needed
        self.csrf = new_token()

    def allowed_host(self, header: str | None) -> bool:
        """A loopback console answers only to its own loopback names (DNS rebinding)."""
        if self.token is not None:
            return True  # the token is the guard
        if header is None:
            return False
        name = header.rsplit(":", 1)[0] if not header.endswith("]") else header
        return is_loopback(name.strip("[]"))


def _headers(scope: Scope) -> dict[str, str]:
    return {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope.get("headers", [])}


async def _plain(send: Send, status: int, text: str, extra: list[tuple[bytes, bytes]] | None = None) -> None:
    body = text.encode()
    headers = [(b"content-type", b"text/plain; charset=utf-8"), (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": status, "headers": headers + (extra or [])})
    await send({"type": "http.response.body", "body": body})


class AccessMiddleware:
    """Refuses every request that the `Access` rules do not allow, before any page code runs."""

    def __init__(self, app: ASGIApp, access: Access) -> None:
        self.app = app
        self.access = access

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = _headers(scope)
        if not self.access.allowed_host(headers.get("host")):
            await _plain(send, 403, "refused: the console answers only to its loopback address\n")
            return
        token = self.access.token
        if token is None:
            await self.app(scope, receive, send)
            return
        query = parse_qsl(scope.get("query_string", b"").decode("latin-1"), keep_blank_values=True)
        given = dict(query).get("token")
        if same(given, token):
            # The printed link: keep the token in a cookie, and take it out of the address bar.
            rest = urlencode([(k, v) for k, v in query if k != "token"])
            location = scope.get("path", "/") + (f"?{rest}" if rest else "")
            cookie = f"{COOKIE}={token}; HttpOnly; SameSite=Strict; Path=/"
            await _plain(send, 303, "", [(b"location", location.encode()), (b"set-cookie", cookie.encode())])
            return
        cookie_value = None
        if "cookie" in headers:
            jar: SimpleCookie = SimpleCookie()
            jar.load(headers["cookie"])
            if COOKIE in jar:
                cookie_value = jar[COOKIE].value
        bearer = headers.get("authorization", "")
        bearer_value = bearer[7:] if bearer.lower().startswith("bearer ") else None
        if same(cookie_value, token) or same(bearer_value, token):
            await self.app(scope, receive, send)
            return
        await _plain(send, 401, "refused: this console needs the token `mactl ui` printed (open its link)\n")
