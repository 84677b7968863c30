"""RELIABILITY.md sections A and D: response start, errors, ``exc_info``, and ``close()``.

These fill the gaps left by tests/test_to_asgi.py and tests/test_core_response.py
(tests/test_to_asgi.py already holds most of A and D; the reliability map names
each test). In process, every test runs under both executors and both async
backends. The end-to-end tests at the bottom put real uvicorn in front, because
cases 2, 3, 4 and 12 are about what a client sees on the wire.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Iterator
from typing import Any

import pytest

import bridge
from bridge import InvalidStatus, StartResponseError, to_asgi
from tests.harness import FakeServer, make_scope
from tests.servers import connect, read_head, read_response, status_of, uvicorn_server

EXECUTORS = ("thread", "greenlet")


def bridge_errors(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.name == "bridge" and r.levelno >= logging.ERROR]


class Closing:
    """A response iterable over ``chunks`` that counts its ``close()`` calls."""

    def __init__(self, chunks: Iterator[bytes], close_error: Exception | None = None) -> None:
        self.chunks = chunks
        self.closed = 0
        self.close_error = close_error

    def __iter__(self) -> Iterator[bytes]:
        return self.chunks

    def close(self) -> None:
        self.closed += 1
        if self.close_error is not None:
            raise self.close_error


# --- A. Response start, errors, exc_info (in process) ------------------------------------


@pytest.mark.anyio
async def test_a2_generator_failing_before_its_first_chunk_is_a_clean_500(executor: str) -> None:
    """Case 2 with the common shape: start_response inside a generator, then a raise."""

    def app(environ: dict[str, Any], start_response: Any) -> Iterator[bytes]:
        yield from ()  # a generator: all of it runs at the first next()
        start_response("200 OK", [("X-Partial", "yes"), ("Content-Length", "9")])
        raise KeyError("late")

    exchange = await FakeServer(to_asgi(app, executor=executor)).request(make_scope())
    assert isinstance(exchange.error, KeyError)  # after the 500, for the server to log
    assert [m["type"] for m in exchange.messages] == ["http.response.start", "http.response.body"]
    assert exchange.status == 500
    assert exchange.header(b"x-partial") is None
    assert exchange.complete


@pytest.mark.anyio
async def test_a3_failing_after_the_first_chunk_reaches_the_server_naming_the_request(
    executor: str, caplog: pytest.LogCaptureFixture
) -> None:
    def app(environ: dict[str, Any], start_response: Any) -> Iterator[bytes]:
        start_response("200 OK", [])
        yield b"partial-"
        raise ValueError("mid-stream")

    exchange = await FakeServer(to_asgi(app, executor=executor)).request(make_scope("/mid"))
    assert isinstance(exchange.error, ValueError)  # raised to the server, which aborts
    assert not exchange.complete
    # The server logs it with its traceback; bridge names the request on it, and logs nothing.
    assert any("GET '/mid'" in note for note in exchange.error.__notes__)
    assert bridge_errors(caplog) == []


@pytest.mark.anyio
async def test_a6_second_start_response_raises_in_the_app_before_the_body(executor: str) -> None:
    raised: list[BaseException] = []

    def app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        start_response("200 OK", [])
        try:
            start_response("201 Created", [])
        except StartResponseError as error:
            raised.append(error)
            raise
        return [b"x"]

    exchange = await FakeServer(to_asgi(app, executor=executor)).request(make_scope())
    assert len(raised) == 1
    assert "exc_info" in str(raised[0])  # the message names the way to do it right
    assert exchange.status == 500  # not 200 (first call kept) nor 201 (second call taken)


@pytest.mark.anyio
async def test_a7_second_start_response_after_the_body_raises_and_sends_no_more(
    executor: str,
) -> None:
    raised: list[BaseException] = []

    def app(environ: dict[str, Any], start_response: Any) -> Iterator[bytes]:
        start_response("200 OK", [])
        yield b"first"
        try:
            start_response("500 Internal Server Error", [])
        except StartResponseError as error:
            raised.append(error)
            raise
        yield b"error page"

    exchange = await FakeServer(to_asgi(app, executor=executor)).request(make_scope())
    assert len(raised) == 1
    assert exchange.error is raised[0]  # the response is aborted, not completed
    assert (exchange.status, exchange.body) == (200, b"first")
    assert not exchange.complete


@pytest.mark.anyio
async def test_a8_write_sends_the_headers_first_and_refuses_text(executor: str) -> None:
    """write() before the iterable: the start goes out with the first written bytes.

    A write() "before start_response" cannot happen here: the only way to get
    write() is the return value of start_response().
    """
    raised: list[BaseException] = []

    def app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        write = start_response("200 OK", [("Content-Type", "text/plain")])
        write(b"a")
        try:
            write("not bytes")
        except TypeError as error:
            raised.append(error)
        return [b"b"]

    exchange = await FakeServer(to_asgi(app, executor=executor)).request(make_scope())
    assert [m["type"] for m in exchange.messages][:2] == [
        "http.response.start",
        "http.response.body",
    ]
    assert exchange.messages[1]["body"] == b"a"
    assert exchange.body == b"ab"
    assert exchange.complete
    assert len(raised) == 1 and isinstance(raised[0], bridge.InvalidChunk)


@pytest.mark.anyio
async def test_a9_empty_body_without_start_response_is_a_500(
    executor: str, caplog: pytest.LogCaptureFixture
) -> None:
    def app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        return []

    exchange = await FakeServer(to_asgi(app, executor=executor)).request(make_scope())
    assert exchange.status == 500
    assert exchange.complete
    errors = [r.exc_info[1] for r in bridge_errors(caplog) if r.exc_info]
    assert any(isinstance(error, StartResponseError) for error in errors)


@pytest.mark.anyio
@pytest.mark.parametrize("status", ["OK", "20X OK", "200OK", "2000 OK"])
async def test_a13_malformed_status_raises_inside_start_response(
    executor: str, status: str
) -> None:
    raised: list[BaseException] = []

    def app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        try:
            start_response(status, [])
        except InvalidStatus as error:
            raised.append(error)
            start_response("502 Bad Gateway", [])  # the app can still answer
            return [b"recovered"]
        return [b"accepted"]

    exchange = await FakeServer(to_asgi(app, executor=executor)).request(make_scope())
    assert len(raised) == 1 and isinstance(raised[0], ValueError)
    assert (exchange.status, exchange.body) == (502, b"recovered")


@pytest.mark.anyio
async def test_a13_unusual_code_passes_and_the_reason_phrase_is_dropped(executor: str) -> None:
    def app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        start_response("599 Whatever", [])
        return [b"x"]

    exchange = await FakeServer(to_asgi(app, executor=executor)).request(make_scope())
    assert exchange.status == 599
    assert set(exchange.start) == {"type", "status", "headers"}  # no reason phrase in ASGI


@pytest.mark.anyio
async def test_a14_headers_given_as_a_tuple_are_accepted(executor: str) -> None:
    """PEP 3333 lets a server refuse a tuple; the bridge takes any sequence of pairs."""

    def app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        start_response("200 OK", (("Content-Type", "text/plain"), ("X-A", "1")))
        return [b"x"]

    exchange = await FakeServer(to_asgi(app, executor=executor)).request(make_scope())
    assert exchange.headers == [(b"content-type", b"text/plain"), (b"x-a", b"1")]
    assert exchange.body == b"x"


# --- D. close() lifecycle (in process) ----------------------------------------------------


@pytest.mark.anyio
async def test_d34_iteration_failing_before_any_chunk_is_a_500_and_closes_once(
    executor: str,
) -> None:
    responses: list[Closing] = []

    def failing() -> Iterator[bytes]:
        yield from ()
        raise OSError("backend gone")

    def app(environ: dict[str, Any], start_response: Any) -> Closing:
        start_response("200 OK", [])
        responses.append(Closing(failing()))
        return responses[0]

    exchange = await FakeServer(to_asgi(app, executor=executor)).request(make_scope())
    assert exchange.status == 500
    assert responses[0].closed == 1


@pytest.mark.anyio
async def test_d37_close_failing_after_a_complete_response_is_logged(
    executor: str, caplog: pytest.LogCaptureFixture
) -> None:
    responses: list[Closing] = []

    def app(environ: dict[str, Any], start_response: Any) -> Closing:
        start_response("200 OK", [])
        responses.append(Closing(iter([b"all", b" of it"]), OSError("close failed")))
        return responses[0]

    exchange = await FakeServer(to_asgi(app, executor=executor)).request(make_scope("/c"))
    assert exchange.error is None
    assert (exchange.body, exchange.complete) == (b"all of it", True)
    assert responses[0].closed == 1
    logged = bridge_errors(caplog)
    assert len(logged) == 1 and "/c" in logged[0].getMessage()
    assert logged[0].exc_info is not None and "close failed" in str(logged[0].exc_info[1])


@pytest.mark.anyio
async def test_d37_close_failing_does_not_mask_an_error_before_the_body(
    executor: str, caplog: pytest.LogCaptureFixture
) -> None:
    responses: list[Closing] = []

    def failing() -> Iterator[bytes]:
        yield from ()
        raise KeyError("the original")

    def app(environ: dict[str, Any], start_response: Any) -> Closing:
        start_response("200 OK", [])
        responses.append(Closing(failing(), OSError("close failed")))
        return responses[0]

    exchange = await FakeServer(to_asgi(app, executor=executor)).request(make_scope())
    assert exchange.status == 500
    assert responses[0].closed == 1
    assert isinstance(exchange.error, KeyError)  # the app's error reaches the server
    logged = [r.exc_info[1] for r in bridge_errors(caplog) if r.exc_info]
    assert any("close failed" in str(error) for error in logged)  # and close()'s is logged


# --- A on the wire: uvicorn in front ------------------------------------------------------


def wire_app(environ: dict[str, Any], start_response: Any) -> Iterator[bytes]:
    path = environ["PATH_INFO"]
    if path == "/after-start":  # case 2
        start_response("200 OK", [("Content-Type", "text/plain")])
        raise KeyError("late")
    if path == "/mid-stream":  # case 3
        start_response("200 OK", [("Content-Type", "text/plain")])
        yield b"partial-"
        raise ValueError("mid-stream")
    if path == "/exc-info-late":  # case 4
        start_response("200 OK", [("Content-Type", "text/plain")])
        yield b"first-"
        try:
            raise KeyError("boom")
        except KeyError:
            start_response("500 Internal Server Error", [], sys.exc_info())
        yield b"error page"
    elif path == "/no-content":  # case 12
        start_response("204 No Content", [])
    else:
        start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", "2")])
        yield b"ok"


@pytest.fixture(scope="module", params=EXECUTORS)
def wire(request: pytest.FixtureRequest) -> Iterator[int]:
    with uvicorn_server(to_asgi(wire_app, executor=request.param)) as running:
        yield running.port
    assert not running.errors, running.errors


def read_until_closed(port: int, path: str) -> bytes:
    """Everything the server sends for one request, up to its closing the connection."""
    with connect(port, timeout=5) as sock:
        sock.sendall(f"GET {path} HTTP/1.1\r\nHost: test\r\n\r\n".encode())
        data = b""
        for _ in range(1000):  # bounded: each recv waits at most the socket timeout
            piece = sock.recv(65536)
            if not piece:
                return data
            data += piece
    raise AssertionError(f"the server never closed the connection: {data[:300]!r}")


def test_a2_on_the_wire_the_client_gets_a_500(wire: int) -> None:
    with connect(wire, timeout=5) as sock:
        sock.sendall(b"GET /after-start HTTP/1.1\r\nHost: test\r\n\r\n")
        head, body = read_response(sock)
    assert status_of(head) == 500
    assert body == b"Internal Server Error"


@pytest.mark.parametrize(
    ("path", "sent"), [("/mid-stream", b"partial-"), ("/exc-info-late", b"first-")]
)
def test_a3_a4_on_the_wire_the_response_is_cut_without_its_last_chunk(
    wire: int, path: str, sent: bytes
) -> None:
    data = read_until_closed(wire, path)
    head, _, body = data.partition(b"\r\n\r\n")
    assert status_of(head) == 200
    assert b"transfer-encoding: chunked" in head.lower()
    assert sent in body
    assert not body.endswith(b"0\r\n\r\n")  # no terminating chunk: the client sees it cut
    assert b"error page" not in body


def test_a12_on_the_wire_an_empty_204_arrives_and_the_connection_stays_usable(
    wire: int,
) -> None:
    with connect(wire, timeout=5) as sock:
        sock.sendall(b"GET /no-content HTTP/1.1\r\nHost: test\r\n\r\n")
        head, rest = read_head(sock)
        assert status_of(head) == 204
        assert rest == b""
        sock.sendall(b"GET /ok HTTP/1.1\r\nHost: test\r\n\r\n")
        head, body = read_response(sock)
    assert (status_of(head), body) == (200, b"ok")
