"""await_ and Flask's async views under a real WSGI server (waitress, threads)."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
import waitress.server
from flask import Flask

import bridge
from tests.servers import HOST, run_waitress, wait_for_port


async def _where(tag: str) -> dict[str, Any]:
    await asyncio.sleep(0.001)
    return {"tag": tag, "thread": threading.get_ident(), "loop": id(asyncio.get_running_loop())}


def make_app() -> Flask:
    app = bridge.flask_async_views(Flask(__name__))

    @app.get("/sync")
    def sync_view() -> dict[str, Any]:
        answer = bridge.await_(_where("sync"))
        answer["view_thread"] = threading.get_ident()
        return answer

    @app.get("/async")
    async def async_view() -> dict[str, Any]:
        answer = await _where("async")
        answer["view_thread"] = threading.get_ident()
        return answer

    return app


@pytest.fixture(scope="module")
def waitress_url() -> Iterator[str]:
    server = waitress.server.create_server(make_app(), host=HOST, port=0, threads=2)
    port = server.effective_port  # type: ignore[union-attr]
    thread = threading.Thread(target=run_waitress, args=(server,), name="waitress", daemon=True)
    thread.start()
    wait_for_port(int(port))
    try:
        yield f"http://{HOST}:{port}"
    finally:
        server.close()
        thread.join(5)


@pytest.mark.parametrize("path", ["/sync", "/async"])
def test_views_await_on_the_serving_threads_own_reused_loop(waitress_url: str, path: str) -> None:
    with httpx.Client(base_url=waitress_url, timeout=10) as client:
        answers = [client.get(path).json() for _ in range(6)]
    for answer in answers:
        assert answer["thread"] == answer["view_thread"]  # no hop to another thread
    loops_per_thread: dict[int, set[int]] = {}
    for answer in answers:
        loops_per_thread.setdefault(answer["thread"], set()).add(answer["loop"])
    assert all(len(loops) == 1 for loops in loops_per_thread.values())
