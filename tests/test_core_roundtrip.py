"""Round trips through the translation core: scope -> environ -> scope, environ ->
scope -> environ, and a response start from WSGI to ASGI and back.

What must survive is what the ASGI spec's "WSGI compatibility" section maps
one to one (method, path, root path, query string, headers, scheme, server,
client, HTTP version) and what PEP 3333 lets an environ say. Where a round
trip loses something on purpose, the expectation says so and why; nothing
else may change. Each built value also passes the other side's checks:
``wsgiref.validate`` for environs, ``tests.asgi_rules`` for scopes.

The strategies here are shared with ``test_core_properties.py``.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import quote, unquote_to_bytes

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from bridge import BadRequest
from bridge._core.environ import EnvironBuilder
from bridge._core.response import ResponseState
from bridge._core.scope import scope_from_environ, wsgi_headers, wsgi_status
from tests.asgi_rules import check_http_scope, check_wsgi_environ

SETTINGS = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
_ABSENT: Any = object()  # a scope key left out altogether

# --- Paths. -----------------------------------------------------------------

# Any character but "/" and lone surrogates: accents, CJK, emoji (non-BMP), NUL.
text_segments = st.one_of(
    st.text(alphabet=st.characters(exclude_categories=["Cs"]), max_size=6),
    st.sampled_from(["é", "日本", "😀", "..", ".", "%", "%2F", "a;b=1", " ", "+"]),
).map(lambda text: text.replace("/", ""))
# Bytes a server could not decode as UTF-8, kept with surrogateescape (b"\xe9" ->
# "\udce9"); bytes that happen to be valid UTF-8 decode to their characters.
escaped_segments = st.binary(max_size=6).map(
    lambda raw: raw.replace(b"/", b"").decode("utf-8", "surrogateescape")
)
paths = st.lists(st.one_of(text_segments, escaped_segments), max_size=4).map(
    lambda parts: "/" + "/".join(parts)
)
root_paths = st.one_of(
    st.sampled_from(["", "/", "/a", "/a/", "/é", "/日本/x", "/😀/", "/a b"]),
    st.lists(text_segments.map(lambda text: text or "r"), min_size=1, max_size=2).map(
        lambda parts: "/" + "/".join(parts)
    ),
)

# --- Headers. ---------------------------------------------------------------

_TOKEN_CHARS = "!#$%&'*+-.^`|~0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
header_names = st.one_of(
    # Repeats and odd casing of one name: "X-A" and "x-a" are the same header.
    st.sampled_from([b"accept", b"Accept", b"cookie", b"Cookie", b"x-a", b"X-A", b"x-B"]),
    st.text(alphabet=_TOKEN_CHARS, min_size=1, max_size=10).map(str.encode),
    # CVE-2015-0219: names with "_" are dropped, never merged with a "-" twin.
    st.sampled_from([b"x_a", b"X_A", b"_", b"x-a_"]),
)
# RFC 9110 field values: visible characters, obs-text (latin-1), space, tab; or empty.
header_values = st.binary(max_size=16).map(
    lambda raw: bytes(b for b in raw if b == 0x09 or 0x20 <= b != 0x7F)
)
# Headers that may appear once at most; a second one is a 400 (RFC 9110).
single_headers = st.tuples(
    st.sampled_from([b"host", b"Host", b"HOST"]),
    st.sampled_from([b"content-type", b"Content-Type"]),
    st.sampled_from([b"content-length", b"Content-Length"]),
    st.one_of(st.none(), st.sampled_from([b"example.com", b"h:8080", b"[::1]:81", b"h:x", b""])),
    st.one_of(st.none(), st.sampled_from([b"text/plain", b"", b"application/json; q=1"])),
    st.one_of(st.none(), st.integers(0, 10**12).map(lambda n: str(n).encode())),
)


@st.composite
def request_headers(draw: st.DrawFn) -> list[tuple[bytes, bytes]]:
    repeated = draw(st.lists(st.tuples(header_names, header_values), max_size=10))
    host_name, type_name, length_name, host, content_type, length = draw(single_headers)
    singles = [
        (name, value)
        for name, value in ((host_name, host), (type_name, content_type), (length_name, length))
        if value is not None
    ]
    headers = repeated + singles
    return draw(st.permutations(headers))


# --- Scopes. ----------------------------------------------------------------

methods = st.sampled_from(["GET", "HEAD", "POST", "PUT", "DELETE", "OPTIONS", "PATCH", "PROPFIND"])
hosts = st.sampled_from(["127.0.0.1", "::1", "example.com", "localhost"])
ports = st.integers(0, 65535)


@st.composite
def http_scopes(draw: st.DrawFn) -> dict[str, Any]:
    """ASGI HTTP scopes as servers send them, optional keys sometimes left out."""
    root_path = draw(root_paths)
    kind = draw(st.sampled_from(["under", "sibling", "any"]))
    if kind == "under":  # a path under the root path, as uvicorn sends it
        path = root_path.rstrip("/") + draw(st.one_of(st.just(""), paths))
    elif kind == "sibling" and root_path.rstrip("/"):  # "/ab" for root "/a": not under it
        path = root_path.rstrip("/") + draw(text_segments) + draw(paths)
    else:  # any path: under the root path by chance, or already stripped
        path = draw(paths)
    raw_target = quote(path.encode("utf-8", "surrogateescape"), safe="/")
    scope: dict[str, Any] = {
        "type": "http",
        "asgi": {"version": "3.0", "spec_version": draw(st.sampled_from(["2.0", "2.3", "2.5"]))},
        "http_version": draw(st.sampled_from(["1.0", "1.1", "2"])),
        "method": draw(methods),
        "scheme": draw(st.sampled_from(["http", "https", _ABSENT])),
        "path": path,
        "raw_path": draw(st.sampled_from([raw_target.encode("ascii"), None, _ABSENT])),
        "query_string": draw(st.binary(max_size=24)),
        "root_path": _ABSENT if root_path == "" and draw(st.booleans()) else root_path,
        "headers": draw(request_headers()),
        "server": draw(
            st.one_of(st.tuples(hosts, ports), st.just(("/run/app.sock", None)), st.none())
        ),
        "client": draw(st.one_of(st.tuples(hosts, ports), st.none(), st.just(_ABSENT))),
    }
    return {key: value for key, value in scope.items() if value is not _ABSENT}


def expected_headers(headers: list[tuple[bytes, bytes]]) -> list[tuple[bytes, bytes]]:
    """The headers a scope gets back after a trip through an environ.

    Deliberately lossy, as PEP 3333 forces: an environ has one ``HTTP_*`` key
    per name, so names come back lower-cased (they are case-insensitive) and
    repeats come back joined, in order, with "," (RFC 9110 section 5.3) or,
    for Cookie, with "; " (RFC 9113 section 8.2.3; www.rst). Names with "_"
    are dropped on the way in (CVE-2015-0219), and an empty Content-Type or
    Content-Length means "none" in CGI terms, so it does not come back.
    """
    groups: dict[bytes, list[bytes]] = {}
    for name, value in headers:
        if b"_" not in name:
            groups.setdefault(name.lower(), []).append(value)
    result = []
    for name, values in groups.items():
        joined = (b"; " if name == b"cookie" else b",").join(values)
        if joined or name not in (b"content-type", b"content-length"):
            result.append((name, joined))
    return result


def expected_server(scope: dict[str, Any]) -> tuple[str, int] | None:
    """``server`` after the trip: as sent, or what the Host header says when it had no port.

    Lossy on purpose: PEP 3333 requires SERVER_NAME and SERVER_PORT, so a
    scope without ``server`` (or a Unix socket's ``[path, None]``) gets them
    from the Host header, or ``localhost`` and the scheme's default port.
    """
    server = scope.get("server")
    if server is not None and server[1] is not None:
        return (server[0], server[1])
    hosts = [value for name, value in scope["headers"] if name.lower() == b"host"]
    host = hosts[0].decode("latin-1") if hosts else ""
    name, colon, port = host.rpartition(":")
    if colon and port.isdigit():
        return (name, int(port)) if name else None
    return (host or "localhost", 443 if scope.get("scheme") == "https" else 80)


def expected_path(scope: dict[str, Any]) -> tuple[str, str]:
    """``(path, root_path)`` after the trip, as native strings would carry them.

    Lossy on purpose: the root path loses a trailing "/" (``SCRIPT_NAME`` never
    ends with one, and ``"/"`` is not allowed at all), and a path that is not
    under the root path is taken as already stripped, so it comes back with
    the root path in front (docs/to_asgi.md).
    """
    root = scope.get("root_path", "").rstrip("/")
    path: str = scope["path"]
    if root and not (path == root or path.startswith(root + "/")):
        path = root + path
    return path, root


@SETTINGS
@given(http_scopes())
@example(
    {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "2",
        "method": "GET",
        "path": "/mnt/😀/\udce9",
        "raw_path": b"/mnt/%F0%9F%98%80/%E9",
        "query_string": b"q=\xe9&a=%2F",
        "root_path": "/mnt/",
        "headers": [(b"Cookie", b"a=1"), (b"x_a", b"no"), (b"cookie", b"b=2"), (b"X-A", b"")],
        "server": ("/run/app.sock", None),
        "client": None,
    }
)
def test_scope_to_environ_to_scope_keeps_what_the_specs_map(scope: dict[str, Any]) -> None:
    environ = EnvironBuilder().build(scope)
    check_wsgi_environ(environ)
    path, root = expected_path(scope)
    try:
        path.encode("utf-8")
    except UnicodeEncodeError:
        # Bytes that are not UTF-8 reach a WSGI app as they are, but an ASGI
        # path is text: to_wsgi answers 400 (docs/errors.md), never a guess.
        with pytest.raises(BadRequest, match="not UTF-8"):
            scope_from_environ(environ)
        return
    again = scope_from_environ(environ)
    check_http_scope(again)

    assert again["method"] == scope["method"]
    assert again["scheme"] == scope.get("scheme", "http")
    assert again["http_version"] == scope["http_version"]
    assert again["query_string"] == scope["query_string"]
    # Surrogate-escaped bytes that form UTF-8 together come back as characters.
    native_path = path.encode("utf-8", "surrogateescape").decode("utf-8")
    assert (again["path"], again["root_path"]) == (native_path, root)
    assert again["path"].startswith(again["root_path"])
    # WSGI has no standard key for the raw target, so raw_path is rebuilt from
    # the path: "%2F" and "/" become one (lossy; the app still finds the
    # original in environ["asgi.scope"]). It must decode to the path it goes with.
    assert type(again["raw_path"]) is bytes and again["raw_path"].isascii()
    assert unquote_to_bytes(again["raw_path"]) == native_path.encode("utf-8")
    assert again["headers"] == expected_headers(scope["headers"])
    assert again["server"] == expected_server(scope)
    client = scope.get("client")
    assert again["client"] == (None if client is None else (client[0], client[1]))


# --- Environs. --------------------------------------------------------------

# Native strings decoded from any bytes but "/": "%" is a decoded "%25", NUL a
# decoded "%00", and bytes >= 0x80 may or may not form UTF-8.
byte_segments = st.binary(max_size=6).map(lambda raw: raw.replace(b"/", b"").decode("latin-1"))
utf8_segments = text_segments.map(lambda text: text.encode("utf-8").decode("latin-1"))
native_segments = st.one_of(byte_segments, utf8_segments)
# SCRIPT_NAME is "" or "/x..." and never ends with "/"; PATH_INFO is "" or "/...".
script_names = st.one_of(
    st.just(""),
    st.tuples(st.lists(native_segments, max_size=2), native_segments.map(lambda s: s or "s")).map(
        lambda parts: "".join("/" + part for part in [*parts[0], parts[1]])
    ),
)
path_infos = st.one_of(
    st.just(""), st.lists(native_segments, max_size=3).map(lambda parts: "/" + "/".join(parts))
)
# CGI names: the header name upper-cased with "-" as "_" ("X-A" is HTTP_X_A).
http_keys = st.one_of(
    st.sampled_from(["HTTP_HOST", "HTTP_COOKIE", "HTTP_ACCEPT", "HTTP_X_FORWARDED_FOR"]),
    st.text(alphabet="ABCXYZ019_.!~", min_size=1, max_size=8).map(lambda name: "HTTP_" + name),
).filter(lambda key: key not in ("HTTP_CONTENT_TYPE", "HTTP_CONTENT_LENGTH"))
native_values = st.binary(max_size=16).map(
    lambda raw: bytes(b for b in raw if b not in b"\r\n\x00").decode("latin-1")
)


@st.composite
def wsgi_environs(draw: st.DrawFn) -> dict[str, Any]:
    """PEP 3333 environs as WSGI servers build them (without wsgi.input)."""
    environ: dict[str, Any] = {
        "REQUEST_METHOD": draw(methods),
        "SCRIPT_NAME": draw(script_names),
        "PATH_INFO": draw(path_infos),
        "QUERY_STRING": draw(st.binary(max_size=24)).decode("latin-1"),
        "SERVER_NAME": draw(hosts),
        "SERVER_PORT": str(draw(ports)),
        "SERVER_PROTOCOL": draw(st.sampled_from(["HTTP/1.0", "HTTP/1.1", "HTTP/2"])),
        "wsgi.version": (1, 0),
        "wsgi.url_scheme": draw(st.sampled_from(["http", "https"])),
        "wsgi.errors": None,
        "wsgi.multithread": True,
        "wsgi.multiprocess": False,
        "wsgi.run_once": False,
    }
    environ.update(draw(st.dictionaries(http_keys, native_values, max_size=6)))
    for key, values in (
        ("CONTENT_TYPE", st.sampled_from(["", "text/plain", "multipart/form-data; b=x"])),
        ("CONTENT_LENGTH", st.one_of(st.just(""), st.integers(0, 10**9).map(str))),
    ):
        if draw(st.booleans()):
            environ[key] = draw(values)
    if draw(st.booleans()):
        environ["REMOTE_ADDR"] = draw(hosts)
        if draw(st.integers(0, 3)):  # REMOTE_PORT is common but not in PEP 3333
            environ["REMOTE_PORT"] = str(draw(ports))
    if draw(st.booleans()):
        # gunicorn's RAW_URI: the target as the client sent it, "%2F" and all.
        target = quote(environ["SCRIPT_NAME"] + environ["PATH_INFO"], safe="/", encoding="latin-1")
        query = environ["QUERY_STRING"]
        environ["RAW_URI"] = target + ("?" + query if query else "")
    return environ


def _pep3333_keys(environ: dict[str, Any]) -> dict[str, Any]:
    """The keys a WSGI app reads: CGI variables and wsgi.url_scheme."""
    # RAW_URI is gunicorn's, and SERVER_SOFTWARE names whoever built the environ.
    kept = {
        key: value
        for key, value in environ.items()
        if key.isupper() and key not in ("RAW_URI", "SERVER_SOFTWARE")
    }
    kept["wsgi.url_scheme"] = environ["wsgi.url_scheme"]
    for key in ("CONTENT_TYPE", "CONTENT_LENGTH"):
        # Lossy on purpose: an empty CONTENT_TYPE or CONTENT_LENGTH means "none"
        # in CGI and PEP 3333, so the scope carries no header and it stays absent.
        if kept.get(key) == "":
            del kept[key]
    if "REMOTE_ADDR" in kept:
        # Lossy on purpose: ASGI's client is a [host, int port] pair, so a
        # missing REMOTE_PORT becomes port 0 and comes back as "0".
        kept.setdefault("REMOTE_PORT", "0")
    return kept


@SETTINGS
@given(wsgi_environs())
@example(
    {
        "REQUEST_METHOD": "POST",
        "SCRIPT_NAME": "/caf\xc3\xa9",
        "PATH_INFO": "/a%2Fb/\x00",
        "QUERY_STRING": "q=\xe9",
        "SERVER_NAME": "::1",
        "SERVER_PORT": "0",
        "SERVER_PROTOCOL": "HTTP/1.0",
        "wsgi.version": (1, 0),
        "wsgi.url_scheme": "https",
        "wsgi.errors": None,
        "wsgi.multithread": True,
        "wsgi.multiprocess": False,
        "wsgi.run_once": False,
        "HTTP_COOKIE": "a=1; b=2",
        "HTTP_X__Y": "\xe9\t",
        "CONTENT_TYPE": "",
        "CONTENT_LENGTH": "3",
        "RAW_URI": "/caf%C3%A9/a%252Fb/%00?q=%E9",
    }
)
def test_environ_to_scope_to_environ_keeps_every_cgi_variable(environ: dict[str, Any]) -> None:
    script_name, path_info = environ["SCRIPT_NAME"], environ["PATH_INFO"]
    full = (script_name + path_info).encode("latin-1")
    try:
        path = full.decode("utf-8")
    except UnicodeDecodeError:
        # The ASGI path is text: a path that is not UTF-8 is a 400 (docs/errors.md).
        with pytest.raises(BadRequest, match="not UTF-8"):
            scope_from_environ(environ)
        return
    scope = scope_from_environ(environ)
    check_http_scope(scope)
    assert (scope["path"], scope["root_path"]) == (path, script_name.encode("latin-1").decode())
    raw_uri = environ.get("RAW_URI")
    if raw_uri is not None:
        assert scope["raw_path"] == raw_uri.split("?", 1)[0].encode("latin-1")
    else:
        assert unquote_to_bytes(scope["raw_path"]) == full
    assert scope["query_string"] == environ["QUERY_STRING"].encode("latin-1")

    again = EnvironBuilder().build(scope)
    check_wsgi_environ(again)
    assert _pep3333_keys(again) == _pep3333_keys(environ)


# --- Response starts, both ways. ----------------------------------------------

response_headers = st.lists(
    st.tuples(
        st.one_of(
            st.sampled_from(["Set-Cookie", "set-cookie", "X-A", "Connection", "Keep-Alive"]),
            st.text(alphabet=_TOKEN_CHARS + "_", min_size=1, max_size=8),
        ),
        header_values.map(lambda raw: raw.decode("latin-1")),
    ).filter(lambda pair: pair[0].lower() != "content-length"),
    max_size=6,
)
_HOP_BY_HOP = {"connection", "keep-alive", "te", "trailer", "transfer-encoding", "upgrade"}
_HOP_BY_HOP |= {"proxy-authenticate", "proxy-authorization", "trailers"}


@SETTINGS
@given(st.integers(100, 599), st.text(alphabet="OK Fine", max_size=8), response_headers)
def test_start_response_to_asgi_and_back_keeps_code_and_headers(
    code: int, reason: str, headers: list[tuple[str, str]]
) -> None:
    state = ResponseState()
    state.start_response(f"{code} {reason}", headers)
    start = state.finish()[0]
    # Lossy on purpose: ASGI drops the reason phrase (www.rst, "WSGI
    # compatibility"), so the way back writes the standard one; names come
    # back lower-cased (ASGI "must be lowercased"); hop-by-hop headers belong
    # to the server (PEP 3333) and are dropped. Order and repeats (Set-Cookie)
    # are kept: they must never be joined.
    assert wsgi_status(start["status"]).split(" ", 1)[0] == str(code)
    kept = [(n.lower(), v) for n, v in headers if n.lower() not in _HOP_BY_HOP]
    if code in (204, 205):
        kept = [(n, v) for n, v in kept if n != "content-length"]
    assert wsgi_headers(start["headers"]) == kept

    again = ResponseState()
    again.start_response(wsgi_status(start["status"]), wsgi_headers(start["headers"]))
    assert (again.status, again.headers) == (start["status"], start["headers"])
