"""WSGI environ -> ASGI HTTP scope, and ASGI response start -> WSGI status and headers.

The other direction of ``environ.py``, with no I/O. Native strings go back to
bytes as latin-1, then the path is read as UTF-8, as the ASGI spec's "WSGI
compatibility" section asks.
"""

from __future__ import annotations

from http import HTTPStatus
from typing import Any
from urllib.parse import quote

from .._errors import BadRequest, InvalidHeader, InvalidStatus
from .._types import Environ, Scope
from .headers import encode_pair

WSGI_ENVIRON_KEY = "wsgi.environ"
"""The scope key under which the ASGI app finds the WSGI environ."""

_REASONS = {status.value: status.phrase for status in HTTPStatus}
_SPECIAL_HEADERS = {"CONTENT_TYPE": b"content-type", "CONTENT_LENGTH": b"content-length"}
_TWINS = {"HTTP_CONTENT_TYPE": "CONTENT_TYPE", "HTTP_CONTENT_LENGTH": "CONTENT_LENGTH"}
_BYTES_LIKE = (bytes, bytearray, memoryview)
_VERSIONS = {"HTTP/1.0": "1.0", "HTTP/1.1": "1.1", "HTTP/2": "2", "HTTP/2.0": "2", "HTTP/3": "3"}


def _utf8(native: str, what: str) -> str:
    try:
        return native.encode("latin-1").decode("utf-8")
    except UnicodeError as error:
        raise BadRequest(f"the {what} is not UTF-8: {native!r}") from error


def _raw_path(environ: Environ, path: str) -> bytes:
    # gunicorn sets RAW_URI and others REQUEST_URI: the target as the client sent
    # it, so %2F stays apart from /. Otherwise rebuild it from the decoded path.
    target = environ.get("RAW_URI") or environ.get("REQUEST_URI")
    if target:
        raw = str(target).split("?", 1)[0]
        if raw.startswith("/"):
            return raw.encode("latin-1")
    return quote(path, safe="/:@!$&'()*+,;=-._~").encode("ascii")


def scope_from_environ(environ: Environ, state: dict[str, Any] | None = None) -> Scope:
    """The ASGI HTTP scope of one WSGI request; ``BadRequest`` if it cannot be one."""
    try:
        return _scope_from_environ(environ, state)
    except (UnicodeError, KeyError, TypeError, AttributeError) as error:
        # PEP 3333 promises latin-1 native strings and a REQUEST_METHOD; a server broke that.
        raise BadRequest(
            f"the WSGI server sent an environ PEP 3333 does not allow: {error!r}"
        ) from error


def _scope_from_environ(environ: Environ, state: dict[str, Any] | None) -> Scope:
    script_name = _utf8(environ.get("SCRIPT_NAME", ""), "script name")
    path = script_name + _utf8(environ.get("PATH_INFO", ""), "path")
    headers: list[tuple[bytes, bytes]] = []
    for key, value in environ.items():
        if key.startswith("HTTP_"):
            twin = _TWINS.get(key)
            if twin is not None and environ.get(twin):
                continue  # some servers set both; the CGI variable is the one PEP 3333 means
            name = key[5:].lower().replace("_", "-").encode("latin-1")
        else:
            special = _SPECIAL_HEADERS.get(key)
            if special is None or not value:
                continue
            if key == "CONTENT_LENGTH" and not str(value).isdigit():
                # A lenient server let it through; the app would read a body of another size.
                raise BadRequest(f"CONTENT_LENGTH {value!r} is not one whole number")
            name = special
        headers.append((name, str(value).encode("latin-1")))
    protocol = str(environ.get("SERVER_PROTOCOL", "HTTP/1.1")).upper()
    scope: Scope = {
        "type": "http",
        "asgi": {"version": "3.0", "spec_version": "2.3"},
        "http_version": _VERSIONS.get(protocol, "1.1"),
        "method": environ["REQUEST_METHOD"],
        "scheme": environ.get("wsgi.url_scheme", "http"),
        "path": path,
        "raw_path": _raw_path(environ, path),
        "query_string": environ.get("QUERY_STRING", "").encode("latin-1"),
        "root_path": script_name,
        "headers": headers,
        "client": _address(environ.get("REMOTE_ADDR"), environ.get("REMOTE_PORT")),
        "server": _address(environ.get("SERVER_NAME"), environ.get("SERVER_PORT")),
        WSGI_ENVIRON_KEY: environ,
    }
    if state is not None:
        scope["state"] = state.copy()
    return scope


def _address(host: object, port: object) -> tuple[str, int] | None:
    if not host:
        return None
    try:
        return str(host), int(str(port))
    except ValueError:
        return str(host), 0


def wsgi_status(status: object) -> str:
    """The WSGI status line of an ASGI status code."""
    if type(status) is not int or not 100 <= status <= 599:  # RFC 9110 15: others are invalid
        raise InvalidStatus(f"the ASGI app sent status {status!r}; send an int such as 200")
    return f"{status} {_REASONS.get(status, 'Unknown')}"


def wsgi_headers(headers: object) -> list[tuple[str, str]]:
    """Validated WSGI response headers from ASGI ``[(name, value), ...]`` byte pairs."""
    result: list[tuple[str, str]] = []
    length_seen = False
    if headers is None:
        return result
    try:
        items = headers if isinstance(headers, (list, tuple)) else list(headers)  # type: ignore[call-overload]
    except TypeError as error:
        raise InvalidHeader(
            f"the ASGI app sent headers {headers!r}; send a list of (name, value) pairs"
        ) from error
    for item in items:
        try:
            raw_name, raw_value = item
            if not isinstance(raw_name, _BYTES_LIKE) or not isinstance(raw_value, _BYTES_LIKE):
                raise TypeError("not bytes")
            pair = (bytes(raw_name).decode("latin-1"), bytes(raw_value).decode("latin-1"))
        except (TypeError, ValueError) as error:
            raise InvalidHeader(
                f"the ASGI app sent the header {item!r}; send (name, value) pairs of bytes"
            ) from error
        if encode_pair(pair) is not None:  # None: a hop-by-hop header, dropped
            if pair[0].lower() == "content-length":
                if length_seen or not pair[1].isdigit():
                    raise InvalidHeader(
                        f"the ASGI app sent Content-Length {pair[1]!r} (or a second one); send "
                        "a single Content-Length with the body's size in bytes"
                    )
                length_seen = True
            result.append(pair)
    return result
