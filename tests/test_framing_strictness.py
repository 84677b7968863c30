"""Framing hand-offs the security review found loose: Content-Length, short bodies, HEAD, logs."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import Any

import pytest

from bridge import fallback, to_wsgi
from tests.harness import FakeServer, make_scope, run
from tests.test_rel_headers import (
    FOLLOW,
    Wire,
    call_wsgi,
    environ_for,
    get,
    report_asgi,
    serve_to_asgi,
    serve_to_wsgi,
)
from tests.test_security import AMBIGUOUS, framing_is_consistent, one_line_each


@pytest.fixture(scope="module")
def asgi_side() -> Iterator[dict[str, int]]:
    with serve_to_asgi() as ports:
        yield ports


@pytest.fixture(scope="module")
def wsgi_side() -> Iterator[dict[str, int]]:
    with serve_to_wsgi() as ports:
        yield ports


# --- to_asgi (bridge/_core/environ.py, bridge/_exchange.py) ----------------------------------


@pytest.mark.parametrize("case", ["cl-and-te", "te-and-cl"])
def test_h11_content_length_with_transfer_encoding_never_reaches_the_app_stale(
    asgi_side: dict[str, int], case: str
) -> None:
    """With Content-Length and Transfer-Encoding both sent, the app never sees the stale length."""
    with Wire(asgi_side["h11"]).send(AMBIGUOUS[case] + FOLLOW) as wire:
        framing_is_consistent(wire)


# --- to_wsgi (bridge/_core/scope.py, bridge/_wsgi_call.py) -----------------------------------


@pytest.mark.parametrize("declared", ["abc", "5, 5", "+5", "-1", "0x5"])
def test_to_wsgi_refuses_a_request_content_length_that_is_not_a_number(declared: str) -> None:
    """A request Content-Length that is not a number is a 400; the ASGI app is not called."""
    called: list[str] = []

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            raise RuntimeError("no lifespan here")
        called.append(scope["path"])
        await send({"type": "http.response.start", "status": 204, "headers": []})
        await send({"type": "http.response.body", "body": b""})

    environ = environ_for("POST", b"hello", CONTENT_LENGTH=declared)
    status, _ = call_wsgi(to_wsgi(app), environ)
    assert status.startswith("400") and called == []


@pytest.mark.parametrize("name", ["two-lengths", "signed-length"])
def test_to_wsgi_refuses_an_app_content_length_that_is_not_one_number(
    wsgi_side: dict[str, int], name: str
) -> None:
    """An app's Content-Length that is not one number is refused, and the client gets a 500."""
    status, _ = call_wsgi(to_wsgi(report_asgi), environ_for("GET", PATH_INFO=f"/canned/{name}"))
    assert status.startswith("500")
    for port in wsgi_side.values():
        with Wire(port).send(get(f"/canned/{name}") + FOLLOW) as wire:
            reply, follow = wire.reply(), wire.reply()
        assert reply is not None and reply.status == 500
        assert follow is not None and follow.seen()["path"] == "/follow"


# --- fallback (bridge/_fallback.py) ----------------------------------------------------------


def test_fallback_log_line_escapes_the_path(caplog: pytest.LogCaptureFixture) -> None:
    """fallback's log line shows a path with control characters escaped: no forged lines."""

    def missing(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        start_response("404 Not Found", [("Content-Length", "0")])
        return []

    def legacy(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        start_response("200 OK", [("Content-Length", "2")])
        return [b"ok"]

    caplog.set_level(logging.INFO, logger="bridge")
    app = fallback(missing, legacy, log_fallthrough=True)
    exchange = run(FakeServer(app).request, make_scope("/fail\r\nERROR forged entry"))
    assert exchange.status == 200
    one_line_each(caplog, "no route in")


def test_h11_a_body_short_of_its_content_length_ends_the_connection(
    asgi_side: dict[str, int],
) -> None:
    """Case 26 under h11: after a body short of its length the connection closes."""
    with Wire(asgi_side["h11"]).send(get("/canned/short") + FOLLOW) as wire:
        reply = wire.reply()
        assert reply is not None and reply.body == b"0123456789"
        assert wire.closed()


def test_to_wsgi_a_body_short_of_its_content_length_ends_the_connection(
    wsgi_side: dict[str, int],
) -> None:
    """Case 26 under gunicorn: after a body short of its length the connection is not reused."""
    for port in wsgi_side.values():
        with Wire(port).send(get("/canned/short") + FOLLOW) as wire:
            reply = wire.reply()
            assert reply is not None and reply.body == b"0123456789"
            assert wire.closed()


def test_to_wsgi_head_sends_no_body(wsgi_side: dict[str, int]) -> None:
    """Case 28: to_wsgi drops the body of a HEAD response; headers stay, as on ASGI servers."""
    for port in wsgi_side.values():
        request = b"HEAD /canned/head HTTP/1.1\r\nHost: test\r\n\r\n"
        with Wire(port).send(request + FOLLOW) as wire:
            reply, follow = wire.reply(head_only=True), wire.reply()
        assert reply is not None and reply.values(b"content-length") == [b"4"]
        assert follow is not None and follow.seen()["path"] == "/follow"
