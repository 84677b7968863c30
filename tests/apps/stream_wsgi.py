"""A WSGI app for the streaming tests, served through to_asgi by an ASGI server.

``thread`` and ``greenlet`` are the app through ``bridge.to_asgi`` with that
executor, for a server's command line (``granian ... tests.apps.stream_wsgi:thread``).

* ``GET /download?size=N``: N bytes in 64 KiB chunks, no Content-Length.
* ``POST /upload``: reads the body in 64 KiB pieces; answers its length and
  the request's Content-Length (``-`` when chunked).
* ``GET /pid``: the serving process (a server may run the app in a child).
* ``GET /await``: a value from ``bridge.await_`` on the server's loop.
* ``GET /endless?token=T``: 64 KiB chunks until closed (8 s at most);
  ``GET /closed?token=T`` answers ``closed``, ``exhausted`` or ``open``.
"""

from __future__ import annotations

import asyncio
import os
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any
from urllib.parse import parse_qs

import bridge

CHUNK = 64 * 1024
ENDLESS_CAP = 8.0

_lock = threading.Lock()
_streams: dict[str, str] = {}  # token -> "open", "closed" or "exhausted"


def chunks_of(size: int, fill: bytes = b"x") -> Iterator[bytes]:
    """``size`` bytes in CHUNK-sized blocks, generated, never held whole."""
    block = fill * CHUNK
    full, rest = divmod(size, CHUNK)
    for _ in range(full):
        yield block
    if rest:
        yield block[:rest]


class Endless:
    """64 KiB chunks until ``close()``; the cap keeps a missed disconnect from running on."""

    def __init__(self, token: str) -> None:
        self.token = token
        self.deadline = time.monotonic() + ENDLESS_CAP
        self.block = b"e" * CHUNK
        with _lock:
            _streams[token] = "open"

    def __iter__(self) -> Endless:
        return self

    def __next__(self) -> bytes:
        if time.monotonic() > self.deadline:
            with _lock:
                _streams[self.token] = "exhausted"
            raise StopIteration
        return self.block

    def close(self) -> None:
        with _lock:
            if _streams[self.token] == "open":
                _streams[self.token] = "closed"


async def _awaited(text: str) -> str:
    await asyncio.sleep(0.001)
    return text.upper()


def _text(start_response: Callable[..., Any], text: str) -> list[bytes]:
    body = text.encode()
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))])
    return [body]


def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Any:
    path = environ["PATH_INFO"]
    query = {key: values[0] for key, values in parse_qs(environ["QUERY_STRING"]).items()}
    if path == "/download":
        start_response("200 OK", [("Content-Type", "application/octet-stream")])
        return chunks_of(int(query["size"]))
    if path == "/upload":
        stream = environ["wsgi.input"]
        total = 0
        while piece := stream.read(CHUNK):
            total += len(piece)
        return _text(start_response, f"{total} {environ.get('CONTENT_LENGTH') or '-'}")
    if path == "/pid":
        return _text(start_response, str(os.getpid()))
    if path == "/await":
        return _text(start_response, bridge.await_(_awaited("awaited")))
    if path == "/endless":
        start_response("200 OK", [("Content-Type", "application/octet-stream")])
        return Endless(query["token"])
    if path == "/closed":
        with _lock:
            return _text(start_response, _streams.get(query["token"], "unknown"))
    start_response("404 Not Found", [("Content-Type", "text/plain"), ("Content-Length", "0")])
    return [b""]


thread = bridge.to_asgi(app, executor="thread")
greenlet = bridge.to_asgi(app, executor="greenlet")
