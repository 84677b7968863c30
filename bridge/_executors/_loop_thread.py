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
import os
import threading
import weakref
from collections.abc import Callable, Coroutine
from typing import Any

from ._waiting import new_mailbox, start_os_thread


class LoopThread:
    """An asyncio loop in one daemon thread, started lazily, living as long as the process."""

    def __init__(self, name: str = "bridge-loop") -> None:
        self.name = name
        self._lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
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

        def serve() -> None:
            loop = asyncio.new_event_loop()
            asyncio.set_event_loop(loop)
            loop.call_soon(ready.put, loop)
            try:
                loop.run_forever()
            finally:
                loop.close()

        start_os_thread(serve, self.name)
        self._loop = ready.get()

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
