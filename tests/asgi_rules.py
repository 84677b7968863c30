"""The ASGI HTTP spec's rules for scopes and response messages, as test assertions.

``wsgiref.validate`` checks the WSGI side of the bridge; nothing in the standard
library checks the ASGI side, so these functions do, following the text of the
HTTP sub-specification (asgiref ``specs/www.rst``, spec version 2.5): the type
of every key, header names as lower-cased bytes, and the order of
``http.response.start`` and ``http.response.body``. Each raises
``AssertionError`` naming the key and the rule it breaks.

``check_wsgi_environ`` is the WSGI twin, so tests of both directions use one
module: ``wsgiref.validate`` plus PEP 3333's native-string rule, which the
validator does not check for keys or for non-ASCII values.
"""

from __future__ import annotations

import io
import re
import warnings
import wsgiref.validate
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

# RFC 9110 section 5.6.2: the characters of a header name (and of a method).
_TOKEN = re.compile(rb"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
# The spec lists "1.0", "1.1" and "2"; hypercorn sends "3" for HTTP/3, which
# the bridge's environ builder also maps, so it is accepted here.
HTTP_VERSIONS = frozenset({"1.0", "1.1", "2", "3"})
# RFC 9110 section 15: "All valid status codes are within the range of 100 to 599".
STATUS_RANGE = range(100, 600)


def check_http_scope(scope: Mapping[str, Any]) -> None:
    """Assert that ``scope`` is an HTTP connection scope as www.rst describes it."""
    _expect(scope.get("type") == "http", "type", scope.get("type"), 'must be "http"')
    asgi: Any = scope.get("asgi")
    _expect(isinstance(asgi, Mapping), "asgi", asgi, "must be a dict")
    _expect(type(asgi.get("version")) is str, 'asgi["version"]', asgi.get("version"), "str")
    if "spec_version" in asgi:
        _expect(type(asgi["spec_version"]) is str, "spec_version", asgi["spec_version"], "str")
    version = scope.get("http_version")
    _expect(version in HTTP_VERSIONS, "http_version", version, f"one of {sorted(HTTP_VERSIONS)}")
    method: Any = scope.get("method")
    _expect(type(method) is str, "method", method, "must be a str")
    # "Uppercased" in the spec; methods are case-sensitive (RFC 9110 section
    # 9.1), so a bridge passes on what the client sent and only a token is asked.
    _expect(_is_token(method.encode("latin-1", "replace")), "method", method, "an HTTP token")
    scheme = scope.get("scheme", "http")
    _expect(type(scheme) is str and scheme != "", "scheme", scheme, "a non-empty str")
    _expect(type(scope.get("path")) is str, "path", scope.get("path"), "must be a str")
    raw_path = scope.get("raw_path")
    _expect(raw_path is None or type(raw_path) is bytes, "raw_path", raw_path, "bytes or None")
    query = scope.get("query_string")
    _expect(type(query) is bytes, "query_string", query, "must be bytes")
    root_path = scope.get("root_path", "")
    _expect(type(root_path) is str, "root_path", root_path, "must be a str")
    check_request_headers(scope.get("headers"))
    _check_address(scope.get("client"), "client", port_may_be_none=False)
    _check_address(scope.get("server"), "server", port_may_be_none=True)
    if "state" in scope:
        _expect(isinstance(scope["state"], dict), "state", scope["state"], "must be a dict")


def check_request_headers(headers: object) -> None:
    """Headers: an iterable of ``[name, value]`` pairs of bytes, names lower-cased.

    The spec (2.5) says request header names "should" be lower-cased; every
    scope the bridge builds lower-cases them, so this checker holds it to that.
    """
    _check_header_list(headers, "headers")


def check_response_messages(messages: Sequence[Mapping[str, Any]]) -> None:
    """One ``http.response.start``, then body messages, the last without ``more_body``."""
    _expect(len(messages) >= 2, "messages", messages, "a start and at least one body")
    check_response_start(messages[0])
    for index, message in enumerate(messages[1:], start=1):
        check_response_body(message)
        last = index == len(messages) - 1
        more = message.get("more_body", False)
        _expect(more is not last, f"messages[{index}].more_body", more, "False on the last only")


def check_response_start(message: Mapping[str, Any]) -> None:
    """``http.response.start``: an int status and lower-cased byte headers."""
    kind = message.get("type")
    _expect(kind == "http.response.start", "type", kind, '"http.response.start"')
    status = message.get("status")
    _expect(type(status) is int, "status", status, "must be an int (not a bool or str)")
    _expect(status in STATUS_RANGE, "status", status, "within 100-599 (RFC 9110)")
    _check_header_list(message.get("headers", []), "headers")
    if "trailers" in message:
        _expect(type(message["trailers"]) is bool, "trailers", message["trailers"], "a bool")


def check_response_body(message: Mapping[str, Any]) -> None:
    """``http.response.body``: bytes and a bool ``more_body``."""
    kind = message.get("type")
    _expect(kind == "http.response.body", "type", kind, '"http.response.body"')
    body = message.get("body", b"")
    _expect(type(body) is bytes, "body", body, "must be bytes")
    more = message.get("more_body", False)
    _expect(type(more) is bool, "more_body", more, "must be a bool")


def check_wsgi_environ(environ: Mapping[str, Any]) -> None:
    """Assert that ``environ`` passes ``wsgiref.validate`` and holds only native strings.

    The validator's warnings count as failures, except "Unknown REQUEST_METHOD":
    extension methods (``PROPFIND``, ``PURGE``) are valid HTTP.
    """
    checked = dict(environ)
    checked.setdefault("wsgi.input", io.BytesIO(b""))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        warnings.filterwarnings("ignore", "Unknown REQUEST_METHOD", wsgiref.validate.WSGIWarning)
        wsgiref.validate.check_environ(checked)  # type: ignore[attr-defined]
    for key, value in environ.items():
        _expect(_is_latin1(key), "environ key", key, "a native (latin-1) string")
        if "." not in key:
            _expect(_is_latin1(value), key, value, "a native (latin-1) string")


def _is_latin1(text: str) -> bool:
    try:
        text.encode("latin-1")
    except UnicodeEncodeError:
        return False
    return True


def _check_header_list(headers: Any, what: str) -> None:
    _expect(
        isinstance(headers, Iterable) and not isinstance(headers, (str, bytes, Mapping)),
        what,
        headers,
        "an iterable of [name, value] pairs",
    )
    for item in headers:
        _expect(
            isinstance(item, Sequence) and not isinstance(item, (str, bytes)) and len(item) == 2,
            what,
            item,
            "each item a two-item [name, value]",
        )
        name, value = item
        _expect(type(name) is bytes and type(value) is bytes, what, item, "names, values bytes")
        _expect(name == name.lower(), what, name, "header names must be lower-cased")
        # HTTP/2 and HTTP/3 pseudo headers "must be removed" / "must not be present".
        _expect(not name.startswith(b":"), what, name, "no pseudo headers")


def _check_address(address: Any, what: str, *, port_may_be_none: bool) -> None:
    if address is None:
        return
    _expect(
        isinstance(address, Sequence) and not isinstance(address, (str, bytes)),
        what,
        address,
        "None or a two-item [host, port]",
    )
    _expect(len(address) == 2, what, address, "exactly two items")
    host, port = address
    _expect(type(host) is str, what, address, "a str host (or a unix socket path)")
    port_ok = type(port) is int or (port_may_be_none and port is None)
    _expect(port_ok, what, address, "an int port" + (" or None" if port_may_be_none else ""))


def _is_token(raw: bytes) -> bool:
    return _TOKEN.fullmatch(raw) is not None


def _expect(condition: bool, key: str, value: object, rule: str) -> None:
    if not condition:
        raise AssertionError(f"ASGI rule broken: {key} = {value!r}: {rule}")
