"""Cases 58-59 under greenlets: concurrent requests share one thread's locals; the docs say so."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import anyio
import pytest

import bridge
from bridge import to_asgi
from tests.harness import FakeServer, make_scope

pytestmark = pytest.mark.anyio


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


async def test_h59_concurrent_greenlet_requests_share_one_threading_local() -> None:
    local = threading.local()
    inside = anyio.Event()
    seen: dict[str, str] = {}

    async def wait_inside() -> None:
        with anyio.fail_after(5):
            await inside.wait()

    def app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        path = environ["PATH_INFO"]
        if path == "/first":
            local.user = "first"
            bridge.await_(wait_inside())  # the second request runs meanwhile
            seen[path] = local.user
        else:
            local.user = "second"
            inside.set()
        start_response("200 OK", [])
        return [b"ok"]

    wrapped = to_asgi(app, executor="greenlet")
    async with anyio.create_task_group() as group:
        group.start_soon(FakeServer(wrapped).request, make_scope("/first"))
        await anyio.sleep(0.05)
        group.start_soon(FakeServer(wrapped).request, make_scope("/second"))
    assert seen == {"/first": "second"}  # the first request sees the second one's value


def test_h59_the_docs_say_concurrent_greenlet_requests_share_thread_locals() -> None:
    docs = (Path(__file__).resolve().parent.parent / "docs" / "to_asgi.md").read_text().lower()
    trade_offs = docs[docs.index("## trade-offs to know") :]
    assert "greenlet" in trade_offs and "thread-local" in trade_offs
    assert "at the same time" in trade_offs or "concurrent" in trade_offs, trade_offs
