"""Running either kind of app once on a buffered request, collecting its response.

Lambda answers with one payload, so the response is gathered whole; a
streamed body is collected chunk by chunk and stops being kept once it is
past the payload limit (it is refused then anyway). Both calls go through the
same translation core as ``to_asgi`` and ``to_wsgi``: PEP 3333's response
rules for WSGI, the header checks for ASGI.
"""

from __future__ import annotations

import asyncio
from typing import Any

from .._core.response import ResponseState, short_body_error
from .._core.scope import wsgi_headers
from .._errors import AppProtocolError, InvalidStatus
from .._types import (
    ASGIApp,
    Environ,
    Message,
    OptExcInfo,
    ResponseHeaders,
    Scope,
    Write,
    WSGIApp,
)
from ._replies import Response

STATE_KEY = "bridge.state"
"""The environ key holding the state startup hooks filled (``scope["state"]`` for ASGI)."""


class AnsweredThenFailed(Exception):
    """The app raised after its response was complete; the response stands.

    Starlette and FastAPI re-raise after their exception handler answered, and
    a WSGI body's ``close()`` may fail after the last byte: the handler logs
    the cause (``__cause__``) and replies with ``response``.
    """

    def __init__(self, response: Response) -> None:
        super().__init__("the app failed after its response was complete")
        self.response = response


class _Gathered(ResponseState):
    """The core's PEP 3333 response rules, plus the body kept whole up to the payload limit.

    The app's ``start_response`` and ``write`` are methods of this one object,
    not closures made anew for every invocation.
    """

    __slots__ = ("chunks", "limit", "size")
    chunks: list[bytes]
    limit: int
    size: int

    def respond(
        self, status: str, headers: ResponseHeaders, exc_info: OptExcInfo | None = None
    ) -> Write:
        """The ``start_response`` the app is given."""
        self.start_response(status, headers, exc_info)
        return self.write

    def write(self, chunk: bytes) -> None:
        """Keep what the rules let out of ``chunk``; past the limit only count it."""
        data = self.accept(chunk)
        if data:
            self.size += len(data)
            if self.size <= self.limit:
                self.chunks.append(data)


def call_wsgi(app: WSGIApp, environ: Environ, limit: int) -> Response:
    """Run ``app`` once under the core's PEP 3333 rules, gathering the body up to ``limit``."""
    rules = _Gathered(environ["REQUEST_METHOD"] == "HEAD")
    rules.chunks = []
    rules.size = 0
    rules.limit = limit
    result = app(environ, rules.respond)
    close = getattr(result, "close", None) if type(result) is not list else None
    try:
        write = rules.write
        for chunk in result:
            write(chunk)
            if rules.complete or rules.size > limit:
                break
        # Past the limit the reply is refused whatever the rest would be; a body
        # its Content-Length completed needs no end (and cannot be short).
        if not rules.complete and rules.size <= limit:
            rules.accept(b"", last=True)
            if rules.short:
                raise short_body_error(rules)
    except BaseException:
        if close is not None:
            close()
        raise
    assert rules.status is not None  # accept() refuses a body before start_response
    response = rules.status, rules.headers, rules.chunks, rules.size
    if close is not None:
        try:
            close()
        except Exception as error:
            raise AnsweredThenFailed(response) from error
    return response


async def call_asgi(
    app: ASGIApp, scope: Scope, body: bytes, state: dict[str, Any], limit: int
) -> Response:
    scope["state"] = dict(state)
    status: int | None = None
    headers: list[tuple[str, str]] = []
    collected: list[bytes] = []
    size = 0
    asked = complete = False
    finished: asyncio.Future[None] | None = None

    async def receive() -> Message:
        nonlocal asked, finished
        if not asked:
            asked = True
            return {"type": "http.request", "body": body, "more_body": False}
        # Like a client that stays until the whole answer is in: a streaming
        # response that listens for a disconnect is not cut short.
        if not complete:
            finished = asyncio.get_running_loop().create_future()
            await finished
        return {"type": "http.disconnect"}

    async def send(message: Message) -> None:
        nonlocal status, headers, size, complete
        kind = message["type"]
        if kind == "http.response.start":
            if status is not None:
                raise AppProtocolError("the ASGI app sent http.response.start twice")
            code = message.get("status")
            if type(code) is not int or not 100 <= code <= 599:
                raise InvalidStatus(f"the ASGI app sent status {code!r}; send an int such as 200")
            headers = wsgi_headers(message.get("headers", ()))
            status = code
        elif kind == "http.response.body":
            if status is None or complete:
                where = "before http.response.start" if status is None else "after the last one"
                raise AppProtocolError(f"the ASGI app sent http.response.body {where}")
            chunk = message.get("body", b"")
            if chunk:
                size += len(chunk)
                if size <= limit:
                    collected.append(bytes(chunk))
            if not message.get("more_body", False):
                complete = True
                if finished is not None and not finished.done():
                    finished.set_result(None)

    try:
        await app(scope, receive, send)
    except Exception as error:
        if status is None or not complete:
            raise
        raise AnsweredThenFailed((status, headers, collected, size)) from error
    finally:
        if finished is not None and not finished.done():
            finished.set_result(None)  # whoever still listens hears the client leave
    if status is None or not complete:
        raise AppProtocolError(
            "the ASGI app returned without finishing its response; send http.response.start, "
            "then http.response.body until one has more_body=False"
        )
    return status, headers, collected, size
