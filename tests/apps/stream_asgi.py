"""An ASGI app for the streaming tests, served through to_wsgi by a WSGI server.

``GET /download?size=N`` streams N bytes in 64 KiB chunks; ``POST /upload``
counts the body it receives; ``GET /pid`` names the serving process.
"""

from __future__ import annotations

import os
from typing import Any
from urllib.parse import parse_qs

import bridge

CHUNK = 64 * 1024


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
        answer = str(total).encode()
    else:
        answer = str(os.getpid()).encode()
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": answer})


wsgi = bridge.to_wsgi(app)
