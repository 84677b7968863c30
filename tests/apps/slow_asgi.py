"""An ASGI app whose every request waits 0.5 s on the loop, served through to_wsgi."""

from __future__ import annotations

import asyncio
from typing import Any

import bridge


async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] != "http":
        raise RuntimeError("no lifespan")
    await asyncio.sleep(0.5)
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b"slept"})


wsgi = bridge.to_wsgi(app)
