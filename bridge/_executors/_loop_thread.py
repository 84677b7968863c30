"""A long-lived event loop in a thread of its own, for async code driven from sync threads.

``to_wsgi`` runs every request of a process on one such loop, so lifespan
state (pools, clients) made at startup serves every request. The thread is
started on first use, and a forked child (gunicorn with ``--preload``, uWSGI)
starts a fresh one: a loop and its thread do not survive a fork. Under
gevent's monkey-patching the thread is still a real OS thread (see
``_waiting``).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import queue
import threading
import weakref
from collections.abc import Callable, Coroutine
from typing import Any

from ._waiting import Mailbox, new_mailbox, start_os_thread


class LoopThread:
    """An asyncio loop in one daemon thread, started lazily, stopped at process exit."""

    def __init__(self, name: str = "bridge-loop") -> None:
        self.name = name
        self._lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._ended: Mailbox[None] | None = None  # made with the thread, not at import
        reference = weakref.ref(self)
        os.register_at_fork(after_in_child=lambda: _forget(reference))

    @property
    def loop(self) -> asyncio.AbstractEventLoop:
        """The running loop, started on first use."""
        loop = self._loop
        if loop is not None and not loop.is_closed():
            return loop
        with self._lock:
            if self._loop is None or self._loop.is_closed():
                self._start()
            assert self._loop is not None
            return self._loop

    def _start(self) -> None:
        ready = new_mailbox()
        ended: Mailbox[None] = new_mailbox()

        def serve() -> None:
            loop = asyncio.new_event_loop()
            asyncio.set_event_loop(loop)
            loop.call_soon(ready.put, loop)
            try:
                loop.run_forever()
            finally:
                loop.close()
                ended.put(None)

        start_os_thread(serve, self.name)
        self._ended = ended
        self._loop = ready.get()

    def stop(self, timeout: float = 5.0) -> None:
        """Cancel what still runs on the loop, let it unwind, close the loop, end the thread.

        For process exit: tasks left on the loop (an app's own, a request in its
        grace period) get their ``finally`` blocks run instead of vanishing.
        """
        loop, ended = self._loop, self._ended
        if loop is None or ended is None or loop.is_closed() or not loop.is_running():
            return

        async def unwind() -> None:
            current = asyncio.current_task()
            tasks = [task for task in asyncio.all_tasks() if task is not current]
            for task in tasks:
                task.cancel()
            if tasks:
                await asyncio.wait(tasks, timeout=timeout)
            loop.stop()

        asyncio.run_coroutine_threadsafe(unwind(), loop)
        # A task that will not unwind leaves the daemon thread to go with the process.
        with contextlib.suppress(queue.Empty):
            ended.get(timeout=timeout + 1)

    @property
    def running(self) -> bool:
        return self._loop is not None and self._loop.is_running()

    def call_soon(self, callback: Callable[..., object], *args: object) -> None:
        self.loop.call_soon_threadsafe(callback, *args)

    def spawn(self, coroutine: Coroutine[Any, Any, object]) -> None:
        """Run ``coroutine`` as a task on the loop; it reports its own outcome."""
        loop = self.loop
        loop.call_soon_threadsafe(loop.create_task, coroutine)


def _forget(reference: weakref.ref[LoopThread]) -> None:
    runner = reference()
    if runner is not None:
        runner._lock = threading.Lock()
        runner._loop = None
