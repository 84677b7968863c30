"""Lambda HTTP events shaped like the ones AWS sends, one builder per source.

The shapes follow the AWS payload documentation: API Gateway REST (payload
1.0), HTTP API (payload 2.0), function URLs (2.0 on a ``lambda-url`` host)
and Application Load Balancers (with and without multi-value headers).
"""

from __future__ import annotations

import base64
from collections.abc import Sequence
from typing import Any
from urllib.parse import quote, unquote

Query = Sequence[tuple[str, str]]
Headers = Sequence[tuple[str, str]]

API_HOST = "abc123.execute-api.eu-west-1.amazonaws.com"
URL_HOST = "xyz789.lambda-url.eu-west-1.on.aws"
ALB_HOST = "my-alb-1234.eu-west-1.elb.amazonaws.com"


def _body(body: bytes | None, binary: bool) -> tuple[str | None, bool]:
    if body is None:
        return None, False
    if binary:
        return base64.b64encode(body).decode("ascii"), True
    return body.decode("utf-8"), False


def rest(
    method: str = "GET",
    path: str = "/",
    *,
    query: Query = (),
    headers: Headers = (),
    body: bytes | None = None,
    binary: bool = False,
    stage: str = "prod",
    request_path: str | None = None,
    host: str = API_HOST,
    source_ip: str = "203.0.113.7",
) -> dict[str, Any]:
    """API Gateway REST API, payload 1.0: ``path`` without the stage, decoded query values."""
    all_headers = [("Host", host), ("X-Forwarded-Proto", "https"), ("X-Forwarded-Port", "443")]
    all_headers += list(headers)
    single: dict[str, str] = {}
    multi: dict[str, list[str]] = {}
    for name, value in all_headers:
        single[name] = value
        multi.setdefault(name, []).append(value)
    single_query: dict[str, str] = {}
    multi_query: dict[str, list[str]] = {}
    for name, value in query:
        single_query[name] = value
        multi_query.setdefault(name, []).append(value)
    text, encoded = _body(body, binary)
    return {
        "resource": "/{proxy+}",
        "path": path,
        "httpMethod": method,
        "headers": single,
        "multiValueHeaders": multi,
        "queryStringParameters": single_query or None,
        "multiValueQueryStringParameters": multi_query or None,
        "pathParameters": {"proxy": path.lstrip("/")},
        "stageVariables": None,
        "requestContext": {
            "resourcePath": "/{proxy+}",
            "httpMethod": method,
            "path": request_path if request_path is not None else f"/{stage}{path}",
            "stage": stage,
            "domainName": host,
            "protocol": "HTTP/1.1",
            "requestId": "c6af9ac6-7b61-11e6-9a41-93e8deadbeef",
            "identity": {"sourceIp": source_ip, "userAgent": "test"},
        },
        "body": text,
        "isBase64Encoded": encoded,
    }


def http_api(
    method: str = "GET",
    raw_path: str = "/",
    *,
    raw_query: str = "",
    headers: Headers = (),
    cookies: list[str] | None = None,
    body: bytes | None = None,
    binary: bool = False,
    stage: str = "$default",
    host: str = API_HOST,
    source_ip: str = "203.0.113.7",
) -> dict[str, Any]:
    """HTTP API, payload 2.0: raw path and query, repeated headers comma-joined, cookies apart."""
    joined: dict[str, str] = {"host": host, "x-forwarded-proto": "https", "x-forwarded-port": "443"}
    for name, value in headers:
        key = name.lower()
        joined[key] = f"{joined[key]},{value}" if key in joined else value
    params: dict[str, str] = {}
    for pair in raw_query.split("&") if raw_query else ():
        name, _, value = pair.partition("=")
        name, value = unquote(name), unquote(value)
        params[name] = f"{params[name]},{value}" if name in params else value
    text, encoded = _body(body, binary)
    event: dict[str, Any] = {
        "version": "2.0",
        "routeKey": "$default",
        "rawPath": raw_path,
        "rawQueryString": raw_query,
        "headers": joined,
        "requestContext": {
            "accountId": "123456789012",
            "apiId": host.split(".")[0],
            "domainName": host,
            "domainPrefix": host.split(".")[0],
            "http": {
                "method": method,
                "path": raw_path,
                "protocol": "HTTP/1.1",
                "sourceIp": source_ip,
                "userAgent": "test",
            },
            "requestId": "JKJaXmPLvHcESHA=",
            "routeKey": "$default",
            "stage": stage,
        },
        "isBase64Encoded": encoded,
    }
    if params:
        event["queryStringParameters"] = params
    if cookies:
        event["cookies"] = cookies
    if text is not None:
        event["body"] = text
    return event


def function_url(method: str = "GET", raw_path: str = "/", **options: Any) -> dict[str, Any]:
    """A function URL: payload 2.0 on a ``lambda-url`` host."""
    return http_api(method, raw_path, host=URL_HOST, **options)


def alb(
    method: str = "GET",
    path: str = "/",
    *,
    query: Query = (),
    headers: Headers = (),
    body: bytes | None = None,
    binary: bool = False,
    multi_value: bool = False,
    client_ip: str = "198.51.100.4",
) -> dict[str, Any]:
    """A load balancer: query values as the client encoded them; X-Forwarded-For appended to."""
    all_headers = [("host", ALB_HOST), ("x-forwarded-proto", "https"), ("x-forwarded-port", "443")]
    all_headers += [(name.lower(), value) for name, value in headers]
    forwarded = [value for name, value in all_headers if name == "x-forwarded-for"]
    all_headers = [(name, value) for name, value in all_headers if name != "x-forwarded-for"]
    all_headers.append(("x-forwarded-for", ", ".join([*forwarded, client_ip])))
    encoded_query = [(quote(name, safe=""), quote(value, safe="")) for name, value in query]
    text, encoded = _body(body, binary)
    event: dict[str, Any] = {
        "requestContext": {
            "elb": {
                "targetGroupArn": "arn:aws:elasticloadbalancing:eu-west-1:123456789012:"
                "targetgroup/lambda-target/abcdef"
            }
        },
        "httpMethod": method,
        "path": path,
        "body": text if text is not None else "",
        "isBase64Encoded": encoded,
    }
    if multi_value:
        multi: dict[str, list[str]] = {}
        for name, value in all_headers:
            multi.setdefault(name, []).append(value)
        multi_query: dict[str, list[str]] = {}
        for name, value in encoded_query:
            multi_query.setdefault(name, []).append(value)
        event["multiValueHeaders"] = multi
        event["multiValueQueryStringParameters"] = multi_query
    else:
        event["headers"] = dict(all_headers)
        event["queryStringParameters"] = dict(encoded_query)
    return event


class FakeContext:
    """The attributes of a Lambda context object that apps read."""

    function_name = "bridge-test"
    memory_limit_in_mb = 128
    aws_request_id = "0d1d2e3f-request"
    invoked_function_arn = "arn:aws:lambda:eu-west-1:123456789012:function:bridge-test"

    def get_remaining_time_in_millis(self) -> int:
        return 30_000


def received_headers(result: dict[str, Any]) -> list[tuple[str, str]]:
    """The response headers a client gets, from any source's reply shape, lowercased and sorted."""
    pairs: list[tuple[str, str]] = []
    for name, value in (result.get("headers") or {}).items():
        if name.lower() not in {key.lower() for key in result.get("multiValueHeaders") or {}}:
            pairs.append((name.lower(), value))
    for name, values in (result.get("multiValueHeaders") or {}).items():
        pairs += [(name.lower(), value) for value in values]
    pairs += [("set-cookie", cookie) for cookie in result.get("cookies") or []]
    return sorted(pairs)


def received_body(result: dict[str, Any]) -> bytes:
    body = result.get("body") or ""
    if result.get("isBase64Encoded"):
        return base64.b64decode(body)
    return str(body).encode("utf-8")
