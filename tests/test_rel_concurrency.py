"""RELIABILITY.md sections H and L: the thread pool, greenlets, contextvars, the helpers.

Parallelism is shown with barriers and events, not with clocks: a pool smaller
than promised never fills a barrier (the wait times out and the test fails), a
larger one shows up in the recorded peak. tests/test_to_asgi.py,
tests/test_helpers.py and tests/test_await.py hold the rest of H and L; the
reliability map names each test.
"""

from __future__ import annotations

import contextvars
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anyio
import anyio.lowlevel
import greenlet
import pytest

import bridge
from bridge import GreenletExecutor, ThreadExecutor, sync_to_async, to_asgi
from tests.harness import FakeServer, make_scope

pytestmark = pytest.mark.anyio

request_var: contextvars.ContextVar[str] = contextvars.ContextVar("request_var", default="unset")
caller_var: contextvars.ContextVar[str] = contextvars.ContextVar("caller_var", default="unset")


def where() -> tuple[int, object]:
    """The worker running this: the thread, and the greenlet when it is a bridge greenlet."""
    current = greenlet.getcurrent()
    return threading.get_ident(), current if current.parent is not None else None


async def wait_for(event: anyio.Event) -> None:
    with anyio.fail_after(5):
        await event.wait()


async def until(condition: Any) -> None:
    with anyio.fail_after(5):
        while not condition():
            await anyio.sleep(0.005)


# --- H55. Parallelism equals the configured pool size ------------------------------------


async def test_h55_a_pool_of_four_runs_four_requests_at_once_never_more() -> None:
    pool = ThreadExecutor(max_workers=4)
    barrier = threading.Barrier(4, timeout=5)  # fewer than 4 at once: it breaks
    gate = threading.Event()
    lock = threading.Lock()
    running = [0]
    peak = [0]
    threads: set[int] = set()

    def app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        with lock:
            threads.add(threading.get_ident())
            running[0] += 1
            peak[0] = max(peak[0], running[0])
        try:
            barrier.wait()
            gate.wait(5)  # the first four hold their threads until all eight were handed in
        finally:
            with lock:
                running[0] -= 1
        start_response("200 OK", [])
        return [b"ok"]

    wrapped = to_asgi(app, executor=pool)
    statuses: list[int] = []

    async def one() -> None:
        statuses.append((await FakeServer(wrapped).request(make_scope())).status)

    async with anyio.create_task_group() as group:
        for _ in range(8):
            group.start_soon(one)
        await until(lambda: peak[0] >= 4)
        await anyio.wait_all_tasks_blocked()  # all eight requests have reached the pool
        busy = pool.threads
        gate.set()
    await pool.aclose()
    assert statuses == [200] * 8
    assert busy == 4
    assert peak[0] == 4
    assert len(threads) == 4  # the second four reused the first four threads


async def test_h55_greenlets_run_every_waiting_request_at_once() -> None:
    count = 50
    arrived = [0]
    everyone = anyio.Event()

    def app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        arrived[0] += 1
        if arrived[0] == count:
            everyone.set()
        bridge.await_(wait_for(everyone))  # only returns once all 50 are inside the app
        start_response("200 OK", [])
        return [b"ok"]

    wrapped = to_asgi(app, executor="greenlet")
    statuses: list[int] = []

    async def one() -> None:
        statuses.append((await FakeServer(wrapped).request(make_scope())).status)

    async with anyio.create_task_group() as group:
        for _ in range(count):
            group.start_soon(one)
    assert statuses == [200] * count


# --- H56. Pool saturation: requests queue, in order, none dropped ------------------------


async def test_h56_a_saturated_pool_queues_requests_in_order_and_drops_none() -> None:
    pool = ThreadExecutor(max_workers=1)
    release = threading.Event()
    order: list[str] = []

    def app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        order.append(environ["PATH_INFO"])
        if environ["PATH_INFO"] == "/0":
            release.wait(5)  # holds the only worker while the others arrive
        start_response("200 OK", [])
        return [environ["PATH_INFO"].encode()]

    wrapped = to_asgi(app, executor=pool)
    bodies: dict[str, bytes] = {}

    async def one(path: str) -> None:
        bodies[path] = (await FakeServer(wrapped).request(make_scope(path))).body

    paths = [f"/{index}" for index in range(6)]
    async with anyio.create_task_group() as group:
        for path in paths:
            group.start_soon(one, path)
            await anyio.wait_all_tasks_blocked()  # this request is in the pool before the next
        assert order == ["/0"]
        assert pool.threads == 1 and pool.idle == 0
        release.set()
    await pool.aclose()
    assert order == paths
    assert bodies == {path: path.encode() for path in paths}


# --- H57. ContextVar isolation -------------------------------------------------------------


async def test_h57_one_worker_two_requests_see_the_caller_and_not_each_other(
    executor: str,
) -> None:
    pool: str | ThreadExecutor = ThreadExecutor(max_workers=1) if executor == "thread" else executor
    seen: list[tuple[str, str]] = []
    workers: list[int] = []

    def app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        workers.append(threading.get_ident())
        seen.append((caller_var.get(), request_var.get()))
        request_var.set("set-inside-wsgi-" + environ["PATH_INFO"])
        start_response("200 OK", [])
        return [b"ok"]

    wrapped = to_asgi(app, executor=pool)
    caller_var.set("set-by-the-caller")
    await FakeServer(wrapped).request(make_scope("/r1"))
    await FakeServer(wrapped).request(make_scope("/r2"))
    assert workers[0] == workers[1]  # the same worker thread ran both
    assert seen == [("set-by-the-caller", "unset")] * 2
    assert request_var.get() == "unset"


async def test_h57_h59_concurrent_requests_keep_their_own_values(executor: str) -> None:
    count = 20
    arrived = [0]
    everyone = anyio.Event()
    lock = threading.Lock()
    results: dict[str, str] = {}

    async def all_inside() -> None:
        with lock:
            arrived[0] += 1
            last = arrived[0] == count
        if last:
            everyone.set()
        await wait_for(everyone)

    def app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        request_var.set(environ["PATH_INFO"])
        bridge.await_(all_inside())  # every request has set its value before any reads
        results[environ["PATH_INFO"]] = request_var.get()
        start_response("200 OK", [])
        return [b"ok"]

    wrapped = to_asgi(
        app, executor=ThreadExecutor(max_workers=count) if executor == "thread" else executor
    )
    async with anyio.create_task_group() as group:
        for index in range(count):
            group.start_soon(FakeServer(wrapped).request, make_scope(f"/{index}"))
    assert results == {f"/{index}": f"/{index}" for index in range(count)}


# --- H58. Thread-locals ----------------------------------------------------------------------


async def test_h58_thread_locals_outlive_a_request_on_a_reused_worker_as_documented() -> None:
    local = threading.local()
    seen: list[str | None] = []

    def app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        seen.append(getattr(local, "user", None))
        local.user = environ["PATH_INFO"]
        start_response("200 OK", [])
        return [b"ok"]

    wrapped = to_asgi(app, executor=ThreadExecutor(max_workers=1))
    await FakeServer(wrapped).request(make_scope("/alice"))
    await FakeServer(wrapped).request(make_scope("/bob"))
    assert seen == [None, "/alice"]  # inherent to a pool of reused threads
    docs = (Path(__file__).parent.parent / "docs" / "to_asgi.md").read_text()
    assert "Thread-locals outlive a request" in docs  # the expected answer: it is documented


# --- H59. The greenlet executor: the same guarantees ---------------------------------------


async def test_h59_a_hundred_disconnects_leave_no_greenlet_behind() -> None:
    """Case 41 for greenlets: each abandoned stream is closed, its greenlet back in the pool.

    Worker greenlets are kept for reuse; one still stuck in an abandoned
    request could not be handed the next one.
    """
    executor = GreenletExecutor()
    closed = [0]
    greenlets: set[object] = set()

    def app(environ: dict[str, Any], start_response: Any) -> Iterator[bytes]:
        greenlets.add(where()[1])
        start_response("200 OK", [])
        try:
            while True:
                yield b"x" * 1024
        finally:
            closed[0] += 1

    wrapped = to_asgi(app, executor=executor)
    for _ in range(100):
        exchange = await FakeServer(wrapped, send_fails_after=2).request(make_scope(), timeout=5)
        assert exchange.error is None
    assert closed[0] == 100
    assert len(greenlets) == 1  # the same greenlet came back free after every request

    def hello(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        start_response("200 OK", [])
        return [b"Hello"]

    exchange = await FakeServer(to_asgi(hello, executor=executor)).request(make_scope())
    assert exchange.body == b"Hello"


GEVENT_CHILD = """
import gevent.monkey
gevent.monkey.patch_all()
import logging, time
import anyio
import bridge
from tests.harness import FakeServer, make_scope

warnings = []

class Keep(logging.Handler):
    def emit(self, record):
        warnings.append(record.getMessage())

logging.getLogger("bridge").addHandler(Keep())

def app(environ, start_response):
    time.sleep(0.2)  # gevent's sleep: patched I/O inside a bridge greenlet
    start_response("200 OK", [])
    return [b"slept"]

async def main():
    exchange = await FakeServer(bridge.to_asgi(app, executor="greenlet")).request(
        make_scope("/patched"), timeout=5
    )
    print(exchange.status, exchange.body.decode())

anyio.run(main)
print(any("/patched" in w and "held the event loop" in w for w in warnings))
"""


def test_h59_patched_io_in_a_greenlet_is_reported_not_silent() -> None:
    """gevent-patched I/O in a bridge greenlet holds the loop: it works, and it is reported."""
    completed = subprocess.run(
        [sys.executable, "-c", GEVENT_CHILD],
        cwd=Path(__file__).parent.parent,
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert completed.stdout.split() == ["200", "slept", "True"], completed.stderr


# --- L93. Re-entrancy: sync -> async -> sync ----------------------------------------------


async def test_l93_the_inner_sync_call_runs_on_the_outer_thread_and_async_on_the_loop() -> None:
    loop_thread = threading.get_ident()

    async def middle() -> tuple[int, int]:
        await anyio.lowlevel.checkpoint()
        here = threading.get_ident()
        inner = await sync_to_async(threading.get_ident, thread_sensitive=True)()
        return here, inner

    def outer() -> tuple[int, tuple[int, int]]:
        return threading.get_ident(), bridge.await_(middle())

    outer_thread, (async_thread, inner_thread) = await sync_to_async(outer, thread_sensitive=True)()
    assert outer_thread != loop_thread
    assert async_thread == loop_thread
    assert inner_thread == outer_thread


# --- L94. Contextvar direction: in both directions, nothing flows back ---------------------


def test_l94_async_to_sync_from_a_plain_thread_sees_the_caller_and_gives_nothing_back() -> None:
    @bridge.async_to_sync
    async def read_and_change() -> str:
        seen = request_var.get()
        request_var.set("changed on the async side")
        return seen

    results: list[tuple[str, str]] = []

    def caller() -> None:
        request_var.set("from the sync caller")
        results.append((read_and_change(), request_var.get()))

    thread = threading.Thread(target=caller)
    thread.start()
    thread.join(5)
    assert results == [("from the sync caller", "from the sync caller")]


async def test_l94_both_crossings_in_one_chain_keep_the_rule(executor: str) -> None:
    trail: list[str] = []

    @bridge.async_to_sync
    async def inner() -> None:
        trail.append(request_var.get())
        request_var.set("set by inner async")

    def sync_side() -> None:
        trail.append(request_var.get())
        request_var.set("set by sync")
        inner()
        trail.append(request_var.get())

    request_var.set("set by the async caller")
    await sync_to_async(sync_side, executor=executor)()
    assert trail == ["set by the async caller", "set by sync", "set by sync"]
    assert request_var.get() == "set by the async caller"


# --- L95. Cancelling a task that awaits a sync call --------------------------------------


async def test_l95_cancelling_releases_the_caller_and_the_busy_slot_is_counted() -> None:
    pool = ThreadExecutor(max_workers=1)
    started = threading.Event()
    release = threading.Event()
    finished = threading.Event()

    def blocking() -> str:
        started.set()
        release.wait(5)  # plain blocking: no crossing where it could be stopped
        finished.set()
        return "done"

    async with anyio.create_task_group() as group:
        group.start_soon(sync_to_async(blocking, executor=pool))
        assert await anyio.to_thread.run_sync(started.wait, 5)
        group.cancel_scope.cancel()
    # The caller is released while the sync call still runs: the slot stays busy, and counted.
    assert not finished.is_set()
    assert (pool.threads, pool.idle) == (1, 0)
    release.set()
    assert await anyio.to_thread.run_sync(finished.wait, 5)
    await until(lambda: pool.idle == 1)  # the slot is free again once the call returned
    assert await sync_to_async(lambda: "next", executor=pool)() == "next"
    await until(lambda: pool.idle == 1)
    assert pool.threads == 1
    await pool.aclose()


# --- L96. Thread-sensitive calls: no deadlock between separate chains --------------------


async def test_l96_a_waiter_and_a_setter_in_separate_chains_do_not_deadlock() -> None:
    """asgiref runs both on its one thread-sensitive thread, and the waiter hangs there."""
    ready = threading.Event()
    outcome: dict[str, object] = {}

    async def waiter() -> None:
        outcome["waiter"] = await sync_to_async(lambda: ready.wait(5), thread_sensitive=True)()

    def set_it() -> str:
        ready.set()
        return "set"

    async def setter() -> None:
        outcome["setter"] = await sync_to_async(set_it, thread_sensitive=True)()

    async def separate_chains() -> None:
        async with anyio.create_task_group() as group:
            group.start_soon(waiter)
            await anyio.sleep(0.05)  # the waiter is blocking its thread by now
            group.start_soon(setter)

    await separate_chains()  # this test's task made no thread-sensitive call: two fresh chains
    assert outcome == {"waiter": True, "setter": "set"}
