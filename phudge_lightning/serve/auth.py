"""API keys for ``phudge serve``: ``Authorization: Bearer <key>`` on every route but the public ones.

Keys come from ``--api-key`` (repeatable) and ``PHUDGE_API_KEY`` (several separated by commas).
They are compared in constant time (``hmac.compare_digest`` on their SHA-256 digests, so not even
a key's length leaks through timing) and are never logged. Without a key the server listens on
loopback only, unless told otherwise (``--allow-no-key``).
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import os
import socket
from typing import Iterable

from phudge_lightning.serve.responses import AsciiJSON

ENV = "PHUDGE_API_KEY"
PUBLIC = ("/health",)


def _digest(key: bytes) -> bytes:
    return hashlib.sha256(key).digest()


def api_keys(given: Iterable[str] | None, environ: dict | None = None) -> list[str]:
    """The keys of ``--api-key`` and of ``PHUDGE_API_KEY`` (comma-separated); a blank one is a
    ``ValueError`` (a key of spaces would protect nothing)."""
    env = (environ if environ is not None else os.environ).get(ENV)
    keys = list(given or []) + ([k.strip() for k in env.split(",")] if env is not None else [])
    if any(not k.strip() for k in keys):
        raise ValueError(f"an API key is blank (--api-key or {ENV}): give a non-empty key")
    return [k.strip() for k in keys]


def is_loopback(host: str) -> bool:
    """Whether ``host`` (an address or a name) only ever means this machine."""
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        pass
    try:  # a name: loopback only when every address it resolves to is
        addresses = {info[4][0] for info in socket.getaddrinfo(host, None)}
    except OSError:
        return False
    return bool(addresses) and all(ipaddress.ip_address(a.split("%")[0]).is_loopback for a in addresses)


class RequireKey:
    """Answers 401, before the body is read, to a request without a valid
    ``Authorization: Bearer <key>``; the paths in ``public`` need none. No keys: lets all through."""

    def __init__(self, app, keys: Iterable[str], public: Iterable[str] = PUBLIC):
        self.app, self.public = app, frozenset(public)
        self.digests = [_digest(k.encode()) for k in keys]

    def allows(self, authorization: bytes | None) -> bool:
        if authorization is None:
            return False
        scheme, _, token = authorization.strip().partition(b" ")
        if scheme.lower() != b"bearer":
            return False
        given = _digest(token.strip())
        # Every key is compared, with no early exit: the time does not say which one matched.
        return sum(hmac.compare_digest(given, d) for d in self.digests) > 0

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http" or not self.digests or scope["path"] in self.public:
            return await self.app(scope, receive, send)
        authorization = next((v for k, v in scope["headers"] if k == b"authorization"), None)
        if self.allows(authorization):
            return await self.app(scope, receive, send)
        message = ("missing API key: send the header 'Authorization: Bearer <key>'" if authorization is None
                   else "wrong API key: the 'Authorization: Bearer <key>' header holds no key this server accepts")
        await AsciiJSON(status_code=401, content={"message": message, "detail": "unauthorized"},
                        headers={"WWW-Authenticate": "Bearer"})(scope, receive, send)
