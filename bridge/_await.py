"""``await_``: call async code from sync code, wherever the sync code runs.

* In a bridge worker (a greenlet or a worker thread), the job's driver task
  awaits it on the server's own loop.
* In plain sync code with no loop running, a long-lived loop in a daemon
  thread runs it: one loop for the process, never a new loop per call.
* On a thread whose loop is running, outside a bridge worker, waiting would
  block that loop for good: it raises ``AwaitError`` at once.

The awaitable runs in a copy of the caller's context: it sees every
contextvar the sync code set (``flask.request`` included); what it sets
itself stays with it.
"""

from __future__ import annotations

import asyncio
import os
import threading
from collections.abc import Awaitable
from contextvars import copy_context
from typing import TypeVar

from ._errors import AwaitError
from ._executors import current_job
from ._executors._loop import InContext, loop_is_running

T = TypeVar("T")

_lock = threading.Lock()
_loop: asyncio.AbstractEventLoop | None = None


def await_(awaitable: Awaitable[T]) -> T:
    """Wait for ``awaitable`` from sync code and return its result (or raise its error)."""
    job = current_job()
    if job is not None:
        return job.await_(awaitable, copy_context())
    if loop_is_running():
        close = getattr(awaitable, "close", None)
        if close is not None:
            close()
        raise AwaitError(
            "await_() was called on a thread whose event loop is running, outside a bridge "
            "worker; waiting here would block that loop forever. In async code use `await`; "
            "to run sync code that calls await_(), go through bridge.to_asgi() or run it in "
            "a worker thread"
        )
    future = asyncio.run_coroutine_threadsafe(
        _drive(InContext(copy_context(), awaitable)), _background_loop()
    )
    return future.result()


async def _drive(awaitable: Awaitable[T]) -> T:
    return await awaitable


def _background_loop() -> asyncio.AbstractEventLoop:
    global _loop
    with _lock:
        if _loop is None or _loop.is_closed():
            loop = asyncio.new_event_loop()
            ready = threading.Event()

            def serve() -> None:
                asyncio.set_event_loop(loop)
                loop.call_soon(ready.set)
                loop.run_forever()

            threading.Thread(target=serve, name="bridge-await-loop", daemon=True).start()
            ready.wait()
            _loop = loop
        return _loop


def _forget_loop_after_fork() -> None:
    # The loop's thread does not survive a fork; the child starts its own on first use.
    global _loop
    _loop = None


os.register_at_fork(after_in_child=_forget_loop_after_fork)
