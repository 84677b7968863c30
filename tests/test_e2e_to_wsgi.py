"""to_wsgi under real WSGI servers: waitress in a thread, gunicorn (gthread) in a process."""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import os
import signal
import socket
import struct
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import waitress.server
from fastapi import FastAPI, Request
from fastapi.responses import StreamingResponse
from flask import Flask
from werkzeug.middleware.dispatcher import DispatcherMiddleware

import bridge
from tests.servers import HOST, free_port, run_waitress, stop_process, wait_for_port


def make_api() -> FastAPI:
    async def lifespan(app: FastAPI) -> Any:
        yield {"pool": "lifespan pool"}

    api = FastAPI(lifespan=lifespan)

    @api.get("/hello")
    async def hello(request: Request) -> dict[str, Any]:
        return {"pool": request.state.pool, "path": request.url.path}

    @api.post("/echo")
    async def echo(request: Request) -> dict[str, int]:
        return {"length": len(await request.body())}

    @api.get("/slow-stream")
    async def slow_stream() -> StreamingResponse:
        async def parts() -> Any:
            yield b"first\n"
            await asyncio.sleep(1.0)
            yield b"second\n"

        return StreamingResponse(parts(), media_type="text/plain")

    return api


@pytest.fixture(scope="module")
def waitress_url() -> Iterator[str]:
    api = bridge.to_wsgi(make_api())
    legacy = Flask(__name__)

    @legacy.get("/")
    def index() -> str:
        return "legacy flask"

    app = DispatcherMiddleware(legacy, {"/api": api})
    server = waitress.server.create_server(app, host=HOST, port=0, threads=4)
    port = int(server.effective_port)  # type: ignore[union-attr]
    thread = threading.Thread(target=run_waitress, args=(server,), name="waitress", daemon=True)
    thread.start()
    wait_for_port(port)
    try:
        yield f"http://{HOST}:{port}"
    finally:
        server.close()
        thread.join(5)
        api.close()


def test_fastapi_mounted_in_flask_under_waitress(waitress_url: str) -> None:
    with httpx.Client(base_url=waitress_url, timeout=10) as client:
        assert client.get("/").text == "legacy flask"
        answer = client.get("/api/hello").json()
        assert answer == {"pool": "lifespan pool", "path": "/api/hello"}
        payload = os.urandom(1_000_000)
        assert client.post("/api/echo", content=payload).json() == {"length": 1_000_000}
        chunked = client.post("/api/echo", content=iter([payload[:500], payload[500:1500]]))
        assert chunked.json() == {"length": 1500}


def test_the_first_chunk_arrives_before_the_pause_ends(waitress_url: str) -> None:
    with httpx.Client(base_url=waitress_url, timeout=10) as client:
        started = time.monotonic()
        with client.stream("GET", "/api/slow-stream") as response:
            chunks = response.iter_raw()
            first = next(chunks)
            first_at = time.monotonic() - started
            rest = b"".join(chunks)
    assert first.startswith(b"first")
    assert first_at < 0.8
    assert (first + rest) == b"first\nsecond\n"


@contextlib.contextmanager
def gunicorn(app: str, worker: str, **environment: str) -> Iterator[tuple[str, Any]]:
    """One gunicorn worker of class ``worker`` serving ``app``; yields its URL and process."""
    port = free_port()
    command = [
        sys.executable,
        "-m",
        "gunicorn",
        "--worker-class",
        worker,
        "--threads",
        "4",
        "--workers",
        "1",
        "--bind",
        f"{HOST}:{port}",
        "--graceful-timeout",
        "5",
        app,
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


@pytest.mark.parametrize("worker", ["gthread", "gevent"])
def test_gunicorn_runs_lifespan_and_shuts_it_down_on_sigterm(tmp_path: Path, worker: str) -> None:
    marks = tmp_path / "marks"
    with gunicorn("tests.apps.lifespan_fastapi:wsgi", worker, BRIDGE_MARKS=str(marks)) as (
        url,
        process,
    ):
        answer = httpx.get(f"{url}/", timeout=10).json()
        assert answer == {"greeting": "hello from lifespan"}
        answer = httpx.get(f"{url}/sync", timeout=10).json()
        assert answer == {"greeting": "HELLO FROM LIFESPAN"}
        where = httpx.get(f"{url}/where", timeout=10).json()
        assert where["loop_thread"] != where["pid"], "the loop runs in the worker's main thread"
        process.send_signal(signal.SIGTERM)
        assert process.wait(15) == 0
    assert marks.read_text().split() == ["startup", "shutdown"]


@pytest.mark.parametrize("stop", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_granian_wsgi_workers_run_lifespan_shutdown(tmp_path: Path, stop: int) -> None:
    """granian's worker is a multiprocessing child: it ends without Python's atexit."""
    marks = tmp_path / "marks"
    port = free_port()
    command = [sys.executable, "-m", "granian", "--interface", "wsgi", "--workers", "1"]
    command += ["--host", HOST, "--port", str(port), "--log-level", "warning"]
    process = subprocess.Popen(
        [*command, "tests.apps.lifespan_fastapi:wsgi"],
        env={**os.environ, "BRIDGE_MARKS": str(marks)},
        cwd=Path(__file__).parent.parent,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        wait_for_port(port, alive=lambda: process.poll() is None)
        answer = httpx.get(f"http://{HOST}:{port}/", timeout=10).json()
        assert answer == {"greeting": "hello from lifespan"}
        process.send_signal(stop)
        assert process.wait(15) == 0
    finally:
        stop_process(process)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
    assert marks.read_text().split() == ["startup", "shutdown"]


def test_a_client_leaving_an_endless_stream_ends_the_apps_task() -> None:
    ended = threading.Event()

    async def endless(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            raise RuntimeError("no lifespan")
        await send({"type": "http.response.start", "status": 200, "headers": []})
        try:
            while True:
                await send({"type": "http.response.body", "body": b"x" * 65536, "more_body": True})
        finally:
            ended.set()

    server = waitress.server.create_server(bridge.to_wsgi(endless), host=HOST, port=0, threads=2)
    port = int(server.effective_port)  # type: ignore[union-attr]
    thread = threading.Thread(target=run_waitress, args=(server,), name="waitress", daemon=True)
    thread.start()
    try:
        wait_for_port(port)
        with socket.create_connection((HOST, port), timeout=5) as sock:
            sock.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
            assert sock.recv(65536).startswith(b"HTTP/1.1 200")
            # Leave with a reset, as a client that crashed would: no FIN handshake to wait on.
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        assert ended.wait(10), "the ASGI app kept streaming after the client left"
    finally:
        server.close()
        thread.join(5)


def test_uwsgi_with_threads_serves_with_lifespan_state(tmp_path: Path) -> None:
    marks = tmp_path / "marks"
    port = free_port()
    uwsgi = Path(sys.executable).with_name("uwsgi")
    command = [
        str(uwsgi),
        "--http-socket",
        f"{HOST}:{port}",
        "--module",
        "tests.apps.lifespan_fastapi:wsgi",
        "--master",
        "--processes",
        "1",
        "--threads",
        "4",
        "--die-on-term",
        "--need-app",
        "--disable-logging",
    ]
    environment = {**os.environ, "BRIDGE_MARKS": str(marks)}
    process = subprocess.Popen(
        command, env=environment, cwd=Path(__file__).parent.parent, stderr=subprocess.DEVNULL
    )
    try:
        answers = [_first_answer(f"http://{HOST}:{port}/", process) for _ in range(3)]
    finally:
        process.terminate()
        process.wait(15)
    assert answers == [{"greeting": "hello from lifespan"}] * 3
    # Startup ran once, in the worker. Shutdown on SIGTERM is not asserted: it ran
    # in most runs but not all (docs/to_wsgi.md says so).
    assert marks.read_text().split()[0] == "startup"
    assert marks.read_text().split().count("startup") == 1


def _first_answer(url: str, process: subprocess.Popen[bytes]) -> Any:
    """Poll with whole requests: a bare connect left open can keep a uWSGI worker busy."""
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline and process.poll() is None:
        try:
            return httpx.get(url, timeout=5).json()
        except httpx.TransportError:  # noqa: PERF203 (a bounded start-up poll)
            time.sleep(0.05)
    raise AssertionError("uWSGI did not answer")


def test_gunicorn_gevent_worker_overlaps_slow_requests() -> None:
    with gunicorn("tests.apps.slow_asgi:wsgi", "gevent") as (url, _):

        def one(_: int) -> str:
            return httpx.get(f"{url}/", timeout=10).text

        started = time.monotonic()
        with concurrent.futures.ThreadPoolExecutor(16) as pool:
            answers = list(pool.map(one, range(16)))
        elapsed = time.monotonic() - started
    assert answers == ["slept"] * 16
    assert elapsed < 2.5, f"16 requests of 0.5 s took {elapsed:.2f} s: they did not overlap"
