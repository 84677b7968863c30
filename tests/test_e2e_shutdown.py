"""Shutdown under uvicorn with work in flight (RELIABILITY.md 75 and 76)."""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

import bridge
from tests.servers import HOST, uvicorn_server

EXECUTORS = ("thread", "greenlet")

# When the graceful timeout cancels a connection whose client is still attached,
# uvicorn leaves its transport to the loop's finalizer, and uvloop then warns
# about an unclosed transport from a closed loop. That is the server's teardown,
# not the bridge's; turned into errors here, it would break uvicorn's own exit.
pytestmark = [
    pytest.mark.filterwarnings("ignore:unclosed resource:ResourceWarning"),
    pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning"),
]


def slow_view(environ: dict[str, Any], start_response: Any) -> list[bytes]:
    if environ["wsgi.multithread"]:
        time.sleep(1.0)
    else:
        bridge.await_(asyncio.sleep(1.0))
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [b"finished"]


@pytest.mark.parametrize("executor", EXECUTORS)
def test_a_request_in_flight_finishes_before_the_server_exits(executor: str) -> None:
    answers: list[httpx.Response] = []
    with uvicorn_server(bridge.to_asgi(slow_view, executor=executor)) as running:
        client = threading.Thread(
            target=lambda: answers.append(httpx.get(running.url + "/slow", timeout=10))
        )
        client.start()
        time.sleep(0.3)
        stopped_at = time.monotonic()
        running.stop()
        client.join(10)
        assert running.thread is not None
        running.thread.join(10)
        assert not running.thread.is_alive()
        assert time.monotonic() - stopped_at < 5
    assert [(a.status_code, a.text) for a in answers] == [(200, "finished")]
    assert not running.errors


@pytest.mark.parametrize("executor", EXECUTORS)
def test_an_endless_stream_stops_within_the_graceful_timeout(executor: str) -> None:
    closed = threading.Event()

    def endless(environ: dict[str, Any], start_response: Any) -> Iterator[bytes]:
        start_response("200 OK", [("Content-Type", "application/octet-stream")])
        try:
            while True:
                yield b"x" * 65536
                if not environ["wsgi.multithread"]:
                    bridge.await_(asyncio.sleep(0.001))
        finally:
            closed.set()

    with (
        uvicorn_server(
            bridge.to_asgi(endless, executor=executor), timeout_graceful_shutdown=1
        ) as running,
        socket.create_connection((HOST, running.port), timeout=5) as sock,
    ):
        sock.sendall(b"GET /endless HTTP/1.1\r\nHost: x\r\n\r\n")
        assert sock.recv(65536).startswith(b"HTTP/1.1 200")
        stopped_at = time.monotonic()
        running.stop()
        assert running.thread is not None
        running.thread.join(8)
        assert not running.thread.is_alive(), "uvicorn did not exit"
        assert time.monotonic() - stopped_at < 6
    assert closed.wait(5), "the endless response's close() was never called"
