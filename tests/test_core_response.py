"""start_response rules, header validation and body framing (PEP 3333)."""

from __future__ import annotations

import sys

import pytest

from bridge import InvalidChunk, InvalidHeader, InvalidStatus, StartResponseError
from bridge._core.headers import encode_headers, parse_status
from bridge._core.response import ResponseState


@pytest.mark.parametrize("status", ["200 OK", "404 Not Found", "599 Whatever", "200 ", "204"])
def test_valid_statuses(status: str) -> None:
    assert parse_status(status) == int(status[:3])


@pytest.mark.parametrize(
    "status",
    [
        "OK",
        "20X OK",
        "200OK",
        "2000 OK",
        "099 Low",
        "200 OK\r\nX-Evil: 1",
        "200 OK\n",
        b"200 OK",
        200,
    ],
)
def test_malformed_statuses_are_refused(status: object) -> None:
    with pytest.raises(InvalidStatus):
        parse_status(status)


@pytest.mark.parametrize(
    "value",
    ["a\r\nSet-Cookie: evil=1", "a\nb", "a\rb", "a\x00b", "a\x01b", "a\x7fb", "日本"],
)
def test_header_values_that_could_split_the_response_are_refused(value: str) -> None:
    with pytest.raises(InvalidHeader, match="X-Test"):
        encode_headers([("X-Test", value)])


@pytest.mark.parametrize("name", ["X Bad:Name", "X-Bad\r\n", "", "Ä", "X:Y"])
def test_header_names_that_are_not_tokens_are_refused(name: str) -> None:
    with pytest.raises(InvalidHeader):
        encode_headers([(name, "v")])


def test_headers_are_lowercased_latin1_and_repeats_kept_in_order() -> None:
    encoded = encode_headers(
        [
            ("Content-Type", "text/plain"),
            ("Set-Cookie", "a=1"),
            ("Set-Cookie", "b=2"),
            ("X-Name", "café\t!"),
        ]
    )
    assert encoded == [
        (b"content-type", b"text/plain"),
        (b"set-cookie", b"a=1"),
        (b"set-cookie", b"b=2"),
        (b"x-name", b"caf\xe9\t!"),
    ]


def test_hop_by_hop_headers_are_dropped() -> None:
    encoded = encode_headers(
        [("Connection", "close"), ("Transfer-Encoding", "chunked"), ("X-A", "1")]
    )
    assert encoded == [(b"x-a", b"1")]


@pytest.mark.parametrize(
    "headers", ["Content-Type: x", [("a", "b", "c")], [["a", "b"]], [("a", 1)], None]
)
def test_malformed_header_lists_are_refused(headers: object) -> None:
    with pytest.raises(InvalidHeader):
        encode_headers(headers)


def test_header_tuple_sequence_is_accepted() -> None:
    assert encode_headers((("A", "1"),)) == [(b"a", b"1")]


def test_headers_wait_for_the_first_non_empty_chunk() -> None:
    state = ResponseState()
    state.start_response("200 OK", [("Content-Type", "text/plain")])
    assert state.body(b"") == []
    messages = state.body(b"hi")
    assert [m["type"] for m in messages] == ["http.response.start", "http.response.body"]
    assert messages[0]["status"] == 200
    assert messages[1] == {"type": "http.response.body", "body": b"hi", "more_body": True}
    assert state.finish() == [{"type": "http.response.body", "body": b"", "more_body": False}]


def test_empty_body_still_sends_a_start_message() -> None:
    state = ResponseState()
    state.start_response("204 No Content", [])
    messages = state.finish()
    assert [m["type"] for m in messages] == ["http.response.start", "http.response.body"]
    assert messages[1]["more_body"] is False


def test_second_start_response_without_exc_info_is_an_error_before_and_after_body() -> None:
    state = ResponseState()
    state.start_response("200 OK", [])
    with pytest.raises(StartResponseError, match="exc_info"):
        state.start_response("201 Created", [])
    state.body(b"x")
    with pytest.raises(StartResponseError):
        state.start_response("201 Created", [])


def test_exc_info_before_body_replaces_status_and_headers() -> None:
    state = ResponseState()
    state.start_response("200 OK", [("X-A", "1")])
    try:
        raise KeyError("boom")
    except KeyError:
        state.start_response("500 Internal Server Error", [("X-B", "2")], sys.exc_info())
    start = state.body(b"error page")[0]
    assert start["status"] == 500
    assert start["headers"] == [(b"x-b", b"2")]


def test_exc_info_after_body_reraises_the_apps_error() -> None:
    state = ResponseState()
    state.start_response("200 OK", [])
    state.body(b"partial")
    with pytest.raises(KeyError, match="boom"):
        try:
            raise KeyError("boom")
        except KeyError:
            state.start_response("500 Internal Server Error", [], sys.exc_info())


def test_body_before_start_response_is_an_error() -> None:
    with pytest.raises(StartResponseError, match="before calling start_response"):
        ResponseState().body(b"x")
    with pytest.raises(StartResponseError):
        ResponseState().finish()


@pytest.mark.parametrize("chunk", ["text", 5, None])
def test_non_bytes_chunks_are_a_type_error(chunk: object) -> None:
    state = ResponseState()
    state.start_response("200 OK", [])
    with pytest.raises(TypeError, match="bytes"):
        state.body(chunk)
    assert issubclass(InvalidChunk, TypeError)


def test_bytearray_and_memoryview_chunks_are_sent_as_bytes() -> None:
    state = ResponseState()
    state.start_response("200 OK", [])
    assert state.body(bytearray(b"ab"))[1]["body"] == b"ab"
    assert state.body(memoryview(b"cd"))[0]["body"] == b"cd"


def test_content_length_truncates_and_completes_the_response() -> None:
    state = ResponseState()
    state.start_response("200 OK", [("Content-Length", "5")])
    messages = state.body(b"1234567890")
    assert messages[1] == {"type": "http.response.body", "body": b"12345", "more_body": False}
    assert state.complete
    assert state.body(b"more") == []


def test_content_length_over_several_chunks_ends_on_the_last_byte() -> None:
    state = ResponseState()
    state.start_response("200 OK", [("Content-Length", "4")])
    assert state.body(b"ab")[1]["more_body"] is True
    assert state.body(b"cd") == [{"type": "http.response.body", "body": b"cd", "more_body": False}]


@pytest.mark.parametrize("value", ["abc", "-1", "5, 5", "1.5", ""])
def test_invalid_content_length_is_refused(value: str) -> None:
    with pytest.raises(InvalidHeader, match="Content-Length"):
        ResponseState().start_response("200 OK", [("Content-Length", value)])


def test_two_content_lengths_are_refused() -> None:
    with pytest.raises(InvalidHeader):
        ResponseState().start_response("200 OK", [("Content-Length", "1"), ("Content-Length", "1")])


@pytest.mark.parametrize("status", ["204 No Content", "304 Not Modified"])
def test_no_body_statuses_drop_the_body(status: str) -> None:
    state = ResponseState()
    state.start_response(status, [("Content-Length", "3")])
    assert state.body(b"abc") == []
    start, end = state.finish()
    assert end == {"type": "http.response.body", "body": b"", "more_body": False}
    has_length = any(name == b"content-length" for name, _ in start["headers"])
    assert has_length is status.startswith("304")


def test_unhashable_and_repeated_headers_are_checked_every_time() -> None:
    with pytest.raises(InvalidHeader, match="values must be str"):
        encode_headers([("X-List", ["a"])])
    for _ in range(2):  # the second round is served from the cache, with the same result
        assert encode_headers([("X-Same", "1")]) == [(b"x-same", b"1")]
        with pytest.raises(InvalidHeader):
            encode_headers([("X-Same", "1\r\n")])
