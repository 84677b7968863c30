"""asgiref's ``async_to_sync`` called inside a bridge greenlet.

Code under the greenlet executor runs on the event loop's thread, where
asgiref's ``AsyncToSync`` refuses to run ("You cannot use AsyncToSync in the
same thread as an async event loop"). Flask's stock async views and Django's
async middleware call it. Once a ``GreenletExecutor`` exists, such a call from
one of its greenlets either goes to the loop through the job, like
``await_`` (``GreenletExecutor(asgiref=True)``), or raises ``AwaitError``
naming that switch. Calls anywhere else reach asgiref unchanged.

``wait_in_asgiref_thread`` is the other direction: ``await_`` in one of
asgiref's ``sync_to_async`` threads (a sync Django view under Django's own
ASGI handler) waits the way asgiref's ``async_to_sync`` does, serving the
thread-sensitive calls the awaitable sends back to that thread.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Awaitable, Callable
from contextvars import copy_context
from typing import Any, TypeVar

from .._errors import AwaitError
from ._home import Home, home
from ._job import current_job
from ._loop import InContext

T = TypeVar("T")

_installed = False
_lock = threading.Lock()


def install() -> None:
    """Wrap ``asgiref.sync.AsyncToSync.__call__`` once per process."""
    global _installed
    with _lock:
        if _installed:
            return
        from asgiref.sync import AsyncToSync

        original = AsyncToSync.__call__

        def call(self: Any, *args: Any, **kwargs: Any) -> Any:
            job = current_job()
            allows = getattr(job, "allows_asgiref", None)
            if allows is None:  # not in a bridge greenlet: asgiref decides
                return original(self, *args, **kwargs)
            if not allows:
                raise AwaitError(
                    f"asgiref's async_to_sync({getattr(self.awaitable, '__qualname__', '?')}) "
                    "was called under the greenlet executor, which runs on the event loop's "
                    "thread. Use bridge.await_() or bridge.async_to_sync() instead, create "
                    "the executor as GreenletExecutor(asgiref=True) to route asgiref's calls "
                    "through the bridge, or use the thread executor"
                )
            assert job is not None
            return job.await_(self.awaitable(*args, **kwargs), copy_context())

        call.__wrapped__ = original  # type: ignore[attr-defined]
        AsyncToSync.__call__ = call  # type: ignore[method-assign]
        _installed = True


def wait_in_asgiref_thread(awaitable: Awaitable[T], loop: asyncio.AbstractEventLoop) -> T:
    """Run ``awaitable`` on ``loop`` from one of asgiref's threads, which serves its calls.

    asgiref sends a thread-sensitive ``sync_to_async`` call (Django's async
    ORM, ``aget_user``, the async cache) to the ``CurrentThreadExecutor`` of the
    innermost ``async_to_sync`` waiting in the calling context, and otherwise
    to the request's one thread: this very thread, blocked here. So this
    thread waits as that executor, and bridge's own thread-sensitive calls
    from the awaitable come here too.
    """
    from asgiref.current_thread_executor import CurrentThreadExecutor
    from asgiref.sync import AsyncToSync

    executors = AsyncToSync.executors
    outer = getattr(executors, "current", None)
    executor = _new_executor(CurrentThreadExecutor, outer)
    executors.current = executor
    try:
        context = copy_context()  # after the line above: asgiref finds the executor in it
        if context.get(home) is None:
            context.run(home.set, Home(_AsgirefWaiter(executor)))
        driven = _drive(InContext(context, _adopting(awaitable)))
        future = asyncio.run_coroutine_threadsafe(driven, loop)
        executor.run_until_future(future)
    finally:
        executors.current = outer
    return future.result()


def _new_executor(kind: Callable[..., Any], outer: Any) -> Any:
    try:
        return kind(outer)  # asgiref >= 3.10: a late call goes to the executor below
    except TypeError:
        return kind()


async def _drive(awaitable: Awaitable[T]) -> T:
    return await awaitable


async def _adopting(awaitable: Awaitable[T]) -> T:
    _adopt_asgiref_locals()
    return await awaitable


def _adopt_asgiref_locals() -> None:
    """Make the caller's asgiref ``Local`` values (``executors.current``) seen on this thread.

    Recent asgiref tags them with the thread that set them and shows them on
    another thread only once it moves the context there itself, as its own
    ``async_to_sync`` does on the loop; this asks it to do the same here.
    """
    from asgiref import sync

    restore = getattr(sync, "_restore_context", None)
    if restore is not None:
        restore(copy_context())


class _AsgirefWaiter:
    """Offers a home's calls to an asgiref ``CurrentThreadExecutor`` while it waits."""

    __slots__ = ("_executor",)

    def __init__(self, executor: Any) -> None:
        self._executor = executor

    def offer(self, task: Callable[[], None]) -> bool:
        try:
            self._executor.submit(task)
        except RuntimeError:  # it (and every one below it) has stopped waiting
            return False
        return True
