"""End to end: Flask, Django, FastAPI mounting Flask: all through ``bridge.to_asgi`` on uvicorn."""

from __future__ import annotations

import asyncio
import gc
import hashlib
import os
import threading
import time
from contextvars import ContextVar
from typing import Any

import httpx
import pytest
from django.core.signals import request_finished
from django.http import HttpRequest, HttpResponse, JsonResponse, StreamingHttpResponse
from django.test.utils import override_settings
from django.urls import path as django_path
from django.views.decorators.csrf import csrf_exempt
from fastapi import FastAPI
from flask import Flask, jsonify, make_response, redirect, request, url_for

import bridge
from tests.django_setup import configure_django
from tests.servers import uvicorn_server

EXECUTORS = ["thread", "greenlet"]


# --- Flask ---------------------------------------------------------------------------------------

flask_app = Flask("e2e_flask")


async def _async_value() -> str:
    await asyncio.sleep(0.01)
    # The awaitable runs in the view's context: Flask's request is visible here too.
    return f"async value for {request.path}"


@flask_app.get("/")
def index() -> str:
    return "flask index"


@flask_app.post("/form")
def form() -> Any:
    return jsonify(form=request.form.to_dict(flat=False), method=request.method)


@flask_app.post("/json")
def json_body() -> Any:
    return jsonify(received=request.get_json())


@flask_app.post("/data")
def data() -> Any:
    body = request.get_data()
    return jsonify(
        length=len(body),
        sha256=hashlib.sha256(body).hexdigest(),
        content_length=request.headers.get("Content-Length"),
        transfer_encoding=request.headers.get("Transfer-Encoding"),
    )


@flask_app.get("/go")
def go() -> Any:
    return redirect(url_for("target"))


@flask_app.get("/target")
def target() -> str:
    return "redirect target"


@flask_app.get("/cookies/set")
def set_cookies() -> Any:
    response = make_response("cookies set")
    response.set_cookie("first", "1")
    response.set_cookie("second", "2", httponly=True)
    return response


@flask_app.get("/cookies/show")
def show_cookies() -> Any:
    return jsonify(dict(request.cookies))


@flask_app.get("/await")
def await_view() -> str:
    bridge.await_(asyncio.sleep(0.01))
    return bridge.await_(_async_value())


@flask_app.get("/await-slow")
def await_slow() -> str:
    bridge.await_(asyncio.sleep(0.2))
    return "slept"


@pytest.fixture(scope="module", params=EXECUTORS)
def flask_served(request: pytest.FixtureRequest) -> Any:
    with uvicorn_server(bridge.to_asgi(flask_app, executor=request.param)) as running:
        yield running
    assert not running.errors, running.errors


def test_flask_get_and_404(flask_served: Any) -> None:
    with httpx.Client(base_url=flask_served.url, timeout=10) as client:
        response = client.get("/")
        assert response.status_code == 200
        assert response.text == "flask index"
        missing = client.get("/no/such/page")
        assert missing.status_code == 404
        assert "Not Found" in missing.text


def test_flask_post_form_and_json(flask_served: Any) -> None:
    with httpx.Client(base_url=flask_served.url, timeout=10) as client:
        form_response = client.post("/form", data={"name": "Zoë", "tags": ["a", "b"]})
        assert form_response.json() == {
            "form": {"name": ["Zoë"], "tags": ["a", "b"]},
            "method": "POST",
        }
        payload = {"numbers": list(range(50)), "nested": {"text": "héllo"}}
        assert client.post("/json", json=payload).json() == {"received": payload}


def test_flask_chunked_upload_reaches_get_data_whole(flask_served: Any) -> None:
    pieces = [os.urandom(1000 + index * 977) for index in range(40)]
    expected = b"".join(pieces)

    def generate() -> Any:
        yield from pieces

    with httpx.Client(base_url=flask_served.url, timeout=10) as client:
        result = client.post("/data", content=generate()).json()
    assert result["content_length"] is None
    assert result["transfer_encoding"] == "chunked"
    assert result["length"] == len(expected)
    assert result["sha256"] == hashlib.sha256(expected).hexdigest()


def test_flask_redirect(flask_served: Any) -> None:
    with httpx.Client(base_url=flask_served.url, timeout=10) as client:
        response = client.get("/go")
        assert response.status_code == 302
        assert response.headers["location"] == "/target"
        followed = client.get("/go", follow_redirects=True)
        assert followed.status_code == 200
        assert followed.text == "redirect target"
        assert [str(step.url) for step in followed.history] == [f"{flask_served.url}/go"]


def test_flask_cookies_are_separate_set_cookie_headers(flask_served: Any) -> None:
    with httpx.Client(base_url=flask_served.url, timeout=10) as client:
        response = client.get("/cookies/set")
        set_cookies = response.headers.get_list("set-cookie")
        assert len(set_cookies) == 2, set_cookies
        assert set_cookies[0].startswith("first=1")
        assert set_cookies[1].startswith("second=2")
        assert "HttpOnly" in set_cookies[1]
        assert client.cookies.get("first") == "1"
        assert client.cookies.get("second") == "2"
        assert client.get("/cookies/show").json() == {"first": "1", "second": "2"}


def test_flask_await_sleeps_and_returns_an_async_value(flask_served: Any) -> None:
    with httpx.Client(base_url=flask_served.url, timeout=10) as client:
        response = client.get("/await")
    assert response.status_code == 200
    assert response.text == "async value for /await"


def test_greenlet_executor_serves_200_awaiting_requests_concurrently() -> None:
    async def burst(url: str) -> tuple[float, list[httpx.Response]]:
        limits = httpx.Limits(max_connections=200, max_keepalive_connections=200)
        async with httpx.AsyncClient(base_url=url, timeout=20, limits=limits) as client:
            await client.get("/")  # warm up
            started = time.perf_counter()
            responses = await asyncio.gather(*(client.get("/await-slow") for _ in range(200)))
            return time.perf_counter() - started, responses

    with uvicorn_server(bridge.to_asgi(flask_app, executor="greenlet"), backlog=1024) as running:
        # Client and server share this process: keep full collections of the heap that the
        # tests before this one left behind out of the timing (they cost up to a second).
        gc.collect()
        gc.freeze()
        try:
            wall, responses = asyncio.run(burst(running.url))
        finally:
            gc.unfreeze()
    assert [response.status_code for response in responses] == [200] * 200
    assert all(response.text == "slept" for response in responses)
    # One after another they would take 40 s; the bound leaves room for a loaded machine.
    assert wall < 10.0, f"200 requests sleeping 0.2 s took {wall:.2f} s: not concurrent"


# --- FastAPI mounting a Flask app ----------------------------------------------------------------

legacy_app = Flask("e2e_legacy")


@legacy_app.get("/where")
def where() -> Any:
    return jsonify(other=url_for("other"), script_root=request.script_root, path=request.path)


@legacy_app.get("/other")
def other() -> str:
    return "legacy other"


@legacy_app.get("/go-other")
def go_other() -> Any:
    return redirect(url_for("other"))


@legacy_app.get("/<path:anything>")
def catch_all(anything: str) -> str:
    return f"flask catch-all: {anything}"


@pytest.fixture(scope="module", params=EXECUTORS)
def fastapi_served(request: pytest.FixtureRequest) -> Any:
    api = FastAPI()

    @api.get("/api/ping")
    def ping() -> dict[str, str]:
        return {"ping": "pong"}

    api.mount("/legacy", bridge.to_asgi(legacy_app, executor=request.param))
    with uvicorn_server(api) as running:
        yield running
    assert not running.errors, running.errors


def test_fastapi_mount_gives_flask_the_prefix(fastapi_served: Any) -> None:
    with httpx.Client(base_url=fastapi_served.url, timeout=10) as client:
        assert client.get("/api/ping").json() == {"ping": "pong"}
        where_json = client.get("/legacy/where").json()
        assert where_json == {"other": "/legacy/other", "script_root": "/legacy", "path": "/where"}
        caught = client.get("/legacy/some/thing")
        assert caught.text == "flask catch-all: some/thing"


def test_fastapi_mount_flask_redirect_keeps_the_prefix(fastapi_served: Any) -> None:
    with httpx.Client(base_url=fastapi_served.url, timeout=10) as client:
        response = client.get("/legacy/go-other")
        assert response.status_code == 302
        assert "/legacy/other" in response.headers["location"]
        followed = client.get("/legacy/go-other", follow_redirects=True)
        assert followed.status_code == 200
        assert followed.text == "legacy other"


@pytest.mark.parametrize("path", ["/legacyx", "/legacyx/where", "/legacyx/other"])
def test_fastapi_mount_does_not_claim_a_longer_segment(fastapi_served: Any, path: str) -> None:
    with httpx.Client(base_url=fastapi_served.url, timeout=10) as client:
        response = client.get(path)
    assert response.status_code == 404
    assert "flask" not in response.text
    assert "legacy other" not in response.text
    assert response.headers["content-type"].startswith("application/json")  # FastAPI's 404


# --- Django --------------------------------------------------------------------------------------

_django_token: ContextVar[str | None] = ContextVar("_django_token", default=None)
_view_threads: dict[str, int] = {}
_finished_threads: dict[str, int] = {}


def django_hello(request: HttpRequest) -> HttpResponse:
    token = request.GET.get("token", "")
    _django_token.set(token)
    _view_threads[token] = threading.get_ident()
    return HttpResponse(f"django hello {token}", content_type="text/plain")


@csrf_exempt
def django_echo(request: HttpRequest) -> HttpResponse:
    return JsonResponse(
        {"method": request.method, "post": request.POST.dict(), "length": len(request.body)}
    )


def django_stream(request: HttpRequest) -> StreamingHttpResponse:
    count = int(request.GET.get("count", "5"))
    return StreamingHttpResponse(
        (f"line {index}\n" for index in range(count)), content_type="text/plain"
    )


async def _django_async_value(path: str) -> str:
    await asyncio.sleep(0.01)
    return f"async value for {path}"


def django_await(request: HttpRequest) -> HttpResponse:
    # A plain sync Django view calling async code, under either executor.
    value = bridge.await_(_django_async_value(request.path))
    return HttpResponse(value, content_type="text/plain")


urlpatterns = [
    django_path("await/", django_await),
    django_path("hello/", django_hello),
    django_path("echo/", django_echo),
    django_path("stream/", django_stream),
]


def _on_request_finished(sender: Any, **kwargs: Any) -> None:
    token = _django_token.get()
    if token:
        _finished_threads[token] = threading.get_ident()


def _django_settings() -> dict[str, Any]:
    return {"ROOT_URLCONF": __name__, "ALLOWED_HOSTS": ["*"], "MIDDLEWARE": []}


@pytest.fixture(scope="module", params=["thread"])  # greenlets are refused for Django
def django_served(request: pytest.FixtureRequest) -> Any:
    configure_django()
    with override_settings(**_django_settings()):
        from django.core.wsgi import get_wsgi_application

        request_finished.connect(_on_request_finished, dispatch_uid="bridge-e2e")
        try:
            app = bridge.to_asgi(get_wsgi_application(), executor=request.param)
            with uvicorn_server(app) as running:
                running.executor = request.param  # type: ignore[attr-defined]
                yield running
        finally:
            request_finished.disconnect(dispatch_uid="bridge-e2e")
    assert not running.errors, running.errors


def test_django_view_post_and_404(django_served: Any) -> None:
    with httpx.Client(base_url=django_served.url, timeout=10) as client:
        hello = client.get("/hello/", params={"token": "plain"})
        assert hello.status_code == 200
        assert hello.text == "django hello plain"
        posted = client.post("/echo/", data={"a": "1", "b": "two"})
        assert posted.status_code == 200
        assert posted.json() == {"method": "POST", "post": {"a": "1", "b": "two"}, "length": 9}
        assert client.get("/missing/").status_code == 404


def test_django_view_awaits_async_code(django_served: Any) -> None:
    with httpx.Client(base_url=django_served.url, timeout=10) as client:
        answer = client.get("/await/")
    assert (answer.status_code, answer.text) == (200, "async value for /await/")


def test_django_streaming_response(django_served: Any) -> None:
    with (
        httpx.Client(base_url=django_served.url, timeout=10) as client,
        client.stream("GET", "/stream/", params={"count": "200"}) as response,
    ):
        assert response.status_code == 200
        assert "content-length" not in response.headers
        text = b"".join(response.iter_bytes()).decode()
    assert text == "".join(f"line {index}\n" for index in range(200))


def test_django_request_finished_runs_in_the_view_thread() -> None:
    # Its own server: the thread executor is the one that puts views on other threads.
    configure_django()
    with override_settings(**_django_settings()):
        from django.core.wsgi import get_wsgi_application

        request_finished.connect(_on_request_finished, dispatch_uid="bridge-e2e-thread")
        try:
            app = bridge.to_asgi(get_wsgi_application(), executor="thread")
            with (
                uvicorn_server(app) as running,
                httpx.Client(base_url=running.url, timeout=10) as client,
            ):
                tokens = [f"thread-check-{index}" for index in range(5)]
                for token in tokens:
                    assert client.get("/hello/", params={"token": token}).status_code == 200
                deadline = time.monotonic() + 5
                while time.monotonic() < deadline and not all(
                    t in _finished_threads for t in tokens
                ):
                    time.sleep(0.01)
                loop_thread = running.thread.ident if running.thread else None
        finally:
            request_finished.disconnect(dispatch_uid="bridge-e2e-thread")
    for token in tokens:
        assert token in _finished_threads, f"request_finished never ran for {token}"
        assert _finished_threads[token] == _view_threads[token], token
        assert _view_threads[token] not in (threading.get_ident(), loop_thread)
