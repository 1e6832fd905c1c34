"""API-key check for the pricing endpoint, as ASGI middleware so it runs before the body is even parsed.

401 when the `X-API-Key` header is missing, 403 when it is wrong. Keys are compared in
constant time (hmac.compare_digest) and never logged or echoed.
"""

from __future__ import annotations

import hmac

from serving.api.asgi import ASGIApp, Receive, Scope, Send, header, send_error

HEADER = b"x-api-key"


class ApiKeyMiddleware:
    """Guard the paths in `protected` with one shared key; every other path passes through untouched."""

    def __init__(self, app: ASGIApp, key: str, protected: tuple[str, ...] = ("/price",)) -> None:
        self.app = app
        self._key = key.encode()
        self._protected = protected

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope.get("type") != "http" or scope.get("path") not in self._protected:
            await self.app(scope, receive, send)
            return
        given = header(scope, HEADER)
        if given is None:
            challenge = [(b"www-authenticate", b'ApiKey header="X-API-Key"')]
            await send_error(
                send, 401, "missing X-API-Key header: the pricing endpoint needs the pricing team's key", challenge
            )
            return
        if not hmac.compare_digest(given, self._key):
            await send_error(send, 403, "the X-API-Key given is not valid for the pricing endpoint")
            return
        await self.app(scope, receive, send)
