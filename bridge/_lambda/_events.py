"""A Lambda HTTP event -> a ``LambdaRequest``: its method, path, headers and body, with no I/O.

Four sources send HTTP to Lambda, in two payload shapes:

* API Gateway REST APIs (and HTTP APIs set to payload 1.0): ``httpMethod``,
  ``path`` without the stage, query parameters already percent-decoded.
* HTTP APIs (payload 2.0) and function URLs: ``rawPath`` and
  ``rawQueryString`` as the client sent them, cookies in their own list.
* Application Load Balancers: the 1.0 shape with ``requestContext.elb``, query
  parameters *not* decoded, and ``multiValueHeaders`` only when the target
  group enables them (the reply must then use them too).

The request's ``path`` holds the whole path the client asked for and
``root_path`` the part the app does not own (an API Gateway stage on its
default host, or a prefix the user names), so ``url_for`` builds links that
work from the outside. ``_requests`` makes a scope or an environ of it.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Mapping
from typing import Any, Final, Literal, NamedTuple
from urllib.parse import quote_plus, unquote

from .._errors import BadRequest, UnsupportedEvent

Source = Literal["rest", "http", "url", "alb"]
"""API Gateway payload 1.0, HTTP API payload 2.0, function URL, load balancer."""

SOURCE_NAMES: Final = {
    "rest": "API Gateway (payload 1.0)",
    "http": "API Gateway HTTP API (payload 2.0)",
    "url": "a Lambda function URL",
    "alb": "an Application Load Balancer",
}
_VERSIONS: Final = {"HTTP/1.0": "1.0", "HTTP/1.1": "1.1", "HTTP/2": "2", "HTTP/2.0": "2"}
# Other event kinds people wire to the same function by mistake, by a key they carry.
_NOT_HTTP: Final = (
    ("Records", "a queue, stream or storage notification (SQS, SNS, S3, Kinesis, DynamoDB)"),
    ("detail-type", "an EventBridge event"),
)
_NO_CONTEXT: Final[Mapping[str, Any]] = {}
"""What a payload 1.0 event without ``requestContext`` reads as."""
_EDGE: Final = (
    "this is a Lambda@Edge (CloudFront) event. It carries a request for the function to "
    "change or answer in CloudFront's own shape (Records[].cf.request, headers as lists of "
    "key/value objects, a body only when the trigger includes it, and a reply shaped the same "
    "way), not an HTTP request for an app, so bridge does not serve it. To run this app behind "
    "CloudFront, give it a function URL or an API Gateway and make that the distribution's "
    "origin"
)


class ReplyForm(NamedTuple):
    """Where the event came from, which decides the shape of the reply."""

    source: Source
    multi_value: bool
    """The reply must use ``multiValueHeaders`` (ALB with them enabled)."""


class LambdaRequest(NamedTuple):
    """One invocation's request as the event gives it, before either kind of app sees it."""

    form: ReplyForm
    event: Mapping[str, Any]
    context: object
    method: str
    path: str
    """The whole path as the client sent it, percent-encoded, ``root_path`` included."""
    root_path: str
    """Decoded, as a scope's ``root_path``."""
    query: str
    """Percent-encoded; latin-1 characters only."""
    headers: list[tuple[str, str]]
    """Names in any case, values as text, in the order the event lists them."""
    client: str | None
    """The client's address; ``None``: the last ``X-Forwarded-For`` entry (a load balancer)."""
    http_version: str
    body: bytes


_new_request = tuple.__new__
"""``LambdaRequest`` from a tuple of all its fields, in C: its generated ``__new__`` is a
Python call, and the readers build one on every invocation."""


def reply_form(event: object) -> ReplyForm:
    """Where ``event`` came from; ``UnsupportedEvent``, naming what arrived, if not HTTP."""
    if type(event) is dict or isinstance(event, Mapping):
        request_context = event.get("requestContext")
        if request_context and (
            type(request_context) is dict or isinstance(request_context, Mapping)
        ):
            if "elb" in request_context:
                return _FORMS["alb", "multiValueHeaders" in event]
            http = request_context.get("http")
            if (
                http
                and event.get("version") == "2.0"
                and (type(http) is dict or isinstance(http, Mapping))
            ):
                domain = request_context.get("domainName")
                url = type(domain) is str and ".lambda-url." in domain
                return _FORMS["url" if url else "http", False]
            if "httpMethod" in event and "eventType" not in request_context:
                return _FORMS["rest", False]
        elif not request_context and "httpMethod" in event:
            # A direct invoke or a console test event: payload 1.0 with no
            # requestContext (or null, or {}). Served with no client address,
            # no stage prefix and HTTP/1.1.
            return _FORMS["rest", False]
    raise UnsupportedEvent(_describe(event))


_FORMS: Final = {
    (source, multi): ReplyForm(source, multi)
    for source in ("rest", "http", "url", "alb")
    for multi in (False, True)
}


def read_event(
    event: Mapping[str, Any], form: ReplyForm, context: object, root_path: str | None
) -> LambdaRequest:
    """Read an HTTP event; ``root_path=None`` takes the stage prefix from the event."""
    try:
        if form.source in ("http", "url"):
            return _read_v2(event, context, form, root_path)
        return _read_v1(event, context, form, root_path)
    except (TypeError, AttributeError, ValueError) as error:
        raise BadRequest(f"the event is malformed: {error!r}") from error


def _describe(event: object) -> str:
    supported = (
        "aws_lambda() handles HTTP events from API Gateway (REST, HTTP API payload 1.0 "
        "and 2.0), function URLs and Application Load Balancers"
    )
    if not isinstance(event, Mapping):
        preview = str(event)[:60]
        return f"the event is {type(event).__name__} {preview!r}, not an object; {supported}"
    if _is_edge(event):
        return f"received an event with keys [Records]: {_EDGE}"
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


def _is_edge(event: Mapping[str, Any]) -> bool:
    """A Lambda@Edge event: ``{"Records": [{"cf": {...}}]}``."""
    records = event.get("Records")
    return (
        isinstance(records, list)
        and bool(records)
        and isinstance(records[0], Mapping)
        and "cf" in records[0]
    )


# The readers let a field of the wrong type fail (read_event makes it a 400),
# and leave the rare cases to helpers: a warm function reads thousands of events.


def _read_v1(
    event: Mapping[str, Any], context: object, form: ReplyForm, root_path: str | None
) -> LambdaRequest:
    request_context = event.get("requestContext") or _NO_CONTEXT
    path = event.get("path") or "/"
    if root_path is not None:
        root = root_path.rstrip("/")
    elif form.source == "rest":
        root = _stage_prefix_v1(request_context, path)
    else:
        root = ""
    if form.source == "alb":
        query = _raw_query(event)
        client = None
    else:
        query = _encode_query(event)
        identity = request_context.get("identity")
        client = identity.get("sourceIp") if identity else ""
    multi = event.get("multiValueHeaders")
    if multi:
        headers = []  # loops, not a comprehension's frame
        for name, values in multi.items():
            if type(values) is list and len(values) == 1:  # the usual case
                headers.append((name, values[0]))
            else:
                headers += [(name, value) for value in _listed(values)]
    else:
        single = event.get("headers")
        headers = list(single.items()) if single else []
    return _request(
        form,
        event,
        context,
        event.get("httpMethod"),
        path,
        root,
        query,
        headers,
        client,
        request_context.get("protocol"),
    )


def _read_v2(
    event: Mapping[str, Any], context: object, form: ReplyForm, root_path: str | None
) -> LambdaRequest:
    request_context = event["requestContext"]
    http = request_context["http"]
    single = event.get("headers")
    headers = list(single.items()) if single else []
    cookies = event.get("cookies")
    if cookies:
        headers.append(("cookie", _joined_cookies(cookies)))
    path = event.get("rawPath") or http.get("path") or "/"
    root = ""
    if root_path is not None:
        root = root_path.rstrip("/")
    else:
        stage = request_context.get("stage")
        if stage and stage != "$default":
            prefix = "/" + stage
            if path == prefix or path.startswith(prefix + "/"):
                root = prefix
    query = event.get("rawQueryString") or ""
    if not query.isascii():
        query = query.encode("latin-1", "replace").decode("latin-1")
    return _request(
        form,
        event,
        context,
        http.get("method") or event.get("httpMethod"),
        path,
        root,
        query,
        headers,
        http.get("sourceIp") or "",
        http.get("protocol"),
    )


def _request(
    form: ReplyForm,
    event: Mapping[str, Any],
    context: object,
    method: object,
    path: str,
    root: str,
    query: str,
    headers: list[tuple[str, str]],
    client: str | None,
    protocol: object,
) -> LambdaRequest:
    """What both payload shapes end with: the method, path, version and body made sure of."""
    if type(method) is not str or not method.isupper():
        method = _method(method)
    if root or not path.startswith("/"):
        path = _full_path(path, root)
    body = event.get("body")
    return _new_request(
        LambdaRequest,
        (
            form,
            event,
            context,
            method,
            path,
            decoded_path(root) if root else "",
            query,
            headers,
            client,
            "1.1" if protocol == "HTTP/1.1" else _version(protocol),
            _body(event, body) if body else b"",
        ),
    )


def _joined_cookies(cookies: Any) -> str:
    try:
        return "; ".join(cookies)
    except TypeError:  # not all text
        return "; ".join(str(cookie) for cookie in cookies)


def _listed(values: object) -> list[Any]:
    if values is None:  # the console's test events have it
        return []
    if isinstance(values, (list, tuple)):
        return list(values)
    raise BadRequest(f"multi-value fields must hold lists, got {values!r}")


def _method(method: object) -> str:
    if not method or type(method) is not str:
        raise BadRequest("the event has no HTTP method (httpMethod or requestContext.http.method)")
    return method.upper()


def _full_path(path: str, root: str) -> str:
    if not path.startswith("/"):
        path = "/" + path
    if root and not (path == root or path.startswith(root + "/")):
        path = root + path
    return path


def decoded_path(path: str) -> str:
    """A percent-encoded path decoded as an ASGI scope holds it."""
    return unquote(path, errors="surrogateescape") if "%" in path else path


def _version(protocol: object) -> str:
    if type(protocol) is not str:
        return "1.1"
    return _VERSIONS.get(protocol.upper(), "1.1")


def _stage_prefix_v1(request_context: Mapping[str, Any], path: str) -> str:
    """The prefix the client's path has over the event's: the stage on the default host.

    On ``{api}.execute-api.{region}.amazonaws.com/prod/items`` the event says
    ``path="/items"`` and ``requestContext.path="/prod/items"``; behind a
    custom domain both are the same and the prefix is empty.
    """
    full = _text(request_context.get("path"))
    if not full or full == path:
        return ""
    if path == "/":
        prefix = full.rstrip("/")
    elif full.endswith(path):
        prefix = full[: len(full) - len(path)]
    else:
        return ""
    return prefix if prefix.startswith("/") and not prefix.endswith("/") else ""


def _encode_query(event: Mapping[str, Any]) -> str:
    """API Gateway hands over decoded parameters: encode them, once (as ``urlencode`` does)."""
    parts = []  # a loop, not a generator: one parameter is the usual case
    for name, value in _query_pairs(event):
        parts.append(f"{_form_encoded(name)}={_form_encoded(value)}")
    return "&".join(parts)


def _form_encoded(value: object) -> str:
    text = value if type(value) is str else str(value)
    if text.isalnum() and text.isascii():  # most names and values: nothing to encode
        return text
    return quote_plus(text, safe="")


def _raw_query(event: Mapping[str, Any]) -> str:
    """A load balancer hands over parameters as the client encoded them: join them as they are."""
    text = "&".join(f"{name}={value}" for name, value in _query_pairs(event))
    return text if text.isascii() else text.encode("latin-1", "replace").decode("latin-1")


def _query_pairs(event: Mapping[str, Any]) -> list[tuple[Any, Any]]:
    multi = event.get("multiValueQueryStringParameters")
    if multi:
        pairs = []  # loops, not a comprehension's frame: one parameter is the usual case
        for name, values in multi.items():
            for value in values if type(values) is list else _listed(values):
                pairs.append((name, value))  # noqa: PERF401 (extend takes a generator's frame)
        return pairs
    return list(_mapping(event.get("queryStringParameters")).items())


def _body(event: Mapping[str, Any], body: object) -> bytes:
    if event.get("isBase64Encoded"):
        try:
            return base64.b64decode(str(body), validate=True)
        except (binascii.Error, ValueError) as error:
            raise BadRequest(f"the event's body is marked base64 but is not: {error}") from error
    return str(body).encode("utf-8")


def _mapping(value: object) -> Mapping[str, Any]:
    if type(value) is dict or isinstance(value, Mapping):
        return value
    return {}


def _text(value: object) -> str:
    return value if isinstance(value, str) else ""
