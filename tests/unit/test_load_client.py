"""The load client's keep-alive connection: a server that drops idle connections costs no failed request."""

from __future__ import annotations

import socket
import threading

import pytest

from serving.local.load import KeptAlive

ANSWER = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 2\r\n\r\n{}"


def _server(answers: int) -> tuple[int, threading.Thread, list[int]]:
    """Answers `answers` requests, each on a connection it then closes without saying so (no Connection: close)."""
    listener = socket.create_server(("127.0.0.1", 0))
    accepted: list[int] = []

    def serve() -> None:
        with listener:
            for n in range(answers):
                connection, _ = listener.accept()
                accepted.append(n)
                with connection:
                    request = b""
                    while b"\r\n\r\n" not in request or not request.endswith(b"}"):
                        request += connection.recv(4096)
                    connection.sendall(ANSWER)

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    return listener.getsockname()[1], thread, accepted


def test_a_connection_the_server_dropped_is_reopened_and_the_request_sent_again() -> None:
    port, thread, accepted = _server(answers=3)
    client = KeptAlive("127.0.0.1", port, timeout=5)
    assert [client.post("/x", b"{}") for _ in range(3)] == [(200, b"{}")] * 3
    thread.join(timeout=5)
    client.close()
    assert accepted == [0, 1, 2]  # one new connection per request, none of them reported as a failure


def test_a_server_that_is_not_there_is_the_callers_failure() -> None:
    with socket.create_server(("127.0.0.1", 0)) as probe:
        port = probe.getsockname()[1]
    with pytest.raises(OSError):
        KeptAlive("127.0.0.1", port, timeout=2).post("/x", b"{}")
