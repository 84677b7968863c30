"""``aws_lambda`` against the established adapters: Mangum for ASGI apps, apig-wsgi for WSGI apps.

The same app answers the same events through both. What a client would
receive (status, headers, decoded body) must be the same, except where the
other adapter is wrong; each such difference is declared below with its
reason, and the test checks that it still shows (so the list stays true).
"""

from __future__ import annotations

import asyncio
import json
import warnings
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from apig_wsgi import make_lambda_handler
from mangum import Mangum

import bridge
from tests import lambda_events as events
from tests.apps.lambda_apps import asgi_app, wsgi_app
from tests.lambda_events import FakeContext, received_body, received_headers

ECHO_QUERY = [("q", "a b&c=d/é+%"), ("tag", "x"), ("tag", "y")]
# A client's own X-Forwarded-For claim, which a load balancer appends the real address to.
ECHO_HEADERS = [("X-Trace", "one"), ("X-Single", "solo"), ("X-Forwarded-For", "10.9.9.9")]


def _rest(path: str, **options: Any) -> dict[str, Any]:
    # Behind a custom domain: no stage in the URL (stages are tested apart: no adapter has them).
    return events.rest(path=path, request_path=path, host="api.example.com", **options)


def _http(path: str, **options: Any) -> dict[str, Any]:
    query = options.pop("query", ())
    raw_query = "&".join(f"{name}={value}" for name, value in _encoded(query))
    return events.http_api(raw_path=path, raw_query=raw_query, **options)


def _url(path: str, **options: Any) -> dict[str, Any]:
    return _http(path, host=events.URL_HOST, **options)


def _alb(path: str, **options: Any) -> dict[str, Any]:
    return events.alb(path=path, **options)


def _alb_multi(path: str, **options: Any) -> dict[str, Any]:
    return events.alb(path=path, multi_value=True, **options)


def _encoded(query: Any) -> list[tuple[str, str]]:
    from urllib.parse import quote

    return [(quote(name, safe=""), quote(value, safe="")) for name, value in query]


SOURCES: dict[str, Callable[..., dict[str, Any]]] = {
    "rest": _rest,
    "http": _http,
    "url": _url,
    "alb": _alb,
    "alb-multi": _alb_multi,
}
REQUESTS: dict[str, dict[str, Any]] = {
    "echo": {"path": "/echo/%C3%A9", "query": ECHO_QUERY, "headers": ECHO_HEADERS},
    "post": {"path": "/echo", "method": "POST", "body": b"name=value&x=1"},
    "cookies": {"path": "/cookies"},
    "binary": {"path": "/binary"},
    "gzip": {"path": "/gzip"},
    "empty": {"path": "/empty"},
    "stream": {"path": "/stream"},
}

# (adapter, source, request) -> the aspects that differ, and why the other adapter is wrong there.
KNOWN: dict[tuple[str, str, str], tuple[set[str], str]] = {}


def known(adapter: str, sources: str, requests: str, aspects: set[str], reason: str) -> None:
    for source in sources.split():
        for request in requests.split():
            KNOWN[(adapter, source, request)] = (aspects, reason)


known(
    "mangum",
    "alb alb-multi",
    "echo",
    {"body.client", "body.url"},
    "Mangum takes the whole X-Forwarded-For list as the client address (the load balancer "
    "appends the address it saw, so only the last entry can be trusted), and re-encodes the "
    "query string the load balancer passed as sent, so request.url is not the client's URL",
)
known(
    "mangum",
    "http url",
    "empty",
    {"header.content-type"},
    "Mangum invents 'content-type: application/json' for a 204 with no body on payload 2.0",
)
known(
    "apig-wsgi",
    "rest",
    "echo post",
    {"body.client"},
    "apig-wsgi ignores requestContext.identity.sourceIp on payload 1.0 and reports 127.0.0.1",
)
known(
    "apig-wsgi",
    "alb alb-multi",
    "echo",
    {"body.client"},
    "apig-wsgi takes the first X-Forwarded-For entry, which the client controls",
)
known(
    "apig-wsgi",
    "rest",
    "binary gzip",
    {"raises"},
    "apig-wsgi sends bodies as text on payload 1.0 unless binary_support is set, and fails "
    "the invocation with UnicodeDecodeError on bytes that are not UTF-8",
)
known(
    "apig-wsgi",
    "http url",
    "cookies",
    {"header.x-tag"},
    "apig-wsgi keeps only the last of repeated response headers on payload 2.0",
)
known(
    "apig-wsgi",
    "alb",
    "cookies",
    {"header.set-cookie", "header.x-tag"},
    "apig-wsgi keeps only the last of repeated response headers, Set-Cookie included, when "
    "the load balancer has no multi-value headers",
)


def received(handler: Callable[..., dict[str, Any]], event: dict[str, Any]) -> dict[str, Any]:
    """What a client would get: status, headers by name, body (parsed when JSON)."""
    try:
        result = handler(event, FakeContext())
    except Exception as error:
        return {"raises": type(error).__name__}
    seen: dict[str, Any] = {"status": result["statusCode"]}
    for name, value in received_headers(result):
        # "a, b", "a,b" and two headers all say the same (RFC 9110 5.3), except for cookies.
        values = [value] if name == "set-cookie" else [part.strip() for part in value.split(",")]
        seen.setdefault(f"header.{name}", []).extend(values)
    body = received_body(result)
    if body.startswith(b"{"):
        for key, value in json.loads(body).items():
            seen[f"body.{key}"] = value
    else:
        seen["body"] = body
    return seen


def differences(ours: dict[str, Any], theirs: dict[str, Any]) -> set[str]:
    if "raises" in theirs:
        return {"raises"}
    found = {key for key in ours.keys() | theirs.keys() if ours.get(key) != theirs.get(key)}
    if any(key.startswith("body") for key in found):
        found.discard("header.content-length")  # follows from the body
    return found


def _event(source: str, request: str) -> dict[str, Any]:
    options = dict(REQUESTS[request])
    return SOURCES[source](options.pop("path"), **options)


CASES = [(source, request) for source in SOURCES for request in REQUESTS]


@pytest.fixture(scope="module", autouse=True)
def close_mangums_loop() -> Iterator[None]:
    """Mangum sets a loop as the thread's current one and never closes it; close it here."""
    yield
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        loop = asyncio.get_event_loop()
    loop.close()
    asyncio.set_event_loop(None)


@pytest.fixture(scope="module")
def asgi_pair() -> tuple[Any, Any]:
    return bridge.aws_lambda(asgi_app(), lifespan=False), Mangum(asgi_app(), lifespan="off")


@pytest.fixture(scope="module")
def wsgi_pair() -> tuple[Any, Any]:
    return bridge.aws_lambda(wsgi_app()), make_lambda_handler(wsgi_app())


@pytest.mark.parametrize(("source", "request_name"), CASES)
def test_asgi_app_answers_as_through_mangum(
    asgi_pair: tuple[Any, Any], source: str, request_name: str
) -> None:
    ours, mangum = asgi_pair
    _compare("mangum", ours, mangum, source, request_name)


@pytest.mark.parametrize(("source", "request_name"), CASES)
def test_wsgi_app_answers_as_through_apig_wsgi(
    wsgi_pair: tuple[Any, Any], source: str, request_name: str
) -> None:
    ours, apig = wsgi_pair
    _compare("apig-wsgi", ours, apig, source, request_name)


def _compare(adapter: str, ours: Any, theirs: Any, source: str, request_name: str) -> None:
    event = _event(source, request_name)
    mine = received(ours, json.loads(json.dumps(event)))
    other = received(theirs, json.loads(json.dumps(event)))
    assert "raises" not in mine
    assert mine["status"] < 500
    expected, reason = KNOWN.get((adapter, source, request_name), (set(), ""))
    found = differences(mine, other)
    assert found == expected, (reason or "no difference expected", mine, other)


def test_the_stage_is_where_both_adapters_lose_the_url() -> None:
    # Neither Mangum nor apig-wsgi sets root_path or SCRIPT_NAME from the stage, so links
    # built by the app miss "/prod" on API Gateway's own host; bridge keeps them working.
    event = events.rest("GET", "/where", stage="prod")
    expected = f"https://{events.API_HOST}/prod/where"
    ours_asgi = received(bridge.aws_lambda(asgi_app(), lifespan=False), event)
    ours_wsgi = received(bridge.aws_lambda(wsgi_app()), event)
    mangum = received(Mangum(asgi_app(), lifespan="off"), event)
    apig = received(make_lambda_handler(wsgi_app()), event)
    assert ours_asgi["body.url_for"] == ours_wsgi["body.url_for"] == expected
    assert mangum["body.url_for"] != expected
    assert apig["body.url_for"] != expected
