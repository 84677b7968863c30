"""``aws_lambda``: start-up once per environment, shutdown on SIGTERM, app errors as 500s."""

from __future__ import annotations

import json
import logging
import subprocess
import sys
import textwrap
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
from django.http import HttpRequest, HttpResponse
from django.test.utils import override_settings
from django.urls import path as django_path
from fastapi import FastAPI

import bridge
from bridge._types import Receive, Scope, Send, StartResponse
from tests import lambda_events as events
from tests.apps.lambda_apps import asgi_app, wsgi_app
from tests.django_setup import configure_django
from tests.lambda_events import FakeContext, received_body

ROOT = Path(__file__).resolve().parent.parent


def invoke(handler: Any, path: str = "/state", source: str = "http") -> tuple[int, bytes]:
    maker = {"http": events.http_api, "alb": events.alb}[source]
    result = handler(maker("GET", path), FakeContext())
    return result["statusCode"], received_body(result)


# --- lifespan and hooks ------------------------------------------------------------------------


def test_lifespan_runs_once_at_the_first_invocation_and_its_state_reaches_requests() -> None:
    happened: list[str] = []
    handler = bridge.aws_lambda(asgi_app(happened))
    assert happened == [], "nothing starts at import time"
    for _ in range(3):
        status, body = invoke(handler)
        assert (status, json.loads(body)) == (200, {"started": 1})
    assert happened == ["startup"]
    handler.shutdown()
    handler.shutdown()
    assert happened == ["startup", "shutdown"]


def test_lifespan_can_be_turned_off() -> None:
    happened: list[str] = []
    handler = bridge.aws_lambda(asgi_app(happened), lifespan=False)
    assert invoke(handler, "/echo")[0] == 200
    handler.shutdown()
    assert happened == []


def test_a_failed_startup_answers_500_with_the_cause_and_is_tried_again(
    caplog: pytest.LogCaptureFixture,
) -> None:
    attempts: list[int] = []

    @asynccontextmanager
    async def flaky(app: FastAPI) -> AsyncIterator[None]:
        attempts.append(1)
        if len(attempts) == 1:
            raise ConnectionError("database not reachable")
        yield

    app = FastAPI(lifespan=flaky)
    app.get("/ok")(lambda: {"ok": True})
    handler = bridge.aws_lambda(app)
    with caplog.at_level(logging.ERROR, logger="bridge.lambda"):
        assert invoke(handler, "/ok")[0] == 500
        assert invoke(handler, "/ok", source="alb")[0] == 200
    assert "database not reachable" in caplog.text
    assert len(attempts) == 2


@pytest.mark.parametrize("kind", ["asgi", "wsgi"])
def test_startup_and_shutdown_hooks_for_either_kind(kind: str) -> None:
    calls: list[str] = []

    def on_startup(state: dict[str, Any]) -> None:
        calls.append("startup")
        state["started"] = 42

    async def on_shutdown(state: dict[str, Any]) -> None:
        calls.append(f"shutdown {state['started']}")

    app = asgi_app() if kind == "asgi" else wsgi_app()
    handler = bridge.aws_lambda(app, lifespan=False, on_startup=on_startup, on_shutdown=on_shutdown)
    for _ in range(2):
        status, body = invoke(handler)
        assert (status, json.loads(body)) == (200, {"started": 42})
    handler.shutdown()
    assert calls == ["startup", "shutdown 42"]


def test_a_failing_start_up_hook_answers_500_and_is_tried_again() -> None:
    calls: list[int] = []

    def on_startup(state: dict[str, Any]) -> None:
        calls.append(1)
        if len(calls) == 1:
            raise RuntimeError("no config yet")
        state["started"] = 1

    handler = bridge.aws_lambda(wsgi_app(), on_startup=on_startup)
    assert invoke(handler)[0] == 500
    assert invoke(handler) == (200, b'{"started":1}\n')


SIGTERM_SCRIPT = """
import json, os, signal, sys
sys.path.insert(0, {root!r})
import bridge
from tests import lambda_events as events
from tests.apps.lambda_apps import asgi_app

happened = []
def on_shutdown(state):
    happened.append("on_shutdown")
    print(json.dumps(happened), flush=True)

handler = bridge.aws_lambda(asgi_app(happened), on_shutdown=on_shutdown)
print(handler(events.http_api("GET", "/state"), None)["statusCode"], flush=True)
os.kill(os.getpid(), signal.SIGTERM)
print("still running after SIGTERM", flush=True)
"""


def test_sigterm_runs_the_shutdown_and_ends_the_process() -> None:
    script = SIGTERM_SCRIPT.format(root=str(ROOT))
    done = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(script)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    lines = done.stdout.splitlines()
    assert done.returncode == 0, done.stderr
    assert lines[0] == "200"
    assert json.loads(lines[1]) == ["startup", "on_shutdown"]
    assert "still running" not in done.stdout
    assert "shutdown" in done.stdout  # lifespan shutdown ran after on_shutdown printed


# --- app errors become 500 responses, never failed invocations ----------------------------------


async def raises_at_once(scope: Scope, receive: Receive, send: Send) -> None:
    if scope["type"] == "http":
        raise RuntimeError("broken before the response")


async def raises_mid_body(scope: Scope, receive: Receive, send: Send) -> None:
    if scope["type"] == "http":
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"partial", "more_body": True})
        raise RuntimeError("broken in the middle of the body")


async def never_answers(scope: Scope, receive: Receive, send: Send) -> None:
    return None


async def stops_after_start(scope: Scope, receive: Receive, send: Send) -> None:
    if scope["type"] == "http":
        await send({"type": "http.response.start", "status": 200, "headers": []})


async def splits_a_header(scope: Scope, receive: Receive, send: Send) -> None:
    if scope["type"] == "http":
        headers = [(b"x-evil", b"a\r\nSet-Cookie: stolen=1")]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": b"x"})


async def bad_status(scope: Scope, receive: Receive, send: Send) -> None:
    if scope["type"] == "http":
        await send({"type": "http.response.start", "status": "200", "headers": []})
        await send({"type": "http.response.body", "body": b"x"})


def wsgi_raises(environ: dict[str, Any], start_response: StartResponse) -> list[bytes]:
    raise RuntimeError("broken WSGI view")


def wsgi_never_starts(environ: dict[str, Any], start_response: StartResponse) -> list[bytes]:
    return [b"no start_response"]


def wsgi_splits_a_header(environ: dict[str, Any], start_response: StartResponse) -> list[bytes]:
    start_response("200 OK", [("X-Evil", "a\r\nSet-Cookie: stolen=1")])
    return [b"x"]


class ClosingBody:
    closed = False

    def __iter__(self) -> Iterator[bytes]:
        yield b"first"
        raise RuntimeError("broken WSGI generator")

    def close(self) -> None:
        ClosingBody.closed = True


def wsgi_breaks_mid_body(environ: dict[str, Any], start_response: StartResponse) -> ClosingBody:
    start_response("200 OK", [("Content-Type", "text/plain")])
    return ClosingBody()


@pytest.mark.parametrize(
    ("app", "cause"),
    [
        (raises_at_once, "broken before the response"),
        (raises_mid_body, "broken in the middle of the body"),
        (never_answers, "without finishing its response"),
        (stops_after_start, "without finishing its response"),
        (splits_a_header, "x-evil"),
        (bad_status, "status '200'"),
        (wsgi_raises, "broken WSGI view"),
        (wsgi_never_starts, "before calling start_response"),
        (wsgi_splits_a_header, "X-Evil"),
        (wsgi_breaks_mid_body, "broken WSGI generator"),
    ],
)
def test_app_errors_become_a_500_with_the_cause_logged(
    app: Any, cause: str, caplog: pytest.LogCaptureFixture
) -> None:
    handler = bridge.aws_lambda(app, lifespan=False)
    with caplog.at_level(logging.ERROR, logger="bridge.lambda"):
        status, body = invoke(handler, "/anything")
    assert status == 500
    assert b"stolen" not in body and b"partial" not in body
    assert cause in caplog.text
    assert "GET '/anything'" in caplog.text


def test_a_broken_wsgi_body_is_closed() -> None:
    ClosingBody.closed = False
    assert invoke(bridge.aws_lambda(wsgi_breaks_mid_body))[0] == 500
    assert ClosingBody.closed


def test_a_base64_body_that_is_not_base64_is_a_400() -> None:
    event = events.http_api("POST", "/echo", body=b"x")
    event.update(body="***not base64***", isBase64Encoded=True)
    result = bridge.aws_lambda(wsgi_app())(event, FakeContext())
    assert result["statusCode"] == 400


# --- real frameworks and helpers ------------------------------------------------------------


def test_await_works_in_a_wsgi_view_on_lambda() -> None:
    async def fetch_greeting() -> bytes:
        return b"hello from a coroutine"

    def view(environ: dict[str, Any], start_response: StartResponse) -> list[bytes]:
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [bridge.await_(fetch_greeting())]

    assert invoke(bridge.aws_lambda(view), "/") == (200, b"hello from a coroutine")


def django_hello(request: HttpRequest) -> HttpResponse:
    response = HttpResponse(f"{request.method} {request.path} {request.GET.get('q')}")
    response.set_cookie("first", "1")
    response.set_cookie("second", "2")
    return response


urlpatterns = [django_path("hello", django_hello)]


def test_a_django_app_behind_a_stage() -> None:
    configure_django()
    with override_settings(ROOT_URLCONF=__name__, ALLOWED_HOSTS=["*"], MIDDLEWARE=[]):
        from django.core.wsgi import get_wsgi_application

        handler = bridge.aws_lambda(get_wsgi_application())
        result = handler(events.rest("GET", "/hello", query=[("q", "é")]), FakeContext())
    assert result["statusCode"] == 200
    assert received_body(result) == "GET /prod/hello é".encode()
    cookies = result["multiValueHeaders"]["set-cookie"]
    assert [cookie.split(";")[0] for cookie in cookies] == ["first=1", "second=2"]
