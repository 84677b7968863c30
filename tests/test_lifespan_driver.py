"""The lifespan driver that ``to_wsgi``, ``fallback`` and ``aws_lambda`` share (issue 13, 7-8).

* A message of another kind sent on the lifespan scope raises from ``send()``
  (as under uvicorn and hypercorn): it is never dropped, so an HTTP-only app
  that answers and then waits for ``http.disconnect`` does not hold startup.
* An app that raises on the lifespan scope without ``lifespan.startup.failed``
  has no lifespan, even after it received ``lifespan.startup``: it is served.
  Only ``lifespan.startup.failed`` fails startup.

Every call runs in a thread joined with a bound, so a hang fails the test.
"""

from __future__ import annotations

import io
import logging
import threading
import wsgiref.util
from collections.abc import Callable
from typing import Any

import pytest
from starlette.responses import StreamingResponse
from starlette.testclient import TestClient

import bridge
from tests import lambda_events as events
from tests.lambda_events import FakeContext, received_body

Answer = tuple[int, bytes]
BOUND = 20.0  # seconds; above the short startup_timeout below, far below a hang


def bounded(work: Callable[[], Answer]) -> Answer:
    answers: list[Answer] = []
    errors: list[BaseException] = []

    def run() -> None:
        try:
            answers.append(work())
        except BaseException as error:  # reported below, not lost in the thread
            errors.append(error)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    thread.join(BOUND)
    if errors:
        raise errors[0]
    assert answers, f"no answer within {BOUND} s"
    return answers[0]


def through_to_wsgi(app: Any) -> Answer:
    wsgi = bridge.to_wsgi(app, startup_timeout=5.0, shutdown_timeout=2.0)
    environ: dict[str, Any] = {
        "REQUEST_METHOD": "POST",
        "PATH_INFO": "/",
        "wsgi.input": io.BytesIO(b"sent"),
        "CONTENT_LENGTH": "4",
    }
    wsgiref.util.setup_testing_defaults(environ)
    statuses: list[str] = []
    iterable = wsgi(environ, lambda status, headers, exc_info=None: statuses.append(status))
    try:
        body = b"".join(iterable)
    finally:
        close = getattr(iterable, "close", None)
        if close is not None:
            close()
        wsgi.close()
    return int(statuses[-1][:3]), body


def through_fallback(app: Any) -> Answer:
    with TestClient(bridge.fallback(app)) as client:
        response = client.post("/", content=b"sent")
    return response.status_code, response.content


def through_aws_lambda(app: Any) -> Answer:
    handler = bridge.aws_lambda(app)
    try:
        result = handler(events.http_api("POST", "/", body=b"sent"), FakeContext())
    finally:
        handler.shutdown()
    return result["statusCode"], received_body(result)


USERS = [through_to_wsgi, through_fallback, through_aws_lambda]
IDS = ["to_wsgi", "fallback", "aws_lambda"]


async def echo(scope: Any, receive: Any, send: Any) -> None:
    """An HTTP-only app that reads its body first: on the lifespan scope it raises KeyError."""
    body = (await receive())["body"]
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b"echo " + body})


async def answers_then_waits(scope: Any, receive: Any, send: Any) -> None:
    """An HTTP-only app that answers, then waits for the client to leave."""
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b"answered"})
    while (await receive())["type"] != "http.disconnect":
        pass


@pytest.mark.parametrize("serve", USERS, ids=IDS)
def test_an_app_that_raises_after_receiving_startup_is_served_without_lifespan(
    serve: Callable[[Any], Answer], caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.INFO, logger="bridge"):
        assert bounded(lambda: serve(echo)) == (200, b"echo sent")
    said = [r for r in caplog.records if "without sending lifespan.startup.failed" in r.message]
    assert said and "KeyError" in said[0].message
    assert said[0].levelno == logging.INFO  # an app without lifespan is no error


@pytest.mark.parametrize("serve", USERS, ids=IDS)
def test_a_response_object_called_for_lifespan_keeps_its_body_for_the_request(
    serve: Callable[[Any], Answer],
) -> None:
    # A one-shot app: a lifespan call that got as far as its body would consume it.
    app = StreamingResponse(iter([b"first ", b"and only"]))
    assert bounded(lambda: serve(app)) == (200, b"first and only")


@pytest.mark.parametrize("serve", USERS, ids=IDS)
def test_an_http_message_on_the_lifespan_scope_raises_instead_of_holding_startup(
    serve: Callable[[Any], Answer],
) -> None:
    assert bounded(lambda: serve(answers_then_waits)) == (200, b"answered")


def test_send_raises_a_bridge_error_that_names_the_message() -> None:
    seen: list[BaseException] = []

    async def app(scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            await receive()
            try:
                await send({"type": "http.response.start", "status": 200, "headers": []})
            except bridge.BridgeError as error:
                seen.append(error)
            await send({"type": "lifespan.startup.complete"})
            await receive()
            await send({"type": "lifespan.shutdown.complete"})
            return
        await answers_then_waits(scope, receive, send)

    assert bounded(lambda: through_to_wsgi(app)) == (200, b"answered")
    assert len(seen) == 1 and isinstance(seen[0], bridge.AppProtocolError)
    assert "'http.response.start' on the lifespan scope" in str(seen[0])


@pytest.mark.parametrize("serve", USERS, ids=IDS)
def test_only_lifespan_startup_failed_fails_startup(serve: Callable[[Any], Answer]) -> None:
    async def app(scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            await receive()
            await send({"type": "lifespan.startup.failed", "message": "no database"})
            raise RuntimeError("no database")  # as Starlette does after the message
        await echo(scope, receive, send)

    if serve is through_fallback:
        with pytest.raises(bridge.LifespanFailed, match="no database"):
            bounded(lambda: serve(app))
    else:
        assert bounded(lambda: serve(app))[0] == 500
