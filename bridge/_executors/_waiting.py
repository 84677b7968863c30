"""Waiting in a server thread for a loop thread, also under gevent's monkey-patching.

A WSGI server thread that waits for the loop thread must not block the
process. With plain threads a ``queue.SimpleQueue`` does. Under gevent
(gunicorn's gevent worker) the "server thread" is a greenlet: a blocking wait
would freeze its hub, and gevent's own queues and events may only be woken
from their hub's thread. So there a mailbox wakes its reader through the
hub's async watcher, the one gevent object another OS thread may poke, and
the loop itself gets a real OS thread rather than a patched greenlet one.
"""

from __future__ import annotations

import collections
import queue
import sys
import threading
import time
from collections.abc import Callable
from typing import Any, Protocol, TypeVar

T = TypeVar("T")


class Mailbox(Protocol[T]):
    """Items put from any thread, taken by the thread or greenlet that made it."""

    def put(self, item: T) -> None: ...

    def get(self, block: bool = True, timeout: float | None = None) -> T: ...


def _gevent_monkey() -> Any:
    monkey = sys.modules.get("gevent.monkey")
    if monkey is not None and monkey.is_module_patched("threading"):
        return monkey
    return None


def gevent_patched() -> bool:
    """Whether gevent has patched ``threading`` in this process."""
    return _gevent_monkey() is not None


def new_mailbox() -> Mailbox[Any]:
    """A mailbox for the calling thread (or gevent greenlet) to wait on."""
    if _gevent_monkey() is None:
        return queue.SimpleQueue()
    return _HubMailbox()


def start_os_thread(target: Callable[[], object], name: str) -> None:
    """Start ``target`` in a real OS thread, even when gevent patched ``threading``."""
    monkey = _gevent_monkey()
    if monkey is None:
        threading.Thread(target=target, name=name, daemon=True).start()
    else:
        monkey.get_original("_thread", "start_new_thread")(target, ())


class _Doorbell:
    """One async watcher per gevent hub; started only while a greenlet of it waits.

    Started only while needed, so that an idle hub can still end; the watcher
    is never closed, so a late ``ring`` from the loop thread stays harmless.
    """

    def __init__(self, hub: Any) -> None:
        self._watcher = hub.loop.async_()
        self._rung: collections.deque[_HubMailbox] = collections.deque()
        self._waiters = 0

    def ring(self, mailbox: _HubMailbox) -> None:
        self._rung.append(mailbox)
        self._watcher.send()  # thread-safe by gevent's contract

    def _wake(self) -> None:
        while self._rung:
            self._rung.popleft().ready.set()

    def enter(self) -> None:
        self._waiters += 1
        if self._waiters == 1:
            self._watcher.start(self._wake)

    def leave(self) -> None:
        self._waiters -= 1
        if self._waiters == 0:
            self._watcher.stop()


_doorbells: dict[Any, _Doorbell] = {}


def _doorbell() -> _Doorbell:
    from gevent import get_hub  # type: ignore[import-untyped]

    hub = get_hub()
    doorbell = _doorbells.get(hub)
    if doorbell is None:
        doorbell = _doorbells[hub] = _Doorbell(hub)
    return doorbell


class _HubMailbox:
    def __init__(self) -> None:
        from gevent.event import Event  # type: ignore[import-untyped]

        self._items: collections.deque[Any] = collections.deque()
        self.ready = Event()
        self._doorbell = _doorbell()

    def put(self, item: Any) -> None:
        self._items.append(item)
        self._doorbell.ring(self)

    def get(self, block: bool = True, timeout: float | None = None) -> Any:
        if self._items:
            return self._items.popleft()
        if not block:
            raise queue.Empty
        deadline = None if timeout is None else time.monotonic() + timeout
        self._doorbell.enter()
        try:
            # The watcher runs before this check: a put made earlier is seen
            # here, a put made later rings it.
            while not self._items:
                self.ready.clear()
                if self._items:
                    break
                left = None if deadline is None else deadline - time.monotonic()
                if left is not None and left <= 0:
                    raise queue.Empty
                self.ready.wait(left)
        finally:
            self._doorbell.leave()
        return self._items.popleft()
