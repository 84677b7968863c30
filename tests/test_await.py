"""await_ from every kind of sync code, and the context rule it follows."""

from __future__ import annotations

import asyncio
import contextvars
import threading
from typing import Any

import anyio
import pytest

import bridge
from bridge import AwaitError, to_asgi
from tests.harness import FakeServer, make_scope

request_id: contextvars.ContextVar[str] = contextvars.ContextVar("request_id", default="unset")
set_by_view: contextvars.ContextVar[str] = contextvars.ContextVar("set_by_view", default="unset")


async def loop_identity() -> tuple[int, int]:
    await asyncio.sleep(0)
    return threading.get_ident(), id(asyncio.get_running_loop())


def test_plain_sync_code_uses_its_threads_own_long_lived_loop() -> None:
    first = bridge.await_(loop_identity())
    second = bridge.await_(loop_identity())
    assert first == second
    assert first[0] == threading.get_ident()


def test_plain_sync_code_sees_its_context_and_gets_errors() -> None:
    async def read() -> str:
        return request_id.get()

    async def fail() -> None:
        raise KeyError("from the loop")

    token = request_id.set("script")
    try:
        assert bridge.await_(read()) == "script"
    finally:
        request_id.reset(token)
    with pytest.raises(KeyError, match="from the loop"):
        bridge.await_(fail())


@pytest.mark.anyio
async def test_on_a_running_loop_outside_a_worker_it_refuses_at_once() -> None:
    coroutine = loop_identity()
    with pytest.raises(AwaitError, match="use `await`"):
        bridge.await_(coroutine)
    assert coroutine.cr_frame is None  # closed, so no "never awaited" warning


@pytest.mark.anyio
async def test_the_context_rule(executor: str) -> None:
    """The app sees the caller's values; await_ sees the view's; nothing flows back or on."""
    seen: dict[str, list[str]] = {"app": [], "awaited": [], "after": [], "next": []}

    async def inside() -> None:
        seen["awaited"].append(set_by_view.get())
        set_by_view.set("changed-by-coroutine")

    def view(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        seen["next"].append(set_by_view.get())
        seen["app"].append(request_id.get())
        set_by_view.set(environ["PATH_INFO"])
        bridge.await_(inside())
        seen["after"].append(set_by_view.get())
        start_response("200 OK", [])
        return [b"ok"]

    wrapped = to_asgi(view, executor=executor)
    request_id.set("set-by-middleware")
    await FakeServer(wrapped).request(make_scope("/first"))
    await FakeServer(wrapped).request(make_scope("/second"))
    assert seen["app"] == ["set-by-middleware"] * 2
    assert seen["awaited"] == ["/first", "/second"]
    assert seen["after"] == ["/first", "/second"]
    assert seen["next"] == ["unset", "unset"]
    assert set_by_view.get() == "unset"


@pytest.mark.anyio
async def test_cancelling_the_request_cancels_the_awaitable_and_unwinds_the_view(
    executor: str,
) -> None:
    cancelled = threading.Event()
    unwound = threading.Event()

    async def long_call() -> None:
        try:
            await anyio.sleep(30)
        except BaseException:
            cancelled.set()
            raise

    def view(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        try:
            bridge.await_(long_call())
        finally:
            unwound.set()
        start_response("200 OK", [])
        return [b"never"]

    with anyio.move_on_after(0.2):
        await to_asgi(view, executor=executor)(make_scope(), _never, _discard)
    assert cancelled.is_set()
    assert await anyio.to_thread.run_sync(unwound.wait, 5)


async def _never() -> dict[str, Any]:
    await anyio.sleep_forever()
    raise AssertionError


async def _discard(message: dict[str, Any]) -> None:
    return None
