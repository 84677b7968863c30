"""The two things an executor needs from the event loop it serves.

A worker thread must wake a task that waits on the loop, and both executors
must step an awaitable inside a given context. asyncio gets a direct path
(a future and ``call_soon_threadsafe``: the cheapest wake-up it has); trio,
and anyio running on it, get theirs through trio's token.
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Awaitable, Callable, Coroutine, Generator
from contextvars import Context
from types import CoroutineType
from typing import Any, Generic, TypeVar

from .._errors import AwaitError

T = TypeVar("T")


class Waker:
    """One task on the loop waits; any thread wakes it. Arm before each wait."""

    __slots__ = ()

    def arm(self) -> None:
        raise NotImplementedError

    def wake(self) -> None:
        """Safe from any thread; call at most once per ``arm``."""
        raise NotImplementedError

    async def wait(self) -> None:
        raise NotImplementedError

    def call_soon(self, callback: Callable[[], object]) -> None:
        """Run ``callback`` on the loop thread soon; safe from any thread."""
        raise NotImplementedError


def _resolve(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)


class _AsyncioWaker(Waker):
    __slots__ = ("_future", "_loop")

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._future: asyncio.Future[None] | None = None

    def arm(self) -> None:
        self._future = self._loop.create_future()

    def wake(self) -> None:
        future = self._future
        assert future is not None
        self._loop.call_soon_threadsafe(_resolve, future)

    async def wait(self) -> None:
        assert self._future is not None
        await self._future

    def call_soon(self, callback: Callable[[], object]) -> None:
        self._loop.call_soon_threadsafe(callback)


class _TrioWaker(Waker):
    __slots__ = ("_event", "_token")

    def __init__(self, token: Any) -> None:
        self._token = token
        self._event: Any = None

    def arm(self) -> None:
        import trio

        self._event = trio.Event()

    def wake(self) -> None:
        self._token.run_sync_soon(self._event.set)

    async def wait(self) -> None:
        await self._event.wait()

    def call_soon(self, callback: Callable[[], object]) -> None:
        self._token.run_sync_soon(callback)


def _running_asyncio_loop() -> asyncio.AbstractEventLoop | None:
    try:
        return asyncio.get_running_loop()
    except RuntimeError:
        return None


def current_waker() -> Waker:
    """A waker for the loop running in this thread (asyncio or trio)."""
    loop = _running_asyncio_loop()
    if loop is not None:
        return _AsyncioWaker(loop)
    trio = sys.modules.get("trio")
    if trio is not None:
        try:
            return _TrioWaker(trio.lowlevel.current_trio_token())
        except RuntimeError:
            pass
    raise AwaitError("no asyncio or trio event loop is running in this thread")


def loop_is_running() -> bool:
    """True on a thread whose asyncio or trio loop is running right now."""
    if _running_asyncio_loop() is not None:
        return True
    trio = sys.modules.get("trio")
    if trio is None:
        return False
    try:
        trio.lowlevel.current_trio_token()
    except RuntimeError:
        return False
    return True


def _call(function: Callable[..., Any], *args: Any) -> Any:
    return function(*args)


def stepper(awaitable: Awaitable[T]) -> Coroutine[Any, Any, T]:
    """Something with ``send`` and ``throw`` that runs ``awaitable``, for stepping by hand.

    An awaitable made elsewhere need not be a coroutine: granian's ``receive()``
    gives one whose ``__await__`` iterator has ``__next__`` only. A coroutine
    that awaits it lets Python's own ``await`` deal with it, as a task would.
    """
    if type(awaitable) is CoroutineType:
        return awaitable
    return _awaiting(awaitable)


async def _awaiting(awaitable: Awaitable[T]) -> T:
    return await awaitable


class InContext(Generic[T]):
    """Await ``awaitable`` with every step of it run inside ``context``.

    A task's context is fixed when the task is created; this lets a driver
    task run the sync side's awaitable as if the sync side had awaited it, so
    it sees the contextvars the sync code set (``flask.request``, say).

    ``resume`` continues an awaitable whose first step already ran elsewhere
    (in a greenlet, on this same loop) and suspended with ``signal``; its
    ``iterator`` comes from ``stepper``.
    """

    __slots__ = ("_iterator", "_run", "_signal")

    def __init__(self, context: Context | None, awaitable: Awaitable[T]) -> None:
        self._run = _call if context is None else context.run
        self._iterator = stepper(awaitable)
        self._signal: Any = _NOT_STARTED

    @classmethod
    def resume(
        cls, context: Context | None, iterator: Coroutine[Any, Any, T], signal: Any
    ) -> InContext[T]:
        self = cls.__new__(cls)
        self._run = _call if context is None else context.run
        self._iterator = iterator
        self._signal = signal
        return self

    def __await__(self) -> Generator[Any, Any, T]:
        run = self._run
        iterator = self._iterator
        value: Any = None
        error: BaseException | None = None
        signal = self._signal
        if signal is _NOT_STARTED:
            try:
                signal = run(iterator.send, None)
            except StopIteration as stop:
                first: T = stop.value
                return first
        while True:
            try:
                value = yield signal
            except BaseException as exc:  # delivered into the awaitable, as a task would
                error = exc
                value = None
            try:
                if error is None:
                    signal = run(iterator.send, value)
                else:
                    signal = run(iterator.throw, error)
                    error = None
            except StopIteration as stop:
                result: T = stop.value
                return result


_NOT_STARTED: Any = object()
