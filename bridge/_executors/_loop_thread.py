"""A long-lived event loop in a thread of its own, for async code driven from sync threads.

``to_wsgi`` runs every request of a process on one such loop, so lifespan
state (pools, clients) made at startup serves every request. The thread is
started on first use, and a forked child (gunicorn with ``--preload``, uWSGI)
starts a fresh one: a loop and its thread do not survive a fork.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import os
import threading
import weakref
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

T = TypeVar("T")


class LoopThread:
    """An asyncio loop served by one daemon thread, started lazily."""

    def __init__(self, name: str = "bridge-loop") -> None:
        self.name = name
        self._lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._pid = os.getpid()
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
        loop = asyncio.new_event_loop()
        ready = threading.Event()

        def serve() -> None:
            asyncio.set_event_loop(loop)
            loop.call_soon(ready.set)
            try:
                loop.run_forever()
            finally:
                loop.close()

        self._thread = threading.Thread(target=serve, name=self.name, daemon=True)
        self._thread.start()
        ready.wait()
        self._loop = loop

    @property
    def running(self) -> bool:
        return self._loop is not None and self._loop.is_running()

    def in_loop_thread(self) -> bool:
        return self._thread is threading.current_thread()

    def submit(self, coroutine: Coroutine[Any, Any, T]) -> concurrent.futures.Future[T]:
        """Run ``coroutine`` as a task on the loop; its result as a thread-safe future."""
        return asyncio.run_coroutine_threadsafe(coroutine, self.loop)

    def call_soon(self, callback: Callable[..., object], *args: object) -> None:
        self.loop.call_soon_threadsafe(callback, *args)

    def stop(self, timeout: float = 5.0) -> None:
        """Stop the loop and wait up to ``timeout`` s for its thread."""
        with self._lock:
            loop, thread = self._loop, self._thread
            self._loop = self._thread = None
        if loop is not None and not loop.is_closed():
            loop.call_soon_threadsafe(loop.stop)
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout)


def _forget(reference: weakref.ref[LoopThread]) -> None:
    runner = reference()
    if runner is not None:
        runner._lock = threading.Lock()
        runner._loop = None
        runner._thread = None
        runner._pid = os.getpid()
