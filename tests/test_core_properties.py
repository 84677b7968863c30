"""Property tests of the translation core: outputs pass the specs' checks, bad inputs
get the documented error.

Every environ the core builds passes ``wsgiref.validate``; every ASGI message it
emits passes ``tests.asgi_rules``; every WSGI status and header list it hands a
WSGI server is valid HTTP (RFC 9110), and passes the validator's own, narrower
header checks whenever the headers are inside them. Inputs that cannot be
translated raise ``BadRequest`` (requests) or an ``AppProtocolError`` subclass
(responses), as docs/errors.md lists, and never anything else. Whether an
input is valid is decided here from RFC 9110's grammar, not by asking the code
under test.
"""

from __future__ import annotations

import re
import warnings
import wsgiref.validate
from http import HTTPStatus
from typing import Any

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from bridge import BadRequest, InvalidChunk, InvalidHeader, InvalidStatus
from bridge._core.environ import EnvironBuilder, split_path
from bridge._core.headers import HOP_BY_HOP, parse_status
from bridge._core.response import ResponseState
from bridge._core.scope import wsgi_headers, wsgi_status
from tests.asgi_rules import (
    check_http_scope,
    check_response_messages,
    check_wsgi_environ,
)
from tests.harness import make_scope
from tests.test_core_roundtrip import SETTINGS, http_scopes, paths

# RFC 9110: a token (header names), a field value, a status line's reason phrase.
_TOKEN = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
_FIELD_VALUE = re.compile(r"[\t\x20-\x7e\x80-\xff]*")
_STATUS_LINE = re.compile(r"[1-9][0-9]{2}(?: [\t\x20-\x7e\x80-\xff]*)?")
# Codes 600-999 fit "NNN reason" but are outside RFC 9110's 100-599, and the
# bridge passes them on today (reported, not settled): generated lines avoid them.
_HIGH_CODE = re.compile(r"[6-9][0-9]{2}(?: |$)")

# --- Requests: scope -> environ. --------------------------------------------

# Header names and values a server should have refused, as ASCII bytes: spaces,
# colons, CR, LF, NUL, DEL, empty names. Non-ASCII names are a known gap.
odd_names = st.one_of(
    st.binary(max_size=6).map(lambda raw: bytes(b & 0x7F for b in raw)),
    st.sampled_from([b"", b"x a", b"x:a", b"x\r\na", b"\x00", b"host ", b"content-length\n"]),
)
odd_values = st.one_of(
    st.binary(max_size=12),
    st.sampled_from([b"a\r\nx-evil: 1", b"\x00", b"\xff\xfe", b" padded "]),
)
_SINGLE_KEYS = frozenset({"CONTENT_TYPE", "CONTENT_LENGTH", "HTTP_HOST"})


_TOKEN_BYTES = frozenset(
    b"!#$%&'*+-.^`|~0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
)


def _environ_key(name: bytes) -> str | None:
    """The CGI name of a header name; ``None`` (dropped) when it has "_" (CVE-2015-0219)
    or is not an RFC 9110 token."""
    if not name or any(byte not in _TOKEN_BYTES for byte in name):
        return None
    text = name.decode("ascii").upper().replace("-", "_")
    return text if text in ("CONTENT_TYPE", "CONTENT_LENGTH") else "HTTP_" + text


@SETTINGS
@given(
    http_scopes(),
    st.lists(st.tuples(odd_names, odd_values), max_size=4),
    st.integers(0, 4),
)
@example(
    {"type": "http", "method": "GET", "path": "/", "headers": [(b"host", b"a")]},
    [(b"Host", b"b")],
    100,
)
def test_every_environ_passes_the_validator_or_the_request_is_a_400(
    scope: dict[str, Any], odd: list[tuple[bytes, bytes]], limit: int
) -> None:
    scope["headers"] = scope["headers"] + odd
    lengths = [v for n, v in scope["headers"] if _environ_key(n) == "CONTENT_LENGTH"]
    bad_length = any(not value.isdigit() for value in lengths)  # a 400 (RFC 9110 8.6)
    counts: dict[str, int] = {}
    for name, _ in scope["headers"]:
        key = _environ_key(name)
        if key is not None:
            counts[key] = counts.get(key, 0) + 1
    repeats = sum(count - 1 for count in counts.values())
    ambiguous = any(counts.get(key, 0) > 1 for key in _SINGLE_KEYS)
    try:
        environ = EnvironBuilder(max_duplicate_headers=limit).build(scope)
    except BadRequest:
        assert ambiguous or repeats > limit or bad_length
        return
    assert not ambiguous and repeats <= limit and not bad_length
    check_wsgi_environ(environ)
    if "HTTP_TRANSFER_ENCODING" in counts:
        # The server framed the body by Transfer-Encoding: a length beside it is left out.
        assert "CONTENT_LENGTH" not in environ
        counts.pop("CONTENT_LENGTH", None)
    for key in counts:
        assert key in environ
    for name, _ in scope["headers"]:
        if b"_" in name:
            # Dropped: nothing a "_" name sends may reach the app under its "-" twin.
            twin = _environ_key(name.replace(b"_", b"-"))
            assert twin not in environ or twin in counts


@given(paths, paths)
def test_split_path_never_cuts_inside_a_segment(root: str, path: str) -> None:
    script_name, path_info = split_path(path, root)
    assert path_info == "" or path_info.startswith("/") or script_name == ""
    if path.startswith(root.rstrip("/") + "/") and root.rstrip("/"):
        assert script_name + path_info == path


# --- Responses: start_response and a body -> ASGI messages. ----------------

_REASON_TEXT = st.text(alphabet=st.characters(max_codepoint=0xFF, exclude_categories=["Cc"]))
valid_statuses = st.builds(
    lambda code, reason: str(code) + reason,
    st.integers(100, 599),
    st.one_of(st.just(""), _REASON_TEXT.map(lambda text: " " + text)),
)
invalid_statuses = st.one_of(
    st.text(max_size=12).filter(lambda text: not _HIGH_CODE.match(text)),
    st.sampled_from(["200 OK\r\nX-Evil: 1", "200 OK\n", "200\x00", "200 日本", "200OK", "099 x"]),
    st.sampled_from([b"200 OK", 200, None, ["200 OK"]]),
)
# Three valid lines in four, so that most examples go on to the headers and body.
statuses = st.integers(0, 3).flatmap(lambda n: valid_statuses if n else invalid_statuses)
_TOKEN_ALPHABET = "!#$%&'*+-.^_`|~0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
_FIELD_ALPHABET = st.characters(max_codepoint=0xFF).filter(
    lambda char: _FIELD_VALUE.fullmatch(char) is not None
)
valid_pairs = st.tuples(
    st.one_of(
        st.sampled_from(["Content-Type", "X-A", "Set-Cookie", "Connection", "Transfer-Encoding"]),
        st.text(alphabet=_TOKEN_ALPHABET, min_size=1, max_size=8),
    ),
    st.text(alphabet=_FIELD_ALPHABET, max_size=10),
)
length_pairs = st.tuples(
    st.sampled_from(["Content-Length", "content-length"]),
    st.one_of(st.integers(0, 20).map(str), st.sampled_from(["-1", "", "5 ", "²", "0x5"])),
)
# One character that must not be in a name (anything but a token character)
# or in a value (controls but tab, DEL, anything past latin-1), inside good text.
_bad_name_char = st.characters().filter(lambda char: _TOKEN.fullmatch(char) is None)
_bad_value_char = st.one_of(
    st.characters(max_codepoint=0x1F).filter(lambda char: char != "\t"),
    st.sampled_from(["\x7f", "\u0100", "日", "😀"]),
)
bad_names = st.builds(
    lambda head, char, tail: head + char + tail,
    st.text(alphabet=_TOKEN_ALPHABET, max_size=4),
    _bad_name_char,
    st.text(alphabet=_TOKEN_ALPHABET, max_size=4),
)
bad_values = st.builds(
    lambda head, char, tail: head + char + tail,
    st.text(alphabet=_FIELD_ALPHABET, max_size=4),
    _bad_value_char,
    st.text(alphabet=_FIELD_ALPHABET, max_size=4),
)
good_names = valid_pairs.map(lambda pair: pair[0])
good_values = valid_pairs.map(lambda pair: pair[1])
odd_items = st.one_of(
    st.tuples(good_names, bad_values),
    st.tuples(bad_names, good_values),
    st.tuples(st.text(max_size=8), st.text(max_size=10)),
    st.tuples(st.sampled_from([b"X-A", 1, None, ""]), good_values),
    st.tuples(good_names, st.sampled_from([b"v", 1, None, ["v"]])),
    st.sampled_from([("X-A",), ("X-A", "1", "2"), ["X-A", "1"], "X-A: 1", None]),
)
header_lists = st.one_of(
    st.lists(st.one_of(valid_pairs, length_pairs), max_size=5),
    st.lists(st.one_of(valid_pairs, valid_pairs, odd_items), max_size=4),
    st.lists(valid_pairs, max_size=3).map(tuple),
    st.sampled_from([None, "X-A: 1", {"X-A": "1"}, iter([("X-A", "1")])]),
)
chunks = st.lists(
    st.one_of(
        st.binary(max_size=8),
        st.binary(max_size=8).map(bytearray),
        st.binary(max_size=8).map(lambda raw: memoryview(raw)),
        st.sampled_from(["text", 1, None]),
    ),
    max_size=4,
)


def _status_ok(status: object) -> bool:
    return type(status) is str and _STATUS_LINE.fullmatch(status) is not None


def _pair_ok(item: object) -> bool:
    if type(item) is not tuple or len(item) != 2:
        return False
    name, value = item
    return (
        type(name) is str
        and _TOKEN.fullmatch(name) is not None
        and type(value) is str
        and _FIELD_VALUE.fullmatch(value) is not None
    )


def _headers_ok(headers: object) -> bool:
    if not isinstance(headers, (list, tuple)) or not all(_pair_ok(item) for item in headers):
        return False
    lengths = [value for name, value in headers if name.lower() == "content-length"]
    return len(lengths) <= 1 and all(value.isascii() and value.isdigit() for value in lengths)


@SETTINGS
@given(statuses, header_lists, chunks)
@example("204 No Content", [("Content-Length", "3"), ("X-A", "é")], [b"abc"])
@example("200 OK", [("Content-Length", "4"), ("Set-Cookie", "a"), ("Set-Cookie", "b")], [b"abcdef"])
@example("103 Early Hints", [("Link", "</a>")], [b"x"])
@example("200 OK", [("X-A", "a\rb")], [])
@example("200 OK", [("X A", "1")], [])
def test_start_response_emits_valid_asgi_messages_or_a_documented_error(
    status: object, headers: Any, body: list[Any]
) -> None:
    state = ResponseState()
    try:
        state.start_response(status, headers)  # type: ignore[arg-type]
    except InvalidStatus:
        assert not _status_ok(status)
        return
    except InvalidHeader:
        assert _status_ok(status) and not _headers_ok(headers)
        return
    assert _status_ok(status) and _headers_ok(headers)
    messages = []
    fed = 0
    try:
        for chunk in body:
            messages += state.body(chunk)
            fed += 1
    except InvalidChunk:
        assert not isinstance(body[fed], (bytes, bytearray, memoryview))
        return
    assert isinstance(status, str)
    complete_before_finish = state.complete
    messages += state.finish()
    if state.short:
        # A body short of its Content-Length is held open for the caller to abort.
        declared = int(next(v for n, v in headers if n.lower() == "content-length"))
        assert sum(len(bytes(chunk)) for chunk in body) < declared
        assert not any(m["type"] == "http.response.body" and not m["more_body"] for m in messages)
        return
    check_response_messages(messages)

    code = int(status[:3])
    sent = [(n.lower().encode(), v.encode("latin-1")) for n, v in headers]
    sent = [(n, v) for n, v in sent if n not in HOP_BY_HOP]
    if code in (204, 205):  # RFC 9110 section 8.6: no Content-Length on a 204
        sent = [(n, v) for n, v in sent if n != b"content-length"]
    assert messages[0]["status"] == code
    assert messages[0]["headers"] == sent
    whole = b"".join(bytes(chunk) for chunk in body)
    length = next((int(v) for n, v in sent if n == b"content-length"), None)
    if code < 200 or code in (204, 205, 304):
        whole = b""  # no body on these statuses (RFC 9110 sections 6.4.1, 15.3.5)
    elif length is not None:
        # PEP 3333: never more than the declared length, and the response is
        # complete (the app's iterable no longer read) once that much was sent.
        assert complete_before_finish is (bool(body) and len(whole) >= length)
        whole = whole[:length]
    assert b"".join(message["body"] for message in messages[1:]) == whole


@SETTINGS
@given(
    st.sampled_from([200, 201, 404, 500, 204, 205, 304, 103]),
    st.integers(0, 12),
    st.lists(st.binary(max_size=6), max_size=4),
)
def test_content_length_frames_the_body(code: int, length: int, body: list[bytes]) -> None:
    state = ResponseState()
    state.start_response(f"{code} Reason", [("Content-Length", str(length))])
    messages = []
    for index, chunk in enumerate(body):
        messages += state.body(chunk)
        if code < 200 or code in (204, 205, 304):
            continue
        # Complete as soon as the declared length went out, and not before.
        assert state.complete is (sum(map(len, body[: index + 1])) >= length)
    messages += state.finish()
    whole = b"".join(body)
    bodiless = code < 200 or code in (204, 205, 304)
    # Short of its length, the body is held open (never marked complete) for an abort.
    assert state.short is (not bodiless and len(whole) < length)
    if state.short:
        assert b"".join(m["body"] for m in messages[1:]) == whole
        assert all(m["more_body"] for m in messages[1:])
        return
    check_response_messages(messages)
    sent = b"".join(message["body"] for message in messages[1:])
    if code < 200 or code in (204, 205, 304):
        assert sent == b""
    else:
        assert sent == b"".join(body)[:length]
    # RFC 9110 section 8.6: a 204 (and a 205) carries no Content-Length; a 304 may.
    has_length = (b"content-length", str(length).encode()) in messages[0]["headers"]
    assert has_length is (code not in (204, 205))


def test_every_character_in_a_name_or_value_is_judged_as_rfc_9110_says() -> None:
    # Exhaustive where sampling is thin: each of the first 384 code points,
    # inside a name and inside a value, through both directions.
    for point in range(0x180):
        char = chr(point)
        for name, value in ((f"X{char}A", "v"), ("X-A", f"a{char}b")):
            ok = _pair_ok((name, value))
            state = ResponseState()
            try:
                state.start_response("200 OK", [(name, value)])
            except InvalidHeader:
                assert not ok, (name, value)
            else:
                assert ok, (name, value)
            if point > 0xFF:
                continue  # not a byte: the ASGI side cannot carry it at all
            try:
                wsgi_headers([(name.encode("latin-1"), value.encode("latin-1"))])
            except InvalidHeader:
                assert not ok, (name, value)
            else:
                assert ok, (name, value)


# --- Responses the other way: ASGI start -> WSGI status and headers. -------

asgi_statuses = st.one_of(
    st.integers(-5, 1100),
    st.sampled_from([True, 200.0, "200", b"200", None]),
)


@given(asgi_statuses)
def test_asgi_status_becomes_a_valid_wsgi_status_line_or_invalid_status(status: object) -> None:
    try:
        line = wsgi_status(status)
    except InvalidStatus:
        assert not (type(status) is int and 100 <= status <= 599)
        return
    assert type(status) is int
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        wsgiref.validate.check_status(line)  # type: ignore[attr-defined]
    assert parse_status(line) == status
    reason = HTTPStatus(status).phrase if status in HTTPStatus._value2member_map_ else "Unknown"
    assert line == f"{status} {reason}"


_BYTES_LIKE = (bytes, bytearray, memoryview)
valid_asgi_pairs = valid_pairs.map(lambda pair: (pair[0].encode(), pair[1].encode("latin-1")))
asgi_header_items = st.one_of(
    valid_asgi_pairs,
    valid_asgi_pairs.map(lambda pair: [bytearray(pair[0]), memoryview(pair[1])]),
    st.tuples(good_names.map(str.encode), bad_values.map(lambda text: text.encode("utf-8"))),
    st.tuples(bad_names.map(lambda text: text.encode("utf-8")), good_values.map(str.encode)),
    st.tuples(st.binary(max_size=6), st.binary(max_size=6)),
    # Not bytes: the error must say so. Ints and lists of ints are a known gap.
    st.tuples(st.sampled_from(["x-a", None, 1.5, ("x",)]), st.just(b"v")),
    st.tuples(st.just(b"x-a"), st.sampled_from(["v", None, 1.5, (b"v",)])),
    st.sampled_from([(b"x-a",), (b"x-a", b"1", b"2"), None]),
)
asgi_header_lists = st.one_of(
    st.lists(valid_asgi_pairs, max_size=5),
    st.lists(asgi_header_items, max_size=4),
    st.sampled_from([None, ()]),
)


def _asgi_pair(item: object) -> tuple[str, str] | None:
    """The latin-1 text of a valid ASGI header, or ``None`` if it is not one."""
    if not isinstance(item, (tuple, list)) or len(item) != 2:
        return None
    name, value = item
    if not isinstance(name, _BYTES_LIKE) or not isinstance(value, _BYTES_LIKE):
        return None
    text_name, text_value = bytes(name).decode("latin-1"), bytes(value).decode("latin-1")
    if _TOKEN.fullmatch(text_name) is None or _FIELD_VALUE.fullmatch(text_value) is None:
        return None
    return text_name, text_value


@SETTINGS
@given(asgi_header_lists)
@example([(b"set-cookie", b"a=1"), (b"Set-Cookie", b"b=2"), (b"connection", b"close")])
@example([(b"x-a", b"\r")])
@example([(b"x a", b"1")])
def test_asgi_headers_become_valid_wsgi_headers_or_invalid_header(headers: Any) -> None:
    expected = [_asgi_pair(item) for item in headers or ()]
    lengths = [value for name, value in filter(None, expected) if name.lower() == "content-length"]
    if len(lengths) > 1 or any(not value.isdigit() for value in lengths):
        expected.append(None)  # one Content-Length of digits, or the app broke the rules
    try:
        result = wsgi_headers(headers)
    except InvalidHeader:
        assert None in expected
        return
    assert None not in expected
    assert result == [
        pair for pair in expected if pair and pair[0].lower().encode() not in HOP_BY_HOP
    ]
    for name, value in result:
        # PEP 3333: native strings; RFC 9110: a token and a field value.
        assert type(name) is str and _TOKEN.fullmatch(name)
        assert type(value) is str and _FIELD_VALUE.fullmatch(value)


# wsgiref.validate's own header rules are narrower than RFC 9110: a name must
# start with a letter and hold only letters, digits, "-" and "_", must not end
# in "-" or "_" or be "Status" (CGI rules), and a value may not hold a tab.
# Headers inside those rules must pass the validator unchanged.
_validator_names = st.from_regex(r"[A-Za-z]([A-Za-z0-9\-_]*[A-Za-z0-9])?", fullmatch=True).filter(
    lambda name: name.lower() not in ("status", "content-length")
)
_validator_values = st.text(
    alphabet=st.characters(min_codepoint=0x20, max_codepoint=0xFF, exclude_characters="\x7f"),
    max_size=12,
)


@SETTINGS
@given(st.lists(st.tuples(_validator_names, _validator_values), max_size=6))
def test_headers_inside_the_validators_rules_pass_it(pairs: list[tuple[str, str]]) -> None:
    asgi = [(name.encode(), value.encode("latin-1")) for name, value in pairs]
    result = wsgi_headers(asgi)
    assert result == [pair for pair in pairs if pair[0].lower().encode() not in HOP_BY_HOP]
    wsgiref.validate.check_headers(result)  # type: ignore[attr-defined]

    state = ResponseState()
    state.start_response("200 OK", list(pairs))
    assert state.headers == [
        (name.lower(), value) for name, value in asgi if name.lower() not in HOP_BY_HOP
    ]


@pytest.mark.parametrize(
    ("name", "value"), [("X-A", "a\tb"), ("X!Tag", "1"), ("1-Leading-Digit", "1")]
)
def test_rfc_9110_headers_the_validator_is_stricter_about_still_pass(name: str, value: str) -> None:
    # Valid HTTP that wsgiref.validate refuses: the bridge follows RFC 9110.
    assert wsgi_headers([(name.encode(), value.encode())]) == [(name, value)]
    with pytest.raises(AssertionError):
        wsgiref.validate.check_headers([(name, value)])  # type: ignore[attr-defined]


# --- The checkers themselves: each rule can fail. --------------------------

_START = {"type": "http.response.start", "status": 200, "headers": [(b"x-a", b"1")]}
_END = {"type": "http.response.body", "body": b"", "more_body": False}


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("type", "websocket"),
        ("http_version", "1"),
        ("method", b"GET"),
        ("method", "GET /"),
        ("scheme", ""),
        ("path", b"/"),
        ("raw_path", "/"),
        ("query_string", "a=1"),
        ("root_path", None),
        ("headers", [(b"X-A", b"1")]),
        ("headers", [(b"x-a", "1")]),
        ("headers", [(b"x-a",)]),
        ("headers", [(b":authority", b"h")]),
        ("headers", b"x-a: 1"),
        ("client", ("127.0.0.1", "80")),
        ("client", ("127.0.0.1", None)),
        ("server", ("127.0.0.1",)),
        ("state", []),
    ],
)
def test_the_scope_checker_refuses_what_the_spec_forbids(key: str, value: object) -> None:
    scope = make_scope()
    check_http_scope(scope)
    scope[key] = value
    with pytest.raises(AssertionError, match="ASGI rule broken"):
        check_http_scope(scope)


@pytest.mark.parametrize(
    "messages",
    [
        [{**_START, "status": "200"}, _END],
        [{**_START, "status": True}, _END],
        [{**_START, "status": 600}, _END],
        [{**_START, "headers": [(b"X-A", b"1")]}, _END],
        [{**_START, "headers": [(b"x-a", "1")]}, _END],
        [_START, {**_END, "body": "text"}],
        [_START, {**_END, "more_body": 0}],
        [_START, {**_END, "more_body": True}],
        [_START, {**_END, "more_body": True}, _END, _END],
        [_START, _START, _END],
        [_START],
    ],
)
def test_the_message_checker_refuses_what_the_spec_forbids(
    messages: list[dict[str, Any]],
) -> None:
    check_response_messages([_START, _END])
    with pytest.raises(AssertionError, match="ASGI rule broken"):
        check_response_messages(messages)
