"""``bridge.aws_lambda``: every event source, request and response detail, for both kinds of app."""

from __future__ import annotations

import importlib
import json
import logging
from collections.abc import Callable
from typing import Any

import pytest

import bridge
from tests import lambda_events as events
from tests.apps.lambda_apps import COOKIES, GZIPPED, PNG, asgi_app, wsgi_app
from tests.lambda_events import FakeContext, received_body, received_headers

Handler = Callable[[dict[str, Any], Any], dict[str, Any]]


@pytest.fixture(params=["asgi", "wsgi"])
def handler(request: pytest.FixtureRequest) -> bridge.LambdaHandler:
    app = asgi_app() if request.param == "asgi" else wsgi_app()
    return bridge.aws_lambda(app)


def call(handler: Handler, event: dict[str, Any]) -> tuple[dict[str, Any], Any]:
    result = handler(event, FakeContext())
    json.dumps(result)  # what Lambda does with it: must not fail
    body = received_body(result)
    return result, json.loads(body) if body.startswith(b"{") else body


ALL_SOURCES = {
    "rest": lambda path, **kw: events.rest("GET", path, **kw),
    "http": lambda path, **kw: events.http_api("GET", path, **kw),
    "url": lambda path, **kw: events.function_url("GET", path, **kw),
    "alb": lambda path, **kw: events.alb("GET", path, **kw),
    "alb-multi": lambda path, **kw: events.alb("GET", path, multi_value=True, **kw),
}


# --- event sources --------------------------------------------------------------------------


@pytest.mark.parametrize("source", sorted(ALL_SOURCES))
def test_every_source_reaches_the_app(handler: Handler, source: str) -> None:
    result, seen = call(handler, ALL_SOURCES[source]("/echo/a%20b"))
    assert result["statusCode"] == 200
    assert seen["method"] == "GET"
    assert seen["path"].endswith("/echo/a b")


def test_the_reply_has_the_shape_each_source_expects(handler: Handler) -> None:
    rest, _ = call(handler, events.rest("GET", "/cookies", request_path="/cookies"))
    assert set(rest) == {"statusCode", "multiValueHeaders", "body", "isBase64Encoded"}
    http, _ = call(handler, events.http_api("GET", "/cookies"))
    assert set(http) == {"statusCode", "headers", "cookies", "body", "isBase64Encoded"}
    alb, _ = call(handler, events.alb("GET", "/cookies"))
    assert set(alb) == {"statusCode", "statusDescription", "headers", "body", "isBase64Encoded"}
    assert alb["statusDescription"] == "200 OK"
    alb_multi, _ = call(handler, events.alb("GET", "/cookies", multi_value=True))
    assert "multiValueHeaders" in alb_multi and "headers" not in alb_multi


@pytest.mark.parametrize(
    ("event", "words"),
    [
        ({"Records": [{"eventSource": "aws:sqs"}]}, ["Records", "queue"]),
        (
            {"detail-type": "Scheduled Event", "source": "aws.events"},
            ["detail-type", "EventBridge"],
        ),
        ({"requestContext": {"eventType": "CONNECT", "routeKey": "$connect"}}, ["WebSocket"]),
        ({"hello": "world"}, ["hello", "not one bridge knows"]),
        ("just text", ["str", "not an object"]),
    ],
)
def test_an_unknown_event_is_refused_naming_what_arrived(
    handler: Handler, event: Any, words: list[str]
) -> None:
    with pytest.raises(bridge.UnsupportedEvent) as caught:
        handler(event, FakeContext())
    for word in words:
        assert word in str(caught.value)
    assert "API Gateway" in str(caught.value)


def test_a_lambda_edge_event_is_named_and_told_why_it_is_not_served(handler: Handler) -> None:
    edge = {"Records": [{"cf": {"config": {"eventType": "viewer-request"}, "request": {}}}]}
    with pytest.raises(bridge.UnsupportedEvent) as caught:
        handler(edge, FakeContext())
    message = str(caught.value)
    assert "Lambda@Edge" in message
    assert "CloudFront" in message and "origin" in message
    assert "SQS" not in message


@pytest.mark.parametrize("context", ["missing", None, {}])
def test_a_payload_1_event_without_request_context_is_served(
    handler: Handler, context: object
) -> None:
    event = events.rest("POST", "/echo/a%20b", query=[("q", "1")], body=b"hi")
    if context == "missing":
        del event["requestContext"]
    else:
        event["requestContext"] = context
    result, seen = call(handler, event)
    assert result["statusCode"] == 200
    assert set(result) == {"statusCode", "multiValueHeaders", "body", "isBase64Encoded"}
    assert seen["method"] == "POST"
    assert seen["path"] == "/echo/a b"
    assert seen["root_path"] == ""
    assert seen["client"] is None


# --- request ---------------------------------------------------------------------------------

AWKWARD = "a b&c=d/é+%"


def test_rest_query_values_arrive_decoded_and_are_encoded_once(handler: Handler) -> None:
    query = [("q", AWKWARD), ("tag", "x"), ("tag", "y")]
    _, seen = call(handler, events.rest("GET", "/echo", query=query))
    assert seen["query"] == sorted([["q", AWKWARD], ["tag", "x"], ["tag", "y"]])


def test_http_api_raw_query_reaches_the_app_as_sent(handler: Handler) -> None:
    raw = "q=a%20b%26c%3Dd%2F%C3%A9%2B%25&tag=x&tag=y"
    _, seen = call(handler, events.http_api("GET", "/echo", raw_query=raw))
    assert seen["query"] == sorted([["q", AWKWARD], ["tag", "x"], ["tag", "y"]])


@pytest.mark.parametrize("multi_value", [False, True])
def test_load_balancer_query_values_are_not_decoded_twice(
    handler: Handler, multi_value: bool
) -> None:
    query = [("q", AWKWARD), ("tag", "x"), ("tag", "y")]
    _, seen = call(handler, events.alb("GET", "/echo", query=query, multi_value=multi_value))
    # Without multi-value mode the load balancer itself keeps only the last "tag".
    tags = [["tag", "x"], ["tag", "y"]] if multi_value else [["tag", "y"]]
    assert seen["query"] == sorted([["q", AWKWARD], *tags])


@pytest.mark.parametrize("source", ["rest", "alb-multi"])
def test_repeated_request_headers_reach_the_app(handler: Handler, source: str) -> None:
    headers = [("X-Trace", "one"), ("X-Trace", "two"), ("X-Single", "solo")]
    _, seen = call(handler, ALL_SOURCES[source]("/echo", headers=headers))
    assert ["x-single", "solo"] in seen["headers"]
    # ASGI keeps repeats apart; WSGI joins them with a comma, as PEP 3333 servers do.
    traces = [value for name, value in seen["headers"] if name == "x-trace"]
    assert ", ".join(traces).replace(",two", ", two") == "one, two"


def test_http_api_cookies_field_becomes_the_cookie_header(handler: Handler) -> None:
    event = events.http_api("GET", "/echo", cookies=["a=1", "b=two"])
    _, seen = call(handler, event)
    assert seen["cookies"] == {"a": "1", "b": "two"}


@pytest.mark.parametrize("source", ["rest", "http", "alb"])
def test_base64_and_text_bodies_arrive_as_bytes(handler: Handler, source: str) -> None:
    maker = {"rest": events.rest, "http": events.http_api, "alb": events.alb}[source]
    binary = bytes(range(256))
    _, seen = call(handler, maker("POST", "/echo", body=binary, binary=True))
    assert seen["body"].encode("latin-1") == binary
    _, seen = call(handler, maker("POST", "/echo", body="héllo".encode()))
    assert seen["body"].encode("latin-1") == "héllo".encode()


def test_the_source_ip_is_the_client(handler: Handler) -> None:
    _, seen = call(handler, events.rest("GET", "/echo", source_ip="192.0.2.1"))
    assert seen["client"] == "192.0.2.1"
    _, seen = call(handler, events.http_api("GET", "/echo", source_ip="192.0.2.2"))
    assert seen["client"] == "192.0.2.2"
    # A load balancer appends the address it saw; earlier entries are the client's own claims.
    spoofed = [("X-Forwarded-For", "10.9.9.9")]
    _, seen = call(handler, events.alb("GET", "/echo", headers=spoofed, client_ip="192.0.2.3"))
    assert seen["client"] == "192.0.2.3"


def test_event_and_context_are_under_the_documented_keys(handler: Handler) -> None:
    _, seen = call(handler, events.http_api("GET", "/aws"))
    assert "requestContext" in seen["keys"] and "rawPath" in seen["keys"]
    assert seen["request_id"] == FakeContext.aws_request_id


# --- root path: stages and base paths ----------------------------------------------------------


def test_rest_stage_on_the_default_host_is_the_root_path(handler: Handler) -> None:
    _, seen = call(handler, events.rest("GET", "/where", stage="prod"))
    assert seen["url_for"] == f"https://{events.API_HOST}/prod/where"
    result, _ = call(handler, events.rest("GET", "/go", stage="prod"))
    location = dict(received_headers(result))["location"]
    assert location.endswith("/prod/where")


def test_rest_behind_a_custom_domain_has_no_stage_in_urls(handler: Handler) -> None:
    event = events.rest("GET", "/where", request_path="/where", host="api.example.com")
    _, seen = call(handler, event)
    assert seen["url_for"] == "https://api.example.com/where"


@pytest.mark.parametrize("kind", ["asgi", "wsgi"])
def test_a_configured_root_path_is_stripped_and_used_for_urls(kind: str) -> None:
    app = asgi_app() if kind == "asgi" else wsgi_app()
    handler = bridge.aws_lambda(app, root_path="/api")
    event = events.rest("GET", "/api/where", request_path="/api/where", host="example.com")
    _, seen = call(handler, event)
    assert seen["url_for"] == "https://example.com/api/where"
    _, seen = call(handler, events.function_url("GET", "/api/echo/x"))
    assert seen["root_path"] == "/api"
    assert seen["url"] == f"https://{events.URL_HOST}/api/echo/x"


def test_http_api_named_stage_is_the_root_path(handler: Handler) -> None:
    _, seen = call(handler, events.http_api("GET", "/dev/where", stage="dev"))
    assert seen["url_for"] == f"https://{events.API_HOST}/dev/where"
    _, seen = call(handler, events.http_api("GET", "/where", stage="$default"))
    assert seen["url_for"] == f"https://{events.API_HOST}/where"


def test_rest_root_of_a_stage(handler: Handler) -> None:
    result, _ = call(handler, events.rest("GET", "/", request_path="/prod"))
    assert result["statusCode"] == 404  # the app has no "/" route, and it was asked for "/"


# --- response ----------------------------------------------------------------------------------


@pytest.mark.parametrize("source", sorted(ALL_SOURCES))
def test_repeated_headers_and_every_cookie_survive(handler: Handler, source: str) -> None:
    result, body = call(handler, ALL_SOURCES[source]("/cookies"))
    assert body == b"cookies set"
    headers = received_headers(result)
    assert [value for name, value in headers if name == "set-cookie"] == sorted(COOKIES)
    tags = [value for name, value in headers if name == "x-tag"]
    assert tags in (["one", "two"], ["one, two"])


def test_load_balancer_without_multi_value_spells_each_cookie_differently(
    handler: Handler,
) -> None:
    result, _ = call(handler, events.alb("GET", "/cookies"))
    cookie_names = [name for name in result["headers"] if name.lower() == "set-cookie"]
    assert len(cookie_names) == 2 and len(set(cookie_names)) == 2
    assert result["headers"]["x-tag"] == "one, two"


@pytest.mark.parametrize("source", sorted(ALL_SOURCES))
def test_text_goes_out_as_text_and_binary_as_base64(handler: Handler, source: str) -> None:
    text, _ = call(handler, ALL_SOURCES[source]("/echo"))
    assert text["isBase64Encoded"] is False and text["body"].startswith("{")
    image, body = call(handler, ALL_SOURCES[source]("/binary"))
    assert image["isBase64Encoded"] is True and body == PNG
    compressed, body = call(handler, ALL_SOURCES[source]("/gzip"))
    assert compressed["isBase64Encoded"] is True and body == GZIPPED


def test_text_types_are_configurable() -> None:
    handler = bridge.aws_lambda(wsgi_app(), text_types=["image/png"])
    result, _ = call(handler, events.http_api("GET", "/binary"))
    assert result["isBase64Encoded"] is True, "PNG bytes are not UTF-8: still base64"
    handler = bridge.aws_lambda(wsgi_app(), text_types=["application/octet-stream"])
    result, _ = call(handler, events.http_api("GET", "/echo"))
    assert result["isBase64Encoded"] is True, "JSON is no longer listed as text"


@pytest.mark.parametrize("source", sorted(ALL_SOURCES))
def test_an_empty_body(handler: Handler, source: str) -> None:
    result, body = call(handler, ALL_SOURCES[source]("/empty"))
    assert result["statusCode"] == 204
    assert result["body"] == "" and result["isBase64Encoded"] is False and body == b""


def test_a_streamed_response_is_collected_whole(handler: Handler) -> None:
    _, body = call(handler, events.http_api("GET", "/stream"))
    assert body == b"".join(f"chunk {number}\n".encode() for number in range(5))


# --- payload limit -------------------------------------------------------------------------------


@pytest.mark.parametrize(("source", "status"), [("http", 500), ("rest", 500), ("alb", 502)])
def test_a_reply_over_the_payload_limit_is_an_error_with_its_cause_logged(
    handler: Handler, source: str, status: int, caplog: pytest.LogCaptureFixture
) -> None:
    size = 7 * 1024 * 1024 if source != "alb" else 1024 * 1024 + 1
    maker = ALL_SOURCES[source]
    with caplog.at_level(logging.ERROR, logger="bridge.lambda"):
        result, body = call(handler, maker("/big", **_query(source, n=size)))
    assert result["statusCode"] == status
    assert len(body) < 100
    assert "over the limit" in caplog.text and "/big" in caplog.text


def test_just_under_the_payload_limit_goes_out(handler: Handler) -> None:
    result, body = call(handler, events.alb("GET", "/big", query=[("n", "1000000")]))
    assert result["statusCode"] == 200 and len(body) == 1_000_000


def test_the_payload_limit_is_configurable() -> None:
    handler = bridge.aws_lambda(asgi_app(), payload_limit=1000)
    assert call(handler, events.http_api("GET", "/big", raw_query="n=500"))[0]["statusCode"] == 200
    assert call(handler, events.http_api("GET", "/big", raw_query="n=2000"))[0]["statusCode"] == 500


def _query(source: str, **params: int) -> dict[str, Any]:
    if source in ("http", "url"):
        return {"raw_query": "&".join(f"{name}={value}" for name, value in params.items())}
    return {"query": [(name, str(value)) for name, value in params.items()]}


@pytest.mark.parametrize("module", ["flask_handler", "fastapi_handler"])
@pytest.mark.parametrize("source", sorted(ALL_SOURCES))
def test_the_docs_handlers_answer(module: str, source: str) -> None:
    imported = importlib.import_module(f"docs.examples.aws_lambda.{module}")
    result, seen = call(imported.handler, ALL_SOURCES[source]("/"))
    assert result["statusCode"] == 200
    assert seen["hello"].startswith("from ")
