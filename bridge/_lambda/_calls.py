"""Running either kind of app once on a buffered request, collecting its response.

Lambda answers with one payload, so the response is gathered whole; a
streamed body is collected chunk by chunk and stops being kept once it is
past the payload limit (it is refused then anyway). Both calls go through the
same translation core as ``to_asgi`` and ``to_wsgi``: the environ builder and
PEP 3333 response rules for WSGI, the header checks for ASGI.
"""

from __future__ import annotations

import asyncio
import io
from typing import Any

from .._core.environ import EnvironBuilder
from .._core.response import ResponseState, short_body_error
from .._core.scope import wsgi_headers
from .._errors import AppProtocolError, InvalidStatus
from .._types import ASGIApp, Message, OptExcInfo, ResponseHeaders, Write, WSGIApp
from ._events import LambdaRequest
from ._replies import Response

EVENT_KEY = "aws.event"
"""The scope and environ key holding the Lambda event (the key Mangum uses too)."""
CONTEXT_KEY = "aws.context"
"""The scope and environ key holding the Lambda context object."""
STATE_KEY = "bridge.state"
"""The environ key holding the state startup hooks filled (``scope["state"]`` for ASGI)."""


def call_wsgi(
    app: WSGIApp,
    builder: EnvironBuilder,
    request: LambdaRequest,
    state: dict[str, Any],
    limit: int,
) -> Response:
    scope = request.scope
    environ = builder.build(scope)
    environ["wsgi.input"] = io.BytesIO(request.body)
    environ["CONTENT_LENGTH"] = str(len(request.body))
    environ[EVENT_KEY] = scope[EVENT_KEY]
    environ[CONTEXT_KEY] = scope[CONTEXT_KEY]
    environ[STATE_KEY] = state
    rules = ResponseState(head=scope["method"] == "HEAD")
    collected: list[bytes] = []
    size = 0

    def keep(messages: list[Message]) -> None:
        nonlocal size
        for message in messages:
            chunk = message.get("body")
            if chunk:
                size += len(chunk)
                if size <= limit:
                    collected.append(chunk)

    def start_response(
        status: str, headers: ResponseHeaders, exc_info: OptExcInfo | None = None
    ) -> Write:
        rules.start_response(status, headers, exc_info)
        return lambda chunk: keep(rules.body(chunk))

    result = app(environ, start_response)
    try:
        for chunk in result:
            keep(rules.body(chunk))
            if rules.complete or size > limit:
                break
        keep(rules.finish())
        if rules.short:
            raise short_body_error(rules)
    finally:
        close = getattr(result, "close", None)
        if close is not None:
            close()
    assert rules.status is not None  # finish() refuses a response that never started
    headers = [(name.decode("latin-1"), value.decode("latin-1")) for name, value in rules.headers]
    return Response(rules.status, headers, collected, size)


async def call_asgi(
    app: ASGIApp, request: LambdaRequest, state: dict[str, Any], limit: int
) -> Response:
    scope = request.scope  # built for this invocation alone
    scope["state"] = dict(state)
    response: Response | None = None
    asked = complete = False
    finished: asyncio.Future[None] | None = None

    async def receive() -> Message:
        nonlocal asked, finished
        if not asked:
            asked = True
            return {"type": "http.request", "body": request.body, "more_body": False}
        # Like a client that stays until the whole answer is in: a streaming
        # response that listens for a disconnect is not cut short.
        if not complete:
            finished = asyncio.get_running_loop().create_future()
            await finished
        return {"type": "http.disconnect"}

    async def send(message: Message) -> None:
        nonlocal response, complete
        kind = message["type"]
        if kind == "http.response.start":
            if response is not None:
                raise AppProtocolError("the ASGI app sent http.response.start twice")
            status = message.get("status")
            if type(status) is not int or not 100 <= status <= 599:
                raise InvalidStatus(f"the ASGI app sent status {status!r}; send an int such as 200")
            headers = wsgi_headers(message.get("headers", ()))
            response = Response(status, [(name.lower(), value) for name, value in headers])
        elif kind == "http.response.body":
            if response is None or complete:
                where = "before http.response.start" if response is None else "after the last one"
                raise AppProtocolError(f"the ASGI app sent http.response.body {where}")
            chunk = message.get("body", b"")
            if chunk:
                response.size += len(chunk)
                if response.size <= limit:
                    response.body.append(bytes(chunk))
            if not message.get("more_body", False):
                complete = True
                if finished is not None and not finished.done():
                    finished.set_result(None)

    try:
        await app(scope, receive, send)
    finally:
        if finished is not None and not finished.done():
            finished.set_result(None)  # whoever still listens hears the client leave
    if response is None or not complete:
        raise AppProtocolError(
            "the ASGI app returned without finishing its response; send http.response.start, "
            "then http.response.body until one has more_body=False"
        )
    return response
