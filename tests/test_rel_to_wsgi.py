"""RELIABILITY.md section K: an ASGI app under a WSGI server, through ``bridge.to_wsgi``.

In process, each app is called the way a WSGI server calls it, through the
stdlib validator where the request is a well-formed one. Cases 82 and 83 also
run under a real waitress, since the catalogue saw them hang a WSGI worker
there. tests/test_to_wsgi.py and tests/test_e2e_to_wsgi.py hold the rest of
section K; the reliability map names each test.
"""

from __future__ import annotations

import asyncio
import io
import logging
import threading
import wsgiref.util
import wsgiref.validate
from collections.abc import Iterable, Iterator
from typing import Any

import pytest
import waitress.server  # type: ignore[import-untyped]

import bridge
from bridge import AppProtocolError, to_wsgi
from bridge._types import Receive, Scope, Send
from tests.servers import HOST, connect, read_response, status_of, wait_for_port
from tests.test_to_wsgi import environ_for

START = {
    "type": "http.response.start",
    "status": 200,
    "headers": [(b"content-type", b"text/plain")],
}


class Answer:
    """What the WSGI server was told: every start_response call, in order."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, list[tuple[str, str]], Any]] = []

    def start_response(
        self, status: str, headers: list[tuple[str, str]], exc_info: Any = None
    ) -> Any:
        self.calls.append((status, headers, exc_info))
        return lambda data: None

    @property
    def status(self) -> str:
        return self.calls[-1][0]


def call(app: Any, environ: dict[str, Any], validate: bool = True) -> tuple[Answer, bytes]:
    answer = Answer()
    wrapped = wsgiref.validate.validator(app) if validate else app
    iterable: Iterable[bytes] = wrapped(environ, answer.start_response)
    try:
        body = b"".join(iterable)
    finally:
        close = getattr(iterable, "close", None)
        if close is not None:
            close()
    return answer, body


def http_only(handler: Any) -> Any:
    """An ASGI app without lifespan (it raises at once, as the spec allows) around ``handler``."""

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            raise RuntimeError("no lifespan here")
        await handler(scope, receive, send)

    return app


def bridge_errors(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.name == "bridge" and r.levelno >= logging.ERROR]


# --- K79. Raises before http.response.start ----------------------------------------------


def test_k79_raising_before_the_start_is_a_plain_500_with_the_error_logged(
    caplog: pytest.LogCaptureFixture,
) -> None:
    async def handler(scope: Scope, receive: Receive, send: Send) -> None:
        raise LookupError("secret detail")

    answer, body = call(to_wsgi(http_only(handler)), environ_for("/k79"))
    assert [status for status, _, _ in answer.calls] == ["500 Internal Server Error"]
    assert body == b"Internal Server Error"
    logged = bridge_errors(caplog)
    assert len(logged) == 1 and "/k79" in logged[0].getMessage()
    assert logged[0].exc_info is not None and isinstance(logged[0].exc_info[1], LookupError)


# --- K80. Raises after the start, before any body ------------------------------------------


def test_k80_raising_after_the_start_replaces_the_headers_through_exc_info() -> None:
    async def handler(scope: Scope, receive: Receive, send: Send) -> None:
        await send(START)
        raise LookupError("after the start")

    answer, body = call(to_wsgi(http_only(handler)), environ_for())
    (first, _, no_exc_info), (second, _, exc_info) = answer.calls
    assert (first, no_exc_info) == ("200 OK", None)
    assert second == "500 Internal Server Error"
    assert exc_info is not None and isinstance(exc_info[1], LookupError)
    assert body == b"Internal Server Error"


# --- K83. Only http.response.start, then the app returns -----------------------------------


def test_k83_start_without_a_body_ends_the_response_with_an_error_at_once() -> None:
    async def handler(scope: Scope, receive: Receive, send: Send) -> None:
        await send(START)
        await send({"type": "http.response.body", "body": b"part", "more_body": True})

    answer = Answer()
    iterable = to_wsgi(http_only(handler))(environ_for(), answer.start_response)
    iterator = iter(iterable)
    assert next(iterator) == b"part"
    with pytest.raises(bridge.BridgeError, match="before its response was complete"):
        next(iterator)  # the WSGI server aborts the connection; nothing hangs
    iterable.close()  # type: ignore[attr-defined]


# --- K82 and K83 under waitress ------------------------------------------------------------


async def waitress_app(scope: Scope, receive: Receive, send: Send) -> None:
    if scope["type"] != "http":
        raise RuntimeError("no lifespan here")
    path = scope["path"]
    if path == "/ok":
        await send({**START, "headers": [(b"content-length", b"2")]})
        await send({"type": "http.response.body", "body": b"ok"})
    elif path == "/start-only":  # case 83
        await send(START)
    elif path == "/start-and-a-chunk":  # case 83, after some body
        await send(START)
        await send({"type": "http.response.body", "body": b"part", "more_body": True})
    # "/nothing", case 82: the app returns without a response


@pytest.fixture(scope="module")
def waitress_port() -> Iterator[int]:
    server = waitress.server.create_server(
        to_wsgi(waitress_app), host=HOST, port=0, threads=1, expose_tracebacks=False
    )
    port = int(server.effective_port)
    thread = threading.Thread(target=server.run, name="waitress", daemon=True)
    thread.start()
    wait_for_port(port)
    try:
        yield port
    finally:
        server.close()
        thread.join(5)


def read_until_closed(port: int, path: str) -> bytes:
    with connect(port, timeout=5) as sock:
        sock.sendall(f"GET {path} HTTP/1.1\r\nHost: test\r\n\r\n".encode())
        data = b""
        for _ in range(1000):  # bounded: each recv waits at most the socket timeout
            piece = sock.recv(65536)
            if not piece:
                return data
            data += piece
    raise AssertionError(f"the server never closed the connection: {data[:300]!r}")


def test_k82_under_waitress_no_response_is_a_500_and_the_one_worker_serves_on(
    waitress_port: int,
) -> None:
    with connect(waitress_port, timeout=5) as sock:
        sock.sendall(b"GET /nothing HTTP/1.1\r\nHost: test\r\n\r\n")
        head, body = read_response(sock)
        assert (status_of(head), body) == (500, b"Internal Server Error")
        sock.sendall(b"GET /ok HTTP/1.1\r\nHost: test\r\n\r\n")  # same connection, one thread
        head, body = read_response(sock)
    assert (status_of(head), body) == (200, b"ok")


@pytest.mark.parametrize(("path", "status"), [("/start-only", 500), ("/start-and-a-chunk", 200)])
def test_k83_under_waitress_an_unfinished_response_closes_the_connection(
    waitress_port: int, path: str, status: int
) -> None:
    data = read_until_closed(waitress_port, path)
    head, _, body = data.partition(b"\r\n\r\n")
    assert status_of(head) == status
    if status == 200:  # the headers went out with the chunk: the response is cut short
        assert body == b"4\r\npart\r\n"  # no terminating chunk
    with connect(waitress_port, timeout=5) as sock:
        sock.sendall(b"GET /ok HTTP/1.1\r\nHost: test\r\n\r\n")
        assert read_response(sock)[1] == b"ok"


# --- K84. Body before start, or a second start: send() raises ------------------------------


@pytest.mark.parametrize(
    "messages",
    [
        [{"type": "http.response.body", "body": b"early"}],
        [START, START],
        [START, {"type": "http.response.body", "body": "text"}],
        [{"type": "websocket.send", "text": "hi"}],
    ],
    ids=["body-before-start", "two-starts", "str-body", "wrong-type"],
)
def test_k84_invalid_events_raise_out_of_send_and_never_reach_the_server(
    messages: list[dict[str, Any]],
) -> None:
    raised: list[BaseException] = []

    async def handler(scope: Scope, receive: Receive, send: Send) -> None:
        try:
            for message in messages:
                await send(message)
        except AppProtocolError as error:
            raised.append(error)
            raise

    answer, body = call(to_wsgi(http_only(handler)), environ_for())
    assert len(raised) == 1
    assert answer.status == "500 Internal Server Error"
    assert body == b"Internal Server Error"
    assert all(status in ("200 OK", "500 Internal Server Error") for status, _, _ in answer.calls)


# --- K87. CONTENT_LENGTH larger than what the input holds ---------------------------------


def test_k87_a_short_input_ends_in_disconnect_not_a_busy_loop() -> None:
    seen: list[Any] = []

    async def handler(scope: Scope, receive: Receive, send: Send) -> None:
        for _ in range(100):  # bounded: the bridge must end this well before
            message = await receive()
            seen.append(message)
            if message["type"] == "http.disconnect":
                break
        await send(START)
        await send({"type": "http.response.body", "body": b"done"})

    environ = environ_for(method="POST", CONTENT_LENGTH="100")
    environ["wsgi.input"] = io.BytesIO(b"123456789")  # the client left after 9 of 100 bytes
    answer, body = call(to_wsgi(http_only(handler)), environ, validate=False)
    received = b"".join(m.get("body", b"") for m in seen if m["type"] == "http.request")
    assert received == b"123456789"
    assert seen[-1] == {"type": "http.disconnect"}
    assert len(seen) <= 3
    assert (answer.status, body) == ("200 OK", b"done")


# --- K88. The server stops iterating: the app is told, or cancelled -----------------------


def test_k88_an_app_that_neither_sends_nor_receives_is_cancelled_after_the_grace_period() -> None:
    ended = threading.Event()
    outcome: list[str] = []

    async def handler(scope: Scope, receive: Receive, send: Send) -> None:
        await send(START)
        await send({"type": "http.response.body", "body": b"first", "more_body": True})
        try:
            await asyncio.sleep(30)  # waits on something else; never hears the disconnect
            outcome.append("slept on")
        except asyncio.CancelledError:
            outcome.append("cancelled")
            raise
        finally:
            ended.set()

    wsgi = to_wsgi(http_only(handler), grace_period=0.1)
    iterable = wsgi(environ_for(), Answer().start_response)
    assert next(iter(iterable)) == b"first"
    iterable.close()  # type: ignore[attr-defined]
    assert ended.wait(5), "the app's task was left running after the server closed"
    assert outcome == ["cancelled"]


# --- K89. Background work after the response ---------------------------------------------


def test_k89_background_work_past_the_grace_period_is_cancelled() -> None:
    ended = threading.Event()
    outcome: list[str] = []

    async def handler(scope: Scope, receive: Receive, send: Send) -> None:
        await send(START)
        await send({"type": "http.response.body", "body": b"answered"})
        try:
            await asyncio.sleep(30)  # background work that would hold on for good
            outcome.append("finished")
        except asyncio.CancelledError:
            outcome.append("cancelled")
            raise
        finally:
            ended.set()

    answer, body = call(to_wsgi(http_only(handler), grace_period=0.1), environ_for())
    assert (answer.status, body) == ("200 OK", b"answered")  # the worker has its answer
    assert ended.wait(5), "background work held on past the grace period"
    assert outcome == ["cancelled"]


# --- K90. Paths and query strings that are not what PEP 3333 promises -------------------


def scope_echo() -> Any:
    async def handler(scope: Scope, receive: Receive, send: Send) -> None:
        text = repr((scope["path"], scope["root_path"], scope["raw_path"], scope["query_string"]))
        await send(START)
        await send({"type": "http.response.body", "body": text.encode()})

    return to_wsgi(http_only(handler))


@pytest.mark.parametrize("path", ["/\xff", "/caf\xe9", "/日本"])
def test_k90_a_path_that_is_not_utf8_is_a_400_not_a_crash(path: str) -> None:
    answer, _ = call(scope_echo(), environ_for(path), validate=False)
    assert answer.status == "400 Bad Request"


def test_k90_a_latin1_query_string_reaches_the_app_as_its_bytes() -> None:
    _, body = call(scope_echo(), environ_for("/q", QUERY_STRING="q=\xe9&r=%C3%A9"))
    assert body == repr(("/q", "", b"/q", b"q=\xe9&r=%C3%A9")).encode()


# --- K91. SCRIPT_NAME becomes root_path, and path includes it ------------------------------


def test_k91_script_name_is_the_root_path_and_the_path_includes_it() -> None:
    environ = environ_for("/x/caf\xc3\xa9", SCRIPT_NAME="/app")  # PATH_INFO of /x/café
    _, body = call(scope_echo(), environ)
    assert body == repr(("/app/x/café", "/app", b"/app/x/caf%C3%A9", b"")).encode()
