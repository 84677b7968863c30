"""Cases 77-78: a startup that raises after lifespan.startup failed; exit unwinds the loop."""

from __future__ import annotations

import io
import logging
import subprocess
import sys
import wsgiref.util
from pathlib import Path
from typing import Any

import pytest

from bridge import to_wsgi

ROOT = Path(__file__).resolve().parent.parent


def call(app: Any) -> str:
    environ: dict[str, Any] = {
        "REQUEST_METHOD": "GET",
        "PATH_INFO": "/",
        "QUERY_STRING": "",
        "SCRIPT_NAME": "",
        "wsgi.input": io.BytesIO(),
    }
    wsgiref.util.setup_testing_defaults(environ)
    statuses: list[str] = []
    b"".join(app(environ, lambda status, headers, exc_info=None: statuses.append(status)))
    return statuses[-1]


def test_j77_an_app_that_raises_after_receiving_startup_has_failed_its_startup(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Expected: requests get 500 (or the worker exits), and the cause is logged as an error.

    Today AppLifespan._run (bridge/_lifespans.py) takes any exception raised
    before the app answered startup as "this app has no lifespan" (a debug
    line), so the app serves 200 although its startup code failed half-way.
    That reading fits an app that raises on the lifespan scope itself, before
    its first receive() (Django, a bare `assert scope["type"] == "http"`); an
    app that received lifespan.startup and then raised has a lifespan, and it
    failed. uvicorn with lifespan="on" exits in this case.
    """
    ran: list[str] = []

    async def app(scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            await receive()
            ran.append("startup began")
            raise RuntimeError("database unreachable")
        ran.append("request")
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"ok"})

    wsgi = to_wsgi(app)
    status = call(wsgi)
    wsgi.close()
    assert ran == ["startup began"]
    assert status == "500 Internal Server Error"
    assert any(
        "database unreachable" in r.getMessage() and r.levelno >= logging.ERROR
        for r in caplog.records
        if r.name == "bridge"
    )


AT_EXIT = """
import atexit, threading

def after_the_bridge():
    # Registered before bridge is imported, so it runs after bridge's own atexit hook.
    alive = [t.name for t in threading.enumerate() if t.name == "bridge-to-wsgi-loop"]
    print("loop thread alive:", bool(alive), flush=True)

atexit.register(after_the_bridge)

import asyncio, io, wsgiref.util
import bridge

async def app(scope, receive, send):
    if scope["type"] == "lifespan":
        await receive()
        await send({"type": "lifespan.startup.complete"})
        await receive()
        print("shutdown delivered", flush=True)
        await send({"type": "lifespan.shutdown.complete"})
        return
    async def stray():
        try:
            await asyncio.sleep(30)
        finally:
            print("stray task unwound", flush=True)
    asyncio.get_running_loop().create_task(stray())
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b"ok"})

wsgi = bridge.to_wsgi(app)
environ = {"REQUEST_METHOD": "GET", "PATH_INFO": "/", "QUERY_STRING": "", "SCRIPT_NAME": "",
           "wsgi.input": io.BytesIO()}
wsgiref.util.setup_testing_defaults(environ)
iterable = wsgi(environ, lambda *args: None)
b"".join(iterable)
iterable.close()
"""


def test_j78_at_exit_the_loop_thread_is_stopped_and_joined_after_shutdown() -> None:
    """At exit: shutdown is delivered, then tasks left on the loop unwind and its thread ends."""
    completed = subprocess.run(
        [sys.executable, "-c", AT_EXIT],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=30,
    )
    lines = completed.stdout.splitlines()
    assert "shutdown delivered" in lines, completed.stderr
    assert "stray task unwound" in lines, lines
    assert "loop thread alive: False" in lines, lines
