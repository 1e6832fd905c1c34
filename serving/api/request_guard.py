"""Refuse what the JSON endpoints cannot take before BentoML parses it: oversized bodies and non-JSON bodies.

BentoML picks a body parser by the request's Content-Type, so a `multipart/form-data` or form-encoded
request reached the form parser and failed there with a 500; and it read any body whole, so a 100 MB
POST cost the worker 200 MB of memory before pydantic rejected it. Here a declared Content-Length
over the limit is refused unread, a chunked body is counted as it arrives and refused at the limit,
and only JSON (or no declared type) goes on. The body read here is replayed to the app unchanged.
"""

from __future__ import annotations

from serving.api.asgi import ASGIApp, Message, Receive, Scope, Send, header, send_error

WITH_BODY = frozenset({"POST", "PUT", "PATCH"})
JSON = b"application/json"


class TooLarge(Exception):
    """The body grew past the limit while it was read."""


class RequestGuard:
    """413 above `max_body_bytes`, 415 for a body that does not declare itself JSON; everything else passes."""

    def __init__(self, app: ASGIApp, max_body_bytes: int) -> None:
        self.app = app
        self.max_body_bytes = max_body_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope.get("type") != "http" or scope.get("method") not in WITH_BODY:
            await self.app(scope, receive, send)
            return
        if problem := self._content_type_problem(header(scope, b"content-type")):
            await send_error(send, 415, problem)
            return
        declared = header(scope, b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.max_body_bytes:
            await send_error(send, 413, self._too_large(f"{int(declared):,} bytes"))
            return
        try:
            body = await self._read(receive)
        except TooLarge:
            await send_error(send, 413, self._too_large("the body"))
            return
        await self.app(scope, _replay(body, receive), send)

    @staticmethod
    def _content_type_problem(content_type: bytes | None) -> str | None:
        if content_type is None:
            return None  # BentoML reads an undeclared body as JSON
        media = content_type.split(b";", 1)[0].strip().lower()
        if media == JSON or (media.startswith(b"application/") and media.endswith(b"+json")):
            return None
        return (
            f"unsupported Content-Type {media.decode('latin-1')!r}: "
            "send the request as JSON with `Content-Type: application/json`"
        )

    def _too_large(self, what: str) -> str:
        return f"request body too large: {what} is over the {self.max_body_bytes:,}-byte limit (SIYU_MAX_BODY_BYTES)"

    async def _read(self, receive: Receive) -> bytes:
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] != "http.request":  # the client went away: nothing to answer
                return b"".join(chunks)
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.max_body_bytes:
                raise TooLarge
            chunks.append(chunk)
            if not message.get("more_body", False):
                return b"".join(chunks)


def _replay(body: bytes, receive: Receive) -> Receive:
    """A `receive` that gives the app the body already read, then whatever the connection says next."""
    sent = False

    async def replay() -> Message:
        nonlocal sent
        if sent:
            return await receive()
        sent = True
        return {"type": "http.request", "body": body, "more_body": False}

    return replay
