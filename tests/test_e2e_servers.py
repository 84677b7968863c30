"""End to end: plain WSGI apps through ``bridge.to_asgi`` under real uvicorn and hypercorn.

Every server listens on 127.0.0.1 on an ephemeral port. Clients are httpx, or a
raw socket where the client has to misbehave.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import threading
import time
from contextvars import ContextVar
from typing import Any
from urllib.parse import parse_qs

import anyio
import httpx
import pytest

import bridge
from tests.servers import (
    connect,
    hypercorn_server,
    read_head,
    read_response,
    status_of,
    uvicorn_server,
)

EXECUTORS = ["thread", "greenlet"]
BLOCK = b"z" * (64 * 1024)

# --- what the apps record, for the tests to check -------------------------------------------

_lock = threading.Lock()
_closed: dict[str, threading.Event] = {}
_exhausted: set[str] = set()
_upload_errors: dict[str, BaseException] = {}


def closed_event(token: str) -> threading.Event:
    with _lock:
        event = _closed.get(token)
        if event is None:
            event = _closed[token] = threading.Event()
        return event


class Endless:
    """An endless response: 64 KiB chunks until closed.

    An 8 s cap (longer than any wait for close() below) keeps a bridge that
    misses the disconnect from streaming into the void for the rest of the run.
    """

    def __init__(self, token: str) -> None:
        self.token = token
        self.deadline = time.monotonic() + 8
        closed_event(token)

    def __iter__(self) -> Endless:
        return self

    def __next__(self) -> bytes:
        if time.monotonic() > self.deadline:
            _exhausted.add(self.token)
            raise StopIteration
        return BLOCK

    def close(self) -> None:
        closed_event(self.token).set()


# --- a plain WSGI app, and a plain ASGI middleware in front of it ----------------------------

outer_var: ContextVar[str | None] = ContextVar("outer_var", default=None)
inner_var: ContextVar[str | None] = ContextVar("inner_var", default=None)


async def _async_value(text: str) -> str:
    await anyio.sleep(0.01)
    return text.upper()


def _reply(
    start_response: Any, body: bytes, status: str = "200 OK", ctype: str = "text/plain"
) -> list[bytes]:
    start_response(status, [("Content-Type", ctype), ("Content-Length", str(len(body)))])
    return [body]


def plain_app(environ: dict[str, Any], start_response: Any) -> Any:
    path = environ["PATH_INFO"]
    query = {key: values[0] for key, values in parse_qs(environ["QUERY_STRING"]).items()}
    if path == "/hello":
        return _reply(start_response, b"hello")
    if path == "/echo":
        body = environ["wsgi.input"].read()
        return _reply(start_response, body, ctype="application/octet-stream")
    if path == "/stream":
        start_response("200 OK", [("Content-Type", "text/plain")])
        return (f"part-{index}\n".encode() for index in range(5))
    if path == "/await":
        value = bridge.await_(_async_value("awaited"))
        return _reply(start_response, value.encode())
    if path.startswith("/ctx/"):
        seen = {
            "outer": outer_var.get(),
            "inner": inner_var.get(),
            "port": environ.get("REMOTE_PORT"),
        }
        inner_var.set(path)
        return _reply(start_response, json.dumps(seen).encode(), ctype="application/json")
    if path == "/sleep":
        time.sleep(0.3)
        return _reply(start_response, str(threading.get_ident()).encode())
    if path == "/endless":
        if "read" in query:
            environ["wsgi.input"].read()
        start_response("200 OK", [("Content-Type", "application/octet-stream")])
        return Endless(query["token"])
    if path == "/upload-record":
        try:
            environ["wsgi.input"].read()
        except OSError as error:
            _upload_errors[query["token"]] = error
            raise
        return _reply(start_response, b"read it all")
    if path == "/evil-header":
        start_response(
            "200 OK", [("Content-Type", "text/plain"), ("X-Evil", "a\r\nSet-Cookie: evil=1")]
        )
        return [b"should never be sent"]
    return _reply(start_response, b"not found", status="404 Not Found")


def contextvar_middleware(app: Any) -> Any:
    async def middleware(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "http":
            outer_var.set("middleware:" + scope["path"])
        await app(scope, receive, send)

    return middleware


def wait_until(predicate: Any, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.01)
    return bool(predicate())


# --- servers ---------------------------------------------------------------------------------


@pytest.fixture(scope="module", params=EXECUTORS)
def served(request: pytest.FixtureRequest) -> Any:
    """uvicorn serving middleware -> to_asgi(plain_app), one server per executor."""
    app = contextvar_middleware(bridge.to_asgi(plain_app, executor=request.param))
    with uvicorn_server(app) as running:
        running.executor = request.param  # type: ignore[attr-defined]
        yield running
    assert not running.errors, running.errors


# --- basics and context variables ------------------------------------------------------------


def test_uvicorn_get_post_and_stream(served: Any) -> None:
    with httpx.Client(base_url=served.url, timeout=10) as client:
        assert client.get("/hello").text == "hello"
        payload = os.urandom(300_000)
        echoed = client.post("/echo", content=payload)
        assert echoed.status_code == 200
        assert echoed.content == payload
        streamed = client.get("/stream")
        assert streamed.text == "".join(f"part-{index}\n" for index in range(5))
        assert "content-length" not in streamed.headers
        assert client.get("/nope").status_code == 404


def test_contextvars_do_not_leak_between_requests_on_one_keepalive_connection(served: Any) -> None:
    with httpx.Client(base_url=served.url, timeout=10) as client:
        first = client.get("/ctx/first").json()
        second = client.get("/ctx/second").json()
    # Both went over the same connection (same client port): keep-alive really was used.
    assert first["port"] == second["port"]
    # The middleware's value reaches the WSGI app, for the current request.
    assert first["outer"] == "middleware:/ctx/first"
    assert second["outer"] == "middleware:/ctx/second"
    # What the app set during the first request is gone in the second.
    assert first["inner"] is None
    assert second["inner"] is None


def test_thread_executor_runs_requests_in_parallel() -> None:
    executor = bridge.ThreadExecutor(max_workers=8)
    app = bridge.to_asgi(plain_app, executor=executor)

    async def burst(url: str) -> tuple[float, list[httpx.Response]]:
        limits = httpx.Limits(max_connections=16, max_keepalive_connections=16)
        async with httpx.AsyncClient(base_url=url, timeout=10, limits=limits) as client:
            started = time.perf_counter()
            responses = await asyncio.gather(*(client.get("/sleep") for _ in range(8)))
            return time.perf_counter() - started, responses

    with uvicorn_server(app) as running:
        wall, responses = asyncio.run(burst(running.url))
    asyncio.run(executor.aclose())  # an executor passed in is the caller's to close
    assert [response.status_code for response in responses] == [200] * 8
    assert len({response.text for response in responses}) == 8  # eight distinct worker threads
    assert wall < 1.2, f"8 x 0.3 s sleeps took {wall:.2f} s: not run in parallel"


# --- clients that leave --------------------------------------------------------------------------


def _leave_during_download(port: int, token: str, read_body: bool, query: str = "") -> bytes:
    with connect(port, timeout=5) as sock:
        sock.sendall(f"GET /endless?token={token}{query} HTTP/1.1\r\nHost: test\r\n\r\n".encode())
        head, rest = read_head(sock)
        received = len(rest)
        for _ in range(20 if read_body else 0):  # a bit of the body, bounded
            piece = sock.recv(65536)
            if not piece:
                break
            received += len(piece)
            if received > 300_000:
                break
    return head


def test_client_disconnect_mid_download_closes_the_iterable(served: Any) -> None:
    token = f"download-{served.executor}"
    head = _leave_during_download(served.port, token, read_body=True)
    assert status_of(head) == 200
    assert closed_event(token).wait(5), "the endless response's close() was not called"
    assert token not in _exhausted
    with httpx.Client(base_url=served.url, timeout=10) as client:
        assert client.get("/hello").text == "hello"


def test_client_disconnect_mid_download_after_reading_the_body(served: Any) -> None:
    # Same, but the app read the (empty) request body before streaming; three times,
    # since where the server is in its write when the client leaves varies.
    for attempt in range(3):
        token = f"download-read-{served.executor}-{attempt}"
        head = _leave_during_download(served.port, token, read_body=attempt > 0, query="&read=1")
        assert status_of(head) == 200
        assert closed_event(token).wait(5), f"close() was not called (attempt {attempt})"
        assert token not in _exhausted
    with httpx.Client(base_url=served.url, timeout=10) as client:
        assert client.get("/hello").text == "hello"


def test_hundred_disconnects_do_not_exhaust_a_two_worker_pool() -> None:
    executor = bridge.ThreadExecutor(max_workers=2)
    app = bridge.to_asgi(plain_app, executor=executor)
    tokens = [f"burst-{index}" for index in range(100)]
    with uvicorn_server(app) as running:
        started = time.monotonic()
        for token in tokens:
            head = _leave_during_download(running.port, token, read_body=False)
            assert status_of(head) == 200, head
        assert time.monotonic() - started < 30
        assert wait_until(lambda: all(closed_event(t).is_set() for t in tokens), 10), (
            f"{sum(not closed_event(t).is_set() for t in tokens)} of 100 responses never closed"
        )
        with httpx.Client(base_url=running.url, timeout=10) as client:
            assert client.get("/hello").text == "hello"
        assert executor.threads <= 2
    asyncio.run(executor.aclose())
    assert not any(token in _exhausted for token in tokens)


def test_client_disconnect_mid_upload_makes_read_raise(served: Any) -> None:
    token = f"upload-{served.executor}"
    with connect(served.port, timeout=5) as sock:
        sock.sendall(
            f"POST /upload-record?token={token} HTTP/1.1\r\nHost: test\r\n"
            "Content-Type: application/octet-stream\r\nContent-Length: 100000\r\n\r\n".encode()
            + b"u" * 100
        )
        time.sleep(0.2)  # let the app start reading
    assert wait_until(lambda: token in _upload_errors, 5), "read() did not raise"
    error = _upload_errors[token]
    assert isinstance(error, OSError)
    assert isinstance(error, bridge.ClientDisconnected)
    with httpx.Client(base_url=served.url, timeout=10) as client:
        assert client.get("/hello").text == "hello"


# --- what the bridge refuses ----------------------------------------------------------------------


@pytest.mark.parametrize("executor", EXECUTORS)
def test_expect_100_continue_over_the_limit_gets_413_without_continue(executor: str) -> None:
    app = bridge.to_asgi(plain_app, executor=executor, max_body_size=10)
    with uvicorn_server(app) as running, connect(running.port, timeout=3) as sock:
        started = time.monotonic()
        sock.sendall(
            b"POST /echo HTTP/1.1\r\nHost: test\r\nContent-Length: 1000\r\n"
            b"Expect: 100-continue\r\n\r\n"
        )
        head, body = read_response(sock)
        elapsed = time.monotonic() - started
    assert b"100 Continue" not in head + body
    assert status_of(head) == 413, head
    assert elapsed < 2


@pytest.mark.parametrize("executor", EXECUTORS)
def test_expect_100_continue_under_the_limit_gets_continue_then_echo(executor: str) -> None:
    # The control case: the server does send "100 Continue" when the app reads the body.
    app = bridge.to_asgi(plain_app, executor=executor, max_body_size=10)
    with uvicorn_server(app) as running, connect(running.port, timeout=3) as sock:
        sock.sendall(
            b"POST /echo HTTP/1.1\r\nHost: test\r\nContent-Length: 5\r\n"
            b"Expect: 100-continue\r\n\r\n"
        )
        interim, _ = read_head(sock)
        assert status_of(interim) == 100, interim
        sock.sendall(b"12345")
        head, body = read_response(sock)
    assert status_of(head) == 200
    assert body == b"12345"


def test_invalid_header_value_becomes_500_without_the_injected_cookie(
    served: Any, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.ERROR, logger="bridge")
    with httpx.Client(base_url=served.url, timeout=10) as client:
        response = client.get("/evil-header")
        assert response.status_code == 500
        assert "evil" not in " ".join(response.headers.get_list("set-cookie"))
        assert "evil" not in client.cookies
        assert b"should never be sent" not in response.content
    with connect(served.port) as sock:
        sock.sendall(b"GET /evil-header HTTP/1.1\r\nHost: test\r\n\r\n")
        head, body = read_response(sock)
    assert status_of(head) == 500
    assert b"should never be sent" not in body
    assert b"evil" not in head.lower()
    assert any(
        record.name == "bridge" and record.levelno >= logging.ERROR and record.exc_info
        for record in caplog.records
    ), [record.getMessage() for record in caplog.records]


@pytest.mark.parametrize("executor", EXECUTORS)
def test_lifespan_on_starts_and_stops_cleanly(
    executor: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    app = bridge.to_asgi(plain_app, executor=executor)
    with (
        uvicorn_server(app, lifespan="on", log_level="info") as running,
        httpx.Client(base_url=running.url, timeout=10) as client,
    ):
        assert client.get("/hello").text == "hello"
    assert running.thread is not None and not running.thread.is_alive()
    assert not running.errors, running.errors
    messages = [
        record.getMessage() for record in caplog.records if record.name.startswith("uvicorn")
    ]
    assert "Application startup complete." in messages
    assert "Application shutdown complete." in messages
    assert not [message for message in messages if "failed" in message.lower()], messages


def test_websocket_is_refused_and_the_server_keeps_serving(served: Any) -> None:
    with connect(served.port, timeout=5) as sock:
        sock.sendall(
            b"GET /ws HTTP/1.1\r\nHost: test\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
        )
        head, _ = read_head(sock)
    assert head, "no answer to the websocket handshake"
    assert status_of(head) == 403, head
    with httpx.Client(base_url=served.url, timeout=10) as client:
        assert client.get("/hello").text == "hello"


# --- hypercorn: asyncio and trio workers ---------------------------------------------------------


@pytest.fixture(
    scope="module",
    params=[(worker, executor) for worker in ("asyncio", "trio") for executor in EXECUTORS],
    ids=lambda param: f"{param[0]}-{param[1]}",
)
def hypercorn_served(request: pytest.FixtureRequest) -> Any:
    worker, executor = request.param
    with hypercorn_server(bridge.to_asgi(plain_app, executor=executor), worker=worker) as running:
        yield running
    assert not running.errors, running.errors


def test_hypercorn_get_post_stream_and_await(hypercorn_served: Any) -> None:
    with httpx.Client(base_url=hypercorn_served.url, timeout=10) as client:
        hello = client.get("/hello")
        assert hello.status_code == 200
        assert hello.text == "hello"

        payload = os.urandom(200_000)
        echoed = client.post("/echo", content=payload)
        assert echoed.content == payload

        def generate() -> Any:
            for _ in range(4):
                yield b"c" * 10_000

        chunked = client.post("/echo", content=generate())
        assert chunked.content == b"c" * 40_000

        with client.stream("GET", "/stream") as streamed:
            assert streamed.status_code == 200
            assert "content-length" not in streamed.headers
            pieces = list(streamed.iter_bytes())
        assert b"".join(pieces) == b"".join(f"part-{index}\n".encode() for index in range(5))

        awaited = client.get("/await")
        assert awaited.status_code == 200
        assert awaited.text == "AWAITED"
