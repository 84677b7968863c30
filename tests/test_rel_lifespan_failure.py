"""Cases 77-78: a lifespan that raises without startup.failed has none; exit unwinds the loop."""

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


def test_j77_an_app_that_raises_after_receiving_startup_without_failed_is_served(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """An exception on the lifespan scope is "no lifespan" unless lifespan.startup.failed came.

    The ASGI spec and uvicorn (lifespan "auto": "ASGI 'lifespan' protocol appears
    unsupported") read it so, and HTTP-only apps that read their body before
    looking at the scope type (``(await receive())["body"]``) raise just there.
    Starlette and FastAPI send lifespan.startup.failed before they re-raise, so
    their failed startups still make every request a 500 (test_j77 in
    test_rel_lifespan.py). The cause is still logged, at INFO.
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
    with caplog.at_level(logging.INFO, logger="bridge"):
        status = call(wsgi)
    wsgi.close()
    assert ran == ["startup began", "request"]
    assert status == "200 OK"
    assert any(
        "database unreachable" in r.getMessage() and r.levelno == logging.INFO
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
