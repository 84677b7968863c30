"""Clean-up when a request ends happens by reference counting, not when the GC runs.

A client that leaves mid-response must free the app's request at once: a
streaming generator's ``finally`` (which may give back a connection or a lock)
runs when the request ends, with the garbage collector off. Exceptions the
bridge keeps after it dealt with them hold their traceback's frames, and
through them the app's objects, in reference cycles (issue 13, item 5).
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import io
import logging
import os
import socket
import struct
import subprocess
import sys
import threading
import time
import weakref
import wsgiref.util
from collections.abc import AsyncIterator, Iterable, Iterator
from pathlib import Path
from typing import Any

import anyio
import pytest
import waitress.server
from fastapi import FastAPI
from fastapi.responses import StreamingResponse

import bridge
from bridge import _exchange, _to_wsgi, _wsgi_call
from tests.servers import (
    HOST,
    free_port,
    run_waitress,
    stop_process,
    uvicorn_server,
    wait_for_port,
)
from tests.test_e2e_to_wsgi import gunicorn

WAIT = 5.0  # seconds for clean-up that, done by reference counting, is immediate


@pytest.fixture
def no_gc(monkeypatch: pytest.MonkeyPatch) -> Iterator[io.StringIO]:
    """The collector off; bridge's log records formatted, then dropped.

    pytest's own log capture keeps every record, and with it the traceback of
    a logged exception: that would hold the frames this test wants freed.
    """
    written = io.StringIO()
    logger = logging.Logger("bridge, for this test only")
    logger.addHandler(logging.StreamHandler(written))
    for module in (_to_wsgi, _wsgi_call, _exchange):
        monkeypatch.setattr(module, "logger", logger)
    gc.collect()
    gc.disable()
    try:
        yield written
    finally:
        gc.enable()


class Resource:
    """Stands for a pooled connection: ``released`` is set when it is freed."""

    def __init__(self, released: threading.Event) -> None:
        weakref.finalize(self, released.set)


def streaming_api(released: threading.Event) -> FastAPI:
    api = FastAPI()

    @api.get("/async")
    async def async_stream() -> StreamingResponse:
        async def parts() -> AsyncIterator[bytes]:
            try:
                while True:
                    yield b"a" * 1024
                    await asyncio.sleep(0)
            finally:
                released.set()

        return StreamingResponse(parts())

    @api.get("/sync")
    def sync_stream() -> StreamingResponse:
        def parts() -> Iterator[bytes]:
            try:
                while True:
                    yield b"s" * 1024
            finally:
                released.set()

        return StreamingResponse(parts())

    return api


def environ_for(path: str) -> dict[str, Any]:
    environ: dict[str, Any] = {
        "REQUEST_METHOD": "GET",
        "PATH_INFO": path,
        "wsgi.input": io.BytesIO(),
    }
    wsgiref.util.setup_testing_defaults(environ)
    return environ


def leave_after_two_chunks(wsgi: Any, path: str) -> None:
    """Take two chunks of the response, then close it, as a server whose client left."""
    iterable = wsgi(environ_for(path), lambda *args: None)
    chunks = iter(iterable)
    next(chunks)
    next(chunks)
    iterable.close()


@pytest.mark.parametrize("path", ["/async", "/sync"])
@pytest.mark.usefixtures("no_gc")
def test_to_wsgi_a_client_leaving_a_streaming_response_runs_its_finally(path: str) -> None:
    released = threading.Event()
    wsgi = bridge.to_wsgi(streaming_api(released))
    try:
        leave_after_two_chunks(wsgi, path)
        assert released.wait(WAIT), "the generator's finally waited for the garbage collector"
    finally:
        wsgi.close()


def test_to_wsgi_an_error_raised_after_the_client_left_is_not_kept(no_gc: io.StringIO) -> None:
    released = threading.Event()

    async def app(scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            raise RuntimeError("no lifespan")
        resource = Resource(released)  # noqa: F841 (held by this frame, as apps hold theirs)
        await send({"type": "http.response.start", "status": 200, "headers": []})
        try:
            while True:
                await send({"type": "http.response.body", "body": b"x" * 1024, "more_body": True})
        except bridge.ClientDisconnected:
            raise RuntimeError("clean-up after the client left failed") from None

    wsgi = bridge.to_wsgi(app)
    try:
        leave_after_two_chunks(wsgi, "/")
        assert released.wait(WAIT), "the app's frame was kept by the exception it raised"
    finally:
        wsgi.close()
    assert "clean-up after the client left failed" in no_gc.getvalue()  # logged, then let go


def test_to_wsgi_an_error_before_the_response_is_not_kept_after_the_500(no_gc: io.StringIO) -> None:
    released = threading.Event()

    async def app(scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            raise RuntimeError("no lifespan")
        resource = Resource(released)  # noqa: F841
        raise RuntimeError("the app broke")

    wsgi = bridge.to_wsgi(app)
    try:
        statuses: list[str] = []
        body = b"".join(wsgi(environ_for("/"), lambda status, *args: statuses.append(status)))
        assert statuses == ["500 Internal Server Error"], body
        assert released.wait(WAIT), "the app's frame was kept by the exception it raised"
    finally:
        wsgi.close()
    assert "the app broke" in no_gc.getvalue()  # with its traceback: logged before let go
    assert 'in app\n    raise RuntimeError("the app broke")' in no_gc.getvalue()


@pytest.mark.usefixtures("no_gc")
def test_to_wsgi_under_waitress_a_client_that_resets_frees_the_request() -> None:
    released = threading.Event()
    wsgi = bridge.to_wsgi(streaming_api(released))
    server = waitress.server.create_server(wsgi, host=HOST, port=0, threads=2)
    port = int(server.effective_port)  # type: ignore[union-attr]
    thread = threading.Thread(target=run_waitress, args=(server,), name="waitress", daemon=True)
    thread.start()
    try:
        wait_for_port(port)
        with socket.create_connection((HOST, port), timeout=5) as sock:
            sock.sendall(b"GET /sync HTTP/1.1\r\nHost: x\r\n\r\n")
            assert sock.recv(65536).startswith(b"HTTP/1.1 200")
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        assert released.wait(WAIT), "the generator's finally waited for the garbage collector"
    finally:
        server.close()
        thread.join(5)
        wsgi.close()


def test_to_wsgi_an_error_the_server_never_read_is_let_go_when_it_closes(
    no_gc: io.StringIO,
) -> None:
    released = threading.Event()
    raised = threading.Event()

    async def app(scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            raise RuntimeError("no lifespan")
        resource = Resource(released)  # noqa: F841
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"partial", "more_body": True})
        try:
            raise KeyError("while the server was not reading")
        finally:
            raised.set()

    wsgi = bridge.to_wsgi(app)
    try:
        iterable = wsgi(environ_for("/"), lambda *args: None)
        chunks = iter(iterable)
        assert next(chunks) == b"partial"
        assert raised.wait(WAIT)
        stepped = threading.Event()
        wsgi.runner.call_soon(stepped.set)  # the app's task has finished its step: posted
        assert stepped.wait(WAIT)
        iterable.close()  # the server leaves without reading the error
        del iterable, chunks
        assert released.wait(WAIT), "the unread error kept the app's frame"
    finally:
        wsgi.close()
    logged = no_gc.getvalue()
    assert "GET '/' before the server closed it" in logged
    assert logged.count("KeyError: 'while the server was not reading'") == 1


@pytest.mark.usefixtures("no_gc")
def test_to_wsgi_an_app_cancelled_after_the_grace_period_is_freed() -> None:
    released = threading.Event()

    async def app(scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            raise RuntimeError("no lifespan")
        resource = Resource(released)  # noqa: F841
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"partial", "more_body": True})
        await asyncio.sleep(WAIT * 10)  # deaf to the disconnect: cancelled after the grace

    wsgi = bridge.to_wsgi(app, grace_period=0.05)
    try:
        leave_after_one_chunk = wsgi(environ_for("/"), lambda *args: None)
        assert next(iter(leave_after_one_chunk)) == b"partial"
        leave_after_one_chunk.close()
        del leave_after_one_chunk
        assert released.wait(WAIT), "the cancelled task kept the app's frame"
    finally:
        wsgi.close()


class Environ(dict):  # type: ignore[type-arg]
    """An environ the test can follow: a plain dict cannot have weak references."""


@pytest.mark.parametrize("ending", ["raises", "short"])
def test_to_wsgi_an_error_raised_to_the_server_holds_no_cycle(
    ending: str, no_gc: io.StringIO
) -> None:
    released = threading.Event()

    async def app(scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            raise RuntimeError("no lifespan")
        resource = Resource(released)  # noqa: F841
        length = [(b"content-length", b"100")] if ending == "short" else []
        await send({"type": "http.response.start", "status": 200, "headers": length})
        await send({"type": "http.response.body", "body": b"partial", "more_body": True})
        if ending == "raises":
            raise KeyError("after the body began")
        await send({"type": "http.response.body", "body": b"", "more_body": False})

    wsgi = bridge.to_wsgi(app)
    environ = Environ(environ_for("/"))
    left = threading.Event()
    weakref.finalize(environ, left.set)
    try:
        iterable = wsgi(environ, lambda *args: None)
        with pytest.raises((KeyError, bridge.AppProtocolError)):
            b"".join(iterable)
        iterable.close()
        del iterable, environ
        assert released.wait(WAIT), "the app's frame was kept after the error was raised"
        assert left.wait(WAIT), "the request was kept in a cycle after the error was raised"
    finally:
        wsgi.close()


def leave_with_a_reset(port: int, path: str) -> None:
    """Ask for ``path``, read the start of the answer, then leave as a crashed client."""
    with socket.create_connection((HOST, port), timeout=10) as sock:
        sock.sendall(f"GET {path} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
        assert sock.recv(65536).startswith(b"HTTP/1.1 200")
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))


def marked_within(marks: Path, seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if marks.exists() and "finally" in marks.read_text():
            return True
        time.sleep(0.05)
    return False


@contextlib.contextmanager
def uwsgi(app: str, **environment: str) -> Iterator[tuple[str, Any]]:
    port = free_port()
    command = [
        str(Path(sys.executable).with_name("uwsgi")),
        "--http-socket",
        f"{HOST}:{port}",
        "--module",
        app,
        "--master",
        "--processes",
        "1",
        "--threads",
        "4",
        "--need-app",
        "--die-on-term",
        "--disable-logging",
    ]
    process = subprocess.Popen(
        command,
        env={**os.environ, **environment},
        cwd=Path(__file__).parent.parent,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_for_port(port, alive=lambda: process.poll() is None)
        yield f"http://{HOST}:{port}", process
    finally:
        stop_process(process)


@pytest.mark.parametrize("server", ["gunicorn-gthread", "uwsgi"])
def test_to_wsgi_under_a_server_process_with_the_gc_off_the_finally_runs(
    server: str, tmp_path: Path
) -> None:
    marks = tmp_path / "marks"
    app = "tests.apps.cleanup_fastapi:wsgi"
    serving = (
        gunicorn(app, "gthread", BRIDGE_MARKS=str(marks))
        if server.startswith("gunicorn")
        else uwsgi(app, BRIDGE_MARKS=str(marks))
    )
    with serving as (url, _):
        leave_with_a_reset(int(url.rsplit(":", 1)[1]), "/stream")
        assert marked_within(marks, 10), "the generator's finally waited for the collector"


class TrackedBody:
    """A WSGI response iterable whose lifetime the test follows."""

    def __init__(self, released: threading.Event) -> None:
        weakref.finalize(self, released.set)

    def __iter__(self) -> Iterator[bytes]:
        while True:
            yield b"w" * 1024

    def close(self) -> None:
        pass


def asgi_scope() -> dict[str, Any]:
    return {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "GET",
        "scheme": "http",
        "path": "/",
        "raw_path": b"/",
        "query_string": b"",
        "root_path": "",
        "headers": [(b"host", b"x")],
        "client": ("127.0.0.1", 1),
        "server": ("127.0.0.1", 80),
    }


@pytest.mark.parametrize("executor", ["thread", "greenlet"])
@pytest.mark.usefixtures("no_gc")
def test_to_asgi_a_client_leaving_frees_the_wsgi_response(executor: str) -> None:
    released = threading.Event()

    def wsgi_app(environ: Any, start_response: Any) -> TrackedBody:
        start_response("200 OK", [("content-type", "text/plain")])
        return TrackedBody(released)

    app = bridge.to_asgi(wsgi_app, executor=executor)
    scope = asgi_scope()

    async def client() -> None:
        sent: list[dict[str, Any]] = []
        gone = asyncio.Event()

        async def receive() -> dict[str, Any]:
            if not sent:
                return {"type": "http.request", "body": b"", "more_body": False}
            await gone.wait()
            return {"type": "http.disconnect"}

        async def send(message: dict[str, Any]) -> None:
            sent.append(message)
            if len(sent) >= 3:
                gone.set()
                raise OSError("the client went away")

        await app(scope, receive, send)

    asyncio.run(client())
    assert released.wait(WAIT), "the WSGI response was kept by an exception after the request"


@pytest.mark.parametrize("executor", ["thread", "greenlet"])
@pytest.mark.usefixtures("no_gc")
def test_to_asgi_under_uvicorn_a_client_that_resets_frees_the_wsgi_response(
    executor: str,
) -> None:
    released = threading.Event()

    def wsgi_app(environ: Any, start_response: Any) -> TrackedBody:
        start_response("200 OK", [("content-type", "text/plain")])
        return TrackedBody(released)

    with uvicorn_server(bridge.to_asgi(wsgi_app, executor=executor)) as running:
        leave_with_a_reset(running.port, "/")
        assert released.wait(WAIT), "the WSGI response was kept after the client left"


@pytest.mark.parametrize("executor", ["thread", "greenlet"])
@pytest.mark.usefixtures("no_gc")
def test_to_asgi_an_error_raised_to_the_server_holds_no_cycle(executor: str) -> None:
    released = threading.Event()

    def wsgi_app(environ: Any, start_response: Any) -> Iterator[bytes]:
        start_response("200 OK", [("content-type", "text/plain")])
        resource = Resource(released)  # noqa: F841
        yield b"first"
        raise KeyError("after the body began")

    app = bridge.to_asgi(wsgi_app, executor=executor)

    async def server() -> None:
        async def receive() -> dict[str, Any]:
            await asyncio.sleep(WAIT * 10)
            return {"type": "http.disconnect"}

        async def send(message: dict[str, Any]) -> None:
            pass

        with pytest.raises(KeyError):
            await app(asgi_scope(), receive, send)

    asyncio.run(server())
    assert released.wait(WAIT), "the WSGI app's frame was kept after the server dropped the error"


@pytest.mark.usefixtures("no_gc")
def test_sync_to_async_lets_go_of_its_arguments_when_the_call_returns() -> None:
    """The thread job's own context kept the job (and the call's arguments) in a cycle."""
    released = threading.Event()

    def work(resource: Resource) -> str:
        return "done"

    async def caller() -> str:
        return await bridge.sync_to_async(work)(Resource(released))

    assert asyncio.run(caller()) == "done"
    assert released.wait(WAIT), "the call's argument was kept after it returned"


def test_to_asgi_an_idle_greenlet_worker_keeps_nothing_of_its_last_request() -> None:
    """Not even the collector could free what a worker waiting for its next job held."""
    released = threading.Event()

    def wsgi_app(environ: Any, start_response: Any) -> list[bytes]:
        environ["app.resource"] = Resource(released)
        start_response("200 OK", [("content-type", "text/plain")])
        return [b"ok"]

    app = bridge.to_asgi(wsgi_app, executor="greenlet")
    sent: list[dict[str, Any]] = []

    async def server() -> None:
        async def receive() -> dict[str, Any]:
            return {"type": "http.request", "body": b"", "more_body": False}

        async def send(message: dict[str, Any]) -> None:
            sent.append(message)

        await app(asgi_scope(), receive, send)
        gc.collect()  # the collector on: this is about what it could not free
        assert released.is_set(), "an idle worker greenlet kept the request"

    asyncio.run(server())
    assert sent[-1]["body"] == b"ok"


def following_environs(app: bridge.WsgiToAsgi, left: threading.Event) -> None:
    """Make ``app`` build environs the test can follow: ``left`` is set when one is freed."""
    build = app.environ_builder.build

    def build_followed(scope: Any) -> dict[str, Any]:
        environ = Environ(build(scope))
        weakref.finalize(environ, left.set)
        return environ

    app.environ_builder.build = build_followed  # type: ignore[method-assign]


def keeping_wsgi_app(released: threading.Event) -> Any:
    """A WSGI app that reads the body and hangs a resource on the environ, as frameworks do.

    On ``/endless`` its response never ends.
    """

    def wsgi_app(environ: Any, start_response: Any) -> Iterable[bytes]:
        environ["app.resource"] = Resource(released)
        body = environ["wsgi.input"].read()
        start_response("200 OK", [("content-type", "text/plain")])
        if environ["PATH_INFO"] == "/endless":
            return TrackedBody(threading.Event())
        return [b"ok:" + body]

    return wsgi_app


@pytest.mark.parametrize("backend", ["asyncio", "trio"])
@pytest.mark.parametrize("executor", ["thread", "greenlet"])
@pytest.mark.parametrize("ending", ["complete", "client-left", "body-too-large"])
@pytest.mark.usefixtures("no_gc")
def test_to_asgi_frees_the_environ_when_the_request_ends(
    backend: str, executor: str, ending: str
) -> None:
    """The exchange held itself in cycles (its job, wsgi.input): the environ waited for the GC."""
    released = threading.Event()
    left = threading.Event()
    ended = threading.Event()  # the exchange holds ``send``: set when both are freed
    limit = 1 if ending == "body-too-large" else None
    app = bridge.to_asgi(keeping_wsgi_app(released), executor=executor, max_body_size=limit)
    following_environs(app, left)
    sent: list[dict[str, Any]] = []

    async def server() -> None:
        gone = anyio.Event()
        body = [{"type": "http.request", "body": b"up", "more_body": False}]

        async def receive() -> dict[str, Any]:
            if body:
                return body.pop()
            await gone.wait()
            return {"type": "http.disconnect"}

        async def send(message: dict[str, Any]) -> None:
            sent.append(message)
            if ending == "client-left" and len(sent) >= 3:
                gone.set()
                raise OSError("the client went away")

        weakref.finalize(send, ended.set)
        path = "/" if ending == "complete" else "/endless"
        await app({**asgi_scope(), "path": path, "raw_path": path.encode()}, receive, send)

    anyio.run(server, backend=backend)
    if ending == "complete":
        assert sent[-1]["body"] == b"ok:up"
    elif ending == "body-too-large":
        assert sent[0]["status"] == 413
    else:
        assert len(sent) == 3
    assert released.wait(WAIT), "what the app hung on the environ waited for the collector"
    assert left.wait(WAIT), "the environ waited for the collector"
    assert ended.wait(WAIT), "the exchange waited for the collector"


@pytest.mark.parametrize("executor", ["thread", "greenlet"])
@pytest.mark.usefixtures("no_gc")
def test_to_asgi_under_uvicorn_the_environ_is_freed_when_the_request_ends(executor: str) -> None:
    released = threading.Event()
    left = threading.Event()
    app = bridge.to_asgi(keeping_wsgi_app(released), executor=executor)
    following_environs(app, left)
    with uvicorn_server(app) as running:
        leave_with_a_reset(running.port, "/endless")
        assert released.wait(WAIT), "what the app hung on the environ waited for the collector"
        assert left.wait(WAIT), "the environ waited for the collector"
        released.clear()
        left.clear()
        with socket.create_connection((HOST, running.port), timeout=10) as sock:
            sock.sendall(b"GET / HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\nup")
            assert sock.recv(65536).startswith(b"HTTP/1.1 200")
        assert released.wait(WAIT), "what the app hung on the environ waited for the collector"
        assert left.wait(WAIT), "the environ waited for the collector"


@pytest.mark.parametrize("executor", ["thread", "greenlet"])
def test_to_asgi_wsgi_input_read_after_the_request_ended_raises(executor: str) -> None:
    """Once the request ends wsgi.input holds no job: a late read says so, never hangs."""
    kept: list[Any] = []

    def wsgi_app(environ: Any, start_response: Any) -> list[bytes]:
        kept.append(environ["wsgi.input"])
        start_response("200 OK", [("content-type", "text/plain")])
        return [b"ok"]

    app = bridge.to_asgi(wsgi_app, executor=executor)

    async def server() -> None:
        async def receive() -> dict[str, Any]:
            return {"type": "http.request", "body": b"unread", "more_body": False}

        async def send(message: dict[str, Any]) -> None:
            pass

        await app(asgi_scope(), receive, send)

    asyncio.run(server())
    outcome: list[BaseException] = []

    def late_read() -> None:
        try:
            kept[0].read()
        except BaseException as error:
            outcome.append(error)

    reader = threading.Thread(target=late_read, daemon=True)
    reader.start()
    reader.join(WAIT)
    assert outcome, "a late read of wsgi.input did not raise"
    assert isinstance(outcome[0], bridge.BridgeError), outcome[0]
    assert "read after its request ended" in str(outcome[0])
