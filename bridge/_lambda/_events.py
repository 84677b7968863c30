"""A Lambda HTTP event -> an ASGI HTTP scope and the request body, with no I/O.

Four sources send HTTP to Lambda, in two payload shapes:

* API Gateway REST APIs (and HTTP APIs set to payload 1.0): ``httpMethod``,
  ``path`` without the stage, query parameters already percent-decoded.
* HTTP APIs (payload 2.0) and function URLs: ``rawPath`` and
  ``rawQueryString`` as the client sent them, cookies in their own list.
* Application Load Balancers: the 1.0 shape with ``requestContext.elb``, query
  parameters *not* decoded, and ``multiValueHeaders`` only when the target
  group enables them (the reply must then use them too).

The scope's ``path`` holds the whole path the client asked for and
``root_path`` the part the app does not own (an API Gateway stage on its
default host, or a prefix the user names), so ``url_for`` builds links that
work from the outside.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Iterable, Mapping
from typing import Any, Final, Literal, NamedTuple
from urllib.parse import quote, unquote, urlencode

from .._errors import BadRequest, UnsupportedEvent
from .._types import Scope

Source = Literal["rest", "http", "url", "alb"]
"""API Gateway payload 1.0, HTTP API payload 2.0, function URL, load balancer."""

SOURCE_NAMES: Final = {
    "rest": "API Gateway (payload 1.0)",
    "http": "API Gateway HTTP API (payload 2.0)",
    "url": "a Lambda function URL",
    "alb": "an Application Load Balancer",
}
_ASGI: Final = {"version": "3.0", "spec_version": "2.3"}
_SAFE_PATH: Final = "/:@!$&'()*+,;=-._~"
_VERSIONS: Final = {"HTTP/1.0": "1.0", "HTTP/1.1": "1.1", "HTTP/2": "2", "HTTP/2.0": "2"}
# Other event kinds people wire to the same function by mistake, by a key they carry.
_NOT_HTTP: Final = (
    ("Records", "a queue, stream or storage notification (SQS, SNS, S3, Kinesis, DynamoDB)"),
    ("detail-type", "an EventBridge event"),
    ("Cf", "a Lambda@Edge CloudFront event"),
)


class ReplyForm(NamedTuple):
    """Where the event came from, which decides the shape of the reply."""

    source: Source
    multi_value: bool
    """The reply must use ``multiValueHeaders`` (ALB with them enabled)."""


class LambdaRequest(NamedTuple):
    """One invocation's request, ready for either kind of app."""

    form: ReplyForm
    scope: Scope
    body: bytes


def reply_form(event: object) -> ReplyForm:
    """The reply's shape for ``event``, or ``UnsupportedEvent`` when it is not HTTP."""
    source = source_of(event)
    assert isinstance(event, Mapping)
    return ReplyForm(source, source == "alb" and "multiValueHeaders" in event)


def read_event(
    event: Mapping[str, Any], form: ReplyForm, context: object, root_path: str | None
) -> LambdaRequest:
    """Translate an HTTP event; ``root_path=None`` takes the stage prefix from the event."""
    if form.source in ("http", "url"):
        return _read_v2(event, context, form, root_path)
    return _read_v1(event, context, form, root_path)


def source_of(event: object) -> Source:
    """Which source sent ``event``, or ``UnsupportedEvent`` naming what arrived."""
    if type(event) is dict or isinstance(event, Mapping):
        request_context = _mapping(event.get("requestContext"))
        if request_context:
            if "elb" in request_context:
                return "alb"
            if event.get("version") == "2.0" and _mapping(request_context.get("http")):
                domain = str(request_context.get("domainName", ""))
                return "url" if ".lambda-url." in domain else "http"
            if "httpMethod" in event and "eventType" not in request_context:
                return "rest"
    raise UnsupportedEvent(_describe(event))


def _describe(event: object) -> str:
    supported = (
        "aws_lambda() handles HTTP events from API Gateway (REST, HTTP API payload 1.0 "
        "and 2.0), function URLs and Application Load Balancers"
    )
    if not isinstance(event, Mapping):
        preview = str(event)[:60]
        return f"the event is {type(event).__name__} {preview!r}, not an object; {supported}"
    keys = sorted(str(key) for key in event)
    shown = ", ".join(keys[:12]) + (", ..." if len(keys) > 12 else "")
    kind = next((name for key, name in _NOT_HTTP if key in event), None)
    if "eventType" in _mapping(event.get("requestContext")):
        kind = "an API Gateway WebSocket event"
    what = f"this looks like {kind}" if kind else "its source is not one bridge knows"
    return (
        f"received an event with keys [{shown}]: {what}. {supported}; route other events to "
        "a separate handler"
    )


def _read_v1(
    event: Mapping[str, Any], context: object, form: ReplyForm, root_path: str | None
) -> LambdaRequest:
    source = form.source
    headers = _header_pairs(event)
    path = _text(event.get("path")) or "/"
    if root_path is None:
        root = _stage_prefix_v1(event, path) if source == "rest" else ""
    else:
        root = root_path.rstrip("/")
    if source == "alb":
        query = _raw_query(event)
        client = _last_forwarded(headers)
    else:
        query = _encode_query(event)
        identity = _mapping(_mapping(event.get("requestContext")).get("identity"))
        client = _text(identity.get("sourceIp"))
    protocol = _text(_mapping(event.get("requestContext")).get("protocol"))
    scope = _scope(event, context, _text(event.get("httpMethod")), path, root, query, headers)
    _finish_scope(scope, headers, client, protocol)
    return LambdaRequest(form, scope, _body(event))


def _read_v2(
    event: Mapping[str, Any], context: object, form: ReplyForm, root_path: str | None
) -> LambdaRequest:
    request_context = _mapping(event.get("requestContext"))
    http = _mapping(request_context.get("http"))
    headers = _encode_headers(_mapping(event.get("headers")).items())
    cookies = event.get("cookies")
    if cookies:
        headers.append((b"cookie", _header_bytes("; ".join(str(cookie) for cookie in cookies))))
    path = _text(event.get("rawPath")) or _text(http.get("path")) or "/"
    if root_path is None:
        stage = _text(request_context.get("stage"))
        prefix = "/" + stage
        under = stage and stage != "$default" and (path == prefix or path.startswith(prefix + "/"))
        root = prefix if under else ""
    else:
        root = root_path.rstrip("/")
    query = _text(event.get("rawQueryString")).encode("latin-1", "replace")
    method = _text(http.get("method")) or _text(event.get("httpMethod"))
    scope = _scope(event, context, method, path, root, query, headers)
    _finish_scope(scope, headers, _text(http.get("sourceIp")), _text(http.get("protocol")))
    return LambdaRequest(form, scope, _body(event))


def _scope(
    event: Mapping[str, Any],
    context: object,
    method: str,
    encoded_path: str,
    root: str,
    query: bytes,
    headers: list[tuple[bytes, bytes]],
) -> Scope:
    if not method:
        raise BadRequest("the event has no HTTP method (httpMethod or requestContext.http.method)")
    if not encoded_path.startswith("/"):
        encoded_path = "/" + encoded_path
    if root and not (encoded_path == root or encoded_path.startswith(root + "/")):
        encoded_path = root + encoded_path
    decoded = (
        unquote(encoded_path, errors="surrogateescape") if "%" in encoded_path else encoded_path
    )
    if encoded_path.isascii():
        raw = encoded_path.encode("ascii")  # as the client sent it: %2F stays apart from /
    else:
        raw = quote(decoded, safe=_SAFE_PATH, errors="surrogateescape").encode("ascii")
    return {
        "type": "http",
        "asgi": _ASGI,
        "http_version": "1.1",
        "method": method.upper(),
        "scheme": "https",
        "path": decoded,
        "raw_path": raw,
        "root_path": unquote(root) if "%" in root else root,
        "query_string": query,
        "headers": headers,
        "server": None,
        "client": None,
        "aws.event": event,
        "aws.context": context,
    }


def _finish_scope(
    scope: Scope, headers: list[tuple[bytes, bytes]], client: str, protocol: str
) -> None:
    """Scheme, server and client as the proxy in front of Lambda reports them."""
    host = proto = port = b""
    for name, value in headers:
        if name == b"host":
            host = value
        elif name == b"x-forwarded-proto":
            proto = value
        elif name == b"x-forwarded-port":
            port = value
    key = (host, proto, port)
    known = _ORIGINS.get(key)
    if known is None:
        if len(_ORIGINS) >= 64:  # a warm function sees a handful; never let it grow unbounded
            _ORIGINS.clear()
        known = _ORIGINS[key] = _origin(host, proto, port)
    scope["scheme"], scope["server"] = known
    if client:
        scope["client"] = (client, 0)
    if protocol != "HTTP/1.1":
        scope["http_version"] = _VERSIONS.get(protocol.upper(), "1.1")


_ORIGINS: dict[tuple[bytes, bytes, bytes], tuple[str, tuple[str, int | None] | None]] = {}


def _origin(host: bytes, proto: bytes, port: bytes) -> tuple[str, tuple[str, int | None] | None]:
    scheme = proto.rpartition(b",")[2].strip().decode("latin-1") or "https"
    if not host:
        return scheme, None
    text = host.decode("latin-1")
    name, colon, number = text.rpartition(":")
    if not colon or "]" in number:  # no port, or the inside of an [IPv6] literal
        name, number = text, ""
    number = number or port.decode("latin-1").strip() or ("443" if scheme == "https" else "80")
    return scheme, (name, int(number) if number.isdigit() else None)


def _stage_prefix_v1(event: Mapping[str, Any], path: str) -> str:
    """The prefix the client's path has over the event's: the stage on the default host.

    On ``{api}.execute-api.{region}.amazonaws.com/prod/items`` the event says
    ``path="/items"`` and ``requestContext.path="/prod/items"``; behind a
    custom domain both are the same and the prefix is empty.
    """
    full = _text(_mapping(event.get("requestContext")).get("path"))
    if not full or full == path:
        return ""
    if path == "/":
        prefix = full.rstrip("/")
    elif full.endswith(path):
        prefix = full[: len(full) - len(path)]
    else:
        return ""
    return prefix if prefix.startswith("/") and not prefix.endswith("/") else ""


def _header_pairs(event: Mapping[str, Any]) -> list[tuple[bytes, bytes]]:
    multi = event.get("multiValueHeaders")
    if multi:
        pairs = [(name, value) for name, values in multi.items() for value in values or ()]
        return _encode_headers(pairs)
    return _encode_headers(_mapping(event.get("headers")).items())


def _encode_headers(pairs: Iterable[tuple[Any, Any]]) -> list[tuple[bytes, bytes]]:
    try:  # the usual case, in one pass: text names and latin-1 values
        return [
            (name.lower().encode("latin-1"), value.encode("latin-1"))
            for name, value in pairs
            if value is not None
        ]
    except (AttributeError, UnicodeEncodeError):
        return [
            (str(name).lower().encode("latin-1", "replace"), _header_bytes(value))
            for name, value in pairs
            if value is not None
        ]


def _header_bytes(value: object) -> bytes:
    text = str(value)
    try:
        return text.encode("latin-1")
    except UnicodeEncodeError:
        return text.encode("utf-8")


def _encode_query(event: Mapping[str, Any]) -> bytes:
    """API Gateway hands over decoded parameters: encode them, once."""
    return urlencode(_query_pairs(event)).encode("ascii")


def _raw_query(event: Mapping[str, Any]) -> bytes:
    """A load balancer hands over parameters as the client encoded them: join them as they are."""
    text = "&".join(f"{name}={value}" for name, value in _query_pairs(event))
    return text.encode("latin-1", "replace")


def _query_pairs(event: Mapping[str, Any]) -> list[tuple[Any, Any]]:
    multi = event.get("multiValueQueryStringParameters")
    if multi:
        return [(name, value) for name, values in multi.items() for value in values or ()]
    return list(_mapping(event.get("queryStringParameters")).items())


def _last_forwarded(headers: list[tuple[bytes, bytes]]) -> str:
    """The client as the load balancer saw it: it appends to X-Forwarded-For, so the last entry."""
    for name, value in reversed(headers):
        if name == b"x-forwarded-for":
            return value.decode("latin-1").rsplit(",", 1)[-1].strip()
    return ""


def _body(event: Mapping[str, Any]) -> bytes:
    body = event.get("body")
    if not body:
        return b""
    if event.get("isBase64Encoded"):
        try:
            return base64.b64decode(body, validate=True)
        except (binascii.Error, ValueError) as error:
            raise BadRequest(f"the event's body is marked base64 but is not: {error}") from error
    return str(body).encode("utf-8")


def _mapping(value: object) -> Mapping[str, Any]:
    if type(value) is dict or isinstance(value, Mapping):
        return value
    return {}


def _text(value: object) -> str:
    return value if isinstance(value, str) else ""
