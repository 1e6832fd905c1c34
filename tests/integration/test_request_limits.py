"""What the service refuses before parsing, over HTTP on the real server: oversized and non-JSON bodies.

Each case was a 500 or an unbounded read before: a form body reached BentoML's form parser, and a
100 MB body was read whole and answered 200.
"""

from __future__ import annotations

import httpx
import pytest

pytestmark = [pytest.mark.integration, pytest.mark.slow]


@pytest.mark.parametrize(
    ("content_type", "body"),
    [
        ("multipart/form-data; boundary=xyz", b'{"user_id": "u1"}'),
        ("multipart/form-data; boundary=xyz", b"\x00\xff garbage \r\n--xyz--"),
        ("application/x-www-form-urlencoded", b"user_id=u1&k=3"),
        ("text/plain", b'{"user_id": "u1"}'),
    ],
)
def test_a_body_that_is_not_json_gets_415_naming_the_type(server, content_type: str, body: bytes) -> None:
    base, _ = server
    response = httpx.post(f"{base}/recommend", content=body, headers={"content-type": content_type}, timeout=30)

    assert response.status_code == 415, response.text
    assert content_type.split(";")[0] in response.json()["error"]


def test_json_with_a_charset_is_accepted(server) -> None:
    base, _ = server
    headers = {"content-type": "application/json; charset=utf-8"}
    response = httpx.post(f"{base}/recommend", content=b'{"user_id": "u1", "k": 2}', headers=headers, timeout=30)

    assert response.status_code == 200, response.text
    assert len(response.json()["items"]) == 2


def test_a_declared_oversized_body_gets_413_unread(server) -> None:
    base, settings = server
    body = b'{"user_id": "' + b"x" * (settings.max_body_bytes + 1) + b'"}'
    response = httpx.post(f"{base}/recommend", content=body, headers={"content-type": "application/json"}, timeout=30)

    assert response.status_code == 413
    assert "over the 1,048,576-byte limit" in response.json()["error"]


def test_a_chunked_oversized_body_gets_413_at_the_limit(server) -> None:
    base, settings = server
    chunk = b" " * 65_536

    def stream():  # no Content-Length: the server must count as the chunks arrive
        yield b'{"user_id": "u1", "pad": "'
        for _ in range(settings.max_body_bytes // len(chunk) + 2):
            yield chunk
        yield b'"}'

    response = httpx.post(
        f"{base}/recommend", content=stream(), headers={"content-type": "application/json"}, timeout=30
    )

    assert response.status_code == 413, response.text


def test_the_server_still_answers_after_refusals(server) -> None:
    base, _ = server
    httpx.post(f"{base}/recommend", content=b"x" * 2_000_000, headers={"content-type": "application/json"}, timeout=30)
    response = httpx.post(f"{base}/recommend", json={"user_id": "u1", "k": 1}, timeout=30)

    assert response.status_code == 200, response.text
