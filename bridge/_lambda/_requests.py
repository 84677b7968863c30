"""A LambdaRequest as each kind of app takes it: an ASGI scope, or a WSGI environ.

The environ comes from the core's ``EnvironBuilder``, the one ``to_asgi``
uses, so WSGI apps on Lambda get the same header rules. Both get the scheme,
host and port the proxy in front of Lambda reports, from ``Host`` and the
``X-Forwarded-*`` headers it sets.
"""

from __future__ import annotations

import io
from typing import Final, NamedTuple
from urllib.parse import quote

from .._core.environ import (
    MAX_HEADER_BYTES,
    MAX_HEADERS,
    EnvironBuilder,
    native_value,
    too_many_header_bytes,
    too_many_headers,
)
from .._errors import BadRequest
from .._types import Environ, Scope
from ._events import LambdaRequest, decoded_path

EVENT_KEY = "aws.event"
"""The scope and environ key holding the Lambda event (the key Mangum uses too)."""
CONTEXT_KEY = "aws.context"
"""The scope and environ key holding the Lambda context object."""

_ASGI: Final = {"version": "3.0", "spec_version": "2.3"}
_SAFE_PATH: Final = "/:@!$&'()*+,;=-._~"


def wsgi_environ(request: LambdaRequest, builder: EnvironBuilder) -> Environ:
    """The request through the core's environ builder, with the proxy's view of the origin."""
    _, event, context, method, path, root_path, query, headers, client, version, body = request
    environ = builder.build_from_text(
        method,
        decoded_path(path),
        root_path,
        query,
        version,
        headers,
    )
    get = environ.get
    known = origin(
        get("HTTP_HOST", ""), get("HTTP_X_FORWARDED_PROTO", ""), get("HTTP_X_FORWARDED_PORT", "")
    )
    environ["wsgi.url_scheme"] = known.scheme
    environ["SERVER_NAME"] = known.server_name
    environ["SERVER_PORT"] = known.server_port
    if client is None:  # a load balancer appends the address it saw to X-Forwarded-For
        client = get("HTTP_X_FORWARDED_FOR", "").rpartition(",")[2].strip()
    if client:
        environ["REMOTE_ADDR"] = client  # no REMOTE_PORT: the proxy does not pass it on
    environ["wsgi.input"] = io.BytesIO(body)
    environ["CONTENT_LENGTH"] = str(len(body))
    environ[EVENT_KEY] = event
    environ[CONTEXT_KEY] = context
    return environ


def scope_of(request: LambdaRequest) -> Scope:
    """The ASGI scope of one request, built for this invocation alone."""
    headers = _encode_headers(request.headers)
    if len(headers) > MAX_HEADERS:  # the caps a WSGI app's environ builder applies
        raise too_many_headers(len(headers), MAX_HEADERS)
    encoded_path = request.path
    decoded = decoded_path(encoded_path)
    if encoded_path.isascii():
        raw = encoded_path.encode("ascii")  # as the client sent it: %2F stays apart from /
    else:
        raw = quote(decoded, safe=_SAFE_PATH, errors="surrogateescape").encode("ascii")
    host = proto = port = b""
    size = 0
    for name, value in headers:
        size += len(name) + len(value)
        if name == b"host":
            host = value
        elif name == b"x-forwarded-proto":
            proto = value
        elif name == b"x-forwarded-port":
            port = value
    if size > MAX_HEADER_BYTES:
        raise too_many_header_bytes(size, MAX_HEADER_BYTES)
    scheme, server, _, _ = origin(
        host.decode("latin-1"), proto.decode("latin-1"), port.decode("latin-1")
    )
    client = request.client
    if client is None:
        client = _last_forwarded(headers)
    return {
        "type": "http",
        "asgi": _ASGI,
        "http_version": request.http_version,
        "method": request.method,
        "scheme": scheme,
        "path": decoded,
        "raw_path": raw,
        "root_path": request.root_path,
        "query_string": request.query.encode("latin-1"),
        "headers": headers,
        "server": server,
        "client": (client, 0) if client else None,
        EVENT_KEY: request.event,
        CONTEXT_KEY: request.context,
    }


class Origin(NamedTuple):
    """Scheme and server as the proxy in front of Lambda reports them."""

    scheme: str
    server: tuple[str, int | None] | None
    """As an ASGI scope's ``server``."""
    server_name: str
    """As an environ's ``SERVER_NAME``."""
    server_port: str


def origin(host: str, proto: str, port: str) -> Origin:
    """The origin from the Host and X-Forwarded-* headers, remembered per distinct triple."""
    key = (host, proto, port)
    known = _ORIGINS.get(key)
    if known is None:
        if len(_ORIGINS) >= 64:  # a warm function sees a handful; never let it grow unbounded
            _ORIGINS.clear()
        known = _ORIGINS[key] = _origin(host, proto, port)
    return known


_ORIGINS: dict[tuple[str, str, str], Origin] = {}


def _origin(host: str, proto: str, port: str) -> Origin:
    scheme = proto.rpartition(",")[2].strip() or "https"
    default = "443" if scheme == "https" else "80"
    if not host:
        return Origin(scheme, None, "localhost", default)
    name, colon, number = host.rpartition(":")
    if not colon or "]" in number:  # no port, or the inside of an [IPv6] literal
        name, number = host, ""
    number = number or port.rpartition(",")[2].strip() or default
    if not number.isdigit():
        return Origin(scheme, (name, None), host, default)
    return Origin(scheme, (name, int(number)), name, number)


def _encode_headers(pairs: list[tuple[str, str]]) -> list[tuple[bytes, bytes]]:
    try:  # the usual case, in one pass: latin-1 values
        return [(name.lower().encode("latin-1"), value.encode("latin-1")) for name, value in pairs]
    except (AttributeError, UnicodeEncodeError):
        return [(_header_bytes(name).lower(), _header_bytes(value)) for name, value in pairs]


def _header_bytes(text: object) -> bytes:
    """The bytes the environ builder would see in ``text``."""
    try:
        return native_value(text).encode("latin-1")
    except TypeError as error:
        raise BadRequest(str(error)) from error


def _last_forwarded(headers: list[tuple[bytes, bytes]]) -> str:
    """The client as the load balancer saw it: it appends to X-Forwarded-For, so the last entry."""
    for name, value in reversed(headers):
        if name == b"x-forwarded-for":
            return value.decode("latin-1").rsplit(",", 1)[-1].strip()
    return ""
