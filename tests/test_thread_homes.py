"""Thread-sensitive calls: one thread per chain (per request), both executors, no race."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import anyio
import httpx
import pytest

import bridge
from tests.harness import FakeServer, make_scope
from tests.servers import uvicorn_server

pytestmark = pytest.mark.anyio


# --- issue 13.3: a call offered to a thread just leaving await_ ---------------------------


def _double_nested_task() -> Callable[[], None]:
    """asgiref's test_double_nested_task, on bridge's API."""

    def s2a(function: Callable[[], Any]) -> Callable[[], Any]:
        return bridge.sync_to_async(function, thread_sensitive=True)

    async def inner() -> asyncio.Task[Any]:
        return asyncio.create_task(s2a(lambda: None)())

    async def outer() -> asyncio.Task[Any]:
        return asyncio.create_task(s2a(bridge.async_to_sync(inner))())

    async def main() -> None:
        await (await s2a(bridge.async_to_sync(outer))())

    return bridge.async_to_sync(main)


def test_a_thread_sensitive_call_never_waits_on_a_thread_that_left_await() -> None:
    # Before the fix about 12 of 20 runs hung: the call sat in the queue of a
    # job whose thread had taken its reply and gone.
    hung = 0
    errors: list[BaseException] = []

    def run() -> None:
        try:
            _double_nested_task()()
        except BaseException as error:  # pragma: no cover - reported below
            errors.append(error)

    for _ in range(50):
        thread = threading.Thread(target=run, daemon=True)
        thread.start()
        thread.join(5)
        hung += thread.is_alive()
    assert not errors, errors
    assert hung == 0


# --- issue 14.3: per request, under both executors ---------------------------------------


def _probe_app(in_flight: int) -> tuple[Callable[..., Any], list[list[int]]]:
    """A WSGI app whose requests make thread-sensitive calls at several depths.

    Every request waits, between its calls, until ``in_flight`` requests have
    made their first call, so they all hold their threads at once.
    """
    seen: list[list[int]] = []
    arrived = 0
    everyone: dict[str, asyncio.Event] = {}

    def where() -> int:
        return threading.get_ident()

    sensitive = bridge.sync_to_async(where, thread_sensitive=True)

    def sync_middle() -> int:
        # sync -> await_ -> async -> thread-sensitive sync, two levels down.
        return bridge.await_(sensitive())

    async def deep() -> list[int]:
        nonlocal arrived
        first = await sensitive()
        arrived += 1
        event = everyone.setdefault("all", asyncio.Event())
        if arrived == in_flight:
            event.set()
        await asyncio.wait_for(event.wait(), 10)
        # Through a plain worker thread (not thread-sensitive) and back down.
        through_pool = await bridge.sync_to_async(sync_middle)()
        # Through a thread-sensitive call that awaits another one.
        nested = await bridge.sync_to_async(sync_middle, thread_sensitive=True)()
        # From a task the request spawned.
        spawned = await asyncio.create_task(sensitive())
        return [first, through_pool, nested, spawned]

    def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> list[bytes]:
        threads = bridge.await_(deep())
        threads.append(bridge.await_(sensitive()))
        seen.append(threads)
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [b"ok"]

    return app, seen


def _check_homes(seen: list[list[int]], requests: int) -> None:
    assert len(seen) == requests
    for threads in seen:
        assert len(set(threads)) == 1, threads  # one thread per request...
    homes = [threads[0] for threads in seen]
    assert len(set(homes)) == requests  # ...and no two requests share one
    assert threading.get_ident() not in homes


@pytest.mark.parametrize("anyio_backend", ["asyncio"])
async def test_each_request_has_its_own_thread_for_thread_sensitive_calls(
    executor: str,
) -> None:
    requests = 20
    app, seen = _probe_app(requests)
    server = FakeServer(bridge.to_asgi(app, executor=executor))
    statuses: list[int] = []

    async def one(index: int) -> None:
        exchange = await server.request(make_scope(f"/{index}"), timeout=30)
        statuses.append(exchange.status)

    async with anyio.create_task_group() as group:
        for index in range(requests):
            group.start_soon(one, index)
    assert statuses == [200] * requests
    _check_homes(seen, requests)


def test_each_request_has_its_own_thread_under_uvicorn(executor: str) -> None:
    requests = 20
    app, seen = _probe_app(requests)
    with uvicorn_server(bridge.to_asgi(app, executor=executor), lifespan="off") as running:

        async def main() -> list[int]:
            async with httpx.AsyncClient(base_url=running.url, timeout=30) as client:
                answers = await asyncio.gather(
                    *(client.get(f"/{index}") for index in range(requests))
                )
            return [answer.status_code for answer in answers]

        assert asyncio.run(main()) == [200] * requests
    _check_homes(seen, requests)


# --- a finished thread job is freed by reference counting ---------------------------------


@pytest.mark.parametrize("anyio_backend", ["asyncio"])
@pytest.mark.parametrize("sensitive", [False, True])
async def test_a_finished_call_lets_go_of_its_arguments_without_the_collector(
    sensitive: bool,
) -> None:
    # The job used to keep itself in its own context (job -> context -> job):
    # whatever the call held stayed alive until the collector ran.
    import gc
    import weakref

    class Held:
        pass

    def use(held: Held) -> None:
        pass

    held = Held()
    gone = weakref.ref(held)
    gc.disable()
    try:
        await bridge.sync_to_async(use, thread_sensitive=sensitive)(held)
        del held
        with anyio.fail_after(5):
            while gone() is not None:  # the worker drops its last reference just after
                await anyio.sleep(0.01)
    finally:
        gc.enable()


# --- issue 13.4: fork from a worker ------------------------------------------------------


def test_a_child_forked_from_a_worker_crosses_on_its_own() -> None:
    # The child inherited its parent's job (kept per thread), frames and
    # chain threads, and waited for a loop and threads it does not have.
    script = Path(__file__).with_name("fork_child.py")
    completed = subprocess.run(
        [sys.executable, str(script)],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=script.parent.parent,
    )
    assert completed.returncode == 0, completed.stderr
    outcomes = dict(line.split() for line in completed.stdout.splitlines())
    assert len(outcomes) == 12, completed.stdout
    assert set(outcomes.values()) == {"0"}, outcomes


@pytest.mark.parametrize("anyio_backend", ["asyncio"])
async def test_a_greenlet_requests_own_thread_ends_with_the_request() -> None:
    # An idle worker greenlet kept the first job it ran (its context, its
    # request's thread) for as long as it lived.
    import gc

    sensitive = bridge.sync_to_async(threading.get_ident, thread_sensitive=True)

    def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> list[bytes]:
        bridge.await_(sensitive())
        start_response("200 OK", [])
        return [b"ok"]

    def sticky() -> set[threading.Thread]:
        return {thread for thread in threading.enumerate() if thread.name == "bridge-sticky"}

    before = sticky()
    server = FakeServer(bridge.to_asgi(app, executor="greenlet"))
    async with anyio.create_task_group() as group:
        for _ in range(20):
            group.start_soon(server.request, make_scope("/"))
    with anyio.fail_after(5):
        while sticky() - before:
            # Not a cycle (the collector did not help), but the request object
            # and its job still hold each other until it runs: issue 13.5's.
            gc.collect()
            await anyio.sleep(0.01)
