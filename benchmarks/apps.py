"""The WSGI apps under test and the ASGI adapters that wrap them.

Every part of the benchmark imports its apps and adapters from here, so all
adapters always run the very same WSGI code.
"""

from __future__ import annotations

import asyncio
import time
import warnings
from collections.abc import Awaitable, Callable, Iterable, Iterator
from typing import Any, cast
from urllib.parse import parse_qs

Environ = dict[str, Any]
StartResponse = Callable[..., Any]
WSGIApp = Callable[[Environ, StartResponse], Iterable[bytes]]
ASGIApp = Callable[[dict[str, Any], Callable[..., Any], Callable[..., Any]], Awaitable[None]]

HELLO_BODY = b"Hello, world!"
HELLO_HEADERS = [("Content-Type", "text/plain"), ("Content-Length", "13")]
CHUNK_SIZE = 64 * 1024
AWAIT_DELAY = 0.05

BASELINE = "a2wsgi"
ADAPTERS = ("bridge thread", "bridge greenlet", "a2wsgi", "asgiref", "starlette")


# --- WSGI apps -------------------------------------------------------------------------------


def hello_app(environ: Environ, start_response: StartResponse) -> list[bytes]:
    """The hello world of part 1."""
    start_response("200 OK", HELLO_HEADERS)
    return [HELLO_BODY]


def make_flask_app() -> WSGIApp:
    """The Flask hello world of part 2."""
    from flask import Flask, Response

    app = Flask("bench")

    @app.get("/")
    def hello() -> Response:
        return Response(HELLO_BODY, mimetype="text/plain")

    return app


_CHUNK = b"x" * CHUNK_SIZE


def _generate(size: int) -> Iterator[bytes]:
    full, rest = divmod(size, CHUNK_SIZE)
    for _ in range(full):
        yield _CHUNK
    if rest:
        yield _CHUNK[:rest]


def stream_app(environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
    """Part 3: ``GET /download?size=N`` streams N bytes; ``POST /upload`` reads the body."""
    path = environ["PATH_INFO"]
    if path == "/download":
        size = int(parse_qs(environ["QUERY_STRING"])["size"][0])
        start_response(
            "200 OK",
            [("Content-Type", "application/octet-stream"), ("Content-Length", str(size))],
        )
        return _generate(size)
    if path == "/upload":
        read = environ["wsgi.input"].read
        total = 0
        while piece := read(CHUNK_SIZE):
            total += len(piece)
        body = str(total).encode()
        start_response(
            "200 OK", [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))]
        )
        return [body]
    return hello_app(environ, start_response)


def await_app(environ: Environ, start_response: StartResponse) -> list[bytes]:
    """Part 4, bridge: the view awaits ``asyncio.sleep`` on the server loop."""
    import bridge

    bridge.await_(asyncio.sleep(AWAIT_DELAY))
    return hello_app(environ, start_response)


def sleep_app(environ: Environ, start_response: StartResponse) -> list[bytes]:
    """Part 4, for adapters without ``await_``: the view blocks its thread instead."""
    time.sleep(AWAIT_DELAY)
    return hello_app(environ, start_response)


# --- ASGI side -------------------------------------------------------------------------------


async def raw_asgi_hello(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """The floor of part 1: a native ASGI hello world, no adapter at all."""
    await send(
        {
            "type": "http.response.start",
            "status": 200,
            "headers": [(b"content-type", b"text/plain"), (b"content-length", b"13")],
        }
    )
    await send({"type": "http.response.body", "body": HELLO_BODY, "more_body": False})


def wrap(adapter: str, app: WSGIApp) -> ASGIApp:
    """``app`` behind ``adapter``, each with its default settings."""
    if adapter == "bridge thread":
        import bridge

        return cast(ASGIApp, bridge.to_asgi(app, executor="thread"))
    if adapter == "bridge greenlet":
        import bridge

        return cast(ASGIApp, bridge.to_asgi(app, executor="greenlet"))
    if adapter == "a2wsgi":
        from a2wsgi import WSGIMiddleware

        return cast(ASGIApp, WSGIMiddleware(app))  # type: ignore[arg-type]
    if adapter == "asgiref":
        from asgiref.wsgi import WsgiToAsgi

        return cast(ASGIApp, WsgiToAsgi(app))  # type: ignore[no-untyped-call]
    if adapter == "starlette":
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # "starlette.middleware.wsgi is deprecated"
            from starlette.middleware.wsgi import WSGIMiddleware as StarletteWSGI

        return StarletteWSGI(app)
    raise ValueError(f"unknown adapter {adapter!r}")


async def close_adapter(app: Any) -> None:
    """Let go of the worker threads an adapter started, where it offers a way."""
    executor = getattr(app, "executor", None)
    if executor is None:
        return
    if hasattr(executor, "aclose"):  # bridge
        await executor.aclose()
    elif hasattr(executor, "shutdown"):  # a2wsgi's ThreadPoolExecutor
        executor.shutdown(wait=False)


def make_fastapi_app() -> ASGIApp:
    from fastapi import FastAPI
    from fastapi.responses import PlainTextResponse

    api = FastAPI()

    @api.get("/", response_class=PlainTextResponse)
    async def hello() -> str:
        return HELLO_BODY.decode()

    return api  # type: ignore[return-value]


def fastapi_as_wsgi(adapter: str) -> WSGIApp:
    """The FastAPI hello world under a WSGI server: ``bridge`` (to_wsgi) or ``a2wsgi``."""
    if adapter == "bridge":
        import bridge

        return bridge.to_wsgi(make_fastapi_app())  # type: ignore[arg-type]
    import a2wsgi

    return a2wsgi.ASGIMiddleware(make_fastapi_app())  # type: ignore[no-any-return]
