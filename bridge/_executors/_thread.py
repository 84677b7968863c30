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
from contextvars import Context
from typing import Any, Protocol, TypeVar

import anyio

from .._errors import ConfigurationError, WorkAbandoned
from ._base import Executor
from ._home import Frames, Home, frames_here, home
from ._job import Job, Sink, close_unawaited, thread_job
from ._loop import InContext, Waker, current_waker
from ._provider import provide, refuse_off_the_loop_thread

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


class ThreadJob(Job[T]):
    """A job in a worker thread; while it waits in ``await_`` it can run nested jobs.

    That is what keeps a chain async -> sync -> async -> sync on one thread:
    a job that finds no thread-sensitive home in its context becomes the
    home's waiter (see ``_home``), and nested thread-sensitive jobs are
    submitted to the frame its thread opens while it waits.
    """

    __slots__ = (
        "_calls",
        "_capacity",
        "_executor",
        "_finished",
        "_frames",
        "_home",
        "_items",
        "_lock",
        "_room",
        "_waiting",
        "_waker",
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
        self._frames: Frames | None = None  # the worker thread's, once the job runs
        self._finished = False
        self._home: Home | None = None  # the home this job is the waiter of, if any
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
        frames = self._frames
        assert frames is not None
        frames.enter(calls)
        self._push(_AWAIT, (awaitable, context, reply))
        # Until the reply comes, run the nested jobs a thread-sensitive call sends here.
        while (call := calls.get()) is not reply:
            assert not isinstance(call, _Reply)
            call()
            del call  # a finished nested job must not stay alive while we wait on
        if reply.error is not None:
            error, reply.error = reply.error, None
            try:
                raise error
            finally:
                del error  # this frame joins its traceback: no local may hold it
        result: R = reply.value
        return result

    def offer(self, task: Callable[[], None]) -> bool:
        """Queue ``task`` for this job's thread if it is waiting in ``await_`` now."""
        frames = self._frames
        if frames is None:
            return False
        with frames.lock:
            if self._finished or not frames.open:
                return False
            frames.open[-1].put(task)
            return True

    def _call(self) -> T:
        if home.get() is None:
            # The outermost thread job of its chain: thread-sensitive calls come here.
            self._home = Home(self)
            home.set(self._home)
        return self.function(self)

    def _work(self) -> None:
        outer = thread_job.job  # a job nested on a waiting one's thread restores it after
        thread_job.job = self
        self._frames = frames = frames_here()
        try:
            # In an await provider, so that SQLAlchemy's asyncio drivers meet a
            # refusal that says what to use, not its MissingGreenlet.
            outcome: tuple[bool, Any] = (
                True,
                self.context.run(provide, self._call, refuse_off_the_loop_thread),
            )
        except BaseException as error:
            outcome = (False, error)
        finally:
            thread_job.job = outer
            with frames.lock:
                self._finished = True
            if self._home is not None:
                self._home.waiter = None  # its calls go to its own thread now; and no cycle
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
            assert self._calls is not None and self._frames is not None
            self._frames.leave(self._calls, reply)


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
