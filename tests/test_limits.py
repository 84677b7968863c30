"""Every limit, at its edge: what passes just under it, what happens just over it.

The limits (docs/limits.md): ``to_asgi``'s ``max_body_size`` (413),
``body_timeout`` (408), ``max_headers`` and ``max_header_bytes`` (431),
``max_duplicate_headers`` (400); ``ThreadExecutor``'s ``max_workers`` and
``queue_size``; ``GreenletExecutor``'s ``block_warning``; ``to_wsgi``'s
``loop_wait_timeout`` (503) and its four response chunks in flight. In process
with the fake server, and the stall once through a real uvicorn.
"""

from __future__ import annotations

import asyncio
import io
import logging
import threading
import time
import wsgiref.util
from collections.abc import Callable, Iterator
from typing import Any

import anyio
import pytest

import bridge
from bridge import (
    BadRequest,
    BodyTimeout,
    ConfigurationError,
    GreenletExecutor,
    HeadersTooLarge,
    RequestBodyTooLarge,
    ThreadExecutor,
    to_asgi,
    to_wsgi,
)
from bridge._executors._loop_thread import LoopThread
from bridge._types import Scope
from tests.harness import FakeServer, make_scope
from tests.servers import connect, read_response, status_of, uvicorn_server

# --- helpers ---------------------------------------------------------------------------------


def stalling(app: Any, pieces: list[bytes]) -> Any:
    """The ASGI app as a server calls it for a client that sends ``pieces``, then goes quiet."""

    async def server_side(scope: Any, receive: Any, send: Any) -> None:
        left = list(pieces)

        async def quiet_receive() -> Any:
            if left:
                return {"type": "http.request", "body": left.pop(0), "more_body": True}
            await anyio.sleep_forever()

        await app(scope, quiet_receive, send)

    return server_side


def post(length: int | None = None, path: str = "/upload") -> Scope:
    headers = [(b"content-length", str(length).encode())] if length is not None else []
    return make_scope(path, method="POST", headers=headers)


class Reader:
    """A WSGI app that reads its whole body; records what the read raised and that it ended."""

    def __init__(self, *, swallow: bool = False) -> None:
        self.raised: list[BaseException] = []
        self.reading = threading.Event()
        self.ended = threading.Event()
        self.swallow = swallow

    def __call__(self, environ: dict[str, Any], start_response: Any) -> list[bytes]:
        try:
            self.reading.set()
            try:
                body = environ["wsgi.input"].read()
            except BodyTimeout as error:
                self.raised.append(error)
                if not self.swallow:
                    raise
                try:  # a second read is refused at once, without waiting again
                    environ["wsgi.input"].read(1)
                except BodyTimeout as again:
                    self.raised.append(again)
                body = b"the app's own answer"
            start_response("200 OK", [("Content-Type", "text/plain")])
            return [body]
        finally:
            self.ended.set()


def warnings_about(caplog: pytest.LogCaptureFixture, *words: str) -> list[str]:
    return [
        record.getMessage()
        for record in caplog.records
        if record.levelno >= logging.WARNING and all(w in record.getMessage() for w in words)
    ]


# --- body_timeout: a stalled upload ----------------------------------------------------------


@pytest.mark.anyio
async def test_a_stalled_body_raises_in_the_read_and_the_client_gets_408(
    executor: str, caplog: pytest.LogCaptureFixture
) -> None:
    app = Reader()
    wrapped = to_asgi(app, executor=executor, body_timeout=0.2)
    exchange = await FakeServer(stalling(wrapped, [b"x" * 500])).request(post(1000), timeout=5)
    assert exchange.error is None
    assert exchange.status == 408
    assert exchange.header(b"connection") == b"close"
    assert b"no request body arrived for 0.2 s" in exchange.body
    assert exchange.complete
    assert app.ended.is_set()
    assert len(app.raised) == 1
    assert isinstance(app.raised[0], TimeoutError)
    assert "after 500 of 1000 bytes" in str(app.raised[0])
    assert warnings_about(caplog, "POST '/upload'", "body_timeout", "408")


@pytest.mark.anyio
async def test_a_stall_before_any_byte_is_a_408_too(executor: str) -> None:
    app = Reader()
    wrapped = to_asgi(app, executor=executor, body_timeout=0.2)
    exchange = await FakeServer(stalling(wrapped, [])).request(post(), timeout=5)
    assert exchange.status == 408
    assert isinstance(app.raised[0], BodyTimeout)


@pytest.mark.anyio
async def test_an_app_that_swallows_the_timeout_still_gets_408_and_reads_stay_refused(
    executor: str,
) -> None:
    app = Reader(swallow=True)
    wrapped = to_asgi(app, executor=executor, body_timeout=0.2)
    exchange = await FakeServer(stalling(wrapped, [b"abc"])).request(post(10), timeout=5)
    assert exchange.status == 408
    assert b"the app's own answer" not in exchange.body
    assert [type(error) for error in app.raised] == [BodyTimeout, BodyTimeout]


@pytest.mark.anyio
async def test_a_stall_after_the_response_began_aborts_it(executor: str) -> None:
    def app(environ: dict[str, Any], start_response: Any) -> Iterator[bytes]:
        start_response("200 OK", [])
        yield b"first"
        yield environ["wsgi.input"].read()

    wrapped = to_asgi(app, executor=executor, body_timeout=0.2)
    exchange = await FakeServer(stalling(wrapped, [b"abc"])).request(post(10), timeout=5)
    assert exchange.status == 200
    assert isinstance(exchange.error, BodyTimeout)
    assert not exchange.complete


@pytest.mark.anyio
async def test_the_timeout_is_per_wait_not_for_the_whole_body(executor: str) -> None:
    # Five pieces 0.25 s apart take over a second in all; no single gap reaches 1 s.
    async def slow_but_steady(scope: Any, receive: Any, send: Any) -> None:
        pieces = [b"a", b"b", b"c", b"d", b"e"]

        async def trickle() -> Any:
            await anyio.sleep(0.25)
            piece = pieces.pop(0)
            return {"type": "http.request", "body": piece, "more_body": bool(pieces)}

        await wrapped(scope, trickle, send)

    app = Reader()
    wrapped = to_asgi(app, executor=executor, body_timeout=1.0)
    exchange = await FakeServer(slow_but_steady).request(post(5), timeout=10)
    assert exchange.status == 200
    assert exchange.body == b"abcde"
    assert app.raised == []


@pytest.mark.anyio
async def test_body_timeout_none_waits_for_the_client(executor: str) -> None:
    async def late(scope: Any, receive: Any, send: Any) -> None:
        async def after_a_while() -> Any:
            await anyio.sleep(0.3)
            return {"type": "http.request", "body": b"late", "more_body": False}

        await wrapped(scope, after_a_while, send)

    wrapped = to_asgi(Reader(), executor=executor, body_timeout=None)
    exchange = await FakeServer(late).request(post(4), timeout=5)
    assert exchange.status == 200
    assert exchange.body == b"late"


@pytest.mark.parametrize("anyio_backend", ["asyncio"])
@pytest.mark.anyio
async def test_a_body_already_received_costs_no_timer(
    executor: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The fast path: when receive() has the message at hand, no deadline is scheduled."""
    loop = asyncio.get_running_loop()
    timers: list[float] = []
    original = loop.call_at

    def counting(when: float, *args: Any, **kwargs: Any) -> Any:
        # Every asyncio timer, call_later's included, is scheduled through call_at.
        timers.append(round(when - loop.time(), 1))
        return original(when, *args, **kwargs)

    async def waits_once(scope: Any, receive: Any, send: Any) -> None:
        pieces = [b"abc", b"def"]

        async def suspending() -> Any:
            await asyncio.sleep(0)  # suspends without a timer of its own
            piece = pieces.pop(0)
            return {"type": "http.request", "body": piece, "more_body": bool(pieces)}

        await wrapped(scope, suspending, send)

    wrapped = to_asgi(Reader(), executor=executor, body_timeout=7.5)
    monkeypatch.setattr(loop, "call_at", counting)
    at_hand = await FakeServer(wrapped, [b"abc", b"def"]).request(post(6))
    assert at_hand.body == b"abcdef"
    assert 7.5 not in timers
    waited = await FakeServer(waits_once).request(post(6))
    assert waited.body == b"abcdef"
    assert timers.count(7.5) == 2  # the control: a receive that suspends gets its deadline


@pytest.mark.parametrize("executor", ["thread", "greenlet"])
def test_a_stalled_upload_through_uvicorn_frees_the_worker(executor: str) -> None:
    app = Reader()

    def routes(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        if environ["PATH_INFO"] == "/upload":
            return app(environ, start_response)
        start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", "5")])
        return [b"hello"]

    # One worker thread: the request after the stalled one is answered only if it is freed.
    runs_on: str | bridge.Executor = (
        ThreadExecutor(max_workers=1) if executor == "thread" else executor
    )
    wrapped = to_asgi(routes, executor=runs_on, body_timeout=0.5)
    with uvicorn_server(wrapped) as running:
        with connect(running.port, timeout=10) as stalled, connect(running.port) as other:
            stalled.sendall(
                b"POST /upload HTTP/1.1\r\nHost: test\r\nContent-Length: 1000\r\n\r\n" + b"u" * 500
            )
            assert app.reading.wait(5)  # the upload holds the one worker before the GET comes
            other.sendall(b"GET /hello HTTP/1.1\r\nHost: test\r\n\r\n")
            head, _ = read_response(stalled)
            assert status_of(head) == 408, head
            assert b"connection: close" in head.lower()
            assert stalled.recv(1) == b"", "the connection stayed open after the 408"
            other_head, other_body = read_response(other)
        assert status_of(other_head) == 200
        assert other_body == b"hello"
    assert app.ended.is_set()
    assert len(app.raised) == 1
    assert isinstance(app.raised[0], BodyTimeout)
    assert not running.errors


# --- max_body_size ---------------------------------------------------------------------------


@pytest.mark.anyio
async def test_a_body_at_the_limit_passes_and_one_byte_more_is_413(
    executor: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="bridge")
    wrapped = to_asgi(Reader(), executor=executor, max_body_size=10)
    exact = await FakeServer(wrapped, [b"01234", b"56789"]).request(post())
    assert exact.status == 200
    assert exact.body == b"0123456789"
    over = await FakeServer(wrapped, [b"01234", b"56789", b"!"]).request(post())
    assert over.status == 413
    assert over.complete
    assert any("max_body_size=10" in r.getMessage() for r in caplog.records)


@pytest.mark.anyio
async def test_after_413_every_read_raises_and_the_apps_answer_is_replaced(executor: str) -> None:
    raised: list[type[BaseException]] = []

    def read_once(stream: Any) -> None:
        try:
            stream.read()
        except RequestBodyTooLarge as error:
            raised.append(type(error))

    def app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        read_once(environ["wsgi.input"])
        read_once(environ["wsgi.input"])
        start_response("200 OK", [])
        return [b"the app's own answer"]

    wrapped = to_asgi(app, executor=executor, max_body_size=4)
    exchange = await FakeServer(wrapped, [b"abc", b"def"]).request(post())
    assert exchange.status == 413
    assert raised == [RequestBodyTooLarge, RequestBodyTooLarge]
    assert b"the app's own answer" not in exchange.body


# --- max_headers, max_header_bytes, max_duplicate_headers ------------------------------------


def headers_scope(count: int, value: bytes = b"v") -> Scope:
    # make_scope adds a Host header: count - 1 more make ``count`` in all.
    return make_scope(headers=[(f"x-h{i}".encode(), value) for i in range(count - 1)])


def counting_app() -> tuple[list[int], Callable[..., list[bytes]]]:
    calls: list[int] = []

    def app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        calls.append(1)
        start_response("200 OK", [])
        return [b"ok"]

    return calls, app


@pytest.mark.anyio
async def test_the_header_count_limit_is_431_without_calling_the_app(
    executor: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="bridge")
    calls, app = counting_app()
    wrapped = to_asgi(app, executor=executor)
    assert (await FakeServer(wrapped).request(headers_scope(200))).status == 200
    refused = await FakeServer(wrapped).request(headers_scope(201))
    assert refused.status == 431
    assert refused.body.startswith(b"Request Header Fields Too Large")
    assert calls == [1]
    assert any("201 headers, over max_headers=200" in r.getMessage() for r in caplog.records)


@pytest.mark.anyio
async def test_the_header_bytes_limit_is_431(executor: str) -> None:
    calls, app = counting_app()
    wrapped = to_asgi(app, executor=executor, max_header_bytes=1000)
    # host + testserver is 14 bytes; x-big is 5.
    fits = make_scope(headers=[(b"x-big", b"a" * (1000 - 14 - 5))])
    over = make_scope(headers=[(b"x-big", b"a" * (1000 - 14 - 5 + 1))])
    assert (await FakeServer(wrapped).request(fits)).status == 200
    refused = await FakeServer(wrapped).request(over)
    assert refused.status == 431
    assert b"max_header_bytes=1000" in refused.body
    assert calls == [1]


@pytest.mark.anyio
async def test_the_default_header_bytes_limit_is_64_kib() -> None:
    calls, app = counting_app()
    wrapped = to_asgi(app)
    cookie = make_scope(headers=[(b"cookie", b"c" * 70_000)])
    assert (await FakeServer(wrapped).request(cookie)).status == 431
    assert calls == []


@pytest.mark.anyio
async def test_repeated_headers_over_their_own_limit_are_400() -> None:
    calls, app = counting_app()
    wrapped = to_asgi(app, max_duplicate_headers=3)
    scope = make_scope(headers=[(b"x-a", b"1")] * 4)
    assert (await FakeServer(wrapped).request(scope)).status == 200
    refused = await FakeServer(wrapped).request(make_scope(headers=[(b"x-a", b"1")] * 5))
    assert refused.status == 400
    assert b"too many repeated" in refused.body
    assert calls == [1]


def test_header_limits_count_any_iterable_of_headers() -> None:
    from bridge._core.environ import EnvironBuilder

    builder = EnvironBuilder(max_headers=3)
    scope = make_scope()
    scope["headers"] = iter([(b"host", b"h"), (b"a", b"1"), (b"b", b"2")])
    assert builder.build(scope)["HTTP_B"] == "2"
    scope["headers"] = ((name, b"1") for name in (b"host", b"a", b"b", b"c"))
    with pytest.raises(HeadersTooLarge, match="max_headers=3"):
        builder.build(scope)


def test_the_new_errors_carry_their_status() -> None:
    assert issubclass(HeadersTooLarge, BadRequest)
    assert HeadersTooLarge.status_hint == 431
    assert issubclass(BodyTimeout, TimeoutError)
    assert BodyTimeout.status_hint == 408


@pytest.mark.parametrize(
    "options",
    [
        {"body_timeout": 0},
        {"body_timeout": -1.0},
        {"max_headers": 0},
        {"max_header_bytes": 0},
        {"max_body_size": -1},
    ],
)
def test_unusable_to_asgi_limits_are_refused(options: dict[str, Any]) -> None:
    name = next(iter(options))
    with pytest.raises(ConfigurationError, match=name):
        to_asgi(counting_app()[1], **options)


# --- ThreadExecutor: max_workers and queue_size ----------------------------------------------


@pytest.mark.anyio
async def test_requests_beyond_max_workers_wait_their_turn_then_run() -> None:
    pool = ThreadExecutor(max_workers=2)
    lock = threading.Lock()
    release = threading.Event()
    running = [0]
    peak = [0]
    started = [0]

    def app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        with lock:
            running[0] += 1
            started[0] += 1
            peak[0] = max(peak[0], running[0])
        try:
            release.wait(5)
        finally:
            with lock:
                running[0] -= 1
        start_response("200 OK", [])
        return [b"done"]

    wrapped = to_asgi(app, executor=pool)
    results: list[int] = []

    async def one() -> None:
        results.append((await FakeServer(wrapped).request(make_scope())).status)

    try:
        async with anyio.create_task_group() as group:
            for _ in range(5):
                group.start_soon(one)
            with anyio.fail_after(5):
                while started[0] < 2:
                    await anyio.sleep(0.01)
            await anyio.sleep(0.2)  # room for a third to start, if the pool allowed one
            assert started[0] == 2
            assert pool.threads == 2
            release.set()
    finally:
        release.set()
        await pool.aclose()
    assert results == [200] * 5
    assert peak[0] == 2
    assert started[0] == 5


@pytest.mark.anyio
@pytest.mark.parametrize("queue_size", [2, 16])
async def test_queue_size_bounds_the_response_chunks_in_flight(queue_size: int) -> None:
    produced = [0]
    ahead: list[int] = []

    def app(environ: dict[str, Any], start_response: Any) -> Iterator[bytes]:
        start_response("200 OK", [])
        for _ in range(60):
            produced[0] += 1
            yield b"x" * 100

    async def slow_client(message: Any, exchange: Any) -> None:
        sent = sum(1 for m in exchange.messages if m.get("body"))
        ahead.append(produced[0] - sent)
        await anyio.sleep(0.002)

    pool = ThreadExecutor(max_workers=1, queue_size=queue_size)
    try:
        wrapped = to_asgi(app, executor=pool)
        exchange = await FakeServer(wrapped, on_send=slow_client).request(make_scope())
    finally:
        await pool.aclose()
    assert len(exchange.body) == 6000
    assert max(ahead) <= queue_size + 1
    if queue_size == 16:
        assert max(ahead) > 2 + 1  # the bound moves with the setting


@pytest.mark.parametrize("options", [{"max_workers": 0}, {"queue_size": 0}])
def test_unusable_pool_limits_are_refused(options: dict[str, int]) -> None:
    with pytest.raises(ConfigurationError, match=next(iter(options))):
        ThreadExecutor(**options)


# --- GreenletExecutor: block_warning ----------------------------------------------------------


@pytest.mark.anyio
async def test_block_warning_names_the_request_that_held_the_loop(
    caplog: pytest.LogCaptureFixture,
) -> None:
    def app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        if environ["PATH_INFO"] == "/blocks":
            time.sleep(0.15)  # a blocking call: the loop stands still meanwhile
        start_response("200 OK", [])
        return [b"ok"]

    wrapped = to_asgi(app, executor=GreenletExecutor(block_warning=0.05))
    await FakeServer(wrapped).request(make_scope("/quick"))
    assert warnings_about(caplog, "held the event loop") == []
    await FakeServer(wrapped).request(make_scope("/blocks"))
    found = warnings_about(caplog, "GET '/blocks'", "held the event loop", "over 0.050 s")
    assert len(found) == 1


@pytest.mark.parametrize("value", [0, -0.1])
def test_an_unusable_block_warning_is_refused(value: float) -> None:
    with pytest.raises(ConfigurationError, match="block_warning"):
        GreenletExecutor(block_warning=value)


# --- to_wsgi: loop_wait_timeout, and chunks in flight ----------------------------------------


def get_environ(path: str = "/") -> dict[str, Any]:
    environ: dict[str, Any] = {"REQUEST_METHOD": "GET", "PATH_INFO": path}
    environ["wsgi.input"] = io.BytesIO()
    wsgiref.util.setup_testing_defaults(environ)
    return environ


def ignore_start(status: str, headers: Any, exc_info: Any = None) -> Callable[[bytes], None]:
    return lambda data: None


def wsgi_call(app: Any, path: str = "/") -> tuple[str, bytes]:
    environ = get_environ(path)
    status: list[str] = []

    def start_response(line: str, headers: Any, exc_info: Any = None) -> Any:
        status.append(line)
        return lambda data: None

    iterable = app(environ, start_response)
    try:
        body = b"".join(iterable)
    finally:
        getattr(iterable, "close", lambda: None)()
    return status[-1], body


class CountingAsgi:
    """A raw ASGI app with a lifespan that counts the HTTP requests it began."""

    def __init__(self, delay: float = 0.0) -> None:
        self.began: list[str] = []
        self.delay = delay

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            while True:
                message = await receive()
                kind = message["type"].rsplit(".", 1)[-1]
                await send({"type": f"{message['type']}.complete"})
                if kind == "shutdown":
                    return
        self.began.append(scope["path"])
        await asyncio.sleep(self.delay)
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"ran"})


@pytest.fixture
def own_loop() -> Iterator[LoopThread]:
    """A loop thread of the test's own, so blocking it holds up no other test."""
    runner = LoopThread("bridge-test-limits-loop")
    yield runner
    if runner.running:
        loop = runner.loop
        loop.call_soon_threadsafe(loop.stop)


def test_a_blocked_loop_makes_the_request_a_503_and_never_runs_it(
    own_loop: LoopThread, caplog: pytest.LogCaptureFixture
) -> None:
    app = CountingAsgi()
    wsgi = to_wsgi(app, loop_wait_timeout=0.3)
    wsgi.runner = own_loop
    try:
        assert wsgi_call(wsgi, "/first") == ("200 OK", b"ran")
        release = threading.Event()
        own_loop.call_soon(release.wait, 10)  # the loop is stuck in a blocking call
        try:
            status, body = wsgi_call(wsgi, "/while-blocked")
        finally:
            release.set()
        assert status.startswith("503 ")
        assert body.startswith(b"Service Unavailable")
        assert wsgi_call(wsgi, "/after") == ("200 OK", b"ran")
        # The loop ran the abandoned request's start before /after's, and skipped it.
        assert app.began == ["/first", "/after"]
        errors = [r.getMessage() for r in caplog.records if r.levelno == logging.ERROR]
        assert any("'/while-blocked'" in e and "loop_wait_timeout" in e for e in errors)
    finally:
        wsgi.close()


def test_the_wait_limit_is_for_the_loop_to_begin_not_for_the_app_to_answer(
    own_loop: LoopThread,
) -> None:
    app = CountingAsgi(delay=1.0)  # answers after twice the limit, once it has begun
    wsgi = to_wsgi(app, loop_wait_timeout=0.5)
    wsgi.runner = own_loop
    try:
        assert wsgi_call(wsgi, "/slow-app") == ("200 OK", b"ran")
        release = threading.Event()
        own_loop.call_soon(release.wait, 0.05)  # a short block, well within the limit
        try:
            assert wsgi_call(wsgi, "/short-block") == ("200 OK", b"ran")
        finally:
            release.set()
    finally:
        wsgi.close()


@pytest.mark.parametrize("value", [0, -5.0])
def test_an_unusable_loop_wait_timeout_is_refused(value: float) -> None:
    with pytest.raises(ConfigurationError, match="loop_wait_timeout"):
        to_wsgi(CountingAsgi(), loop_wait_timeout=value)


def test_to_wsgi_holds_at_most_a_few_response_chunks_ahead_of_the_server() -> None:
    began_sending = [0]

    async def fast(scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            raise RuntimeError("no lifespan here")
        await send({"type": "http.response.start", "status": 200, "headers": []})
        for _ in range(40):
            began_sending[0] += 1
            await send({"type": "http.response.body", "body": b"x", "more_body": True})
        await send({"type": "http.response.body", "body": b""})

    iterable = to_wsgi(fast)(get_environ(), ignore_start)
    ahead: list[int] = []
    taken = 0
    try:
        for chunk in iterable:
            taken += len(chunk)
            time.sleep(0.005)  # a slow server: the app runs ahead while this sleeps
            ahead.append(began_sending[0] - taken)
    finally:
        getattr(iterable, "close", lambda: None)()
    assert taken == 40
    assert max(ahead) <= 4 + 1
    assert max(ahead) >= 4  # it does run ahead, up to the bound
