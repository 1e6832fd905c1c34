"""The HTTP contract as clients see it: one error shape, and an OpenAPI document that says what is served.

BentoML 1.4 answers its 4xx exceptions with a one-element JSON list (`[{"error": "..."}]`) while its
validation errors are an object, and its generated spec says `openapi: 3.0.2` while writing 3.1-style
schemas, declares the 400 body's `detail` a string (it is a list of errors), leaves every request body
optional (an empty POST is refused), flattens nullable fields to non-null in inline schemas, and omits
the 401/403/413/415/422 answers this service gives. This middleware serves a corrected document at
/docs.json and unwraps the list so every error body is `{"error": message, "detail"?: [...]}`.
"""

from __future__ import annotations

import copy
import json
from typing import Any

from serving.api.asgi import ASGIApp, Message, Receive, Scope, Send

SPEC_PATH = "/docs.json"
PROBLEM = {
    "type": "object",
    "required": ["error"],
    "properties": {
        "error": {"type": "string", "description": "what is wrong, in one sentence"},
        "detail": {
            "type": "array",
            "description": "for invalid input: one entry per problem, `loc` naming the field",
            "items": {
                "type": "object",
                "properties": {
                    "loc": {"type": "array", "items": {"anyOf": [{"type": "string"}, {"type": "integer"}]}},
                    "msg": {"type": "string"},
                    "type": {"type": "string"},
                },
            },
        },
    },
}
ERRORS = {
    "400": "Bad Request: malformed JSON or a field out of its range (the detail names it)",
    "404": "Not Found: an id the service does not know (named in the message)",
    "413": "Payload Too Large: the body is over SIYU_MAX_BODY_BYTES",
    "415": "Unsupported Media Type: the body is not JSON",
    "500": "Internal Server Error",
}
EXTRA_ERRORS = {
    "/price": {
        "401": "Unauthorized: no X-API-Key header",
        "403": "Forbidden: the X-API-Key is wrong",
        "422": "Unprocessable: the request is valid but cannot be priced (conflicting rules, no price left)",
    }
}


def corrected_spec(raw: dict[str, Any]) -> dict[str, Any]:
    """The document BentoML generates, made true to what the service accepts and answers (see module doc)."""
    spec = copy.deepcopy(raw)
    spec["openapi"] = "3.1.0"  # the component schemas are JSON Schema 2020-12 (anyOf with type null)
    schemas = spec.setdefault("components", {}).setdefault("schemas", {})
    schemas["Problem"] = PROBLEM
    for name in ("InvalidArgument", "NotFound", "InternalServerError"):
        schemas.pop(name, None)
    for path, item in spec.get("paths", {}).items():
        operation = item.get("post")
        if operation is None:
            continue
        body = operation.get("requestBody")
        if body is not None:
            body["required"] = True
            _use_component(body["content"]["application/json"], schemas)
        responses = operation.setdefault("responses", {})
        ok = responses.get("200", responses.get(200))
        responses.pop(200, None)
        if ok is not None:
            for content in ok.get("content", {}).values():
                _use_component(content, schemas)
            responses["200"] = ok
        for code, description in {**ERRORS, **EXTRA_ERRORS.get(path, {})}.items():
            responses.pop(int(code), None)
            responses[code] = {
                "description": description,
                "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Problem"}}},
            }
    return spec


def _use_component(content: dict[str, Any], schemas: dict[str, Any]) -> None:
    """Point an inline schema at its component (same title): the inline copy lost its nullable fields."""
    title = content.get("schema", {}).get("title")
    if title in schemas:
        content["schema"] = {"$ref": f"#/components/schemas/{title}"}


class ApiContract:
    """Serves the corrected spec and gives every 4xx error body one shape."""

    def __init__(self, app: ASGIApp, spec: Any) -> None:
        self.app = app
        self._raw_spec = spec  # BentoML's OpenAPISpecification: rendered on first request, once
        self._body: bytes | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope.get("type") != "http":
            await self.app(scope, receive, send)
            return
        if scope.get("path") == SPEC_PATH and scope.get("method") == "GET":
            await self._send_spec(send)
            return
        await self.app(scope, receive, _unwrapping_errors(send))

    async def _send_spec(self, send: Send) -> None:
        if self._body is None:
            raw = self._raw_spec.asdict() if hasattr(self._raw_spec, "asdict") else self._raw_spec
            self._body = json.dumps(corrected_spec(raw)).encode()
        headers = [(b"content-type", b"application/json"), (b"content-length", str(len(self._body)).encode())]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": self._body})


def _unwrapping_errors(send: Send) -> Send:
    """A `send` that turns a 4xx body `[{"error": ...}]` into `{"error": ...}`; everything else passes."""
    held: Message | None = None
    chunks: list[bytes] = []

    async def wrapped(message: Message) -> None:
        nonlocal held
        if message["type"] == "http.response.start":
            if 400 <= message["status"] < 500:
                held = message  # wait for the body: its length may change
                return
            await send(message)
            return
        if held is None or message["type"] != "http.response.body":
            await send(message)
            return
        chunks.append(message.get("body", b""))
        if message.get("more_body", False):
            return
        body = _unwrapped(b"".join(chunks))
        headers = [(k, v) for k, v in held.get("headers", []) if k.lower() != b"content-length"]
        headers.append((b"content-length", str(len(body)).encode()))
        await send({**held, "headers": headers})
        await send({"type": "http.response.body", "body": body})

    return wrapped


def _unwrapped(body: bytes) -> bytes:
    try:
        parsed = json.loads(body)
    except ValueError:
        return body
    if isinstance(parsed, list) and len(parsed) == 1 and isinstance(parsed[0], dict) and "error" in parsed[0]:
        return json.dumps(parsed[0]).encode()
    return body
