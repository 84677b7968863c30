"""``await_``: call async code from sync code, wherever the sync code runs.

* In a bridge worker (a greenlet or a worker thread), the job's driver task
  awaits it on the server's own loop.
* In one of asgiref's ``sync_to_async`` threads (Django's sync views under
  its ASGI handler), the loop that called into that thread runs it.
* In plain sync code with no loop running, the calling thread's own
  long-lived loop runs it, in that thread: one loop per thread, made on first
  use and reused by every later call (never a new loop per call), so clients
  and pools made on it serve later calls from that thread, and no call pays
  for a hop to another thread.
* On a thread whose loop is running, outside a bridge worker, waiting would
  block that loop for good: it raises ``AwaitError`` at once.

The awaitable runs in a copy of the caller's context: it sees every
contextvar the sync code set (``flask.request`` included); what it sets
itself stays with it.
"""

from __future__ import annotations

import asyncio
import os
import sys
import threading
import weakref
from collections.abc import Awaitable, Callable
from contextvars import copy_context
from typing import Any, TypeVar

from ._errors import AwaitError
from ._executors import ThreadJob, close_unawaited, current_job
from ._executors._asgiref import wait_in_asgiref_thread
from ._executors._loop import loop_is_running
from ._executors._provider import provide, refuse_off_the_loop_thread

T = TypeVar("T")


class _LoopOwner:
    """Holds one thread's loop; closing it when the thread (and so this) is gone."""

    __slots__ = ("__weakref__", "loop")

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        weakref.finalize(self, self.loop.close)


class _ThreadLoops(threading.local):
    owner: _LoopOwner | None = None


_thread_loops = _ThreadLoops()


def await_(awaitable: Awaitable[T]) -> T:
    """Wait for ``awaitable`` from sync code and return its result (or raise its error)."""
    job = current_job()
    if job is not None:
        return job.await_(awaitable, copy_context())
    if loop_is_running():
        close_unawaited(awaitable)
        raise AwaitError(
            "await_() was called on a thread whose event loop is running, outside a bridge "
            "worker; waiting here would block that loop forever. In async code use `await`; "
            "to run sync code that calls await_(), go through bridge.to_asgi() or run it in "
            "a worker thread"
        )
    loop = _asgiref_loop()
    if loop is not None:
        return wait_in_asgiref_thread(awaitable, loop)
    return _on_own_loop(awaitable)


def in_greenlet(function: Callable[..., T], /, *args: Any, **kwargs: Any) -> T:
    """Call ``function(*args, **kwargs)`` so that SQLAlchemy's asyncio drivers can wait in it.

    SQLAlchemy's sync API on asyncpg, psycopg's async mode or aiosqlite works
    only inside a greenlet that hands its waits to an event loop. This is for
    plain sync code (a script, a CLI command, ``app.test_client()`` in a
    test): its waits run on this thread's long-lived loop (as ``await_``'s do
    there), so an engine used this way belongs to this thread. In a greenlet
    worker it just calls ``function`` (the worker is such a greenlet already);
    in a thread worker, the first wait raises ``AwaitError``, as it does there
    without this call.
    """
    job = current_job()
    if job is None:
        return provide(lambda: function(*args, **kwargs), await_here)  # this thread's loop
    if isinstance(job, ThreadJob):
        return provide(lambda: function(*args, **kwargs), refuse_off_the_loop_thread)
    return function(*args, **kwargs)


def _on_own_loop(awaitable: Awaitable[T]) -> T:
    """Run ``awaitable`` on this thread's long-lived loop, in a copy of the caller's context.

    The copy is the one the loop's new task takes of this thread's context.
    """
    owner = _thread_loops.owner
    if owner is None or owner.loop.is_closed():
        owner = _thread_loops.owner = _LoopOwner()
    return owner.loop.run_until_complete(awaitable)


def _asgiref_loop() -> asyncio.AbstractEventLoop | None:
    """The server's loop, when this thread is one of asgiref's ``sync_to_async`` workers.

    Django runs sync views and middleware there; asgiref records the loop that
    called in, and async code belongs on that loop (as asgiref's own
    ``async_to_sync`` does), not on ours.
    """
    sync = sys.modules.get("asgiref.sync")
    if sync is None:
        return None
    local = sync.SyncToAsync.threadlocal
    loop: asyncio.AbstractEventLoop | None = getattr(local, "main_event_loop", None)
    if loop is None or getattr(local, "main_event_loop_pid", None) != os.getpid():
        return None
    return loop if loop.is_running() else None


def await_here(awaitable: Awaitable[T]) -> T:
    """Like ``await_``, but a worker thread uses its own long-lived loop, not the server's.

    For code that shares no loop-bound objects with the server (Flask's async
    views): it saves the two thread wake-ups of a crossing. A greenlet is on
    the server's loop thread already, so it still switches to that loop.
    """
    job = current_job()
    if job is not None and not isinstance(job, ThreadJob):
        return job.await_(awaitable, copy_context())
    if job is None and loop_is_running():
        return await_(awaitable)  # raises AwaitError, saying what to do instead
    return _on_own_loop(awaitable)


def _forget_loops_after_fork() -> None:
    # A child must not drive its parent's loops (they share the parent's epoll).
    global _thread_loops
    _thread_loops = _ThreadLoops()


os.register_at_fork(after_in_child=_forget_loops_after_fork)
