"""A job: one call of sync code in a worker, driven by one task on the loop.

The sync side talks to its driver through two calls only:

* ``put(item)`` hands an item to the driver, which passes it to the job's
  async ``sink`` in order. A slow sink makes ``put`` wait (backpressure).
* ``await_(awaitable)`` has the driver await something and returns its result.

The driver can ``interrupt`` the job: the next ``put`` or ``await_`` raises
the given exception in the worker, so it can unwind and clean up. Executors
know nothing of what the items mean.
"""

from __future__ import annotations

import threading
from collections.abc import Awaitable, Callable, Coroutine
from contextvars import Context
from typing import Any, Generic, TypeVar

import greenlet

T = TypeVar("T")
R = TypeVar("R")
W = TypeVar("W", bound=greenlet.greenlet)

Outcome = tuple[bool, Any]  # (True, result) or (False, the error raised)

Sink = Callable[[Any], Awaitable[None]]


class Job(Generic[T]):
    """One unit of sync work and the two-way channel to its driver."""

    __slots__ = ("context", "function", "interrupted", "label", "sink")

    def __init__(
        self,
        function: Callable[[Job[T]], T],
        sink: Sink,
        context: Context,
        label: str,
    ) -> None:
        self.function = function
        self.sink = sink
        self.context = context
        self.label = label
        self.interrupted: BaseException | None = None

    # The worker side.
    def put(self, item: object) -> None:
        raise NotImplementedError

    def await_(self, awaitable: Awaitable[R], context: Context | None = None) -> R:
        """Have the driver await ``awaitable``; inside ``context`` when one is given."""
        raise NotImplementedError

    # The loop side.
    def interrupt(self, error: BaseException) -> None:
        """Make the worker's next crossing raise ``error``; safe from the loop thread."""
        if self.interrupted is None:
            self.interrupted = error

    async def run(self) -> T:
        """Run the job to its end, serving its crossings; its result or its error."""
        raise NotImplementedError


class _JobLocal(threading.local):
    job: Job[Any] | None = None


thread_job = _JobLocal()


class JobGreenlet(greenlet.greenlet):
    """A greenlet that runs a job; ``job`` lets ``await_`` find its driver.

    It is also an await provider to SQLAlchemy: its sync API on an asyncio
    driver switches to the greenlet's ``parent`` with a bare awaitable, and
    the job's driver (kept as that parent) awaits it and switches back.
    """

    __sqlalchemy_greenlet_provider__ = True
    job: Job[Any] | None = None


def reuse_under(parent: greenlet.greenlet, idle: list[W]) -> W | None:
    """An idle worker greenlet from ``idle`` that can take ``parent`` as its parent, if any.

    One that cannot (``parent`` runs under it) is dropped.
    """
    while idle:
        worker = idle.pop()
        try:
            worker.parent = parent
        except ValueError:
            continue
        return worker
    return None


def serve_boxed(
    box: list[Any], run: Callable[[Any], Any], report: Callable[[list[Outcome]], Any]
) -> None:
    """A reusable worker greenlet's life: run an item, switch back how it ended, wait for more.

    Items come in a box this frame empties: greenlet keeps the first call's
    arguments for the greenlet's whole life, and an idle worker must keep
    nothing of the item it ran (its request, its error). ``report`` wraps the
    boxed outcome in what the parent expects; the parent empties that box.
    """
    me = greenlet.getcurrent()
    item = box.pop()
    while True:
        try:
            outcome: Outcome = (True, run(item))
        except greenlet.GreenletExit:
            raise
        except BaseException as error:
            outcome = (False, error)
        parent = me.parent
        assert parent is not None
        done = [outcome]
        del item, outcome
        item = parent.switch(report(done)).pop()


def unbox(done: list[Outcome]) -> Any:
    """The result in ``done``, or its error raised; ``done`` is left empty."""
    succeeded, outcome = done.pop()
    if succeeded:
        return outcome
    try:
        raise outcome
    finally:
        del outcome  # this frame joins its traceback: no local may hold it


def close_unawaited(awaitable: object) -> None:
    """Close a coroutine that will never be awaited, so Python does not warn about it.

    Only a coroutine: another awaitable's ``close`` may mean something else
    (aiosqlite's connection has an async ``close``, which would itself go
    unawaited).
    """
    if isinstance(awaitable, Coroutine):
        awaitable.close()


def current_job() -> Job[Any] | None:
    """The job whose sync code is running here, if any."""
    current = greenlet.getcurrent()
    if type(current) is JobGreenlet:
        return current.job
    return thread_job.job
