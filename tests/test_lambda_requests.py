"""``aws_lambda``: malformed, oversized and unusual requests, and what each kind of app gets.

A WSGI app's environ comes from the same core builder as ``to_asgi``'s, so it
gets the same header rules (dropped ``_`` names, refused repeats of single
headers, header caps); these tests check each reaches Lambda too, with the
right status instead of a 500 blamed on the app.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import bridge
from bridge._types import Environ, StartResponse
from tests import lambda_events as events
from tests.apps.lambda_apps import asgi_app, wsgi_app
from tests.lambda_events import FakeContext, received_body

# Printable text but for surrogates, which JSON events cannot carry; NUL too, which Werkzeug drops.
_query_text = st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"))
_WSGI_HANDLER = bridge.aws_lambda(wsgi_app())
_ASGI_HANDLER = bridge.aws_lambda(asgi_app())


@pytest.fixture(params=["asgi", "wsgi"])
def handler(request: pytest.FixtureRequest) -> bridge.LambdaHandler:
    app = asgi_app() if request.param == "asgi" else wsgi_app()
    return bridge.aws_lambda(app)


def call(handler: bridge.LambdaHandler, event: dict[str, Any]) -> tuple[int, Any]:
    result = handler(event, FakeContext())
    json.dumps(result)
    body = received_body(result)
    return result["statusCode"], json.loads(body) if body.startswith(b"{") else body


def test_a_value_outside_latin_1_reaches_the_app_as_its_utf_8_bytes(
    handler: bridge.LambdaHandler,
) -> None:
    status, seen = call(handler, events.http_api("GET", "/echo", headers=[("X-Price", "5 €")]))
    assert status == 200
    # What a server would have read off the wire, seen through latin-1 as both interfaces do.
    assert ["x-price", "5 €".encode().decode("latin-1")] in seen["headers"]


@pytest.mark.parametrize(
    "event",
    [
        events.http_api("GET", "/echo", headers=[("X-Count", 5)]),  # type: ignore[list-item]
        {**events.http_api("GET", "/echo"), "rawPath": 5},
        {**events.rest("GET", "/echo"), "multiValueHeaders": {"X-A": "not a list"}},
    ],
    ids=["number as header value", "number as path", "header values not a list"],
)
def test_a_malformed_event_is_a_400_not_an_app_error(
    handler: bridge.LambdaHandler, event: dict[str, Any], caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, logger="bridge.lambda"):
        status, _ = call(handler, event)
    assert status == 400
    assert "refused an event" in caplog.text and "the app failed" not in caplog.text


def test_wsgi_apps_never_see_header_names_with_underscores() -> None:
    handler = bridge.aws_lambda(wsgi_app())
    headers = [("X-User", "alice"), ("X_User", "mallory")]
    status, seen = call(handler, events.rest("GET", "/echo", headers=headers))
    assert status == 200
    assert ["x-user", "alice"] in seen["headers"]
    assert ["x-user", "mallory"] not in seen["headers"]


def test_a_repeated_host_is_refused_for_a_wsgi_app() -> None:
    handler = bridge.aws_lambda(wsgi_app())
    event = events.rest("GET", "/echo")
    event["multiValueHeaders"]["Host"].append("evil.example")
    assert call(handler, event)[0] == 400


@pytest.mark.parametrize("kind", ["asgi", "wsgi"])
def test_too_many_request_headers_is_a_431(kind: str) -> None:
    handler = bridge.aws_lambda(asgi_app() if kind == "asgi" else wsgi_app())
    few = [(f"X-H{number}", "v") for number in range(150)]
    assert call(handler, events.http_api("GET", "/echo", headers=few))[0] == 200
    many = [(f"X-H{number}", "v") for number in range(250)]
    assert call(handler, events.http_api("GET", "/echo", headers=many))[0] == 431
    huge = [(f"X-H{number}", "v" * 8000) for number in range(10)]
    assert call(handler, events.http_api("GET", "/echo", headers=huge))[0] == 431


def test_a_streamed_wsgi_body_over_the_limit_is_refused_as_too_large(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A declared length the collection stopped short of is the limit's doing, not the app's."""

    def app(environ: Environ, start_response: StartResponse) -> Iterator[bytes]:
        start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", "5000")])
        for _ in range(50):
            yield b"x" * 100

    handler = bridge.aws_lambda(app, payload_limit=1000)
    with caplog.at_level(logging.ERROR, logger="bridge.lambda"):
        status, _ = call(handler, events.http_api("GET", "/"))
    assert status == 500
    assert "over the limit" in caplog.text and "the app failed" not in caplog.text


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(_query_text, _query_text), max_size=4))
def test_rest_query_parameters_of_any_text_arrive_as_sent(pairs: list[tuple[str, str]]) -> None:
    """API Gateway decodes the query; the bridge encodes it once, and both apps decode it back."""
    expected = sorted([name, value] for name, value in pairs)
    for handler in (_WSGI_HANDLER, _ASGI_HANDLER):
        status, seen = call(handler, events.rest("GET", "/echo", query=pairs))
        assert status == 200
        assert seen["query"] == expected
