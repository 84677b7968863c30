"""GreenletExecutor: sync code in greenlets on the event-loop thread itself.

The driver task switches into a worker greenlet; when the sync code needs
the loop (``put``, ``await_``) it switches back with a request, the driver
awaits it, and switches in again with the answer. No thread, no lock, no
wake-up: a crossing is two greenlet switches.

Starting a fresh greenlet costs several times more than a switch, so worker
greenlets are kept and reused, per thread (a greenlet cannot move between
threads). Each job sets the worker's context to its own.

A worker's ``parent`` is always the greenlet driving it right now, and the
worker switches to its parent to reach the driver. The driver can change
between two steps of one job: a job started inside another worker's
``await_`` takes its first steps there and its later ones wherever the
outer awaitable is resumed (the loop's own greenlet, or another worker).
Code that expects ``getcurrent().parent`` to be the way to the loop finds it
so, and SQLAlchemy's sync API on an asyncio driver (asyncpg, psycopg async,
aiosqlite) relies on it: a worker greenlet is an await provider to SQLAlchemy,
which switches to the worker's ``parent`` with a bare awaitable; the driver
awaits it like any other.

The price of running on the loop: code in the greenlet that blocks
(``time.sleep``, a sync socket) blocks the whole loop. Each stretch a
greenlet holds the loop is timed, and one longer than ``block_warning``
seconds is logged, naming the job; one that does not end is reported while
it lasts, by the watchdog thread (``_watchdog``).
"""

from __future__ import annotations

import functools
import logging
import threading
import time
from collections.abc import Awaitable, Callable
from contextvars import Context
from typing import Any, TypeVar

import anyio.lowlevel
import greenlet

from .._errors import ConfigurationError
from . import _asgiref, _watchdog
from ._base import Executor
from ._job import (
    Job,
    JobGreenlet,
    Outcome,
    Sink,
    close_unawaited,
    reuse_under,
    serve_boxed,
    unbox,
)
from ._loop import InContext, stepper
from ._provider import await_foreign

T = TypeVar("T")
R = TypeVar("R")

logger = logging.getLogger("bridge")

_PUT, _AWAIT, _DONE, _FOREIGN = 0, 1, 2, 3
_PUTS_PER_CHECKPOINT = 16


class GreenletJob(Job[T]):
    __slots__ = ("_executor", "_stretch", "_worker", "allows_asgiref")

    def __init__(
        self,
        executor: GreenletExecutor,
        function: Callable[[Job[T]], T],
        sink: Sink,
        context: Context,
        label: str,
    ) -> None:
        super().__init__(function, sink, context, label)
        self._executor = executor
        self._worker: JobGreenlet | None = None
        self.allows_asgiref = executor.asgiref

    # The worker side: runs in the worker greenlet.
    def put(self, item: object) -> None:
        if self.interrupted is not None:
            raise self.interrupted
        driver = self._worker.parent if self._worker is not None else None
        assert driver is not None
        driver.switch((_PUT, item))

    def await_(self, awaitable: Awaitable[R], context: Context | None = None) -> R:
        if self.interrupted is not None:
            close_unawaited(awaitable)
            raise self.interrupted
        # We are on the loop's thread, inside the driver task's step: the first
        # step of the awaitable can run right here. Most finish or suspend in it;
        # only a suspension needs the driver, which resumes the awaitable.
        iterator = stepper(awaitable)
        try:
            signal = iterator.send(None) if context is None else context.run(iterator.send, None)
        except StopIteration as stop:
            value: R = stop.value
            return value
        driver = self._worker.parent if self._worker is not None else None
        assert driver is not None
        resumed = InContext.resume(context, iterator, signal)
        result: R = driver.switch((_AWAIT, resumed))
        return result

    # The loop side.
    async def run(self) -> T:
        workers = self._executor._workers()
        self._stretch = self._executor._idle.stretch  # published for the watchdog thread
        self._worker = worker = _worker_under(greenlet.getcurrent(), workers)
        worker.job = self
        worker.gr_context = self.context
        request = self._step(worker, worker.switch, [self])
        cancelled: BaseException | None = None
        puts = 0
        while request[0] != _DONE:
            kind, item = request
            try:
                value = None
                if kind == _AWAIT:
                    value = await item
                elif kind == _FOREIGN:
                    # Awaited even after an interrupt: it is the clean-up that
                    # gives the connection back to its pool.
                    value = await await_foreign(item, self.context)
                elif self.interrupted is None:
                    try:
                        await self.sink(item)
                    except Exception as error:
                        # As with threads: the worker learns at its next crossing.
                        self.interrupt(error)
                    puts += 1
                    if puts % _PUTS_PER_CHECKPOINT == 0:
                        # A sink that never suspends would starve every other task.
                        await anyio.lowlevel.checkpoint()
            except BaseException as error:
                if not isinstance(error, Exception) and cancelled is None:
                    cancelled = error
                request = self._step(worker, worker.throw, error)
            else:
                request = self._step(worker, worker.switch, value)
        worker.job = None
        worker.gr_context = None
        self._worker = None
        if len(workers) < self._executor.idle_workers:
            workers.append(worker)
        if cancelled is not None:
            raise cancelled
        result: T = unbox(request[1])
        return result

    def _step(self, worker: JobGreenlet, switch: Callable[..., Any], value: Any) -> Any:
        """Switch into the worker from whichever greenlet steps this task now."""
        driver = greenlet.getcurrent()
        if worker.parent is not driver:
            worker.parent = driver
        stretch = self._stretch  # published for the watchdog thread
        outer_label, outer_started = stretch.label, stretch.started  # a job nested in another's
        stretch.label = self.label
        started = stretch.started = time.perf_counter()
        try:
            request = switch(value)
            # SQLAlchemy's await_ switches to us with a bare awaitable.
            return request if type(request) is tuple else (_FOREIGN, request)
        finally:
            stretch.label, stretch.started = outer_label, outer_started
            held = time.perf_counter() - started
            if held > self._executor.block_warning:
                logger.warning(
                    "the greenlet for %s held the event loop for %.3f s (over %.3f s): "
                    "it blocked without going through await_(); use the thread executor "
                    "for code that does blocking I/O",
                    self.label,
                    held,
                    self._executor.block_warning,
                )


def _worker_under(driver: greenlet.greenlet, workers: list[JobGreenlet]) -> JobGreenlet:
    """An idle worker, else a new one, whose ``parent`` is ``driver``.

    SQLAlchemy switches to the parent, so it must be the greenlet that drives
    this job.
    """
    worker = reuse_under(driver, workers)
    if worker is None:
        worker = JobGreenlet(_serve_jobs)  # its parent: the current greenlet, the driver
    return worker


def _run_job(job: GreenletJob[Any]) -> Any:
    return job.function(job)


def _report_done(done: list[Outcome]) -> tuple[int, list[Outcome]]:
    return (_DONE, done)


_serve_jobs = functools.partial(serve_boxed, run=_run_job, report=_report_done)


class _IdleWorkers(threading.local):
    def __init__(self, block_warning: float) -> None:
        self.workers: list[JobGreenlet] = []
        self.stretch = _watchdog.watch(block_warning)


class GreenletExecutor(Executor):
    """Runs sync code in greenlets on the event loop's own thread.

    :param block_warning: seconds a greenlet may hold the loop in one stretch
        before a warning names its job.
    :param idle_workers: finished worker greenlets kept for reuse, per thread.
    :param asgiref: let asgiref's ``async_to_sync`` (Flask's stock async views,
        Django's async middleware) run on the loop from these greenlets, as
        ``await_`` does; when false it raises ``AwaitError`` naming this switch.
    """

    name = "greenlet"
    multithread = False

    def __init__(
        self, *, block_warning: float = 0.1, idle_workers: int = 128, asgiref: bool = False
    ) -> None:
        if block_warning <= 0:
            raise ConfigurationError(f"block_warning must be positive, got {block_warning}")
        if idle_workers < 0:
            raise ConfigurationError(f"idle_workers must be >= 0, got {idle_workers}")
        self.block_warning = block_warning
        self.idle_workers = idle_workers
        self.asgiref = asgiref
        self._idle = _IdleWorkers(block_warning)
        _asgiref.install()

    def _workers(self) -> list[JobGreenlet]:
        return self._idle.workers

    def job(
        self, function: Callable[[Job[T]], T], sink: Sink, context: Context, label: str
    ) -> Job[T]:
        return GreenletJob(self, function, sink, context, label)

    async def aclose(self) -> None:
        """Drop the idle worker greenlets of this thread."""
        self._idle.workers.clear()
