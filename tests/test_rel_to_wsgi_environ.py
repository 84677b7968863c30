"""Case 90: an environ that breaks PEP 3333 (text beyond latin-1) is a 400, never a crash."""

from __future__ import annotations

import io
import wsgiref.util
from typing import Any

import pytest

from bridge import to_wsgi


async def app(scope: Any, receive: Any, send: Any) -> None:
    if scope["type"] != "http":
        raise RuntimeError("no lifespan here")
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b"ok"})


@pytest.mark.parametrize(
    "extra",
    [{"QUERY_STRING": "q=日本"}, {"HTTP_X_NAME": "日本"}, {"RAW_URI": "/日本"}],
    ids=["query-string", "header-value", "raw-uri"],
)
def test_k90_text_that_is_not_latin1_is_a_400_not_a_crash(extra: dict[str, str]) -> None:
    environ: dict[str, Any] = {
        "REQUEST_METHOD": "GET",
        "PATH_INFO": "/",
        "QUERY_STRING": "",
        "SCRIPT_NAME": "",
        "wsgi.input": io.BytesIO(),
        **extra,
    }
    wsgiref.util.setup_testing_defaults(environ)
    statuses: list[str] = []
    body = b"".join(
        to_wsgi(app)(environ, lambda status, headers, exc_info=None: statuses.append(status))
    )
    assert statuses == ["400 Bad Request"], body


async def echo_headers(scope: Any, receive: Any, send: Any) -> None:
    if scope["type"] != "http":
        raise RuntimeError("no lifespan here")
    lines = b"\n".join(name + b": " + value for name, value in scope["headers"])
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": lines})


def test_content_type_and_length_are_not_doubled_by_their_http_twins() -> None:
    # apig-wsgi and some servers set HTTP_CONTENT_TYPE beside CONTENT_TYPE.
    environ: dict[str, Any] = {
        "REQUEST_METHOD": "POST",
        "PATH_INFO": "/",
        "wsgi.input": io.BytesIO(b"abc"),
        "CONTENT_TYPE": "text/plain",
        "HTTP_CONTENT_TYPE": "text/plain",
        "CONTENT_LENGTH": "3",
        "HTTP_CONTENT_LENGTH": "3",
    }
    wsgiref.util.setup_testing_defaults(environ)
    statuses: list[str] = []
    body = b"".join(
        to_wsgi(echo_headers)(
            environ, lambda status, headers, exc_info=None: statuses.append(status)
        )
    )
    assert statuses == ["200 OK"], body
    lines = body.split(b"\n")
    assert lines.count(b"content-type: text/plain") == 1, body
    assert lines.count(b"content-length: 3") == 1, body


def test_an_http_twin_alone_still_reaches_the_app() -> None:
    environ: dict[str, Any] = {
        "REQUEST_METHOD": "GET",
        "PATH_INFO": "/",
        "wsgi.input": io.BytesIO(),
        "HTTP_CONTENT_TYPE": "text/plain",
    }
    wsgiref.util.setup_testing_defaults(environ)
    body = b"".join(to_wsgi(echo_headers)(environ, lambda *args: None))
    assert b"content-type: text/plain" in body.split(b"\n")
