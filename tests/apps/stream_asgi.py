"""An ASGI app for the streaming tests, served through to_wsgi by a WSGI server.

``GET /download?size=N`` streams N bytes in 64 KiB chunks; ``POST /upload``
counts the body it receives and answers that and its Content-Length (``-``
when chunked); ``GET /pid`` names the serving process (a server
may run the app in a child). ``GET /endless?token=T`` streams 64 KiB chunks
until the bridge ends the app (8 s at most); ``GET /closed?token=T`` answers
``closed`` once the app's ``finally`` ran, ``exhausted`` if it ran out, else ``open``.
"""

from __future__ import annotations

import os
import time
from typing import Any
from urllib.parse import parse_qs

import bridge

CHUNK = 64 * 1024
ENDLESS_CAP = 8.0

_streams: dict[str, str] = {}  # token -> "open", "closed" or "exhausted"; on the loop only


async def endless(token: str, send: Any) -> None:
    _streams[token] = "open"
    deadline = time.monotonic() + ENDLESS_CAP
    block = b"e" * CHUNK
    await send({"type": "http.response.start", "status": 200, "headers": []})
    try:
        while time.monotonic() < deadline:
            await send({"type": "http.response.body", "body": block, "more_body": True})
        _streams[token] = "exhausted"
        await send({"type": "http.response.body", "body": b""})
    finally:
        if _streams[token] == "open":
            _streams[token] = "closed"


async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] != "http":
        raise RuntimeError("no lifespan")
    path = scope["path"]
    if path == "/download":
        size = int(parse_qs(scope["query_string"].decode())["size"][0])
        await send({"type": "http.response.start", "status": 200, "headers": []})
        block = b"x" * CHUNK
        while size > 0:
            piece = block[: min(size, CHUNK)]
            size -= len(piece)
            await send({"type": "http.response.body", "body": piece, "more_body": size > 0})
        return
    if path == "/upload":
        total = 0
        while True:
            message = await receive()
            total += len(message.get("body", b""))
            if not message.get("more_body", False):
                break
        length = dict(scope["headers"]).get(b"content-length", b"-")
        answer = b"%d %s" % (total, length)
    elif path == "/endless":
        await endless(parse_qs(scope["query_string"].decode())["token"][0], send)
        return
    elif path == "/closed":
        token = parse_qs(scope["query_string"].decode())["token"][0]
        answer = _streams.get(token, "unknown").encode()
    else:
        answer = str(os.getpid()).encode()
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": answer})


wsgi = bridge.to_wsgi(app)
