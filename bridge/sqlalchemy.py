"""``FairQueuePool``: SQLAlchemy's asyncio pool, with waits served in arrival order.

Under the greenlet executor, requests that find the pool at its limit wait
for a connection, suspended. SQLAlchemy's ``AsyncAdaptedQueuePool`` wakes the
longest waiter when a connection comes back, but leaves the connection in the
queue until that waiter runs; a request that arrives meanwhile takes it
first, and the waiter goes back to the end of the line. Under steady load the
unlucky ones wait several rounds: measured in benchmarks/database.py, the p99
latency was 2.8 times the median. This pool hands a returned connection
straight to the request that has waited longest, and no request takes one
while others wait.

Use it on an engine with an asyncio driver, used from the event loop's thread
(the greenlet executor, ``bridge.in_greenlet``, or SQLAlchemy's own async
engine)::

    engine = create_engine("postgresql+asyncpg://...", poolclass=FairQueuePool)

This module imports SQLAlchemy; ``import bridge`` does not import it.
"""

from __future__ import annotations

import asyncio
from collections import deque

from sqlalchemy.pool import AsyncAdaptedQueuePool, ConnectionPoolEntry
from sqlalchemy.util import queue as sqla_queue

try:
    from sqlalchemy.util import await_ as sqlalchemy_await
except ImportError:  # SQLAlchemy 2.0 calls it await_only
    from sqlalchemy.util import await_only as sqlalchemy_await

__all__ = ("FairQueuePool",)


class _FairQueue(sqla_queue.AsyncAdaptedQueue[ConnectionPoolEntry]):
    """A queue that gives each item put to the oldest waiting getter, if there is one.

    Items and live waiters never coexist: an item waits in the queue only
    while nobody waits for one. Used from the event loop's thread only.
    """

    def __init__(self, maxsize: int = 0, use_lifo: bool = False) -> None:
        super().__init__(maxsize, use_lifo)
        self._items: deque[ConnectionPoolEntry] = deque()
        self._waiters: deque[asyncio.Future[ConnectionPoolEntry]] = deque()

    def empty(self) -> bool:
        return not self._items

    def full(self) -> bool:
        return 0 < self.maxsize <= len(self._items)

    def qsize(self) -> int:
        return len(self._items)

    def put_nowait(self, item: ConnectionPoolEntry) -> None:
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_result(item)
                return
        if self.full():
            raise sqla_queue.Full()
        self._items.append(item)

    def put(
        self, item: ConnectionPoolEntry, block: bool = True, timeout: float | None = None
    ) -> None:
        self.put_nowait(item)  # the pool never holds more items than its size

    def get_nowait(self) -> ConnectionPoolEntry:
        if not self._items:
            raise sqla_queue.Empty()
        return self._items.pop() if self.use_lifo else self._items.popleft()

    def get(self, block: bool = True, timeout: float | None = None) -> ConnectionPoolEntry:
        if self._items or not block:
            return self.get_nowait()
        item: ConnectionPoolEntry = sqlalchemy_await(self._wait(timeout))
        return item

    async def _wait(self, timeout: float | None) -> ConnectionPoolEntry:
        loop = asyncio.get_running_loop()
        waiter: asyncio.Future[ConnectionPoolEntry] = loop.create_future()
        self._waiters.append(waiter)
        expired: list[bool] = []

        def expire() -> None:
            if waiter.cancel():
                expired.append(True)

        timer = None if timeout is None else loop.call_later(timeout, expire)
        try:
            item = await waiter
        except asyncio.CancelledError:
            if waiter.done() and not waiter.cancelled():
                # Handed an item, then cancelled before it could run: pass the item on.
                self.put_nowait(waiter.result())
            elif expired:
                raise sqla_queue.Empty() from None
            raise
        finally:
            if timer is not None:
                timer.cancel()
        return item


class FairQueuePool(AsyncAdaptedQueuePool):
    """``AsyncAdaptedQueuePool`` whose waits for a connection are served in arrival order."""

    _queue_class = _FairQueue
