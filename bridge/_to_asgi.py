"""``to_asgi``: a WSGI app served by an ASGI server.

``WsgiToAsgi`` is the long-lived part: options, the environ builder, the
executor, lifespan. Each HTTP request gets a fresh ``Exchange``
(``_exchange.py``) that owns that request's state.
"""

from __future__ import annotations

import logging

from ._core.environ import EnvironBuilder
from ._django import refuse_django_under_greenlets
from ._errors import ConfigurationError, UnsupportedScope
from ._exchange import Exchange
from ._executors import Executor, resolve_executor
from ._streams import ErrorStream, FileWrapper
from ._types import ErrorsStream, Receive, Scope, Send, WSGIApp

logger = logging.getLogger("bridge")


class WsgiToAsgi:
    """An ASGI application that runs a WSGI application.

    :param app: the WSGI application.
    :param executor: ``"thread"`` (default), ``"greenlet"``, or an executor
        instance, which may be shared between apps.
    :param max_body_size: refuse request bodies larger than this many bytes
        with 413 (``None``: no limit).
    :param errors: the ``wsgi.errors`` stream; by default the ``bridge.wsgi`` logger.
    :param max_duplicate_headers: repeated request headers allowed before 400.
    :param body_timeout: seconds the app may wait in a ``wsgi.input`` read with
        no body arriving before the read raises ``BodyTimeout`` and the client
        gets 408, so stalled uploads cannot hold every worker (``None``: wait
        for as long as the client does).
    :param max_headers: request header lines allowed before 431.
    :param max_header_bytes: bytes of request header names and values allowed before 431.

    See the limits page of the docs for why each default is what it is.
    """

    def __init__(
        self,
        app: WSGIApp,
        *,
        executor: str | Executor = "thread",
        max_body_size: int | None = None,
        errors: ErrorsStream | None = None,
        max_duplicate_headers: int = 100,
        body_timeout: float | None = 30.0,
        max_headers: int = 200,
        max_header_bytes: int = 65536,
    ) -> None:
        if not callable(app):
            raise ConfigurationError(f"to_asgi() needs a WSGI callable, got {app!r}")
        if max_body_size is not None and max_body_size < 0:
            raise ConfigurationError(f"max_body_size must be >= 0 or None, got {max_body_size}")
        if body_timeout is not None and not body_timeout > 0:
            raise ConfigurationError(f"body_timeout must be > 0 or None, got {body_timeout}")
        for name, value in (("max_headers", max_headers), ("max_header_bytes", max_header_bytes)):
            if value < 1:
                raise ConfigurationError(f"{name} must be at least 1, got {value}")
        self.app = app
        self.executor, self._owns_executor = resolve_executor(executor)
        refuse_django_under_greenlets(app, self.executor)
        self.max_body_size = max_body_size
        self.body_timeout = body_timeout
        self.errors_given = errors is not None
        self.environ_builder = EnvironBuilder(
            errors=errors if errors is not None else ErrorStream(),
            multithread=self.executor.multithread,
            file_wrapper=FileWrapper,
            max_duplicate_headers=max_duplicate_headers,
            max_headers=max_headers,
            max_header_bytes=max_header_bytes,
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        kind = scope["type"]
        if kind == "http":
            await Exchange(self, scope, receive, send).run()
        elif kind == "lifespan":
            await self._lifespan(receive, send)
        elif kind == "websocket":
            await receive()
            logger.info("refused a websocket on %r: a WSGI app cannot take one", scope.get("path"))
            await send({"type": "websocket.close", "code": 1000})
        else:
            raise UnsupportedScope(f"to_asgi() serves 'http' scopes, not {kind!r}")

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                if self._owns_executor:
                    await self.executor.aclose()
                await send({"type": "lifespan.shutdown.complete"})
                return

    def __repr__(self) -> str:
        return f"to_asgi({self.app!r}, executor={self.executor.name!r})"


def to_asgi(
    app: WSGIApp,
    *,
    executor: str | Executor = "thread",
    max_body_size: int | None = None,
    errors: ErrorsStream | None = None,
    max_duplicate_headers: int = 100,
    body_timeout: float | None = 30.0,
    max_headers: int = 200,
    max_header_bytes: int = 65536,
) -> WsgiToAsgi:
    """Wrap a WSGI app so that any ASGI server (uvicorn, hypercorn) can serve it.

    The options are those of ``WsgiToAsgi``.
    """
    return WsgiToAsgi(
        app,
        executor=executor,
        max_body_size=max_body_size,
        errors=errors,
        max_duplicate_headers=max_duplicate_headers,
        body_timeout=body_timeout,
        max_headers=max_headers,
        max_header_bytes=max_header_bytes,
    )
