"""GreenletExecutor: sync code in greenlets on the event-loop thread itself.

The driver task switches into a worker greenlet; when the sync code needs
the loop (``put``, ``await_``) it switches back with a request, the driver
awaits it, and switches in again with the answer. No thread, no lock, no
wake-up: a crossing is two greenlet switches.

Starting a fresh greenlet costs several times more than a switch, so worker
greenlets are kept and reused, per thread (a greenlet cannot move between
threads). Each job sets the worker's context to its own.

The price of running on the loop: code in the greenlet that blocks
(``time.sleep``, a sync socket) blocks the whole loop. Each stretch a
greenlet holds the loop is timed, and one longer than ``block_warning``
seconds is logged, naming the job.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Awaitable, Callable
from contextvars import Context
from typing import Any, TypeVar

import anyio.lowlevel
import greenlet

from .._errors import ConfigurationError
from . import _asgiref
from ._base import Executor
from ._job import Job, JobGreenlet, Sink, close_unawaited
from ._loop import InContext

T = TypeVar("T")
R = TypeVar("R")

logger = logging.getLogger("bridge")

_PUT, _AWAIT, _DONE = 0, 1, 2
_PUTS_PER_CHECKPOINT = 16


class GreenletJob(Job[T]):
    __slots__ = ("_driver", "_executor", "allows_asgiref")

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
        self._driver: greenlet.greenlet | None = None
        self.allows_asgiref = executor.asgiref

    # The worker side: runs in the worker greenlet.
    def put(self, item: object) -> None:
        if self.interrupted is not None:
            raise self.interrupted
        assert self._driver is not None
        self._driver.switch((_PUT, item))

    def await_(self, awaitable: Awaitable[R], context: Context | None = None) -> R:
        if self.interrupted is not None:
            close_unawaited(awaitable)
            raise self.interrupted
        # We are on the loop's thread, inside the driver task's step: the first
        # step of the awaitable can run right here. Most finish or suspend in it;
        # only a suspension needs the driver, which resumes the awaitable.
        iterator = awaitable.__await__()
        try:
            signal = iterator.send(None) if context is None else context.run(iterator.send, None)
        except StopIteration as stop:
            value: R = stop.value
            return value
        assert self._driver is not None
        resumed = InContext.resume(context, iterator, signal)
        result: R = self._driver.switch((_AWAIT, resumed))
        return result

    # The loop side.
    async def run(self) -> T:
        self._driver = greenlet.getcurrent()
        workers = self._executor._workers()
        worker = workers.pop() if workers else JobGreenlet(_serve_jobs)
        worker.job = self
        worker.gr_context = self.context
        request = self._step(worker.switch, None)
        cancelled: BaseException | None = None
        puts = 0
        while request[0] != _DONE:
            kind, item = request
            try:
                value = None
                if kind == _AWAIT:
                    value = await item
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
                request = self._step(worker.throw, error)
            else:
                request = self._step(worker.switch, value)
        worker.job = None
        worker.gr_context = None
        if len(workers) < self._executor.idle_workers:
            workers.append(worker)
        if cancelled is not None:
            raise cancelled
        succeeded, outcome = request[1]
        if succeeded:
            result: T = outcome
            return result
        raise outcome

    def _step(self, switch: Callable[..., Any], value: Any) -> Any:
        started = time.perf_counter()
        try:
            return switch(value)
        finally:
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


def _serve_jobs(_: None) -> None:
    """A worker greenlet's life: run a job, report how it ended, wait for the next.

    The job comes in ``worker.job``, not as an argument: the first switch's
    arguments stay referenced for as long as the greenlet lives, and an idle
    worker must not keep its last job (its request, its context) alive.
    """
    worker = greenlet.getcurrent()
    assert isinstance(worker, JobGreenlet)
    while True:
        job = worker.job
        assert isinstance(job, GreenletJob)
        try:
            outcome: tuple[bool, Any] = (True, job.function(job))
        except greenlet.GreenletExit:
            raise
        except BaseException as error:
            outcome = (False, error)
        driver = job._driver
        assert driver is not None
        del job
        driver.switch((_DONE, outcome))


class _IdleWorkers(threading.local):
    def __init__(self) -> None:
        self.workers: list[JobGreenlet] = []


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
        self._idle = _IdleWorkers()
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
