"""wsgi.input over a pull function: every read method, bodies split oddly (PEP 3333)."""

from __future__ import annotations

import contextvars
import io

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bridge import ClientDisconnected
from bridge._streams import ErrorStream, FileWrapper, InputStream

BODY = b"first line\nsecond line\n\nlast without newline"


def splits(body: bytes) -> list[list[bytes]]:
    """The body fed whole, one byte at a time, and in threes."""
    return [
        [body],
        [bytes([b]) for b in body],
        [body[i : i + 3] for i in range(0, len(body), 3)],
    ]


def stream(pieces: list[bytes]) -> tuple[InputStream, list[int]]:
    # pull()'s contract: b"" only at the end (the adapter skips empty messages).
    queue = [piece for piece in pieces if piece]
    calls = [0]

    def pull() -> bytes:
        calls[0] += 1
        return queue.pop(0) if queue else b""

    return InputStream(pull), calls


@pytest.mark.parametrize("pieces", splits(BODY))
def test_read_methods_match_bytesio(pieces: list[bytes]) -> None:
    for method, args in [
        ("read", ()),
        ("read", (-1,)),
        ("read", (None,)),
        ("read", (5,)),
        ("read", (0,)),
        ("read", (1000,)),
        ("readline", ()),
        ("readline", (3,)),
        ("readline", (0,)),
        ("readline", (100,)),
        ("readlines", ()),
        ("readlines", (12,)),
    ]:
        ours, _ = stream(pieces)
        expected = getattr(io.BytesIO(BODY), method)(*args)
        assert getattr(ours, method)(*args) == expected, (method, args)


@pytest.mark.parametrize("pieces", splits(BODY))
def test_iteration_yields_lines_and_ends(pieces: list[bytes]) -> None:
    ours, _ = stream(pieces)
    assert list(ours) == list(io.BytesIO(BODY))


def test_readlines_without_trailing_newline_adds_nothing() -> None:
    ours, _ = stream([b"a\nb", b"\nc"])
    assert ours.readlines() == [b"a\n", b"b\n", b"c"]


def test_reads_past_the_end_return_empty_bytes() -> None:
    ours, _ = stream([b"abc"])
    assert ours.read() == b"abc"
    assert ours.read() == b""
    assert ours.read(10) == b""
    assert ours.readline() == b""


def test_nothing_is_pulled_before_the_app_asks_and_no_more_than_needed() -> None:
    ours, calls = stream([b"ab", b"cd", b"ef"])
    assert calls == [0]
    assert ours.read(2) == b"ab"
    assert calls == [1]
    assert ours.read(3) == b"cde"
    assert calls == [3]


@given(st.lists(st.binary(max_size=20), max_size=20), st.lists(st.integers(-1, 30), max_size=10))
def test_mixed_reads_agree_with_bytesio(pieces: list[bytes], sizes: list[int]) -> None:
    body = b"".join(pieces)
    ours, _ = stream(pieces)
    reference = io.BytesIO(body)
    for index, size in enumerate(sizes):
        if index % 2:
            assert ours.readline(size) == reference.readline(size)
        else:
            assert ours.read(size) == reference.read(size)
    assert ours.read() == reference.read()


def test_a_disconnect_raises_an_oserror_not_a_short_body() -> None:
    pieces = [b"partial"]

    def pull() -> bytes:
        if pieces:
            return pieces.pop()
        raise ClientDisconnected("gone after 7 bytes")

    ours = InputStream(pull)
    with pytest.raises(OSError, match="gone after 7 bytes"):
        ours.read()


def test_file_wrapper_streams_blocks_and_closes_the_file() -> None:
    handle = io.BytesIO(b"x" * 10)
    wrapper = FileWrapper(handle, block_size=4)
    assert list(wrapper) == [b"xxxx", b"xxxx", b"xx"]
    wrapper.close()
    assert handle.closed


def test_error_stream_logs_one_record_per_flushed_message(caplog: pytest.LogCaptureFixture) -> None:
    errors = ErrorStream()
    with caplog.at_level("WARNING", logger="bridge.wsgi"):
        errors.write("Traceback:\n  line one\n")
        errors.writelines(["  line two\n", "Error: boom\n"])
        errors.flush()
        errors.write("second message\n")
        errors.flush()
        errors.flush()  # nothing pending: nothing logged
    assert [(r.levelname, r.getMessage()) for r in caplog.records] == [
        ("WARNING", "Traceback:\n  line one\n  line two\nError: boom"),
        ("WARNING", "second message"),
    ]


def test_error_stream_keeps_each_requests_text_apart(caplog: pytest.LogCaptureFixture) -> None:
    errors = ErrorStream()
    first, second = contextvars.Context(), contextvars.Context()
    with caplog.at_level("WARNING", logger="bridge.wsgi"):
        first.run(errors.write, "from the first ")
        second.run(errors.write, "from the second\n")
        first.run(errors.write, "request\n")
        first.run(errors.flush)
        second.run(errors.flush)
    assert [r.getMessage() for r in caplog.records] == [
        "from the first request",
        "from the second",
    ]


def test_error_stream_bounds_an_unflushed_message(caplog: pytest.LogCaptureFixture) -> None:
    errors = ErrorStream()
    line = "x" * 1000 + "\n"
    with caplog.at_level("WARNING", logger="bridge.wsgi"):
        for _ in range(100):  # 100 kB, never flushed
            errors.write(line)
    assert len(caplog.records) == 1  # once past 64 KiB, its whole lines went out
    assert len(caplog.records[0].getMessage()) > ErrorStream.LIMIT
