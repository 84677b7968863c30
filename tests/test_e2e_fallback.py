"""fallback under a real uvicorn: FastAPI in front of Flask and of Django, through HTTP."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import pytest
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect, StreamingHttpResponse
from django.test.utils import override_settings
from django.urls import path as django_path
from django.views.decorators.csrf import csrf_exempt
from fastapi import FastAPI, HTTPException, Request
from fastapi.responses import StreamingResponse
from flask import Flask, Response, redirect, request

import bridge
from tests.django_setup import configure_django
from tests.servers import uvicorn_server

LEGACY_CALLS: list[str] = []


def make_api() -> FastAPI:
    api = FastAPI(title="new")

    @api.get("/items/{number}")
    async def item(number: int) -> dict[str, int]:
        if number > 10:
            raise HTTPException(404, "no such item")
        return {"item": number}

    @api.post("/new-upload")
    async def upload(request: Request) -> dict[str, int]:
        return {"length": len(await request.body())}

    @api.get("/new-stream")
    async def stream() -> StreamingResponse:
        async def parts() -> AsyncIterator[bytes]:
            for number in range(50):
                yield b"%d\n" % number

        return StreamingResponse(parts(), media_type="text/plain")

    return api


def make_flask() -> Flask:
    legacy = Flask("legacy")

    @legacy.post("/old-upload")
    def upload() -> Any:
        LEGACY_CALLS.append(request.path)
        return {"length": len(request.get_data()), "form": request.form.to_dict()}

    @legacy.get("/old-stream")
    def stream() -> Response:
        return Response((b"%d\n" % number for number in range(50)), mimetype="text/plain")

    @legacy.get("/login")
    def login() -> Any:
        LEGACY_CALLS.append(request.path)
        response = redirect("/items/3")
        response.set_cookie("session", "from-flask")
        return response

    @legacy.get("/whoami")
    def whoami() -> Any:
        return {"session": request.cookies.get("session")}

    return legacy


@csrf_exempt
def django_upload(request: HttpRequest) -> HttpResponse:
    LEGACY_CALLS.append(request.path)
    return HttpResponse(f"django got {len(request.body)} bytes", content_type="text/plain")


def django_stream(request: HttpRequest) -> StreamingHttpResponse:
    return StreamingHttpResponse(b"%d\n" % number for number in range(50))


def django_login(request: HttpRequest) -> HttpResponse:
    LEGACY_CALLS.append(request.path)
    response = HttpResponseRedirect("/items/3")
    response.set_cookie("session", "from-django")
    return response


def django_whoami(request: HttpRequest) -> HttpResponse:
    return HttpResponse(request.COOKIES.get("session", ""), content_type="text/plain")


urlpatterns = [
    django_path("old-upload", django_upload),
    django_path("old-stream", django_stream),
    django_path("login", django_login),
    django_path("whoami", django_whoami),
]


@pytest.fixture(params=["flask", "django"])
def served(request: pytest.FixtureRequest) -> Iterator[str]:
    LEGACY_CALLS.clear()
    if request.param == "flask":
        app = bridge.fallback(make_api(), make_flask(), executor="greenlet")
        with uvicorn_server(app) as running:
            yield request.param + " " + running.url
        assert not running.errors
        return
    configure_django()
    settings = {"ROOT_URLCONF": __name__, "ALLOWED_HOSTS": ["*"], "MIDDLEWARE": []}
    with override_settings(**settings):
        from django.core.wsgi import get_wsgi_application

        app = bridge.fallback(make_api(), get_wsgi_application())  # Django: threads only
        with uvicorn_server(app) as running:
            yield request.param + " " + running.url
        assert not running.errors


def test_routes_bodies_streams_cookies_and_redirects(served: str) -> None:
    legacy, url = served.split()
    body = b"field=value&" + b"x" * 300_000
    with httpx.Client(base_url=url, timeout=10) as client:
        assert client.get("/items/3").json() == {"item": 3}
        missing = client.get("/items/11")
        assert (missing.status_code, missing.json()) == (404, {"detail": "no such item"})
        assert client.post("/new-upload", content=body).json() == {"length": len(body)}
        old = client.post(
            "/old-upload",
            content=body,
            headers={"content-type": "application/x-www-form-urlencoded"},
        )
        if legacy == "flask":
            assert old.json()["length"] == len(body)
        else:
            assert old.text == f"django got {len(body)} bytes"
        with client.stream("GET", "/new-stream") as stream:
            assert b"".join(stream.iter_bytes()) == b"".join(b"%d\n" % n for n in range(50))
        with client.stream("GET", "/old-stream") as stream:
            assert b"".join(stream.iter_bytes()) == b"".join(b"%d\n" % n for n in range(50))
        login = client.get("/login", follow_redirects=False)
        assert login.status_code == 302
        assert login.headers["location"] == "/items/3"
        assert client.get("/login", follow_redirects=True).json() == {"item": 3}
        whoami = client.get("/whoami")
        assert f"from-{legacy}" in whoami.text
        assert client.get("/nowhere").status_code == 404
    assert LEGACY_CALLS == ["/old-upload", "/login", "/login"]
