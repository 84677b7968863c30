"""PEP 3333's response rules as a small state machine that emits ASGI messages.

Theory of operation: ``start_response`` only records the status and headers.
They go out with the first non-empty body chunk (or at the end of an empty
body), so an error raised before any body still becomes a clean 500, and
``exc_info`` can replace them until then. After that, ``exc_info`` re-raises
the app's error, and the response can only be aborted.

==============  =========================  ==========================
state           event                      result
==============  =========================  ==========================
not called      start_response()           pending
pending         start_response(exc_info)   pending, replaced
pending         first non-empty chunk      started: start + body
pending         end of body                complete: start + end
started         chunk                      body
started         Content-Length reached     complete
started         start_response(exc_info)   the app's error re-raised
any             start_response()           StartResponseError
==============  =========================  ==========================
"""

from __future__ import annotations

from typing import Final

from .._errors import AppProtocolError, InvalidChunk, InvalidHeader, StartResponseError
from .._types import Message, OptExcInfo
from .headers import encode_headers, parse_status

_NO_BODY_STATUSES: Final = frozenset({204, 205, 304})
# RFC 9110 15.3.5: a 204 carries no Content-Length (a 304 may describe the resource).
_NO_CONTENT_LENGTH: Final = frozenset({204, 205})


class ResponseState:
    """One response's progress from ``start_response`` to its last ASGI message."""

    __slots__ = (
        "_drop_body",
        "complete",
        "head",
        "headers",
        "remaining",
        "short",
        "started",
        "status",
    )

    def __init__(self, head: bool = False) -> None:
        self.status: int | None = None
        self.headers: list[tuple[bytes, bytes]] = []
        self.started = False
        self.complete = False
        self.remaining: int | None = None
        self._drop_body = False
        self.head = head  # a HEAD response may declare a length it does not send
        self.short = False  # the body ended before its Content-Length: the caller aborts

    def start_response(
        self, status: str, headers: object, exc_info: OptExcInfo | None = None
    ) -> None:
        if exc_info is not None and exc_info[1] is not None:
            if self.started:
                # PEP 3333: too late to replace the headers; the app's error propagates.
                raise exc_info[1].with_traceback(exc_info[2])
        elif self.status is not None:
            raise StartResponseError(
                "start_response() was called a second time without exc_info; call it once, "
                "or pass exc_info=sys.exc_info() to replace the headers of an error response"
            )
        code = parse_status(status)
        encoded = encode_headers(headers)
        remaining = None
        for name, value in encoded:
            if name == b"content-length":
                if remaining is not None or not value.isdigit():
                    raise InvalidHeader(
                        f"Content-Length {value.decode('latin-1')!r} is not one whole number; "
                        "send a single Content-Length with the body's size in bytes"
                    )
                remaining = int(value)
        if remaining is not None and code in _NO_CONTENT_LENGTH:
            encoded = [header for header in encoded if header[0] != b"content-length"]
            remaining = None
        self.status = code
        self.headers = encoded
        self._drop_body = code in _NO_BODY_STATUSES or code < 200
        # A 304's length describes the resource, not this (empty) body.
        self.remaining = None if self._drop_body else remaining

    def _start_message(self) -> Message:
        return {"type": "http.response.start", "status": self.status, "headers": self.headers}

    def body(self, chunk: object, last: bool = False) -> list[Message]:
        """The messages one body chunk turns into; ``last`` when no chunk follows."""
        started = self.started
        data = self.accept(chunk, last)
        if data is None:
            return []
        body: Message = {"type": "http.response.body", "body": data, "more_body": not self.complete}
        if started:
            return [body]
        return [self._start_message(), body]

    def finish(self) -> list[Message]:
        """The messages that end the response once the iterable is exhausted."""
        return self.body(b"", last=True)

    def accept(self, chunk: object, last: bool = False) -> bytes | None:
        """The bytes of ``chunk`` that go out, or ``None`` when nothing does.

        The first non-``None`` answer starts the response (``started``); the
        one that ends it sets ``complete``. For callers that gather the body
        themselves rather than send ASGI messages.
        """
        if type(chunk) is not bytes:
            chunk = _as_bytes(chunk)
        if self.complete:
            return None
        if self.status is None:
            raise StartResponseError(
                "the application produced a body before calling start_response(); "
                "call start_response(status, headers) first"
            )
        if self._drop_body:
            chunk = b""
        elif self.remaining is not None:
            if len(chunk) >= self.remaining:
                chunk = chunk[: self.remaining]
                last = True
            self.remaining -= len(chunk)
            if last and self.remaining and not self.head:
                # Ending it here would pass a short body off as whole (RELIABILITY 26).
                self.short = True
                last = False
                if not chunk:
                    return None
        if not chunk and not last:
            return None
        self.complete = last
        self.started = True
        return chunk


def short_body_error(state: ResponseState) -> AppProtocolError:
    """The error that aborts a response whose body ended before its Content-Length."""
    return AppProtocolError(
        f"the response body ended {state.remaining} bytes short of its Content-Length; "
        "send the whole body, or leave Content-Length out"
    )


def _as_bytes(chunk: object) -> bytes:
    if isinstance(chunk, (bytearray, memoryview)):
        return bytes(chunk)
    raise InvalidChunk(
        f"the application yielded {type(chunk).__name__} {_preview(chunk)}; WSGI bodies are "
        "bytes: encode text first, for example chunk.encode('utf-8')"
    )


def _preview(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def plain_response(status: int, text: str) -> list[Message]:
    """A complete short text response the bridge sends on its own behalf."""
    body = text.encode("utf-8")
    headers = [
        (b"content-type", b"text/plain; charset=utf-8"),
        (b"content-length", str(len(body)).encode("ascii")),
    ]
    return [
        {"type": "http.response.start", "status": status, "headers": headers},
        {"type": "http.response.body", "body": body, "more_body": False},
    ]


def plain_wsgi_response(status: int, text: str) -> tuple[str, list[tuple[str, str]], bytes]:
    """The same short answer as ``plain_response``, as WSGI status, headers and body."""
    start, body = plain_response(status, text)
    headers = [
        (name.decode("latin-1"), value.decode("latin-1")) for name, value in start["headers"]
    ]
    return f"{status} {_PHRASES[status]}", headers, body["body"]


_PHRASES: Final = {
    400: "Bad Request",
    411: "Length Required",
    413: "Content Too Large",
    500: "Internal Server Error",
}
