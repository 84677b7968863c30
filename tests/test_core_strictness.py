"""Inputs the property tests found the core too lenient with: each is now refused as documented."""

from __future__ import annotations

from typing import Any

import pytest

from bridge import BadRequest, InvalidHeader, InvalidStatus
from bridge._core.environ import EnvironBuilder
from bridge._core.response import ResponseState
from bridge._core.scope import scope_from_environ, wsgi_headers, wsgi_status


def scope(**changes: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "GET",
        "scheme": "http",
        "path": "/",
        "raw_path": b"/",
        "query_string": b"",
        "root_path": "",
        "headers": [(b"host", b"testserver")],
        "server": ("127.0.0.1", 8000),
        "client": ("127.0.0.1", 50000),
    }
    base.update(changes)
    return {key: value for key, value in base.items() if value is not _DROP}


_DROP: Any = object()


def _id(changes: object) -> str:
    return repr(changes).replace(repr(_DROP), "<absent>")


def environ(**changes: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "REQUEST_METHOD": "GET",
        "SCRIPT_NAME": "",
        "PATH_INFO": "/",
        "QUERY_STRING": "",
        "SERVER_NAME": "127.0.0.1",
        "SERVER_PORT": "8000",
        "SERVER_PROTOCOL": "HTTP/1.1",
        "wsgi.url_scheme": "http",
    }
    base.update(changes)
    return {key: value for key, value in base.items() if value is not _DROP}


# A malformed scope is a BadRequest, never another exception escaping to the server.
@pytest.mark.parametrize(
    "changes",
    [
        {"path": "/\ud800"},  # a lone surrogate that surrogateescape cannot carry
        {"path": b"/x"},
        {"path": _DROP},
        {"method": b"GET"},
        {"method": _DROP},
        {"query_string": "a=1"},
        {"root_path": b"/a", "path": "/a/x"},
        {"headers": None},
        {"headers": _DROP},
        {"headers": [("x-a", b"1")]},
        {"headers": [(b"x-a", "1")]},
        {"headers": [(b"x-a", b"1", b"2")]},
        {"server": ("127.0.0.1",)},
        {"client": ("127.0.0.1",)},
        {"http_version": None},
    ],
    ids=_id,
)
def test_malformed_scope_is_a_bad_request(changes: dict[str, Any]) -> None:
    with pytest.raises(BadRequest):
        built = EnvironBuilder().build(scope(**changes))
        # Accepting it would do only if the environ were still PEP 3333's.
        assert all(type(v) is str for k, v in built.items() if k.isupper()), built


# Header names that are not RFC 9110 tokens are dropped like names with "_": upper-cased,
# b"\xb5" would leave latin-1 and b"\xdf" would pass for "ss" (CVE-2015-0219's kind).
@pytest.mark.parametrize("name", [b"\xb5", b"\xff"])
def test_non_ascii_header_names_give_native_keys_and_survive_the_way_back(name: bytes) -> None:
    try:
        built = EnvironBuilder().build(scope(headers=[(name, b"1")]))
    except BadRequest:
        return
    for key in built:
        key.encode("latin-1")
    scope_from_environ(built)


def test_sharp_s_header_does_not_merge_with_ss() -> None:
    built = EnvironBuilder().build(scope(headers=[(b"ss", b"real"), (b"\xdf", b"spoof")]))
    assert built.get("HTTP_SS") == "real"


# A Content-Length that is not a number is a BadRequest (RFC 9110 8.6).
@pytest.mark.parametrize("value", [b"abc", b"-1", b"5, 5", b"0x10"])
def test_non_numeric_content_length_is_a_bad_request(value: bytes) -> None:
    with pytest.raises(BadRequest):
        EnvironBuilder().build(scope(method="POST", headers=[(b"content-length", value)]))


# SERVER_PROTOCOL "HTTP/2.0" (Apache's mod_http2 under mod_wsgi) is ASGI http_version "2".
def test_http_2_0_protocol_becomes_http_version_2() -> None:
    assert scope_from_environ(environ(SERVER_PROTOCOL="HTTP/2.0"))["http_version"] == "2"


# An ASGI app's headers must be (bytes, bytes) pairs: bytes(0) == b"" must not pass.
@pytest.mark.parametrize(
    "headers",
    [5, [(b"x-a", 0)], [([120], [104, 105])], [(b"x-a", [104, 105])]],
    ids=_id,
)
def test_asgi_headers_that_are_not_bytes_are_invalid(headers: Any) -> None:
    with pytest.raises(InvalidHeader):
        wsgi_headers(headers)


# RFC 9110 15: status codes outside 100-599 are invalid, in both directions.
@pytest.mark.parametrize("code", [600, 799, 999])
def test_status_codes_past_599_are_invalid(code: int) -> None:
    with pytest.raises(InvalidStatus):
        ResponseState().start_response(f"{code} Beyond", [])
    with pytest.raises(InvalidStatus):
        wsgi_status(code)
