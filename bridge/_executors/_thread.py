"""ThreadExecutor: sync code in a bounded pool of worker threads.

Each crossing between the loop and a worker costs a wake-up, so a job is
built to need two in the common case: the loop hands the job to a worker,
and the worker wakes the loop once with everything it produced so far. Items
wait in a bounded queue; the loop drains it in one go, and only a worker that
fills it (a slow client) waits for room.
"""

from __future__ import annotations

import contextlib
import logging
import os
import queue
import threading
import weakref
from collections import deque
from collections.abc import Awaitable, Callable
from contextvars import Context, ContextVar
from typing import Any, Protocol, TypeVar

import anyio

from .._errors import ConfigurationError, WorkAbandoned
from ._base import Executor
from ._job import Job, Sink, close_unawaited, thread_job
from ._loop import InContext, Waker, current_waker

T = TypeVar("T")
R = TypeVar("R")

logger = logging.getLogger("bridge")

_PUT, _AWAIT, _DONE = 0, 1, 2


class Submitter(Protocol):
    """Where a thread job's work is started: a pool, one sticky thread, or a waiting job."""

    queue_size: int

    def submit(self, task: Callable[[], None]) -> None: ...


class _Reply:
    __slots__ = ("error", "value")

    def __init__(self) -> None:
        self.value: Any = None
        self.error: BaseException | None = None


sync_thread_job: ContextVar[ThreadJob[Any] | None] = ContextVar("sync_thread_job", default=None)
"""The thread job whose sync code leads to this context, for thread-sensitive calls."""


class ThreadJob(Job[T]):
    """A job in a worker thread; while it waits in ``await_`` it can run nested jobs.

    That is what keeps a chain async -> sync -> async -> sync on one thread:
    the nested job is submitted to the waiting job itself (it is a
    ``Submitter``), and the waiting thread runs it.
    """

    __slots__ = (
        "_calls",
        "_capacity",
        "_executor",
        "_items",
        "_lock",
        "_room",
        "_waiting",
        "_waker",
        "awaiting",
        "queue_size",
    )

    def __init__(
        self,
        executor: Submitter,
        function: Callable[[Job[T]], T],
        sink: Sink,
        context: Context,
        label: str,
    ) -> None:
        super().__init__(function, sink, context, label)
        self._executor = executor
        self._capacity = self.queue_size = executor.queue_size
        self._calls: queue.SimpleQueue[Callable[[], None] | _Reply] | None = None
        self.awaiting = False
        self._items: deque[tuple[int, Any]] = deque()
        self._lock = threading.Lock()
        self._waiting = False  # the driver sleeps and wants a wake-up
        self._room: threading.Lock | None = None  # held while a worker waits for room
        self._waker: Waker | None = None

    # The worker side.
    def _push(self, kind: int, item: Any) -> threading.Lock | None:
        with self._lock:
            self._items.append((kind, item))
            wake = self._waiting
            self._waiting = False
            room = None
            if kind == _PUT and len(self._items) >= self._capacity:
                room = self._room = threading.Lock()
                room.acquire()
        if wake:
            assert self._waker is not None
            # A loop that closed under an abandoned job has nobody left to wake.
            with contextlib.suppress(RuntimeError):
                self._waker.wake()
        return room

    def put(self, item: object) -> None:
        if self.interrupted is not None:
            raise self.interrupted
        room = self._push(_PUT, item)
        if room is not None:
            room.acquire()  # released by the driver once it has drained, or on interrupt
            if self.interrupted is not None:
                raise self.interrupted

    def await_(self, awaitable: Awaitable[R], context: Context | None = None) -> R:
        if self.interrupted is not None:
            close_unawaited(awaitable)
            raise self.interrupted
        reply = _Reply()
        calls = self._calls
        if calls is None:
            calls = self._calls = queue.SimpleQueue()
        self.awaiting = True
        self._push(_AWAIT, (awaitable, context, reply))
        try:
            # Until the reply comes, run the nested jobs a thread-sensitive call sends here.
            while (call := calls.get()) is not reply:
                assert not isinstance(call, _Reply)
                call()
        finally:
            self.awaiting = False
        if reply.error is not None:
            error, reply.error = reply.error, None
            try:
                raise error
            finally:
                del error  # this frame joins its traceback: no local may hold it
        result: R = reply.value
        return result

    def submit(self, task: Callable[[], None]) -> None:
        """Run ``task`` on this job's thread, which must be waiting in ``await_``."""
        assert self._calls is not None
        self._calls.put(task)

    def _call(self) -> T:
        token = sync_thread_job.set(self)
        try:
            return self.function(self)
        finally:
            sync_thread_job.reset(token)  # else the job's own context keeps it: a cycle

    def _work(self) -> None:
        outer = thread_job.job  # a job nested on a waiting one's thread restores it after
        thread_job.job = self
        try:
            outcome: tuple[bool, Any] = (True, self.context.run(self._call))
        except BaseException as error:
            outcome = (False, error)
        finally:
            thread_job.job = outer
        self._push(_DONE, outcome)
        del outcome  # a traceback that reaches this frame (f_back) must not find the error here

    # The loop side.
    def interrupt(self, error: BaseException) -> None:
        with self._lock:
            super().interrupt(error)
            room, self._room = self._room, None
        if room is not None:
            room.release()

    async def run(self) -> T:
        self._waker = waker = current_waker()
        self._executor.submit(self._work)
        items = self._items
        while True:
            with self._lock:
                if not items:
                    self._waiting = True
                    waker.arm()
            # A worker that pushed since then has cleared the flag and woken us already.
            if self._waiting:
                try:
                    await waker.wait()
                except BaseException:
                    with self._lock:
                        self._waiting = False
                    self.interrupt(WorkAbandoned("the async caller was cancelled"))
                    raise
            while items:
                kind, item = items.popleft()
                if kind == _PUT:
                    await self._deliver(item)
                elif kind == _AWAIT:
                    await self._serve_await(*item)
                else:
                    succeeded, value = item
                    if succeeded:
                        result: T = value
                        return result
                    raise value
            with self._lock:
                room, self._room = self._room, None
            if room is not None:
                room.release()

    async def _deliver(self, item: Any) -> None:
        if self.interrupted is not None:
            return
        try:
            await self.sink(item)
        except Exception as error:
            self.interrupt(error)
        except BaseException as error:
            self.interrupt(WorkAbandoned("the async caller was cancelled"))
            raise error

    async def _serve_await(
        self, awaitable: Awaitable[Any], context: Context | None, reply: _Reply
    ) -> None:
        try:
            if context is None:
                reply.value = await awaitable
            else:
                reply.value = await InContext(context, awaitable)
        except Exception as error:
            reply.error = error
        except BaseException as error:
            reply.error = WorkAbandoned("the async caller was cancelled")
            self.interrupt(reply.error)
            raise error
        finally:
            assert self._calls is not None
            self._calls.put(reply)


class _Crew:
    """One generation of worker threads and the queue they serve.

    ``aclose`` retires the crew and starts a new one lazily, so threads that are
    still finishing old work never take, or miscount, new work.
    """

    __slots__ = ("idle", "tasks", "threads")

    def __init__(self) -> None:
        self.tasks: queue.SimpleQueue[Callable[[], None] | None] = queue.SimpleQueue()
        self.threads: set[threading.Thread] = set()
        self.idle = 0


class ThreadExecutor(Executor):
    """Runs sync code in up to ``max_workers`` threads, started as needed.

    :param max_workers: the most requests running sync code at once; more wait
        their turn, in order.
    :param queue_size: items a worker may produce ahead of a slow consumer
        before it waits (the response chunks in flight per request).
    """

    name = "thread"
    multithread = True

    def __init__(self, max_workers: int = 40, *, queue_size: int = 8) -> None:
        if max_workers < 1:
            raise ConfigurationError(f"max_workers must be at least 1, got {max_workers}")
        if queue_size < 1:
            raise ConfigurationError(f"queue_size must be at least 1, got {queue_size}")
        self.max_workers = max_workers
        self.queue_size = queue_size
        self._lock = threading.Lock()
        self._crew = _Crew()
        reference = weakref.ref(self)
        os.register_at_fork(after_in_child=lambda: _start_afresh(reference))

    def job(
        self, function: Callable[[Job[T]], T], sink: Sink, context: Context, label: str
    ) -> Job[T]:
        return ThreadJob(self, function, sink, context, label)

    def submit(self, task: Callable[[], None]) -> None:
        """Run ``task`` on a worker thread, starting one if all are busy."""
        with self._lock:
            crew = self._crew
            if crew.idle:
                crew.idle -= 1
                thread = None
            elif len(crew.threads) < self.max_workers:
                thread = threading.Thread(
                    target=self._serve,
                    args=(crew,),
                    name=f"bridge-worker-{len(crew.threads)}",
                    daemon=True,
                )
                crew.threads.add(thread)
            else:
                thread = None
        crew.tasks.put(task)
        if thread is not None:
            thread.start()

    def _serve(self, crew: _Crew) -> None:
        tasks = crew.tasks
        try:
            while True:
                task = tasks.get()
                if task is None:
                    return
                task()
                del task  # an idle worker must not keep its last request alive
                with self._lock:
                    crew.idle += 1
        finally:
            with self._lock:
                crew.threads.discard(threading.current_thread())

    @property
    def threads(self) -> int:
        """Worker threads alive now in the current crew."""
        return len(self._crew.threads)

    @property
    def idle(self) -> int:
        """Worker threads waiting for work now."""
        return self._crew.idle

    async def aclose(self, timeout: float = 5.0) -> None:
        """Retire the workers: idle ones exit now, busy ones after their job.

        Waits up to ``timeout`` s for them; a new crew starts on the next job.
        """
        with self._lock:
            crew, self._crew = self._crew, _Crew()
            threads = list(crew.threads)
        for _ in threads:
            crew.tasks.put(None)
        if threads:
            await anyio.to_thread.run_sync(_join_all, threads, timeout, abandon_on_cancel=True)


class StickyThread:
    """One thread of its own, for the thread-sensitive calls of one call chain.

    The thread holds only its queue, so once nothing refers to this object any
    more (the chain's context is gone), a finalizer tells the thread to exit.
    """

    def __init__(self, queue_size: int = 8) -> None:
        self.queue_size = queue_size
        self._tasks: queue.SimpleQueue[Callable[[], None] | None] = queue.SimpleQueue()
        self.thread = threading.Thread(
            target=_serve_queue, args=(self._tasks,), name="bridge-sticky", daemon=True
        )
        self.thread.start()
        weakref.finalize(self, self._tasks.put, None)

    def submit(self, task: Callable[[], None]) -> None:
        self._tasks.put(task)


def _serve_queue(tasks: queue.SimpleQueue[Callable[[], None] | None]) -> None:
    while True:
        task = tasks.get()
        if task is None:
            return
        task()
        del task  # a finished job must not keep its StickyThread alive from this frame


def _start_afresh(reference: weakref.ref[ThreadExecutor]) -> None:
    # A forked child has none of its parent's threads; start with an empty crew.
    executor = reference()
    if executor is not None:
        executor._lock = threading.Lock()
        executor._crew = _Crew()


def _join_all(threads: list[threading.Thread], timeout: float) -> None:
    for thread in threads:
        thread.join(timeout)
        if thread.is_alive():
            logger.warning("worker %s is still busy at shutdown; leaving it", thread.name)
