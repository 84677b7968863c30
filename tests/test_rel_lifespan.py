"""RELIABILITY.md section J: lifespan and shutdown, for both directions.

``to_asgi`` under a real uvicorn (cases 75 and 76: what a server's shutdown
does to requests in flight), and ``to_wsgi``'s own lifespan (cases 77 and 78:
startup once and before the first answer, failure as 500, shutdown, fork).
tests/test_e2e_shutdown.py, tests/test_e2e_servers.py, tests/test_to_asgi.py,
tests/test_to_wsgi.py and tests/test_e2e_to_wsgi.py hold the rest; the
reliability map names each test.
"""

from __future__ import annotations

import asyncio
import io
import os
import signal
import socket
import struct
import subprocess
import sys
import threading
import time
import wsgiref.util
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import bridge
from bridge import to_wsgi
from bridge._types import Receive, Scope, Send
from tests.servers import HOST, connect, read_head, read_response, status_of, uvicorn_server

EXECUTORS = ("thread", "greenlet")
ROOT = Path(__file__).parent.parent


# --- J75. Graceful shutdown with a request in flight (uvicorn, SIGTERM) ------------------

SERVE_SLOW = """
import asyncio, os, socket, sys, time
import uvicorn
import bridge

executor, release = sys.argv[1], sys.argv[2]

def slow(environ, start_response):
    print("IN FLIGHT", flush=True)
    for _ in range(1000):  # at most 10 s: until the test creates the release file
        if os.path.exists(release):
            break
        if environ["wsgi.multithread"]:
            time.sleep(0.01)
        else:
            bridge.await_(asyncio.sleep(0.01))
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", "8")])
    return [b"finished"]

sock = socket.socket()
sock.bind(("127.0.0.1", 0))
sock.listen(16)
print("PORT", sock.getsockname()[1], flush=True)
config = uvicorn.Config(
    bridge.to_asgi(slow, executor=executor),
    log_level="warning",
    lifespan="on",
    timeout_graceful_shutdown=10,
)
uvicorn.Server(config).run(sockets=[sock])
"""


def refused(port: int) -> bool:
    try:
        socket.create_connection((HOST, port), timeout=1).close()
    except ConnectionRefusedError:
        return True
    return False


@pytest.mark.parametrize("executor", EXECUTORS)
def test_j75_sigterm_refuses_new_requests_finishes_the_one_in_flight_and_exits(
    executor: str, tmp_path: Path
) -> None:
    release = tmp_path / "release"
    process = subprocess.Popen(
        [sys.executable, "-c", SERVE_SLOW, executor, str(release)],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert process.stdout is not None
    try:
        port = int(process.stdout.readline().split()[1])
        with connect(port, timeout=10) as sock:
            sock.sendall(b"GET /slow HTTP/1.1\r\nHost: test\r\n\r\n")
            assert process.stdout.readline().strip() == "IN FLIGHT"
            process.send_signal(signal.SIGTERM)
            deadline = time.monotonic() + 5
            while not refused(port) and time.monotonic() < deadline:
                time.sleep(0.02)
            assert refused(port), "new connections were still accepted after SIGTERM"
            assert process.poll() is None  # still running: it waits for the request
            release.touch()
            head, body = read_response(sock)
        assert (status_of(head), body) == (200, b"finished")
        # uvicorn re-raises the signal it handled once it is done (0 on older versions).
        assert process.wait(10) in (0, -signal.SIGTERM)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(5)
        process.stdout.close()


# --- J76. Shutdown while a stream is endless, the client gone ---------------------------


@pytest.mark.parametrize("executor", EXECUTORS)
def test_j76_a_stream_whose_client_left_does_not_hold_up_shutdown(executor: str) -> None:
    """No graceful timeout at all: uvicorn waits for every response, so this one must end."""
    closed = threading.Event()

    def endless(environ: dict[str, Any], start_response: Any) -> Iterator[bytes]:
        start_response("200 OK", [("Content-Type", "application/octet-stream")])
        deadline = time.monotonic() + 15  # longer than the test waits for the server
        try:
            while time.monotonic() < deadline:
                yield b"x" * 65536
                if not environ["wsgi.multithread"]:
                    bridge.await_(asyncio.sleep(0))
        finally:
            closed.set()

    app = bridge.to_asgi(endless, executor=executor)
    with uvicorn_server(app, timeout_graceful_shutdown=None) as running:
        with connect(running.port, timeout=5) as sock:
            sock.sendall(b"GET /endless HTTP/1.1\r\nHost: test\r\n\r\n")
            head, _ = read_head(sock)
            assert status_of(head) == 200
            # Leave with a reset, as a crashed client would.
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        running.stop()
        assert running.thread is not None
        running.thread.join(8)
        assert not running.thread.is_alive(), "uvicorn still waits for the abandoned stream"
    assert closed.wait(5)
    assert not running.errors, running.errors


# --- J77. to_wsgi: startup once, before the first answer; failure is a 500 ---------------


def environ_for(path: str = "/") -> dict[str, Any]:
    environ: dict[str, Any] = {
        "REQUEST_METHOD": "GET",
        "PATH_INFO": path,
        "QUERY_STRING": "",
        "SCRIPT_NAME": "",
        "wsgi.input": io.BytesIO(),
    }
    wsgiref.util.setup_testing_defaults(environ)
    return environ


def call(app: Any, path: str = "/") -> tuple[str, bytes]:
    statuses: list[str] = []

    def start_response(status: str, headers: Any, exc_info: Any = None) -> Any:
        statuses.append(status)

    iterable = app(environ_for(path), start_response)
    try:
        body = b"".join(iterable)
    finally:
        close = getattr(iterable, "close", None)
        if close is not None:
            close()
    return statuses[-1], body


class LifespanApp:
    """A raw ASGI app whose lifespan startup is scripted; it records what ran."""

    def __init__(self, startup: str = "complete", delay: float = 0.0) -> None:
        self.startup = startup
        self.delay = delay
        self.events: list[str] = []
        self.let_go = asyncio.Event()  # made outside the loop: set only through the loop

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await receive()
            self.events.append("startup")
            await asyncio.sleep(self.delay)
            if self.startup == "hang":
                await self.let_go.wait()
            if self.startup == "failed":
                await send({"type": "lifespan.startup.failed", "message": "no database"})
                return
            scope["state"]["pool"] = "the pool"
            await send({"type": "lifespan.startup.complete"})
            await receive()
            self.events.append("shutdown")
            await send({"type": "lifespan.shutdown.complete"})
            return
        self.events.append("request")
        body = scope["state"].get("pool", "no pool").encode()
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": body})


def test_j77_startup_runs_once_before_the_first_answer_even_for_a_crowd() -> None:
    app = LifespanApp(delay=0.2)
    wsgi = to_wsgi(app)
    crowd = 8
    together = threading.Barrier(crowd, timeout=5)
    answers: list[tuple[str, bytes]] = []

    def first_request() -> None:
        together.wait()
        answers.append(call(wsgi))

    threads = [threading.Thread(target=first_request) for _ in range(crowd)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(10)
    wsgi.close()
    assert answers == [("200 OK", b"the pool")] * crowd
    assert app.events.count("startup") == 1
    assert app.events[0] == "startup" and app.events[-1] == "shutdown"


def test_j77_a_failed_startup_makes_every_request_a_500_without_running_the_app(
    caplog: pytest.LogCaptureFixture,
) -> None:
    app = LifespanApp(startup="failed")
    wsgi = to_wsgi(app)
    answers = [call(wsgi) for _ in range(3)]
    wsgi.close()
    assert [status for status, _ in answers] == ["500 Internal Server Error"] * 3
    assert all(b"no database" not in body for _, body in answers)  # the cause is logged only
    assert app.events == ["startup"]  # no request reached the app
    assert any("no database" in r.getMessage() for r in caplog.records if r.name == "bridge")


def test_j77_a_startup_that_never_answers_is_a_500_after_the_timeout(
    caplog: pytest.LogCaptureFixture,
) -> None:
    app = LifespanApp(startup="hang")
    wsgi = to_wsgi(app, startup_timeout=0.3, shutdown_timeout=5)
    status, _ = call(wsgi)
    assert status == "500 Internal Server Error"
    assert app.events == ["startup"]
    assert any("more than 0.3 s" in r.getMessage() for r in caplog.records if r.name == "bridge")
    wsgi.runner.call_soon(app.let_go.set)  # let the startup end, so close() can shut it down
    wsgi.close()
    assert app.events == ["startup", "shutdown"]


# --- J78. to_wsgi: shutdown on close(), and the loop thread across a fork ---------------


def test_j78_close_delivers_shutdown_once_and_waits_for_it() -> None:
    app = LifespanApp()
    wsgi = to_wsgi(app)
    assert call(wsgi) == ("200 OK", b"the pool")
    wsgi.close()
    assert app.events == ["startup", "request", "shutdown"]  # done when close() returns
    wsgi.close()
    assert app.events.count("shutdown") == 1


FORK_CHILD = """
import io, os, sys, threading, wsgiref.util
import bridge

events = []

async def app(scope, receive, send):
    if scope["type"] == "lifespan":
        await receive()
        events.append(("startup", os.getpid()))
        await send({"type": "lifespan.startup.complete"})
        await receive()
        await send({"type": "lifespan.shutdown.complete"})
        return
    answer = f"{os.getpid()} {threading.get_native_id()}".encode()
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": answer})

def call(wsgi):
    environ = {"REQUEST_METHOD": "GET", "PATH_INFO": "/", "QUERY_STRING": "",
               "SCRIPT_NAME": "", "wsgi.input": io.BytesIO()}
    wsgiref.util.setup_testing_defaults(environ)
    return b"".join(wsgi(environ, lambda *args: None)).decode().split()

wsgi = bridge.to_wsgi(app)
parent_pid, parent_loop = call(wsgi)
reader, writer = os.pipe()
child = os.fork()
if child == 0:
    try:
        child_pid, child_loop = call(wsgi)
        startups = [pid for kind, pid in events if kind == "startup"]
        report = f"{child_pid} {child_loop} {len(startups)} {startups[-1]}"
        os.write(writer, report.encode())
    finally:
        os._exit(0)
os.close(writer)
report = os.read(reader, 1000).decode().split()
os.waitpid(child, 0)
child_pid, child_loop, startups, last_startup = report
assert int(child_pid) == child and int(last_startup) == child, report
assert child_loop != parent_loop, "the child used the parent's loop thread"
assert startups == "2", report  # the parent's startup, then the child's own
assert call(wsgi) == [parent_pid, parent_loop]  # the parent's loop still serves
wsgi.close()
print("ok")
"""


def test_j78_a_forked_child_starts_its_own_loop_and_runs_startup_again() -> None:
    completed = subprocess.run(
        [sys.executable, "-W", "ignore::DeprecationWarning", "-c", FORK_CHILD],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=30,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    assert completed.stdout.strip() == "ok", completed.stderr
