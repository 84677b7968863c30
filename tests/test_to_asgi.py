"""to_asgi in process: one fake server, both executors, asyncio and trio."""

from __future__ import annotations

import io
import logging
import sys
import threading
from collections.abc import Iterator
from typing import Any

import anyio
import anyio.lowlevel
import greenlet
import pytest

import bridge
from bridge import ThreadExecutor, UnsupportedScope, to_asgi
from tests.harness import FakeServer, make_scope, validated

pytestmark = pytest.mark.anyio


def hello(environ: dict[str, Any], start_response: Any) -> list[bytes]:
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", "5")])
    return [b"Hello"]


class Tracked:
    """A response iterable that records where it ran and whether it was closed."""

    def __init__(self, chunks: Iterator[bytes] | list[bytes]) -> None:
        self.chunks = iter(chunks)
        self.closed = 0
        self.workers: set[object] = set()

    def __iter__(self) -> Tracked:
        return self

    def __next__(self) -> bytes:
        self.workers.add(worker_identity())
        return next(self.chunks)

    def close(self) -> None:
        self.workers.add(worker_identity())
        self.closed += 1


def worker_identity() -> object:
    current = greenlet.getcurrent()
    return (threading.get_ident(), current if current.parent is not None else None)


def endless() -> Iterator[bytes]:
    while True:
        yield b"x" * 1024


async def test_hello_world_passes_the_validator(executor: str) -> None:
    exchange = await FakeServer(to_asgi(validated(hello), executor=executor)).request(make_scope())
    assert exchange.error is None
    assert exchange.status == 200
    assert exchange.header(b"content-type") == b"text/plain"
    assert exchange.body == b"Hello"
    assert exchange.complete


async def test_the_app_call_iteration_and_close_share_one_worker(executor: str) -> None:
    responses: list[Tracked] = []
    seen: list[object] = []

    def app(environ: dict[str, Any], start_response: Any) -> Tracked:
        seen.append(worker_identity())
        start_response("200 OK", [])
        responses.append(Tracked([b"a", b"b"]))
        return responses[0]

    exchange = await FakeServer(to_asgi(app, executor=executor)).request(make_scope())
    assert exchange.body == b"ab"
    assert responses[0].closed == 1
    assert responses[0].workers == {seen[0]}
    on_loop_thread = seen[0][0] == threading.get_ident()  # type: ignore[index]
    assert on_loop_thread is (executor == "greenlet")


async def test_close_is_called_once_under_the_validator(executor: str) -> None:
    tracked: list[Tracked] = []

    def app(environ: dict[str, Any], start_response: Any) -> Tracked:
        start_response("200 OK", [("Content-Type", "text/plain")])
        tracked.append(Tracked([b"x", b"", b"y"]))
        return tracked[0]

    exchange = await FakeServer(to_asgi(validated(app), executor=executor)).request(make_scope())
    assert exchange.error is None
    assert exchange.body == b"xy"
    assert tracked[0].closed == 1


async def test_error_before_start_response_is_a_500_then_reaches_the_server(
    executor: str, caplog: pytest.LogCaptureFixture
) -> None:
    def app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        raise RuntimeError("secret detail")

    exchange = await FakeServer(to_asgi(app, executor=executor)).request(make_scope("/boom"))
    assert exchange.status == 500
    assert b"secret" not in exchange.body
    assert exchange.complete
    # The server logs it (a test client raises it); bridge only names the request on it.
    assert isinstance(exchange.error, RuntimeError) and "secret detail" in str(exchange.error)
    assert any("GET '/boom'" in note for note in exchange.error.__notes__)
    assert not [r for r in caplog.records if r.name == "bridge" and r.levelno >= logging.ERROR]


async def test_error_after_start_response_before_body_is_still_a_clean_500(executor: str) -> None:
    def app(environ: dict[str, Any], start_response: Any) -> Iterator[bytes]:
        start_response("200 OK", [("X-Partial", "yes")])
        raise KeyError("late")

    exchange = await FakeServer(to_asgi(app, executor=executor)).request(make_scope())
    assert exchange.status == 500
    assert exchange.header(b"x-partial") is None
    assert exchange.complete


async def test_generator_failing_after_a_chunk_aborts_and_closes(executor: str) -> None:
    tracked: list[Tracked] = []

    def chunks() -> Iterator[bytes]:
        yield b"partial-"
        raise ValueError("mid-stream")

    def app(environ: dict[str, Any], start_response: Any) -> Tracked:
        start_response("200 OK", [])
        tracked.append(Tracked(chunks()))
        return tracked[0]

    exchange = await FakeServer(to_asgi(app, executor=executor)).request(make_scope())
    assert isinstance(exchange.error, ValueError)
    assert exchange.body == b"partial-"
    assert not exchange.complete
    assert tracked[0].closed == 1


async def test_close_failing_does_not_mask_the_original_error(
    executor: str, caplog: pytest.LogCaptureFixture
) -> None:
    class BadClose:
        def __iter__(self) -> Iterator[bytes]:
            yield b"a"
            raise ValueError("original")

        def close(self) -> None:
            raise OSError("close failed")

    def app(environ: dict[str, Any], start_response: Any) -> BadClose:
        start_response("200 OK", [])
        return BadClose()

    exchange = await FakeServer(to_asgi(app, executor=executor)).request(make_scope())
    assert isinstance(exchange.error, ValueError)
    assert any("close() of the WSGI response also failed" in r.getMessage() for r in caplog.records)


async def test_exc_info_after_body_reraises_and_sends_nothing_more(executor: str) -> None:
    def app(environ: dict[str, Any], start_response: Any) -> Iterator[bytes]:
        start_response("200 OK", [])
        yield b"first"
        try:
            raise KeyError("boom")
        except KeyError:
            start_response("500 Internal Server Error", [], sys.exc_info())
        yield b"error page"

    exchange = await FakeServer(to_asgi(app, executor=executor)).request(make_scope())
    assert isinstance(exchange.error, KeyError)
    assert exchange.status == 200
    assert exchange.body == b"first"
    assert not exchange.complete


async def test_exc_info_before_body_sends_the_apps_error_page(executor: str) -> None:
    def app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        start_response("200 OK", [])
        try:
            raise KeyError("boom")
        except KeyError:
            start_response("503 Service Unavailable", [("Retry-After", "5")], sys.exc_info())
        return [b"try later"]

    exchange = await FakeServer(to_asgi(app, executor=executor)).request(make_scope())
    assert exchange.error is None
    assert exchange.status == 503
    assert exchange.header(b"retry-after") == b"5"
    assert exchange.body == b"try later"


async def test_second_start_response_without_exc_info_is_a_500(executor: str) -> None:
    def app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        start_response("200 OK", [])
        start_response("201 Created", [])
        return [b"x"]

    exchange = await FakeServer(to_asgi(app, executor=executor)).request(make_scope())
    assert exchange.status == 500


async def test_write_output_comes_before_the_iterable_in_order(executor: str) -> None:
    def app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        write = start_response("200 OK", [("Content-Type", "text/plain")])
        write(b"a")
        write(b"b")
        return [b"c"]

    exchange = await FakeServer(to_asgi(validated(app), executor=executor)).request(make_scope())
    assert exchange.body == b"abc"
    assert exchange.complete


async def test_body_without_start_response_is_a_500(executor: str) -> None:
    def app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        return [b"no headers"]

    exchange = await FakeServer(to_asgi(app, executor=executor)).request(make_scope())
    assert exchange.status == 500
    assert b"no headers" not in exchange.body


async def test_start_response_inside_the_first_iteration_works(executor: str) -> None:
    def app(environ: dict[str, Any], start_response: Any) -> Iterator[bytes]:
        start_response("202 Accepted", [])
        yield b"lazy"

    exchange = await FakeServer(to_asgi(app, executor=executor)).request(make_scope())
    assert (exchange.status, exchange.body) == (202, b"lazy")


async def test_str_chunk_is_a_500_naming_the_type(
    executor: str, caplog: pytest.LogCaptureFixture
) -> None:
    def app(environ: dict[str, Any], start_response: Any) -> list[str]:
        start_response("200 OK", [])
        return ["text"]

    exchange = await FakeServer(to_asgi(app, executor=executor)).request(make_scope())  # type: ignore[arg-type]
    assert exchange.status == 500
    errors = [r.exc_info[1] for r in caplog.records if r.exc_info]
    assert any(isinstance(e, TypeError) and "str" in str(e) for e in errors)


async def test_empty_iterable_sends_a_start_message(executor: str) -> None:
    def app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        start_response("204 No Content", [])
        return []

    exchange = await FakeServer(to_asgi(app, executor=executor)).request(make_scope())
    assert exchange.status == 204
    assert exchange.complete
    assert exchange.body == b""


@pytest.mark.parametrize(
    "header",
    [
        ("X-Evil", "a\r\nSet-Cookie: evil=1"),
        ("X-Evil", "a\nb"),
        ("X-Evil", "a\x00b"),
        ("X Bad:Name", "v"),
    ],
)
async def test_invalid_response_headers_never_reach_the_server(
    executor: str, header: tuple[str, str], caplog: pytest.LogCaptureFixture
) -> None:
    def app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        start_response("200 OK", [header])
        return [b"x"]

    exchange = await FakeServer(to_asgi(app, executor=executor)).request(make_scope())
    assert exchange.status == 500
    sent = b"".join(name + value for m in exchange.messages for name, value in m.get("headers", []))
    assert b"evil" not in sent and b"Bad" not in sent
    assert any(header[0] in str(r.exc_info[1]) for r in caplog.records if r.exc_info)


async def test_content_length_reached_stops_iteration_and_closes(executor: str) -> None:
    tracked: list[Tracked] = []

    def app(environ: dict[str, Any], start_response: Any) -> Tracked:
        start_response("200 OK", [("Content-Length", "5")])
        tracked.append(Tracked(endless()))
        return tracked[0]

    exchange = await FakeServer(to_asgi(app, executor=executor)).request(make_scope())
    assert exchange.body == b"xxxxx"
    assert exchange.complete
    assert tracked[0].closed == 1


async def test_no_body_status_drops_the_apps_body(executor: str) -> None:
    def app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        start_response("304 Not Modified", [])
        return [b"should not be sent"]

    exchange = await FakeServer(to_asgi(app, executor=executor)).request(make_scope())
    assert exchange.status == 304
    assert exchange.body == b""


async def test_file_wrapper_sends_the_file_and_closes_it(executor: str) -> None:
    handle = io.BytesIO(b"0123456789" * 1000)

    def app(environ: dict[str, Any], start_response: Any) -> Any:
        start_response("200 OK", [("Content-Type", "application/octet-stream")])
        return environ["wsgi.file_wrapper"](handle, 4096)

    exchange = await FakeServer(to_asgi(validated(app), executor=executor)).request(make_scope())
    assert exchange.body == b"0123456789" * 1000
    assert handle.closed


# --- Request bodies.


def echo(environ: dict[str, Any], start_response: Any) -> list[bytes]:
    length = environ.get("CONTENT_LENGTH")
    # The stdlib validator insists on read(size); chunked bodies are read to their end.
    body = environ["wsgi.input"].read(int(length)) if length else environ["wsgi.input"].read()
    start_response("200 OK", [("Content-Type", "application/octet-stream")])
    return [body]


async def test_body_split_across_messages_is_read_whole(executor: str) -> None:
    scope = make_scope(method="POST", headers=[(b"content-length", b"9")])
    server = FakeServer(to_asgi(validated(echo), executor=executor), [b"abc", b"", b"def", b"ghi"])
    exchange = await server.request(scope)
    assert exchange.body == b"abcdefghi"


async def test_chunked_upload_without_length_is_read_whole(executor: str) -> None:
    scope = make_scope(method="POST", headers=[(b"transfer-encoding", b"chunked")])
    exchange = await FakeServer(to_asgi(echo, executor=executor), [b"a" * 1000] * 5).request(scope)
    assert exchange.body == b"a" * 5000


async def test_the_body_is_not_received_before_the_app_reads_it(executor: str) -> None:
    def app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        start_response("200 OK", [("Content-Length", "2")])
        return [b"ok"]

    scope = make_scope(method="POST", headers=[(b"content-length", b"3")])
    exchange = await FakeServer(to_asgi(app, executor=executor), [b"abc"]).request(scope)
    assert exchange.body == b"ok"
    assert exchange.receive_calls == 0


async def test_the_app_sees_the_first_piece_before_the_last_is_sent(executor: str) -> None:
    first_seen = anyio.Event()
    seen: list[bytes] = []

    def app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        seen.append(environ["wsgi.input"].read(5))
        bridge.await_(_set(first_seen))
        seen.append(environ["wsgi.input"].read())
        start_response("200 OK", [])
        return [b"".join(seen)]

    pieces_sent: list[str] = []

    async def receive_gate() -> None:
        with anyio.fail_after(5):
            await first_seen.wait()
        pieces_sent.append("second")

    scope = make_scope(method="POST", headers=[(b"content-length", b"10")])
    app_under_test = to_asgi(app, executor=executor)

    async def gated(scope: Any, receive: Any, send: Any) -> None:
        async def slow_receive() -> Any:
            if not pieces_sent:
                pieces_sent.append("first")
                return {"type": "http.request", "body": b"01234", "more_body": True}
            await receive_gate()
            return {"type": "http.request", "body": b"56789", "more_body": False}

        await app_under_test(scope, slow_receive, send)

    exchange = await FakeServer(gated).request(scope)
    assert exchange.body == b"0123456789"
    assert seen == [b"01234", b"56789"]


async def _set(event: anyio.Event) -> None:
    event.set()


async def test_disconnect_mid_upload_raises_oserror_in_the_app(executor: str) -> None:
    raised: list[BaseException] = []

    def app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        try:
            environ["wsgi.input"].read()
        except OSError as error:
            raised.append(error)
            raise
        start_response("200 OK", [])
        return [b"processed"]

    scope = make_scope(method="POST", headers=[(b"content-length", b"1000")])

    async def partial(scope: Any, receive: Any, send: Any) -> None:
        messages = [
            {"type": "http.request", "body": b"x" * 100, "more_body": True},
            {"type": "http.disconnect"},
        ]

        async def cut_receive() -> Any:
            return messages.pop(0) if messages else {"type": "http.disconnect"}

        await to_asgi(app, executor=executor)(scope, cut_receive, send)

    exchange = await FakeServer(partial).request(scope)
    assert len(raised) == 1
    assert isinstance(raised[0], bridge.ClientDisconnected)
    assert "100 of 1000" in str(raised[0])
    assert b"processed" not in exchange.body


async def test_declared_body_over_the_limit_is_413_without_calling_the_app(executor: str) -> None:
    called: list[bool] = []

    def app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        called.append(True)
        return []

    scope = make_scope(
        method="POST", headers=[(b"content-length", b"1000"), (b"expect", b"100-continue")]
    )
    exchange = await FakeServer(to_asgi(app, executor=executor, max_body_size=10)).request(scope)
    assert exchange.status == 413
    assert called == []
    assert exchange.receive_calls == 0


async def test_streamed_body_over_the_limit_is_413(executor: str) -> None:
    scope = make_scope(method="POST", headers=[(b"transfer-encoding", b"chunked")])
    server = FakeServer(to_asgi(echo, executor=executor, max_body_size=2500), [b"a" * 1000] * 5)
    exchange = await server.request(scope)
    assert exchange.status == 413
    assert exchange.complete
    assert exchange.error is None


async def test_body_within_the_limit_passes(executor: str) -> None:
    scope = make_scope(method="POST", headers=[(b"content-length", b"10")])
    server = FakeServer(to_asgi(echo, executor=executor, max_body_size=10), [b"0123456789"])
    assert (await server.request(scope)).body == b"0123456789"


async def test_duplicate_content_length_is_400_without_calling_the_app(executor: str) -> None:
    scope = make_scope(
        method="POST", headers=[(b"content-length", b"5"), (b"content-length", b"7")]
    )
    exchange = await FakeServer(to_asgi(echo, executor=executor)).request(scope)
    assert exchange.status == 400
    assert b"content-length" in exchange.body


# --- Backpressure and disconnects.


async def test_a_slow_client_holds_back_the_app(executor: str) -> None:
    produced = [0]
    ahead: list[int] = []

    def app(environ: dict[str, Any], start_response: Any) -> Iterator[bytes]:
        start_response("200 OK", [])
        for _ in range(60):
            produced[0] += 1
            yield b"x" * 1000

    async def slow(message: Any, exchange: Any) -> None:
        sent = sum(1 for m in exchange.messages if m.get("body"))
        ahead.append(produced[0] - sent)
        await anyio.sleep(0.002)

    exchange = await FakeServer(to_asgi(app, executor=executor), on_send=slow).request(make_scope())
    assert len(exchange.body) == 60_000
    assert max(ahead) <= ThreadExecutor().queue_size + 1


async def test_send_failing_stops_iteration_closes_and_returns(executor: str) -> None:
    tracked: list[Tracked] = []

    def app(environ: dict[str, Any], start_response: Any) -> Tracked:
        start_response("200 OK", [])
        tracked.append(Tracked(endless()))
        return tracked[0]

    exchange = await FakeServer(to_asgi(app, executor=executor), send_fails_after=3).request(
        make_scope(), timeout=5
    )
    assert exchange.error is None
    assert tracked[0].closed == 1
    assert len(tracked[0].workers) == 1


async def test_http_disconnect_stops_an_endless_response(executor: str) -> None:
    tracked: list[Tracked] = []

    def app(environ: dict[str, Any], start_response: Any) -> Tracked:
        start_response("200 OK", [])
        tracked.append(Tracked(endless()))
        return tracked[0]

    server = FakeServer(to_asgi(app, executor=executor), disconnect_after_body=True)
    exchange = await server.request(make_scope(), timeout=5)
    assert exchange.error is None
    assert tracked[0].closed == 1
    assert not exchange.complete


async def test_two_workers_survive_a_hundred_disconnects() -> None:
    pool = ThreadExecutor(max_workers=2)
    closed = [0]

    def app(environ: dict[str, Any], start_response: Any) -> Iterator[bytes]:
        start_response("200 OK", [])
        try:
            yield from endless()
        finally:
            closed[0] += 1

    wrapped = to_asgi(app, executor=pool)
    for _ in range(100):
        exchange = await FakeServer(wrapped, send_fails_after=2).request(make_scope(), timeout=5)
        assert exchange.error is None
    with anyio.fail_after(5):
        while pool.idle < pool.threads:
            await anyio.sleep(0.01)
    assert closed[0] == 100
    assert pool.threads <= 2
    exchange = await FakeServer(to_asgi(hello, executor=pool)).request(make_scope(), timeout=5)
    assert exchange.body == b"Hello"


async def test_server_cancelling_the_request_stops_the_worker_and_closes(executor: str) -> None:
    tracked: list[Tracked] = []
    closed = threading.Event()

    class Closing(Tracked):
        def close(self) -> None:
            super().close()
            closed.set()

    def app(environ: dict[str, Any], start_response: Any) -> Tracked:
        start_response("200 OK", [])
        tracked.append(Closing(endless()))
        return tracked[0]

    async def forever(message: Any, exchange: Any) -> None:
        if len(exchange.messages) > 3:
            await anyio.sleep(0.05)

    wrapped = to_asgi(app, executor=executor)
    with anyio.move_on_after(0.3):
        await FakeServer(wrapped, on_send=forever).request(make_scope(), timeout=10)
    assert await anyio.to_thread.run_sync(closed.wait, 5)
    assert tracked[0].closed == 1


# --- Threads, contexts, lifespan, other scopes.


async def test_thread_executor_runs_requests_in_parallel() -> None:
    def sleepy(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        threading.Event().wait(0.3)
        start_response("200 OK", [])
        return [b"done"]

    wrapped = to_asgi(sleepy, executor=ThreadExecutor(max_workers=8))
    started = anyio.current_time()
    async with anyio.create_task_group() as group:
        for _ in range(8):
            group.start_soon(FakeServer(wrapped).request, make_scope())
    assert anyio.current_time() - started < 1.2


async def test_greenlet_await_suspends_only_its_request() -> None:
    def view(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        bridge.await_(anyio.sleep(0.2))
        start_response("200 OK", [])
        return [b"ok"]

    wrapped = to_asgi(view, executor="greenlet")
    results: list[bytes] = []

    async def one() -> None:
        results.append((await FakeServer(wrapped).request(make_scope())).body)

    started = anyio.current_time()
    async with anyio.create_task_group() as group:
        for _ in range(200):
            group.start_soon(one)
    assert results == [b"ok"] * 200
    assert anyio.current_time() - started < 1.5


async def test_await_from_a_worker_runs_on_the_servers_loop(executor: str) -> None:
    loop_thread = threading.get_ident()
    seen: list[int] = []

    async def where() -> int:
        await anyio.lowlevel.checkpoint()
        return threading.get_ident()

    def view(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        seen.append(bridge.await_(where()))
        start_response("200 OK", [])
        return [b"ok"]

    await FakeServer(to_asgi(view, executor=executor)).request(make_scope())
    assert seen == [loop_thread]


async def test_await_errors_cross_with_their_type(executor: str) -> None:
    async def fails() -> None:
        raise LookupError("async side")

    def view(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        try:
            bridge.await_(fails())
        except LookupError as error:
            body = str(error).encode()
        start_response("200 OK", [])
        return [body]

    exchange = await FakeServer(to_asgi(view, executor=executor)).request(make_scope())
    assert exchange.body == b"async side"


async def test_errors_go_to_a_given_wsgi_errors_stream(executor: str) -> None:
    errors = io.StringIO()

    def app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        raise RuntimeError("to the stream")

    exchange = await FakeServer(to_asgi(app, executor=executor, errors=errors)).request(
        make_scope()
    )
    assert exchange.status == 500
    assert "RuntimeError: to the stream" in errors.getvalue()


async def test_greenlet_blocking_the_loop_is_reported_with_the_path(
    caplog: pytest.LogCaptureFixture,
) -> None:
    def blocking(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        threading.Event().wait(0.05)
        start_response("200 OK", [])
        return [b"slow"]

    wrapped = to_asgi(blocking, executor=bridge.GreenletExecutor(block_warning=0.02))
    await FakeServer(wrapped).request(make_scope("/slow-path"))
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert any("/slow-path" in w and "held the event loop" in w for w in warnings)


async def test_lifespan_is_answered_and_shuts_the_pool_down() -> None:
    wrapped = to_asgi(hello)
    await FakeServer(wrapped).request(make_scope())
    pool = wrapped.executor
    assert isinstance(pool, ThreadExecutor) and pool.threads == 1
    events = [{"type": "lifespan.startup"}, {"type": "lifespan.shutdown"}]
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return events.pop(0)

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    await wrapped({"type": "lifespan", "asgi": {"version": "3.0"}}, receive, send)
    assert [m["type"] for m in sent] == ["lifespan.startup.complete", "lifespan.shutdown.complete"]
    assert pool.threads == 0
    exchange = await FakeServer(wrapped).request(make_scope())
    assert exchange.body == b"Hello"


async def test_websocket_is_refused_before_accept() -> None:
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return {"type": "websocket.connect"}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    await to_asgi(hello)({"type": "websocket", "path": "/ws"}, receive, send)
    assert sent == [{"type": "websocket.close", "code": 1000}]


async def test_unknown_scope_types_are_refused() -> None:
    async def receive() -> dict[str, Any]:
        raise AssertionError

    async def send(message: dict[str, Any]) -> None:
        raise AssertionError

    with pytest.raises(UnsupportedScope, match="'other'"):
        await to_asgi(hello)({"type": "other"}, receive, send)


async def test_a_body_shorter_than_its_content_length_is_aborted_and_raised(
    executor: str, caplog: pytest.LogCaptureFixture
) -> None:
    def app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        start_response("200 OK", [("Content-Length", "100")])
        return [b"only ten.."]

    exchange = await FakeServer(to_asgi(app, executor=executor)).request(make_scope())
    assert exchange.body == b"only ten.."
    # Never marked complete: the server aborts the connection instead of passing it off as whole.
    assert all(m.get("more_body") for m in exchange.messages if m["type"] == "http.response.body")
    assert "90 bytes short" in str(exchange.error)  # for the server to log, once
    assert not [r for r in caplog.records if r.name == "bridge" and r.exc_info]


@pytest.mark.parametrize(("method", "status"), [("HEAD", "200 OK"), ("GET", "304 Not Modified")])
async def test_bodiless_answers_with_a_length_are_not_called_short(
    executor: str, method: str, status: str, caplog: pytest.LogCaptureFixture
) -> None:
    def app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        start_response(status, [("Content-Length", "100")])
        return []

    exchange = await FakeServer(to_asgi(app, executor=executor)).request(make_scope(method=method))
    assert exchange.header(b"content-length") == b"100"
    assert not any("short" in r.getMessage() for r in caplog.records)


async def test_a_pool_closed_while_busy_serves_later_requests() -> None:
    pool = ThreadExecutor(max_workers=1)
    release = threading.Event()

    def blocking(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        release.wait(5)
        start_response("200 OK", [])
        return [b"late"]

    async def close_then_release() -> None:
        await pool.aclose(timeout=0.05)
        release.set()

    async with anyio.create_task_group() as group:
        group.start_soon(FakeServer(to_asgi(blocking, executor=pool)).request, make_scope())
        await anyio.sleep(0.05)
        group.start_soon(close_then_release)
    for _ in range(3):
        exchange = await FakeServer(to_asgi(hello, executor=pool)).request(make_scope(), timeout=5)
        assert exchange.body == b"Hello"


async def test_a_stuck_stream_does_not_hold_up_other_requests(executor: str) -> None:
    never = anyio.Event()

    async def stuck_client(message: Any, exchange: Any) -> None:
        if len(exchange.messages) > 2:
            await never.wait()

    def streaming(environ: dict[str, Any], start_response: Any) -> Iterator[bytes]:
        start_response("200 OK", [])
        yield from endless()

    pool = ThreadExecutor(max_workers=2) if executor == "thread" else executor
    stuck = to_asgi(streaming, executor=pool)
    plain = to_asgi(hello, executor=pool)
    async with anyio.create_task_group() as group:
        group.start_soon(FakeServer(stuck, on_send=stuck_client).request, make_scope("/stuck"))
        await anyio.sleep(0.05)
        with anyio.fail_after(2):
            exchange = await FakeServer(plain).request(make_scope("/ok"))
        group.cancel_scope.cancel()
    assert exchange.body == b"Hello"


async def test_an_app_reading_its_body_while_streaming_gets_all_of_it(executor: str) -> None:
    def echo_while_streaming(environ: dict[str, Any], start_response: Any) -> Iterator[bytes]:
        start_response("200 OK", [])
        yield b"["
        while piece := environ["wsgi.input"].read(3):
            yield piece
        yield b"]"

    scope = make_scope(method="POST", headers=[(b"transfer-encoding", b"chunked")])
    pieces = [b"ab", b"cdefg", b"", b"hij"]
    wrapped = to_asgi(echo_while_streaming, executor=executor)
    exchange = await FakeServer(wrapped, pieces).request(scope)
    assert exchange.error is None
    assert exchange.body == b"[abcdefghij]"
    assert exchange.complete
