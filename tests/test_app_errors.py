"""An app's error, end to end: the answer it got, who raises it, and how many times it is logged.

* A complete response stands when the app raises afterwards (Starlette and
  FastAPI re-raise after their exception handler answered; a WSGI ``close()``
  may fail after the last byte).
* An exception that escapes a WSGI app before its response began reaches the
  ASGI caller after the 500: test clients raise it, servers log it, once.
* What an app writes to ``wsgi.errors`` reaches logging as whole messages, at
  WARNING, so one error is one ERROR record (the app's own) and one Sentry event.
"""

from __future__ import annotations

import json
import logging
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from flask import Flask, Response
from starlette.applications import Starlette
from starlette.routing import Mount
from starlette.testclient import TestClient

import bridge
from tests import lambda_events as events
from tests.lambda_events import FakeContext, received_body
from tests.servers import hypercorn_server, uvicorn_server


class Unavailable(Exception):
    pass


def fastapi_with_a_handler() -> FastAPI:
    api = FastAPI()

    @api.exception_handler(Exception)
    async def unavailable(request: Request, error: Exception) -> JSONResponse:
        return JSONResponse({"error": str(error)}, status_code=503)

    @api.get("/down")
    async def down() -> None:
        raise Unavailable("the database is down")

    return api


def flask_app(**config: Any) -> Flask:
    app = Flask("legacy")
    app.config.update(config)

    @app.get("/boom")
    def boom() -> str:
        raise RuntimeError("the view failed")

    @app.get("/fine")
    def fine() -> str:
        return "fine"

    @app.get("/midway")
    def midway() -> Response:
        def parts() -> Iterator[bytes]:
            yield b"begun"
            raise RuntimeError("the stream failed")

        return Response(parts())

    return app


# --- a complete response stands ---------------------------------------------------------------


def test_lambda_keeps_a_fastapi_answer_its_exception_handler_gave(
    caplog: pytest.LogCaptureFixture,
) -> None:
    handler = bridge.aws_lambda(fastapi_with_a_handler(), lifespan=False)
    result = handler(events.http_api("GET", "/down"), FakeContext())
    assert result["statusCode"] == 503
    assert json.loads(received_body(result)) == {"error": "the database is down"}
    logged = [r for r in caplog.records if r.name == "bridge.lambda" and r.exc_info]
    assert len(logged) == 1
    assert "GET '/down'" in logged[0].getMessage()
    assert "response stands" in logged[0].getMessage()
    assert isinstance(logged[0].exc_info[1], Unavailable)  # type: ignore[index]


class FailingClose:
    """A complete body whose ``close()`` raises."""

    def __init__(self) -> None:
        self.closed = 0

    def __iter__(self) -> Iterator[bytes]:
        yield b"all of it"

    def close(self) -> None:
        self.closed += 1
        raise OSError("close failed")


def test_lambda_keeps_a_wsgi_answer_whose_close_raises(caplog: pytest.LogCaptureFixture) -> None:
    body = FailingClose()

    def app(environ: dict[str, Any], start_response: Any) -> FailingClose:
        start_response("200 OK", [("Content-Type", "text/plain")])
        return body

    result = bridge.aws_lambda(app)(events.rest("GET", "/c"), FakeContext())
    assert (result["statusCode"], received_body(result)) == (200, b"all of it")
    assert body.closed == 1
    logged = [r for r in caplog.records if r.name == "bridge.lambda" and r.exc_info]
    assert len(logged) == 1 and "close failed" in str(logged[0].exc_info[1])  # type: ignore[index]


def test_lambda_still_answers_500_when_the_body_fails_before_it_is_complete() -> None:
    body = FailingClose()

    def app(environ: dict[str, Any], start_response: Any) -> FailingClose:
        start_response("200 OK", [("Content-Length", "100")])  # 9 bytes come: short
        return body

    result = bridge.aws_lambda(app)(events.rest("GET", "/short"), FakeContext())
    assert result["statusCode"] == 500
    assert body.closed == 1


# --- an escaping exception reaches the ASGI caller --------------------------------------------


@pytest.mark.parametrize("flag", ["TESTING", "PROPAGATE_EXCEPTIONS"])
def test_starlette_test_client_raises_what_a_mounted_flask_app_raised(flag: str) -> None:
    legacy = bridge.to_asgi(flask_app(**{flag: True}))
    app = Starlette(routes=[Mount("/legacy", app=legacy)])
    with TestClient(app) as client:
        with pytest.raises(RuntimeError, match="the view failed") as caught:
            client.get("/legacy/boom")
        assert client.get("/legacy/fine").text == "fine"
    assert any("GET '/legacy/boom'" in note for note in caught.value.__notes__)
    with TestClient(app, raise_server_exceptions=False) as client:
        assert client.get("/legacy/boom").status_code == 500  # what a server's client sees


@pytest.mark.anyio
async def test_httpx_asgi_transport_raises_it_too() -> None:
    transport = httpx.ASGITransport(app=bridge.to_asgi(flask_app(TESTING=True)))
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        with pytest.raises(RuntimeError, match="the view failed"):
            await client.get("/boom")
    quiet = httpx.ASGITransport(
        app=bridge.to_asgi(flask_app(TESTING=True)), raise_app_exceptions=False
    )
    async with httpx.AsyncClient(transport=quiet, base_url="http://test") as client:
        assert (await client.get("/boom")).status_code == 500


@pytest.mark.anyio
async def test_an_exception_raised_again_carries_one_note() -> None:
    again = RuntimeError("the same object every time")

    def app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        raise again

    transport = httpx.ASGITransport(app=bridge.to_asgi(app))
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        for path in ("/first", "/second", "/third"):
            with pytest.raises(RuntimeError):
                await client.get(path)
    assert len(again.__notes__) == 1 and "GET '/third'" in again.__notes__[0]


def test_through_fallback_the_legacy_apps_exception_reaches_the_test_client() -> None:
    app = bridge.fallback(fastapi_with_a_handler(), flask_app(TESTING=True))
    with TestClient(app) as client, pytest.raises(RuntimeError, match="the view failed"):
        client.get("/boom")


def test_flask_with_its_default_config_answers_500_itself_and_nothing_escapes() -> None:
    with TestClient(bridge.to_asgi(flask_app())) as client:
        answer = client.get("/boom")
    assert answer.status_code == 500 and b"Internal Server Error" in answer.content


SERVERS = {
    "uvicorn": uvicorn_server,
    "hypercorn-asyncio": lambda app: hypercorn_server(app, "asyncio"),
    "hypercorn-trio": lambda app: hypercorn_server(app, "trio"),
}


@pytest.mark.parametrize("path", ["/boom", "/midway"])
@pytest.mark.parametrize("name", sorted(SERVERS))
def test_a_real_server_logs_it_exactly_once(
    name: str, path: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.ERROR)
    with SERVERS[name](bridge.to_asgi(flask_app(PROPAGATE_EXCEPTIONS=True))) as server:
        if path == "/boom":
            assert httpx.get(f"{server.url}{path}", timeout=10).status_code == 500
        else:  # the response began: the server cuts it short
            with pytest.raises(httpx.RemoteProtocolError):
                httpx.get(f"{server.url}{path}", timeout=10)
        assert httpx.get(f"{server.url}/fine", timeout=10).text == "fine"
    logged = [
        r
        for r in caplog.records
        if r.exc_info and isinstance(r.exc_info[1], RuntimeError) and r.levelno >= logging.ERROR
    ]
    assert len(logged) == 1, [(r.name, r.getMessage()) for r in logged]
    assert logged[0].name.startswith(name.split("-")[0])  # the server's logger, not bridge's
    assert any(f"GET '{path}'" in note for note in logged[0].exc_info[1].__notes__)  # type: ignore[index]


# --- wsgi.errors: one message, one record -----------------------------------------------------

SCRIPT = textwrap.dedent(
    """
    import asyncio, json, logging, sys
    import flask, httpx, bridge
    from tests import lambda_events

    records = []

    class Recorder(logging.Handler):
        def emit(self, record):
            records.append([record.name, record.levelname, record.getMessage()])

    # Only bridge's loggers get a handler: the root logger stays bare, as in a
    # fresh process, so Flask installs its default handler (onto wsgi.errors).
    logging.getLogger("bridge").addHandler(Recorder())
    logging.getLogger("bridge").propagate = False
    events = []
    if sys.argv[2] == "sentry":
        import sentry_sdk
        from sentry_sdk.transport import Transport

        class Recording(Transport):
            def capture_envelope(self, envelope):
                events.extend(i.type for i in envelope.items if i.type == "event")

        sentry_sdk.init(
            dsn="http://key@127.0.0.1:9/1", transport=Recording,
            auto_enabling_integrations=False,
        )

    app = flask.Flask("legacy")

    @app.get("/boom")
    def boom():
        raise RuntimeError("the view failed")

    if sys.argv[1].startswith("to_asgi"):
        executor = sys.argv[1].partition("-")[2]
        requests = int(sys.argv[3])

        async def main():
            asgi = bridge.to_asgi(app, executor=executor)
            transport = httpx.ASGITransport(app=asgi)
            async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
                answers = await asyncio.gather(*[client.get("/boom") for _ in range(requests)])
            return answers[0].status_code
        status = asyncio.run(main())
    else:
        event = lambda_events.rest("GET", "/boom")
        status = bridge.aws_lambda(app)(event, lambda_events.FakeContext())["statusCode"]
    if sys.argv[2] == "sentry":
        sentry_sdk.flush()
    print(json.dumps({"status": status, "records": records, "events": len(events)}))
    """
)


def run_flask(how: str, sentry: bool, requests: int = 1) -> dict[str, Any]:
    done = subprocess.run(
        [sys.executable, "-c", SCRIPT, how, "sentry" if sentry else "plain", str(requests)],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


@pytest.mark.parametrize("how", ["to_asgi-thread", "to_asgi-greenlet", "aws_lambda"])
def test_flask_default_logging_gives_one_record_per_exception(how: str) -> None:
    requests = 1 if how == "aws_lambda" else 8  # at once: each request's text stays whole
    result = run_flask(how, sentry=False, requests=requests)
    assert result["status"] == 500
    written = [record for record in result["records"] if record[0] == "bridge.wsgi"]
    assert len(written) == requests, written
    for _, level, message in written:
        assert level == "WARNING"  # a copy of what flask.app logged at ERROR: no second alarm
        assert "Exception on /boom [GET]" in message
        assert message.count("Traceback") == 1
        assert message.endswith("RuntimeError: the view failed")


@pytest.mark.parametrize("how", ["to_asgi-thread", "aws_lambda"])
def test_sentry_gets_one_event_per_exception(how: str) -> None:
    result = run_flask(how, sentry=True)
    assert result["status"] == 500
    assert result["events"] == 1
