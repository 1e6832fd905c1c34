"""API-key check for the pricing endpoint, as ASGI middleware so it runs before the body is even parsed.

401 when the `X-API-Key` header is missing, 403 when it is wrong. Keys are compared in
constant time (hmac.compare_digest) and never logged or echoed.
"""

from __future__ import annotations

import hmac
import json
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

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
        given = next((value for name, value in scope.get("headers", []) if name.lower() == HEADER), None)
        if given is None:
            await _reject(send, 401, "missing X-API-Key header: the pricing endpoint needs the pricing team's key")
            return
        if not hmac.compare_digest(given, self._key):
            await _reject(send, 403, "the X-API-Key given is not valid for the pricing endpoint")
            return
        await self.app(scope, receive, send)


async def _reject(send: Send, status: int, message: str) -> None:
    body = json.dumps({"error": message}).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    if status == 401:
        headers.append((b"www-authenticate", b'ApiKey header="X-API-Key"'))
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})
