"""GreenletExecutor: sync code in greenlets on the event-loop thread itself.

The driver task switches into the job's greenlet; when the sync code needs
the loop (``put``, ``await_``) it switches back with a request, the driver
awaits it, and switches in again with the answer. No thread, no lock, no
wake-up: a crossing is two greenlet switches.

The price: code in the greenlet that blocks (``time.sleep``, a sync socket)
blocks the whole loop. Each stretch the greenlet holds the loop is timed,
and one longer than ``block_warning`` seconds is logged, naming the job.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable
from contextvars import Context
from typing import Any, TypeVar

import anyio.lowlevel
import greenlet

from .._errors import ConfigurationError
from ._base import Executor
from ._job import Job, JobGreenlet, Sink
from ._loop import InContext

T = TypeVar("T")
R = TypeVar("R")

logger = logging.getLogger("bridge")

_PUT, _AWAIT = 0, 1
_PUTS_PER_CHECKPOINT = 16


class GreenletJob(Job[T]):
    __slots__ = ("_block_warning", "_driver")

    def __init__(
        self,
        function: Callable[[Job[T]], T],
        sink: Sink,
        context: Context,
        label: str,
        block_warning: float,
    ) -> None:
        super().__init__(function, sink, context, label)
        self._block_warning = block_warning
        self._driver: greenlet.greenlet | None = None

    # The worker side: runs in the job's greenlet.
    def put(self, item: object) -> None:
        if self.interrupted is not None:
            raise self.interrupted
        assert self._driver is not None
        self._driver.switch((_PUT, item))

    def await_(self, awaitable: Awaitable[R], context: Context | None = None) -> R:
        if self.interrupted is not None:
            close = getattr(awaitable, "close", None)
            if close is not None:
                close()
            raise self.interrupted
        assert self._driver is not None
        if context is not None:
            awaitable = InContext(context, awaitable)
        result: R = self._driver.switch((_AWAIT, awaitable))
        return result

    def _main(self) -> T:
        return self.function(self)

    # The loop side.
    async def run(self) -> T:
        self._driver = greenlet.getcurrent()
        worker = JobGreenlet(self._main)
        worker.job = self
        worker.gr_context = self.context
        request = self._step(worker.switch)
        cancelled: BaseException | None = None
        puts = 0
        while not worker.dead:
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
        if cancelled is not None:
            raise cancelled
        result: T = request
        return result

    def _step(self, switch: Callable[..., Any], *value: Any) -> Any:
        started = time.perf_counter()
        try:
            return switch(*value)
        finally:
            held = time.perf_counter() - started
            if held > self._block_warning:
                logger.warning(
                    "the greenlet for %s held the event loop for %.3f s (over %.3f s): "
                    "it blocked without going through await_(); use the thread executor "
                    "for code that does blocking I/O",
                    self.label,
                    held,
                    self._block_warning,
                )


class GreenletExecutor(Executor):
    """Runs sync code in greenlets on the event loop's own thread.

    :param block_warning: seconds a greenlet may hold the loop in one stretch
        before a warning names its job.
    """

    name = "greenlet"
    multithread = False

    def __init__(self, *, block_warning: float = 0.1) -> None:
        if block_warning <= 0:
            raise ConfigurationError(f"block_warning must be positive, got {block_warning}")
        self.block_warning = block_warning

    def job(
        self, function: Callable[[Job[T]], T], sink: Sink, context: Context, label: str
    ) -> Job[T]:
        return GreenletJob(function, sink, context, label, self.block_warning)
