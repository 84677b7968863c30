"""RELIABILITY case 77: an app that raises after receiving lifespan.startup failed its startup."""

from __future__ import annotations

import io
import logging
import wsgiref.util
from typing import Any

import pytest

from bridge import to_wsgi


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
