"""``aws_lambda``: a WSGI or ASGI app as an AWS Lambda handler.

Each invocation: read the event (``_events``), make the app's scope or environ
of it (``_requests``), start up if this execution environment has not yet
(``_lifecycle``), run the app once (``_calls``), shape the reply for the
event source (``_replies``). Whatever goes wrong in
the app becomes a logged error reply; only an event that is not HTTP at all
fails the invocation, since there is nobody to answer.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import Any, Literal, cast

from .._core.environ import EnvironBuilder
from .._detect import interface_of
from .._errors import BadRequest, ConfigurationError, LifespanFailed
from .._streams import ErrorStream, FileWrapper
from .._types import ASGIApp, Environ, Scope, WSGIApp
from ._calls import STATE_KEY, AnsweredThenFailed, call_asgi, call_wsgi
from ._events import LambdaRequest, read_event, reply_form
from ._lifecycle import Hook, Lifecycle
from ._replies import (
    DEFAULT_TEXT_TYPES,
    PAYLOAD_LIMITS,
    TextTypes,
    error_reply,
    error_status,
    reply,
)
from ._requests import scope_of, wsgi_environ

logger = logging.getLogger("bridge.lambda")


class LambdaHandler:
    """A Lambda handler, ``handler(event, context) -> dict``, serving one app.

    :param app: a WSGI or an ASGI application; which one is detected.
    :param interface: ``"wsgi"`` or ``"asgi"`` when detection cannot tell.
    :param root_path: the URL prefix the app is served under. ``None``
        (default) takes it from the event: the stage, when a request came to
        API Gateway's own host (``/prod/...``), else nothing. Give a custom
        domain's base path mapping here, e.g. ``"/api"``.
    :param text_types: media types sent as text; the rest, and any body with a
        ``Content-Encoding``, as base64. Entries ending in ``/`` are prefixes,
        entries starting with ``+`` are suffixes (``+json``).
    :param payload_limit: largest reply in bytes; ``None``: Lambda's 6 MB, or
        1 MB behind a load balancer. Larger replies become 500 (502 for a
        load balancer) with the cause logged.
    :param lifespan: run an ASGI app's lifespan (start-up at the first
        invocation, shutdown on SIGTERM).
    :param on_startup: called once, at the first invocation, with the state
        dict that requests see (``scope["state"]``, ``environ["bridge.state"]``).
    :param on_shutdown: called with the same dict when Lambda sends SIGTERM.
    :param shutdown_timeout: seconds the lifespan shutdown may take; Lambda
        allows the runtime about 300 ms.
    """

    def __init__(
        self,
        app: WSGIApp | ASGIApp,
        *,
        interface: Literal["wsgi", "asgi"] | None = None,
        root_path: str | None = None,
        text_types: Iterable[str] = DEFAULT_TEXT_TYPES,
        payload_limit: int | None = None,
        lifespan: bool = True,
        on_startup: Hook | None = None,
        on_shutdown: Hook | None = None,
        shutdown_timeout: float = 0.25,
    ) -> None:
        kind = interface or interface_of(app)
        if kind not in ("wsgi", "asgi"):
            raise ConfigurationError(f"interface must be 'wsgi' or 'asgi', not {interface!r}")
        if root_path is not None and root_path and not root_path.startswith("/"):
            raise ConfigurationError(
                f"root_path must start with '/', like '/api'; got {root_path!r}"
            )
        if payload_limit is not None and payload_limit < 1:
            raise ConfigurationError(f"payload_limit must be a positive size, got {payload_limit}")
        self.app = app
        self.interface = kind
        self._wsgi = kind == "wsgi"
        self._wsgi_app = cast(WSGIApp, app)
        self._asgi_app = cast(ASGIApp, app)
        self.root_path = root_path
        self.text_types = TextTypes(text_types)
        self.payload_limit = payload_limit
        self._limits = {
            source: payload_limit or default for source, default in PAYLOAD_LIMITS.items()
        }
        name = getattr(app, "__qualname__", None) or type(app).__qualname__
        asgi_app = cast(ASGIApp, app) if kind == "asgi" and lifespan else None
        self.lifecycle = Lifecycle(asgi_app, name, on_startup, on_shutdown, shutdown_timeout)
        self._errors = ErrorStream()
        self._environ_builder = EnvironBuilder(
            errors=self._errors, multithread=False, file_wrapper=FileWrapper
        )

    def __call__(self, event: Any, context: Any) -> dict[str, Any]:
        form = reply_form(event)
        try:
            request = read_event(event, form, context, self.root_path)
            environ: Environ | None = None
            scope: Scope | None = None
            if self._wsgi:
                environ = wsgi_environ(request, self._environ_builder)
            else:
                scope = scope_of(request)
        except BadRequest as error:
            logger.warning("refused an event: %s", error)
            return error_reply(form, error.status_hint)
        lifecycle = self.lifecycle
        try:
            if not lifecycle.started:
                lifecycle.startup()
            limit = self._limits[form.source]
            if environ is not None:
                environ[STATE_KEY] = lifecycle.state
                try:
                    response = call_wsgi(self._wsgi_app, environ, limit)
                finally:
                    self._errors.flush()  # what the app left unflushed ends with its request
            else:
                assert scope is not None
                call = call_asgi(self._asgi_app, scope, request.body, lifecycle.state, limit)
                response = lifecycle.run(call)
            return reply(request, response, self.text_types, limit)
        except AnsweredThenFailed as late:
            logger.error(
                "the app failed on %s after its response was complete; the response stands",
                _describe(request),
                exc_info=late.__cause__,
            )
            return reply(request, late.response, self.text_types, limit)
        except LifespanFailed as error:
            status = error_status(form)
            logger.error("%s; answering %d, and trying again next time", error, status)
            return error_reply(form, status)
        except Exception:
            logger.exception("the app failed on %s; answering 500", _describe(request))
            return error_reply(form, 500)
        finally:
            if lifecycle.stop_pending:  # checked here: a call on every invocation costs
                lifecycle.after_invocation()

    def shutdown(self) -> None:
        """Run the shutdown now; what SIGTERM does, for runtimes that deliver no signal."""
        self.lifecycle.shutdown()

    def __repr__(self) -> str:
        return f"aws_lambda({self.app!r}, interface={self.interface!r})"


def _describe(request: LambdaRequest) -> str:
    return f"{request.method} {request.path!r}"


def aws_lambda(
    app: WSGIApp | ASGIApp,
    *,
    interface: Literal["wsgi", "asgi"] | None = None,
    root_path: str | None = None,
    text_types: Iterable[str] = DEFAULT_TEXT_TYPES,
    payload_limit: int | None = None,
    lifespan: bool = True,
    on_startup: Hook | None = None,
    on_shutdown: Hook | None = None,
    shutdown_timeout: float = 0.25,
) -> LambdaHandler:
    """Serve a WSGI or ASGI app from AWS Lambda: ``handler = bridge.aws_lambda(app)``."""
    return LambdaHandler(
        app,
        interface=interface,
        root_path=root_path,
        text_types=text_types,
        payload_limit=payload_limit,
        lifespan=lifespan,
        on_startup=on_startup,
        on_shutdown=on_shutdown,
        shutdown_timeout=shutdown_timeout,
    )
