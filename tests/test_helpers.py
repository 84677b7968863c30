"""sync_to_async and async_to_sync: both executors, both backends, nesting, errors."""

from __future__ import annotations

import contextvars
import threading
import traceback
from typing import Any

import anyio
import anyio.lowlevel
import greenlet
import pytest

import bridge
from bridge import AwaitError, ConfigurationError, async_to_sync, sync_to_async

pytestmark = pytest.mark.anyio

caller_value: contextvars.ContextVar[str] = contextvars.ContextVar("caller_value", default="unset")


def where() -> tuple[int, bool]:
    current = greenlet.getcurrent()
    return threading.get_ident(), getattr(current, "__sqlalchemy_greenlet_provider__", False)


async def test_sync_to_async_runs_where_the_executor_says(executor: str) -> None:
    thread, await_provider = await sync_to_async(where, executor=executor)()
    assert (thread == threading.get_ident()) is (executor == "greenlet")
    assert await_provider  # SQLAlchemy's asyncio drivers can wait there, under either executor


async def test_both_decorator_forms_keep_the_name_and_arguments(executor: str) -> None:
    @sync_to_async
    def add(a: int, b: int = 0) -> int:
        return a + b

    @sync_to_async(executor=executor)
    def join(*parts: str, sep: str = "-") -> str:
        return sep.join(parts)

    assert await add(1, b=2) == 3
    assert await join("a", "b", sep="+") == "a+b"
    assert add.__name__ == "add"


async def test_coroutine_functions_are_refused() -> None:
    async def already_async() -> None: ...

    with pytest.raises(ConfigurationError, match="await it directly"):
        sync_to_async(already_async)


class AsyncCallable:
    async def __call__(self) -> str:
        return "never run by a worker"


class SyncCallable:
    def __call__(self) -> str:
        return "run by a worker"


@pytest.mark.parametrize("form", ["direct", "decorator"])
async def test_what_a_worker_cannot_run_is_refused_when_wrapping(form: str) -> None:
    def wrap(target: Any) -> Any:
        if form == "direct":
            return sync_to_async(target)
        return sync_to_async(executor="thread")(target)

    with pytest.raises(ConfigurationError, match="needs a sync function or callable, got 1"):
        wrap(1)
    with pytest.raises(ConfigurationError, match=r"__call__ is async def.*await it directly"):
        wrap(AsyncCallable())
    # A class is a sync callable (it builds an instance); so is an instance with a sync __call__.
    assert isinstance(await wrap(AsyncCallable)(), AsyncCallable)
    assert await wrap(SyncCallable())() == "run by a worker"


async def test_errors_cross_with_type_and_traceback(executor: str) -> None:
    def fails() -> None:
        raise LookupError("from the sync side")

    with pytest.raises(LookupError, match="from the sync side") as caught:
        await sync_to_async(fails, executor=executor)()
    assert "fails" in "".join(traceback.format_tb(caught.value.__traceback__))


@pytest.mark.parametrize("error", [KeyboardInterrupt, SystemExit])
async def test_keyboard_interrupt_and_system_exit_are_not_swallowed(
    executor: str, error: type[BaseException]
) -> None:
    def stop() -> None:
        raise error

    with pytest.raises(error):
        await sync_to_async(stop, executor=executor)()


async def test_the_context_rule_sees_the_caller_and_gives_nothing_back(executor: str) -> None:
    def read_and_change() -> str:
        seen = caller_value.get()
        caller_value.set("changed on the sync side")
        return seen

    caller_value.set("from the caller")
    assert await sync_to_async(read_and_change, executor=executor)() == "from the caller"
    assert caller_value.get() == "from the caller"


async def test_nesting_to_any_depth(executor: str) -> None:
    other = "thread" if executor == "greenlet" else "greenlet"
    trail: list[str] = []

    async def innermost() -> str:
        await anyio.lowlevel.checkpoint()
        trail.append("async 3")
        return "bottom"

    def sync_two() -> str:
        trail.append("sync 2")
        return bridge.await_(innermost())

    async def async_two() -> str:
        trail.append("async 2")
        return await sync_to_async(sync_two, executor=other)()

    def sync_one() -> str:
        trail.append("sync 1")
        return bridge.await_(async_two())

    assert await sync_to_async(sync_one, executor=executor)() == "bottom"
    assert trail == ["sync 1", "async 2", "sync 2", "async 3"]


async def test_greenlet_calls_wait_together_without_threads() -> None:
    @sync_to_async(executor="greenlet")
    def view() -> int:
        bridge.await_(anyio.sleep(0.2))
        return threading.get_ident()

    results: list[int] = []

    async def one() -> None:
        results.append(await view())

    started = anyio.current_time()
    async with anyio.create_task_group() as group:
        for _ in range(100):
            group.start_soon(one)
    assert anyio.current_time() - started < 1.5
    assert set(results) == {threading.get_ident()}


async def test_cancelling_the_caller_releases_it_and_frees_the_worker(executor: str) -> None:
    """The caller is released at once; the sync side unwinds at its next crossing."""
    finished = threading.Event()

    def slow() -> None:
        try:
            bridge.await_(anyio.sleep(30))
        finally:
            finished.set()

    started = anyio.current_time()
    with anyio.move_on_after(0.1):
        await sync_to_async(slow, executor=executor)()
    assert anyio.current_time() - started < 0.5
    assert await anyio.to_thread.run_sync(finished.wait, 5)


async def test_async_to_sync_on_the_loop_thread_refuses_at_once() -> None:
    async def value() -> int:
        return 1

    with pytest.raises(AwaitError):
        async_to_sync(value)()


async def test_async_to_sync_inside_sync_to_async_runs_on_the_callers_loop(executor: str) -> None:
    loop_thread = threading.get_ident()

    @async_to_sync
    async def where_async(tag: str) -> tuple[str, int]:
        await anyio.lowlevel.checkpoint()
        return tag, threading.get_ident()

    assert await sync_to_async(where_async, executor=executor)("x") == ("x", loop_thread)


def test_async_to_sync_from_plain_threads_gives_each_thread_one_loop() -> None:
    import asyncio

    @async_to_sync
    async def loop_and_thread() -> tuple[int, int]:
        return id(asyncio.get_running_loop()), threading.get_ident()

    seen: list[tuple[tuple[int, int], tuple[int, int], int]] = []
    together = threading.Barrier(3, timeout=5)  # all loops alive at once: distinct ids

    def twice() -> None:
        seen.append((loop_and_thread(), loop_and_thread(), threading.get_ident()))
        together.wait()

    workers = [threading.Thread(target=twice) for _ in range(3)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(5)
    assert len(seen) == 3
    for first, second, thread in seen:
        assert first == second  # the thread's loop is reused, call after call
        assert first[1] == thread  # and runs in the calling thread: no hop
    assert len({first[0] for first, _, _ in seen}) == 3


def thread_id() -> int:
    return threading.get_ident()


async def test_thread_sensitive_calls_of_one_chain_share_one_thread() -> None:
    sensitive = sync_to_async(thread_id, thread_sensitive=True)
    first, second = await sensitive(), await sensitive()
    assert first == second != threading.get_ident()


async def test_thread_sensitive_chains_do_not_serialize_the_process() -> None:
    def nap() -> int:
        threading.Event().wait(0.3)
        return threading.get_ident()

    threads: list[int] = []

    async def chain() -> None:
        threads.append(await sync_to_async(nap, thread_sensitive=True)())

    started = anyio.current_time()
    async with anyio.create_task_group() as group:
        for _ in range(4):
            group.start_soon(chain)
    assert anyio.current_time() - started < 1.0
    assert len(set(threads)) == 4


async def test_a_nested_thread_sensitive_call_returns_to_the_outer_thread() -> None:
    async def middle() -> int:
        return await sync_to_async(thread_id, thread_sensitive=True)()

    def outer() -> tuple[int, int]:
        return threading.get_ident(), bridge.await_(middle())

    for sensitive in (False, True):
        outer_thread, inner_thread = await sync_to_async(outer, thread_sensitive=sensitive)()
        assert inner_thread == outer_thread


async def test_a_to_asgi_request_keeps_thread_sensitive_calls_on_its_thread() -> None:
    from bridge import to_asgi
    from tests.harness import FakeServer, make_scope

    async def helper() -> int:
        return await sync_to_async(thread_id, thread_sensitive=True)()

    def view(environ: dict[str, object], start_response: object) -> list[bytes]:
        same = bridge.await_(helper()) == threading.get_ident()
        start_response("200 OK", [])  # type: ignore[operator]
        return [b"same" if same else b"different"]

    exchange = await FakeServer(to_asgi(view)).request(make_scope())
    assert exchange.body == b"same"


async def test_a_chains_own_thread_ends_with_the_chain() -> None:
    import gc

    async def chain() -> int:
        return await sync_to_async(thread_id, thread_sensitive=True)()

    before = {t.ident for t in threading.enumerate() if t.name == "bridge-sticky"}
    async with anyio.create_task_group() as group:
        group.start_soon(chain)
    gc.collect()
    with anyio.fail_after(5):
        while {t.ident for t in threading.enumerate() if t.name == "bridge-sticky"} - before:
            await anyio.sleep(0.01)
            gc.collect()


def test_thread_sensitive_needs_the_thread_executor() -> None:
    with pytest.raises(ConfigurationError, match="executor='thread'"):
        sync_to_async(thread_id, executor="greenlet", thread_sensitive=True)


async def test_executors_by_instance_and_unknown_names() -> None:
    pool = bridge.ThreadExecutor(max_workers=1)
    assert await sync_to_async(thread_id, executor=pool)() != threading.get_ident()
    assert pool.threads == 1
    with pytest.raises(ConfigurationError, match="unknown executor 'fibers'"):
        sync_to_async(thread_id, executor="fibers")


async def test_errors_from_async_code_reach_sync_code_with_their_traceback(executor: str) -> None:
    async def deep_failure() -> None:
        await anyio.lowlevel.checkpoint()
        raise ValueError("from the async side")

    def calls_async() -> str:
        try:
            bridge.await_(deep_failure())
        except ValueError as error:
            return "".join(traceback.format_tb(error.__traceback__))
        return "no error"

    trace = await sync_to_async(calls_async, executor=executor)()
    assert "deep_failure" in trace
